"""The Kustomize install: every overlay renders, the real API server accepts it, Pod Security
admits each workload's pods in its namespace, and the topology holds what production needs."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import KUBERNETES, OVERLAYS, ROOT, Kube, kustomize

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
DASHBOARD_NS = "windows-node-doctor"
AGENT_NS = "windows-node-doctor-agent"

# The Prometheus Operator's kinds, for the optional monitoring component: the test API server
# has no operator, so these stand-in definitions accept any spec (the operator's own CRDs are
# thousands of lines of schema). Everything else is checked by the real built-in schemas.
MONITORING_CRDS = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    for plural, kind in (("servicemonitors", "ServiceMonitor"), ("prometheusrules", "PrometheusRule"))
]


def with_components(*components: str) -> Path:
    """A throwaway overlay: production plus the optional components named."""
    folder = Path(tempfile.mkdtemp(prefix="wnd-overlay-"))
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize takes only relative paths to other kustomizations
                "resources": [os.path.relpath(KUBERNETES / "overlays" / "production", folder)],
                "components": [os.path.relpath(KUBERNETES / "components" / c, folder) for c in components],
            }
        )
    )
    return folder


def rendered(overlay: str) -> list[dict[str, Any]]:
    if overlay == "production+monitoring+object-storage":
        return kustomize(with_components("monitoring", "object-storage"))
    return kustomize(KUBERNETES / "overlays" / overlay)


ALL = [*OVERLAYS, "production+monitoring+object-storage"]


def pod_of(workload: dict[str, Any]) -> dict[str, Any]:
    """The Pod a controller would create from ``workload``'s template."""
    template = workload["spec"]["template"]
    spec = dict(template["spec"])
    for claim in workload["spec"].get("volumeClaimTemplates", []):  # as the StatefulSet controller mounts them
        name = claim["metadata"]["name"]
        claim_name = f"{name}-{workload['metadata']['name']}-0"
        spec["volumes"] = [*spec.get("volumes", []), {"name": name, "persistentVolumeClaim": {"claimName": claim_name}}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{workload['metadata']['name']}-test",
            "namespace": workload["metadata"]["namespace"],
            "labels": template["metadata"].get("labels", {}),
        },
        "spec": spec,
    }


def prepare_namespaces(kube: Kube, objects: list[dict[str, Any]]) -> None:
    """Create the namespaces (and their default ServiceAccount: this API server has no controller
    manager to make it), so that namespaced objects can be dry-run into them."""
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    result = kube.apply(namespaces)
    assert result.returncode == 0, result.stderr
    for ns in namespaces:
        kube.run("create", "serviceaccount", "default", "-n", ns["metadata"]["name"])


def test_overlays_are_production_and_demo() -> None:
    assert {"production", "demo"} <= set(OVERLAYS)


@pytest.mark.parametrize("path", ["base/dashboard", "base/agent", *(f"overlays/{o}" for o in OVERLAYS)])
def test_every_base_and_overlay_renders(path: str) -> None:
    assert kustomize(KUBERNETES / path)


@pytest.mark.parametrize("overlay", ALL)
def test_the_api_server_accepts_every_object_of_the_overlay_in_a_server_side_dry_run(kube: Kube, overlay: str) -> None:
    objects = rendered(overlay)
    prepare_namespaces(kube, objects)
    if any(o["apiVersion"].startswith("monitoring.coreos.com/") for o in objects):
        assert kube.apply(MONITORING_CRDS).returncode == 0
        kube.run("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
    result = kube.apply(objects, "--dry-run=server")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(objects)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_security_admits_the_pods_of_every_workload_in_its_namespace(kube: Kube, overlay: str) -> None:
    objects = rendered(overlay)
    prepare_namespaces(kube, objects)
    # The pods' ServiceAccounts are created for real (admission wants them to exist); the rest
    # was checked by the dry run, and Jobs and claims are immutable across overlays.
    needed = [o for o in objects if o["kind"] == "ServiceAccount"]
    applied = kube.apply(needed, "--server-side", "--force-conflicts")
    assert applied.returncode == 0, applied.stderr
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    assert {w["metadata"]["namespace"] for w in workloads} == {DASHBOARD_NS, AGENT_NS}
    for workload in workloads:
        result = kube.run("create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(pod_of(workload)))
        assert result.returncode == 0, f"{workload['metadata']['name']}: {result.stderr}"
        assert "Warning" not in result.stderr, f"{workload['metadata']['name']}: {result.stderr}"


def test_pod_security_really_enforces_restricted_in_the_dashboards_namespace(kube: Kube) -> None:
    objects = rendered("production")
    prepare_namespaces(kube, objects)
    agent = next(o for o in objects if o["kind"] == "DaemonSet")
    pod = pod_of(agent)
    pod["metadata"]["namespace"] = DASHBOARD_NS
    pod["spec"]["serviceAccountName"] = "default"
    result = kube.run("create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(pod))
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr
    assert "hostProcess" in result.stderr


# What the topology must hold, read from the rendered objects.


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("overlay", ALL)
def test_images_are_pinned_to_a_release(overlay: str) -> None:
    for workload in (o for o in rendered(overlay) if o["kind"] in WORKLOADS):
        for container in containers(workload):
            image = container["image"]
            assert re.search(r":[\w.-]+(@sha256:[0-9a-f]{64})?$", image), image
            assert not image.endswith(":latest"), image


@pytest.mark.parametrize("overlay", ALL)
def test_one_migration_job_one_beat_and_web_worker_watcher_with_resources_and_probes(overlay: str) -> None:
    objects = rendered(overlay)
    deployments = by_kind(objects, "Deployment")
    jobs = by_kind(objects, "Job")
    assert list(jobs) == ["node-doctor-migrate"]
    assert jobs["node-doctor-migrate"]["spec"]["template"]["spec"]["containers"][0]["command"][-2:] == [
        "migrate",
        "--noinput",
    ]
    for workload in (o for o in objects if o["kind"] in WORKLOADS):
        for container in containers(workload):
            assert "migrate --noinput" not in " ".join(container.get("command", [])) or workload["kind"] == "Job"
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    beat = deployments["node-doctor-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    worker_command = deployments["node-doctor-worker"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--beat" not in worker_command and "-B" not in worker_command
    web = deployments["node-doctor-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "inspect ping" in " ".join(
        deployments["node-doctor-worker"]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"][
            "command"
        ]
    )
    watcher = deployments["node-doctor-watcher"]["spec"]["template"]["spec"]["containers"][0]
    assert watcher["livenessProbe"]["exec"]["command"][:4] == ["python", "-m", "dashboard.server.heartbeat", "watcher"]
    pdbs = {
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for p in by_kind(objects, "PodDisruptionBudget").values()
    }
    assert {"web", "worker", "watcher"} <= pdbs


def test_production_runs_two_watchers_that_may_take_a_lease_in_their_namespace() -> None:
    objects = rendered("production")
    watcher = by_kind(objects, "Deployment")["node-doctor-watcher"]
    assert watcher["spec"]["replicas"] == 2
    account = watcher["spec"]["template"]["spec"]["serviceAccountName"]
    role = by_kind(objects, "Role")["node-doctor-watcher-lease"]
    assert role["metadata"]["namespace"] == DASHBOARD_NS
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    settings = next(
        c for c in by_kind(objects, "ConfigMap").values() if c["metadata"]["name"].startswith("node-doctor-settings")
    )
    assert settings["data"]["WND_WATCHER_LEASE"].split("/")[0] == DASHBOARD_NS  # the election is on
    binding = by_kind(objects, "RoleBinding")["node-doctor-watcher-lease"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": DASHBOARD_NS}]


def test_the_dashboard_may_review_tokens_and_read_pods_and_nothing_more_for_enrollment() -> None:
    objects = rendered("production")
    role = by_kind(objects, "ClusterRole")["node-doctor-dashboard-read"]
    granted = {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }
    assert {("authentication.k8s.io", "tokenreviews", "create"), ("", "pods", "get")} <= granted
    assert {v for _g, _r, v in granted} == {"get", "list", "watch", "create"}
    assert [(g, r) for g, r, v in granted if v == "create"] == [("authentication.k8s.io", "tokenreviews")]


def test_the_agent_has_a_projected_token_for_the_dashboard_and_no_api_permission() -> None:
    objects = rendered("production")
    agent = by_kind(objects, "DaemonSet")["node-doctor-agent"]
    spec = agent["spec"]["template"]["spec"]
    account = spec["serviceAccountName"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["windowsOptions"]["hostProcess"] is True and spec["hostNetwork"] is True
    token = next(v for v in spec["volumes"] if v["name"] == "token")["projected"]["sources"][0]["serviceAccountToken"]
    settings = next(
        c for c in by_kind(objects, "ConfigMap").values() if c["metadata"]["name"].startswith("node-doctor-settings")
    )
    assert token["audience"] == settings["data"]["WND_AGENT_AUDIENCE"]
    assert settings["data"]["WND_AGENT_SERVICE_ACCOUNT"] == f"{AGENT_NS}/{account}"
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in by_kind(objects, kind).values():
            assert all(s["name"] != account for s in binding["subjects"]), binding["metadata"]["name"]


def test_the_agents_dashboard_url_is_required_and_is_never_an_in_cluster_name() -> None:
    base = kustomize(KUBERNETES / "base" / "agent")
    agent = by_kind(base, "DaemonSet")["node-doctor-agent"]
    env = {e["name"]: e for e in agent["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["DASHBOARD_URL"]["valueFrom"]["configMapKeyRef"]
    assert ref["key"] == "dashboard-url" and not ref.get("optional")
    base_settings = next(c for c in by_kind(base, "ConfigMap").values() if c["metadata"]["name"] == ref["name"])
    assert "dashboard-url" not in base_settings["data"]  # the pods do not start until an overlay sets it
    urls = {}
    for overlay in OVERLAYS:
        settings = [
            c
            for c in by_kind(rendered(overlay), "ConfigMap").values()
            if c["metadata"]["name"].startswith("node-doctor-agent-settings-")
        ]
        url = settings[0]["data"].get("dashboard-url")
        if url is not None:
            urls[overlay] = url
            assert url.startswith(("https://", "http://")) and ".svc" not in url and "cluster.local" not in url
    assert urls["production"].startswith("https://")


def test_namespaces_are_labelled_for_pod_security() -> None:
    namespaces = by_kind(rendered("production"), "Namespace")
    assert namespaces[DASHBOARD_NS]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces[AGENT_NS]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_an_ingress_with_tls_fronts_the_web_service() -> None:
    objects = rendered("production")
    ingress = by_kind(objects, "Ingress")["node-doctor"]
    host = ingress["spec"]["rules"][0]["host"]
    assert host in ingress["spec"]["tls"][0]["hosts"] and ingress["spec"]["tls"][0]["secretName"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert backend in by_kind(objects, "Service")


@pytest.mark.parametrize("overlay", ALL)
def test_secrets_come_from_files_of_a_secret_and_bundles_from_a_shared_storage(overlay: str) -> None:
    objects = rendered(overlay)
    settings = next(
        c for c in by_kind(objects, "ConfigMap").values() if c["metadata"]["name"].startswith("node-doctor-settings")
    )["data"]
    for name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "WND_METRICS_TOKEN"):
        assert settings[f"{name}_FILE"] == f"/etc/wnd/secrets/{name}"
        assert name not in settings
    deployments = by_kind(objects, "Deployment")
    if settings["WND_BUNDLE_STORAGE"] == "file":
        for name in ("node-doctor-web", "node-doctor-worker"):
            mounts = deployments[name]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            assert any(m["mountPath"] == settings["WND_BUNDLE_DIR"] for m in mounts), name
        claim = by_kind(objects, "PersistentVolumeClaim")["node-doctor-bundles"]
        assert claim["spec"]["accessModes"] == (["ReadWriteOnce"] if overlay == "demo" else ["ReadWriteMany"])
    else:
        assert settings["WND_BUNDLE_STORAGE"] in {"s3", "azure", "gcs"}
        assert settings["WND_BUNDLE_STORAGE_OPTIONS_FILE"].startswith("/etc/wnd/secrets/")


def test_monitoring_alerts_and_dashboard_read_metrics_the_dashboard_exports() -> None:
    exported = set(re.findall(r'"(wnd_[a-z_]+)"', (ROOT / "dashboard" / "server" / "metrics.py").read_text()))
    objects = rendered("production+monitoring+object-storage")
    rule = by_kind(objects, "PrometheusRule")["node-doctor"]
    expressions = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"WindowsNodeCriticalFinding", "WindowsNodeAgentStale"} <= alerts
    dashboard = by_kind(objects, "ConfigMap")["node-doctor-grafana-dashboard"]
    panels = yaml.safe_load(dashboard["data"]["windows-node-doctor.json"])["panels"]
    expressions += [t["expr"] for p in panels for t in p["targets"]]
    for expr in expressions:
        used = set(re.findall(r"\bwnd_[a-z_]+", expr))
        assert used <= exported, expr
    assert by_kind(objects, "ServiceMonitor")["node-doctor"]["spec"]["endpoints"][0]["path"] == "/metrics"


def test_the_old_flat_manifests_are_gone() -> None:
    assert not (ROOT / "deploy" / "dashboard").exists()
    assert not (ROOT / "deploy" / "agent" / "daemonset.yaml").exists()
