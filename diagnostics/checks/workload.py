"""Workload checks: pod fields Windows does not support, in pods bound to this node and in
controllers (Deployment, DaemonSet, StatefulSet, ReplicaSet, Job, CronJob) whose pods run,
or would run, on Windows.

Each failure names the object as ``subject`` (``kind/namespace/name`` plus ``:container``
where a container is at fault) and the field path in its evidence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from diagnostics.checks.common import per_snapshot
from diagnostics.model import Evidence, Fail, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot
from diagnostics.versions import is_windows_image

DOCS = "https://kubernetes.io/docs/concepts/windows/intro/#api"
SCHED_DOCS = "https://kubernetes.io/docs/concepts/windows/user-guide/#ensuring-os-specific-workloads-land-on-the-appropriate-container-host"

Outcome = Iterator[Fail | Unknown]

_TEMPLATE_PATHS = {
    "Deployment": "spec.template",
    "DaemonSet": "spec.template",
    "StatefulSet": "spec.template",
    "ReplicaSet": "spec.template",
    "ReplicationController": "spec.template",
    "Job": "spec.template",
    "CronJob": "spec.jobTemplate.spec.template",
}
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Workload:
    """A pod spec to check, and how to name it."""

    kind: str
    namespace: str
    name: str
    spec: dict[str, Any]  # the pod spec
    spec_path: str  # "spec" for a Pod, "spec.template.spec" for a Deployment ...
    metadata: dict[str, Any]  # the pod's (or pod template's) metadata
    source: str  # where the object came from
    all_containers: tuple[tuple[str, dict[str, Any]], ...] = ()  # (field path, container), see containers()
    host_process: bool = False  # a HostProcess pod, see _is_host_process()

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def metadata_path(self) -> str:
        return "metadata" if self.kind == "Pod" else self.spec_path.removesuffix(".spec") + ".metadata"

    def containers(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        """(field path, container) for every init, regular and ephemeral container."""
        return self.all_containers

    def fail(self, summary: str, path: str, value: Any, fix: tuple[str, ...], container: str = "") -> Fail:
        subject = self.ref + (f":{container}" if container else "")
        return Fail(
            summary=f"{subject}: {summary}",
            evidence=(Evidence(f"{self.source} {self.ref}", f"{path}: {_show(value)}"),),
            fix=fix,
            subject=subject,
        )


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_host_process(spec: dict[str, Any]) -> bool:
    """A HostProcess pod (``windowsOptions.hostProcess: true`` on the pod or every container)."""
    if _host_process(spec.get("securityContext")):
        return True
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    return bool(containers) and all(_host_process(c.get("securityContext")) for c in containers)


def _containers(spec: dict[str, Any], spec_path: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple(
        (f"{spec_path}.{key}[{i}]", container)
        for key in _CONTAINER_LISTS
        for i, container in enumerate(spec.get(key) or [])
        if isinstance(container, dict)
    )


def _host_process(security_context: Any) -> bool:
    if not isinstance(security_context, dict):
        return False
    options = security_context.get("windowsOptions") or {}
    return isinstance(options, dict) and options.get("hostProcess") is True


def _os_choice(spec: dict[str, Any]) -> str | None:
    """'windows' / 'linux' when the pod spec says where it runs, else None."""
    os_name = (spec.get("os") or {}).get("name")
    if os_name in ("windows", "linux"):
        return str(os_name)
    selector = spec.get("nodeSelector") or {}
    for key in ("kubernetes.io/os", "beta.kubernetes.io/os"):
        if selector.get(key) in ("windows", "linux"):
            return str(selector[key])
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in affinity.get("nodeSelectorTerms") or []:
        for expr in (term or {}).get("matchExpressions") or []:
            if expr.get("key") in ("kubernetes.io/os", "beta.kubernetes.io/os") and expr.get("operator") == "In":
                values = set(expr.get("values") or [])
                if values == {"windows"}:
                    return "windows"
                if values == {"linux"}:
                    return "linux"
    return None


def _images(spec: dict[str, Any]) -> list[str]:
    return [str(c.get("image") or "") for key in _CONTAINER_LISTS for c in spec.get(key) or [] if isinstance(c, dict)]


def is_windows_spec(spec: dict[str, Any], node: str) -> bool:
    """Whether pods from this spec run, or would run, on Windows nodes."""
    choice = _os_choice(spec)
    if choice is not None:
        return choice == "windows"
    if spec.get("nodeName") == node:
        return True
    for tol in spec.get("tolerations") or []:
        if (
            isinstance(tol, dict)
            and tol.get("key") in ("os", "node.kubernetes.io/os")
            and tol.get("value") == "windows"
        ):
            return True
    return any(is_windows_image(image) for image in _images(spec))


def _from_object(obj: dict[str, Any], source: str, node: str, bound: bool, everything: bool) -> Workload | None:
    kind = str(obj.get("kind") or "Pod")
    meta = obj.get("metadata") or {}
    if kind == "Pod":
        spec, spec_path, pod_meta = obj.get("spec") or {}, "spec", meta
    elif kind in _TEMPLATE_PATHS:
        template: Any = obj
        for part in _TEMPLATE_PATHS[kind].split("."):
            template = (template or {}).get(part) if isinstance(template, dict) else None
        if not isinstance(template, dict):
            return None
        spec, spec_path, pod_meta = (
            template.get("spec") or {},
            _TEMPLATE_PATHS[kind] + ".spec",
            template.get("metadata"),
        )
    else:
        return None
    if not isinstance(spec, dict) or not (bound or everything or is_windows_spec(spec, node)):
        return None
    return Workload(
        kind=kind,
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        spec=spec,
        spec_path=spec_path,
        metadata=pod_meta if isinstance(pod_meta, dict) else {},
        source=source,
        all_containers=_containers(spec, spec_path),
        host_process=_is_host_process(spec),
    )


@per_snapshot
def windows_workloads(snap: NodeSnapshot, *, everything: bool = False) -> tuple[Workload, ...]:
    """Pods bound to this node (Windows by definition), then Windows pods and controllers from ``workloads``
    (all of them with ``everything``)."""
    out: list[Workload] = []
    seen: set[str] = set()
    candidates: list[tuple[dict[str, Any], str, bool]] = []
    if snap.pods is not None:
        candidates.extend((p, snap.pods.source, True) for p in snap.pods.value)
    candidates.extend((w, "api", False) for w in snap.workloads)
    for obj, source, bound in candidates:
        if not isinstance(obj, dict):
            continue
        workload = _from_object(obj, source, snap.node, bound, everything)
        if workload is not None and workload.ref not in seen:
            seen.add(workload.ref)
            out.append(workload)
    return tuple(out)


# -- host namespaces and privileges -------------------------------------------------------


@check("workload.host-network", severity=Severity.WARNING, title="Pods ask for hostNetwork", docs=DOCS)
def host_network(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        if w.spec.get("hostNetwork") is True and not w.host_process:
            yield w.fail(
                "hostNetwork is not supported for Windows pods (only HostProcess containers share the host's network).",
                f"{w.spec_path}.hostNetwork",
                True,
                (
                    "Remove hostNetwork, or run the pod as a HostProcess pod "
                    "(securityContext.windowsOptions.hostProcess: true, which requires hostNetwork: true).",
                ),
            )


@check(
    "workload.host-namespaces",
    severity=Severity.WARNING,
    title="Pods ask for host PID/IPC or a shared process namespace",
    docs=DOCS,
)
def host_namespaces(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        for field in ("hostPID", "hostIPC", "shareProcessNamespace"):
            if w.spec.get(field) is True:
                yield w.fail(
                    f"{field} is not supported on Windows.",
                    f"{w.spec_path}.{field}",
                    True,
                    (f"Remove {field} from the pod spec.",),
                )
                break


@check(
    "workload.privileged",
    severity=Severity.WARNING,
    title="Containers ask for privileges Windows does not have",
    docs="https://kubernetes.io/docs/tasks/configure-pod-container/create-hostprocess-pod/",
)
def privileged(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        if w.host_process:
            continue
        for path, c in w.containers():
            sc = c.get("securityContext") or {}
            for field in ("privileged", "allowPrivilegeEscalation"):
                if sc.get(field) is True:
                    yield w.fail(
                        f"securityContext.{field} is not supported on Windows.",
                        f"{path}.securityContext.{field}",
                        True,
                        (
                            "Remove it; for node-level tooling use a HostProcess container "
                            "(securityContext.windowsOptions.hostProcess: true, hostNetwork: true).",
                        ),
                        container=str(c.get("name", "")),
                    )
                    break
            else:
                caps = sc.get("capabilities")
                if isinstance(caps, dict) and (caps.get("add") or caps.get("drop")):
                    yield w.fail(
                        "Linux capabilities do not exist on Windows.",
                        f"{path}.securityContext.capabilities",
                        caps,
                        ("Remove securityContext.capabilities for Windows containers.",),
                        container=str(c.get("name", "")),
                    )


_LINUX_POD_FIELDS = (
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "seLinuxOptions",
    "supplementalGroups",
    "sysctls",
    "seccompProfile",
    "appArmorProfile",
    "fsGroup",
    "fsGroupChangePolicy",
)
_LINUX_CONTAINER_FIELDS = (
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "seLinuxOptions",
    "procMount",
    "seccompProfile",
    "appArmorProfile",
)
_LINUX_ANNOTATIONS = ("seccomp.security.alpha.kubernetes.io/", "container.apparmor.security.beta.kubernetes.io/")


@check(
    "workload.linux-security-context",
    severity=Severity.WARNING,
    title="Pods set Linux-only security context fields",
    docs=DOCS,
)
def linux_security_context(snap: NodeSnapshot) -> Outcome:
    fix = (
        "Remove the Linux-only fields; on Windows use securityContext.windowsOptions.runAsUserName "
        "(e.g. ContainerUser) instead of runAsUser.",
    )
    for w in windows_workloads(snap):
        psc = w.spec.get("securityContext") or {}
        reported = False
        for field in _LINUX_POD_FIELDS:
            if psc.get(field) not in (None, [], {}):
                yield w.fail(
                    f"securityContext.{field} has no meaning on Windows.",
                    f"{w.spec_path}.securityContext.{field}",
                    psc[field],
                    fix,
                )
                reported = True
                break
        for path, c in w.containers():
            sc = c.get("securityContext") or {}
            for field in _LINUX_CONTAINER_FIELDS:
                if sc.get(field) not in (None, [], {}) and not (field == "procMount" and sc[field] == "Default"):
                    yield w.fail(
                        f"securityContext.{field} has no meaning on Windows.",
                        f"{path}.securityContext.{field}",
                        sc[field],
                        fix,
                        container=str(c.get("name", "")),
                    )
                    break
        if not reported:
            for key, value in (w.metadata.get("annotations") or {}).items():
                if str(key).startswith(_LINUX_ANNOTATIONS):
                    path = f"{w.metadata_path}.annotations[{key}]"
                    yield w.fail("seccomp/AppArmor annotations have no meaning on Windows.", path, value, fix)
                    break


@check(
    "workload.readonly-rootfs",
    severity=Severity.WARNING,
    title="Containers ask for a read-only root filesystem",
    docs=DOCS,
)
def readonly_rootfs(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        for path, c in w.containers():
            if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is True:
                yield w.fail(
                    "readOnlyRootFilesystem is not supported on Windows.",
                    f"{path}.securityContext.readOnlyRootFilesystem",
                    True,
                    ("Remove readOnlyRootFilesystem; mount read-only volumes for the data that must not change.",),
                    container=str(c.get("name", "")),
                )


# -- volumes and mounts -------------------------------------------------------------------


def _volume_mount_fail(snap: NodeSnapshot, fields: tuple[str, ...], summary: str, fix: str) -> Outcome:
    for w in windows_workloads(snap):
        for path, c in w.containers():
            for i, mount in enumerate(c.get("volumeMounts") or []):
                for field in fields:
                    if isinstance(mount, dict) and mount.get(field) not in (None, "", "None"):
                        yield w.fail(
                            summary,
                            f"{path}.volumeMounts[{i}].{field}",
                            mount[field],
                            (fix,),
                            container=str(c.get("name", "")),
                        )
                        break


@check(
    "workload.subpath-mount",
    severity=Severity.WARNING,
    title="Volume mounts use subPath",
    docs=DOCS,
)
def subpath_mount(snap: NodeSnapshot) -> Outcome:
    yield from _volume_mount_fail(
        snap,
        ("subPath", "subPathExpr"),
        "subPath mounts (Secrets included) do not work as on Linux: Windows cannot map a single file.",
        "Mount the whole volume at a directory and read the file from there.",
    )


@check(
    "workload.mount-propagation",
    severity=Severity.WARNING,
    title="Volume mounts set mountPropagation",
    docs=DOCS,
)
def mount_propagation(snap: NodeSnapshot) -> Outcome:
    yield from _volume_mount_fail(
        snap, ("mountPropagation",), "mountPropagation is not supported on Windows.", "Remove mountPropagation."
    )


def _volumes(snap: NodeSnapshot) -> Iterator[tuple[Workload, str, dict[str, Any]]]:
    for w in windows_workloads(snap):
        for i, volume in enumerate(w.spec.get("volumes") or []):
            if isinstance(volume, dict):
                yield w, f"{w.spec_path}.volumes[{i}]", volume


@check(
    "workload.emptydir-memory",
    severity=Severity.WARNING,
    title="emptyDir volumes ask for memory-backed storage",
    docs=DOCS,
)
def emptydir_memory(snap: NodeSnapshot) -> Outcome:
    for w, path, volume in _volumes(snap):
        if (volume.get("emptyDir") or {}).get("medium") == "Memory":
            yield w.fail(
                "emptyDir with medium: Memory is not supported on Windows.",
                f"{path}.emptyDir.medium",
                "Memory",
                ("Use a disk-backed emptyDir (remove medium).",),
            )


@check("workload.nfs-volume", severity=Severity.WARNING, title="Pods mount NFS volumes", docs=DOCS)
def nfs_volume(snap: NodeSnapshot) -> Outcome:
    for w, path, volume in _volumes(snap):
        if "nfs" in volume:
            yield w.fail(
                "NFS volumes are not supported on Windows nodes.",
                f"{path}.nfs",
                volume["nfs"],
                ("Use SMB (the csi-driver-smb) or another Windows-capable CSI driver.",),
            )


@check("workload.block-volume", severity=Severity.WARNING, title="Containers ask for raw block volumes", docs=DOCS)
def block_volume(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        for path, c in w.containers():
            if c.get("volumeDevices"):
                yield w.fail(
                    "Raw block volumes (volumeDevices) are not supported on Windows.",
                    f"{path}.volumeDevices",
                    [d.get("devicePath") for d in c["volumeDevices"] if isinstance(d, dict)],
                    ("Use a filesystem volume (volumeMounts) instead.",),
                    container=str(c.get("name", "")),
                )


@check("workload.hugepages", severity=Severity.WARNING, title="Containers ask for huge pages", docs=DOCS)
def hugepages(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        for path, c in w.containers():
            resources = c.get("resources") or {}
            for section in ("limits", "requests"):
                for name, value in (resources.get(section) or {}).items():
                    if str(name).startswith("hugepages-"):
                        yield w.fail(
                            "Huge pages are not supported for Windows containers.",
                            f"{path}.resources.{section}[{name}]",
                            value,
                            (f"Remove the {name} resource.",),
                            container=str(c.get("name", "")),
                        )
                        break
                else:
                    continue
                break


# -- lifecycle ----------------------------------------------------------------------------

DEFAULT_GRACE = 30
DEFAULT_MESSAGE_PATH = "/dev/termination-log"


@check(
    "workload.termination-grace",
    severity=Severity.INFO,
    title="terminationGracePeriodSeconds works differently on Windows",
    docs=DOCS,
)
def termination_grace(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        grace = w.spec.get("terminationGracePeriodSeconds")
        if isinstance(grace, int) and grace != DEFAULT_GRACE and not w.host_process:
            yield w.fail(
                "Windows containers get CTRL_SHUTDOWN_EVENT and then about 5 seconds (the registry's "
                "WaitToKillServiceTimeout), whatever terminationGracePeriodSeconds says.",
                f"{w.spec_path}.terminationGracePeriodSeconds",
                grace,
                (
                    "Handle CTRL_SHUTDOWN_EVENT in the application and finish within a few seconds; a preStop hook can "
                    "add time.",
                ),
            )


@check(
    "workload.termination-message-path",
    severity=Severity.INFO,
    title="terminationMessagePath cannot be mapped on Windows",
    docs=DOCS,
)
def termination_message_path(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        for path, c in w.containers():
            value = c.get("terminationMessagePath")
            if value and value != DEFAULT_MESSAGE_PATH:
                yield w.fail(
                    "Windows cannot map a single file, so a custom terminationMessagePath is never read.",
                    f"{path}.terminationMessagePath",
                    value,
                    ("Remove terminationMessagePath, or use terminationMessagePolicy: FallbackToLogsOnError.",),
                    container=str(c.get("name", "")),
                )


# -- scheduling and resources -------------------------------------------------------------


@check(
    "workload.os-selector-missing",
    severity=Severity.WARNING,
    title="Windows pods do not say they need a Windows node",
    docs=SCHED_DOCS,
)
def os_selector_missing(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap, everything=True):
        if w.host_process:
            continue
        images = _images(w.spec)
        windows = [i for i in images if is_windows_image(i)]
        if not windows:
            continue
        choice = _os_choice(w.spec)
        if choice == "windows":
            continue
        if choice == "linux":
            summary = (
                "Windows images in a pod that is placed on Linux nodes (Windows and Linux containers cannot "
                "share a pod)."
            )
        else:
            summary = (
                "runs Windows images without nodeSelector kubernetes.io/os: windows or spec.os.name: windows, so "
                "in a mixed cluster it may be scheduled on a Linux node."
            )
        yield w.fail(
            summary,
            f"{w.spec_path}.nodeSelector",
            (w.spec.get("nodeSelector") or "unset"),
            (
                f"Add to {w.spec_path}: nodeSelector: {{kubernetes.io/os: windows}} and os: {{name: windows}}; keep "
                "Linux and Windows containers in separate pods.",
            ),
        )


@check(
    "workload.resource-limits-missing",
    severity=Severity.WARNING,
    title="Windows containers run without a memory limit",
    docs="https://kubernetes.io/docs/concepts/configuration/windows-resource-management/",
)
def resource_limits_missing(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        if w.host_process:
            continue  # node tooling in job objects on the host, not a workload competing for memory
        for path, c in w.containers():
            if path.split(".")[-1].startswith("ephemeralContainers"):
                continue
            limits = (c.get("resources") or {}).get("limits") or {}
            if "memory" not in limits:
                yield w.fail(
                    "no memory limit: Windows has no OOM killer, so an unbounded container pages the whole node.",
                    f"{path}.resources.limits.memory",
                    "unset",
                    ("Set resources.limits.memory (and requests.memory) for this container.",),
                    container=str(c.get("name", "")),
                )


ISOLATION_ANNOTATION = "experimental.windows.kubernetes.io/isolation-type"


@check(
    "workload.hyperv-isolation-annotation",
    severity=Severity.WARNING,
    title="Pods use the removed Hyper-V isolation annotation",
    docs=DOCS,
)
def hyperv_isolation_annotation(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        annotations = w.metadata.get("annotations") or {}
        if ISOLATION_ANNOTATION in annotations:
            yield w.fail(
                "the experimental Hyper-V isolation annotation was a deprecated experiment (one container per pod) "
                "and is ignored by containerd.",
                f"{w.metadata_path}.annotations[{ISOLATION_ANNOTATION}]",
                annotations[ISOLATION_ANNOTATION],
                (
                    "Remove the annotation; for Hyper-V isolation use a RuntimeClass whose handler runs "
                    "runhcs-wcow-hypervisor.",
                ),
            )
