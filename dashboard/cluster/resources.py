"""What the dashboard reads from the API, named once.

The source lists and watches exactly ``RESOURCES`` with ``VERBS``, and agents'
enrollment needs ``ENROLLMENT``; the ClusterRole in ``deploy/kubernetes/base/dashboard/rbac.yaml``
grants exactly these (a test compares them). Also here: how an object is recognised as Windows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Resource:
    kind: str  # Node
    plural: str  # nodes
    group: str = ""  # "" is the core group
    version: str = "v1"
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def permission(self, verb: str) -> str:
        """How RBAC names the permission, e.g. ``watch endpointslices.discovery.k8s.io``."""
        return f"{verb} {self.plural}{'.' + self.group if self.group else ''}"


NODES = Resource("Node", "nodes", namespaced=False)
PODS = Resource("Pod", "pods")
EVENTS = Resource("Event", "events")
SERVICES = Resource("Service", "services")
ENDPOINT_SLICES = Resource("EndpointSlice", "endpointslices", group="discovery.k8s.io")

# Nodes first: pods and events are classified by the node they are on.
RESOURCES: tuple[Resource, ...] = (NODES, PODS, EVENTS, SERVICES, ENDPOINT_SLICES)
BY_KIND = {r.kind: r for r in RESOURCES}
VERBS: tuple[str, ...] = ("get", "list", "watch")
# What agents' enrollment (dashboard/cluster/enroll.py) adds: (API group, resource, verb).
# Reviewing a token, then reading its pod and node (already readable above).
ENROLLMENT: tuple[tuple[str, str, str], ...] = (
    ("authentication.k8s.io", "tokenreviews", "create"),
    ("", "pods", "get"),
    ("", "nodes", "get"),
)

OS_LABEL = "kubernetes.io/os"
BUILD_LABEL = "node.kubernetes.io/windows-build"

# Repositories and tags of Windows images: base images, and tags naming a Windows release.
_WINDOWS_IMAGE = re.compile(
    r"(mcr\.microsoft\.com/windows|/windows/(servercore|nanoserver|server)|servercore|nanoserver"
    r"|[:-](ltsc20(19|22|25)|1809|2004|20h2|windowsservercore[-\w]*)\b)",
    re.IGNORECASE,
)


def obj_meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def is_windows_node(node: dict[str, Any]) -> bool:
    labels = obj_meta(node).get("labels") or {}
    if labels.get(OS_LABEL) or labels.get("beta.kubernetes.io/os"):
        return (labels.get(OS_LABEL) or labels.get("beta.kubernetes.io/os")) == "windows"
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return info.get("operatingSystem") == "windows"


def windows_image(image: str) -> bool:
    return bool(_WINDOWS_IMAGE.search(image))


def pod_asks_for_windows(spec: dict[str, Any]) -> bool:
    """The pod says it is for Windows: ``spec.os.name``, a node selector or affinity, or a Windows image."""
    if (spec.get("os") or {}).get("name") == "windows":
        return True
    selector = spec.get("nodeSelector") or {}
    if selector.get(OS_LABEL) == "windows" or selector.get("beta.kubernetes.io/os") == "windows":
        return True
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in affinity.get("nodeSelectorTerms") or []:
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") == OS_LABEL and "windows" in (expr.get("values") or []):
                return True
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    return any(windows_image(str(c.get("image", ""))) for c in containers if isinstance(c, dict))


def object_key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def trimmed(obj: dict[str, Any], *, kept: bool = True) -> dict[str, Any]:
    """What the store keeps of an object: what checks and pages read, not what only costs memory.

    Always without ``metadata.managedFields`` and kubectl's last-applied copy of the object;
    a Node also without ``status.images`` (every image on the node, often hundreds). A Node
    that is not Windows (``kept=False``) keeps only its name, labels and ``nodeInfo``: no
    check reads more of it, and in a large cluster most nodes are such nodes.
    """
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    if not kept:
        keep = {k: meta[k] for k in ("name", "uid", "resourceVersion", "labels") if k in meta}
        info = (obj.get("status") or {}).get("nodeInfo")
        return {"kind": obj.get("kind", "Node"), "metadata": keep, "status": {"nodeInfo": info} if info else {}}
    annotations = meta.get("annotations")
    if "managedFields" in meta or (isinstance(annotations, dict) and LAST_APPLIED in annotations):
        meta = {k: v for k, v in meta.items() if k != "managedFields"}
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
        obj = {**obj, "metadata": meta}
    status = obj.get("status")
    if isinstance(status, dict) and "images" in status:
        obj = {**obj, "status": {k: v for k, v in status.items() if k != "images"}}
    return obj
