from __future__ import annotations

import copy
from typing import Any

import pytest

from diagnostics.checks.workload import is_windows_spec, windows_workloads
from tests.diagnostics.builders import fixture_json, healthy_pods, make_snapshot
from tests.diagnostics.checks.outcomes import failures

CRONJOB = "CronJob/finance/report-export"
CRON_SPEC = "spec.jobTemplate.spec.template.spec"


def cronjob() -> dict[str, Any]:
    return fixture_json("checks/workloads/cronjob.json")


def linux_daemonset() -> dict[str, Any]:
    return fixture_json("checks/workloads/daemonset-linux.json")


def iis_pod() -> dict[str, Any]:
    return copy.deepcopy(healthy_pods()[0])


def deployment() -> dict[str, Any]:
    return fixture_json("checks/healthy/deployment.json")


def only(check_id: str, **overrides: Any) -> list:
    return failures(make_snapshot(**overrides), check_id)


class TestWhichWorkloadsAreWindows:
    def test_it_takes_pods_bound_to_the_node_and_windows_controllers_only(self) -> None:
        snap = make_snapshot(workloads=(deployment(), cronjob(), linux_daemonset()))

        refs = [w.ref for w in windows_workloads(snap)]

        assert refs == [
            "Pod/default/iis-web-7d9c6b5f8d-x2k4p",
            "Pod/node-doctor/node-doctor-agent-q7t5m",
            "Deployment/default/iis-web",
            CRONJOB,
        ]

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ({"os": {"name": "windows"}}, True),
            ({"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"image": "nanoserver"}]}, False),
            ({"tolerations": [{"key": "os", "operator": "Equal", "value": "windows", "effect": "NoSchedule"}]}, True),
            ({"nodeName": "win-node-1"}, True),
            ({"containers": [{"image": "mcr.microsoft.com/windows/nanoserver:ltsc2022"}]}, True),
            ({"containers": [{"image": "nginx:1.27"}]}, False),
            (
                {
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]}
                                        ]
                                    }
                                ]
                            }
                        }
                    }
                },
                True,
            ),
        ],
    )
    def test_it_decides_from_os_selectors_tolerations_binding_and_images(self, spec: dict, expected: bool) -> None:
        assert is_windows_spec(spec, "win-node-1") is expected


class TestWorkloadChecksOnACronJob:
    """One realistic CronJob with several Windows-incompatible fields, each reported with its path."""

    @pytest.mark.parametrize(
        ("check_id", "subject", "excerpt"),
        [
            (
                "workload.linux-security-context",
                f"{CRONJOB}:export",
                f"{CRON_SPEC}.containers[0].securityContext.runAsUser: 1000",
            ),
            (
                "workload.readonly-rootfs",
                f"{CRONJOB}:export",
                f"{CRON_SPEC}.containers[0].securityContext.readOnlyRootFilesystem: true",
            ),
            (
                "workload.subpath-mount",
                f"{CRONJOB}:export",
                f"{CRON_SPEC}.containers[0].volumeMounts[0].subPath: appsettings.json",
            ),
            (
                "workload.mount-propagation",
                f"{CRONJOB}:export",
                f"{CRON_SPEC}.containers[0].volumeMounts[2].mountPropagation: HostToContainer",
            ),
            ("workload.emptydir-memory", CRONJOB, f"{CRON_SPEC}.volumes[1].emptyDir.medium: Memory"),
            (
                "workload.nfs-volume",
                CRONJOB,
                f"{CRON_SPEC}.volumes[2].nfs: {{'path': '/exports/reports', 'server': '10.0.0.40'}}",
            ),
            ("workload.termination-grace", CRONJOB, f"{CRON_SPEC}.terminationGracePeriodSeconds: 120"),
            (
                "workload.termination-message-path",
                f"{CRONJOB}:export",
                f"{CRON_SPEC}.containers[0].terminationMessagePath: /tmp/termination",
            ),
            ("workload.os-selector-missing", CRONJOB, f"{CRON_SPEC}.nodeSelector: unset"),
            (
                "workload.resource-limits-missing",
                f"{CRONJOB}:export",
                f"{CRON_SPEC}.containers[0].resources.limits.memory: unset",
            ),
        ],
    )
    def test_it_names_the_object_and_the_field(self, check_id: str, subject: str, excerpt: str) -> None:
        [finding] = only(check_id, workloads=(cronjob(),))

        assert finding.subject == subject
        assert finding.evidence[0].source == f"api {CRONJOB}"
        assert finding.evidence[0].excerpt == excerpt

    def test_it_ignores_linux_workloads_entirely(self) -> None:
        from diagnostics.registry import run

        assert run(make_snapshot(workloads=(linux_daemonset(),))) == []


class TestHostNetwork:
    def test_it_reports_host_network_on_a_windows_pod(self) -> None:
        pod = iis_pod()
        pod["spec"]["hostNetwork"] = True

        [finding] = only("workload.host-network", pods=(pod,))

        assert finding.evidence[0].excerpt == "spec.hostNetwork: true"

    def test_it_accepts_host_network_on_hostprocess_pods(self) -> None:
        assert only("workload.host-network") == []


class TestHostNamespaces:
    def test_it_reports_host_pid(self) -> None:
        dep = deployment()
        dep["spec"]["template"]["spec"]["hostPID"] = True

        [finding] = only("workload.host-namespaces", workloads=(dep,))

        assert finding.subject == "Deployment/default/iis-web"
        assert finding.evidence[0].excerpt == "spec.template.spec.hostPID: true"

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert only("workload.host-namespaces") == []


class TestPrivileged:
    def test_it_reports_a_privileged_container(self) -> None:
        pod = iis_pod()
        pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}

        [finding] = only("workload.privileged", pods=(pod,))

        assert finding.subject == "Pod/default/iis-web-7d9c6b5f8d-x2k4p:iis"
        assert "HostProcess" in finding.fix[0]

    def test_it_reports_capabilities(self) -> None:
        pod = iis_pod()
        pod["spec"]["containers"][0]["securityContext"] = {"capabilities": {"add": ["NET_ADMIN"]}}

        [finding] = only("workload.privileged", pods=(pod,))

        assert finding.evidence[0].excerpt == "spec.containers[0].securityContext.capabilities: {'add': ['NET_ADMIN']}"

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert only("workload.privileged") == []


class TestLinuxSecurityContext:
    def test_it_reports_pod_level_fields(self) -> None:
        pod = iis_pod()
        pod["spec"]["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}

        [finding] = only("workload.linux-security-context", pods=(pod,))

        assert finding.evidence[0].excerpt == "spec.securityContext.runAsNonRoot: true"

    def test_it_reports_apparmor_annotations_on_templates(self) -> None:
        dep = deployment()
        dep["spec"]["template"]["metadata"]["annotations"] = {
            "container.apparmor.security.beta.kubernetes.io/iis": "runtime/default"
        }

        [finding] = only("workload.linux-security-context", workloads=(dep,))

        assert finding.evidence[0].excerpt == (
            "spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/iis]: runtime/default"
        )

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert only("workload.linux-security-context") == []


class TestVolumesAndResources:
    def test_it_reports_block_volumes(self) -> None:
        pod = iis_pod()
        pod["spec"]["containers"][0]["volumeDevices"] = [{"devicePath": "/dev/xvda", "name": "data"}]

        [finding] = only("workload.block-volume", pods=(pod,))

        assert finding.evidence[0].excerpt == "spec.containers[0].volumeDevices: ['/dev/xvda']"

    def test_it_reports_hugepages(self) -> None:
        pod = iis_pod()
        pod["spec"]["containers"][0]["resources"]["limits"]["hugepages-2Mi"] = "100Mi"

        [finding] = only("workload.hugepages", pods=(pod,))

        assert finding.evidence[0].excerpt == "spec.containers[0].resources.limits[hugepages-2Mi]: 100Mi"

    @pytest.mark.parametrize(
        "check_id",
        [
            "workload.block-volume",
            "workload.hugepages",
            "workload.subpath-mount",
            "workload.mount-propagation",
            "workload.emptydir-memory",
            "workload.nfs-volume",
            "workload.readonly-rootfs",
            "workload.termination-grace",
            "workload.termination-message-path",
            "workload.resource-limits-missing",
            "workload.os-selector-missing",
        ],
    )
    def test_it_stays_quiet_on_a_healthy_node(self, check_id: str) -> None:
        assert only(check_id) == []


class TestResourceLimitsMissing:
    def test_it_reports_a_container_without_a_memory_limit(self) -> None:
        pod = iis_pod()
        del pod["spec"]["containers"][0]["resources"]["limits"]["memory"]

        [finding] = only("workload.resource-limits-missing", pods=(pod,))

        assert finding.subject == "Pod/default/iis-web-7d9c6b5f8d-x2k4p:iis"

    def test_it_leaves_hostprocess_node_tooling_alone(self) -> None:
        agent = copy.deepcopy(healthy_pods()[1])
        agent["spec"]["containers"][0]["resources"] = {}

        assert only("workload.resource-limits-missing", pods=(agent,)) == []


class TestOsSelectorMissing:
    def test_it_reports_windows_and_linux_containers_in_one_pod(self) -> None:
        dep = deployment()
        dep["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
        dep["spec"]["template"]["spec"]["tolerations"] = []

        [finding] = only("workload.os-selector-missing", workloads=(dep,))

        assert "placed on Linux nodes" in finding.summary


class TestHypervIsolationAnnotation:
    def test_it_reports_the_annotation(self) -> None:
        pod = iis_pod()
        pod["metadata"]["annotations"] = {"experimental.windows.kubernetes.io/isolation-type": "hyperv"}

        [finding] = only("workload.hyperv-isolation-annotation", pods=(pod,))

        assert finding.evidence[0].excerpt == (
            "metadata.annotations[experimental.windows.kubernetes.io/isolation-type]: hyperv"
        )

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert only("workload.hyperv-isolation-annotation") == []
