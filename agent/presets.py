"""Where each kind of node keeps its logs and files: presets, and finding which one a node is.

``agent.toml`` may name a ``preset`` (``aks``, ``eks``, ``kubeadm``, ``rke2``,
``generic``); when it does not, ``detect`` picks one from paths that only that
kind of node has. Explicit ``logs``/``files`` entries in the configuration
always win over the preset's.

Sources (read on the dates given; layouts change between releases):

- generic: ``C:\\k\\*.log`` of the classic ``start.ps1``/nssm install (kubernetes/website
  Windows guides, Flannel ``C:\\etc\\kube-flannel``).
- aks: ``collect-windows-logs.ps1`` (Azure/aks-engine ``scripts/``, Azure/AgentBaker
  ``staging/cse/windows/debug/``; 2024-2026): ``c:\\k\\kubelet.log``, ``kubelet.err.log``,
  ``kubeproxy.log``, ``kubeproxy.err.log``, ``containerd.log``, ``azure-vnet.log``; Azure CNI's
  conflist under ``c:\\k\\azurecni\\netconf``.
- eks: the EKS user guide (docs.aws.amazon.com, "Deploy Windows nodes on EKS clusters", 2026):
  kubelet and kube-proxy log to the ``EKS`` Windows event log, not to files; the bootstrap
  scripts live under ``C:\\Program Files\\Amazon\\EKS``.
- kubeadm: kubernetes-sigs/sig-windows-tools ``hostprocess/PrepareNode.ps1`` (commit 401ee6f,
  2026-04-23): kubelet under nssm with ``AppStderr C:\\var\\log\\kubelet\\kubelet.err.log``,
  ``--config=/var/lib/kubelet/config.yaml``, flags in ``/var/lib/kubelet/kubeadm-flags.env``;
  kube-proxy (``kube-system/kube-proxy-windows``, ``hostprocess/calico/kube-proxy/kube-proxy.yml``)
  and Flannel/Calico run as HostProcess DaemonSets whose logs the kubelet writes to
  ``C:\\var\\log\\pods\\<namespace>_<pod>_<uid>\\<container>\\<restart>.log``.
- rke2: RKE2 keeps its agent's component logs in ``C:\\var\\lib\\rancher\\rke2\\agent\\logs``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

PRESET_NAMES = ("aks", "eks", "kubeadm", "rke2", "generic")
POD_LOG_ROOT = r"C:\var\log\pods"


@dataclass(frozen=True)
class PodLog:
    """A HostProcess DaemonSet container whose log the kubelet keeps under ``C:\\var\\log\\pods``."""

    kind: str  # the log kind it is read as (kube-proxy, flanneld, calico-node)
    namespace: str
    pod_prefix: str  # a DaemonSet's pods are named <daemonset>-<5 characters>
    container: str


@dataclass(frozen=True)
class Preset:
    name: str
    markers: tuple[str, ...]  # paths that exist only on this kind of node
    logs: dict[str, str] = field(default_factory=dict)  # kind -> path
    files: dict[str, str] = field(default_factory=dict)  # known file -> path (over the defaults)
    pod_logs: tuple[PodLog, ...] = ()


# The DaemonSets of sig-windows-tools (kube-proxy, flannel) and of the Calico operator.
_HOSTPROCESS_PODS = (
    PodLog("kube-proxy", "kube-system", "kube-proxy-windows", "kube-proxy"),
    PodLog("flanneld", "kube-flannel", "kube-flannel-ds-windows", "kube-flannel"),
    PodLog("flanneld", "kube-system", "kube-flannel-ds-windows", "kube-flannel"),
    PodLog("calico-node", "calico-system", "calico-node-windows", "felix"),
    PodLog("calico-node", "calico-system", "calico-node-windows", "node"),
)

PRESETS: dict[str, Preset] = {
    "aks": Preset(
        "aks",
        markers=(r"C:\k\azurecni", r"C:\AzureData"),
        logs={
            "kubelet": r"C:\k\kubelet.log",
            "kubelet.err": r"C:\k\kubelet.err.log",
            "kube-proxy": r"C:\k\kubeproxy.log",
            "kube-proxy.err": r"C:\k\kubeproxy.err.log",
            "containerd": r"C:\k\containerd.log",
            "azure-cni": r"C:\k\azure-vnet.log",
        },
        files={"azure-cni.conflist": r"C:\k\azurecni\netconf\10-azure.conflist"},
    ),
    "eks": Preset(
        "eks",
        markers=(r"C:\Program Files\Amazon\EKS",),
        logs={},  # kubelet and kube-proxy write to the EKS event log
    ),
    "kubeadm": Preset(
        "kubeadm",
        markers=(r"C:\var\lib\kubelet\kubeadm-flags.env",),
        logs={"kubelet": r"C:\var\log\kubelet\kubelet.err.log"},
        files={
            "kubelet-config.yaml": r"C:\var\lib\kubelet\config.yaml",
            "kubeadm-flags.env": r"C:\var\lib\kubelet\kubeadm-flags.env",
        },
        pod_logs=_HOSTPROCESS_PODS,
    ),
    "rke2": Preset(
        "rke2",
        markers=(r"C:\var\lib\rancher\rke2",),
        logs={
            "kubelet": r"C:\var\lib\rancher\rke2\agent\logs\kubelet.log",
            "kube-proxy": r"C:\var\lib\rancher\rke2\agent\logs\kube-proxy.log",
        },
        pod_logs=_HOSTPROCESS_PODS,
    ),
    "generic": Preset(
        "generic",
        markers=(),
        logs={
            "kubelet": r"C:\k\kubelet.log",
            "kube-proxy": r"C:\k\kube-proxy.log",
            "flanneld": r"C:\k\flanneld.log",
            "containerd": r"C:\k\containerd.log",
        },
        pod_logs=_HOSTPROCESS_PODS,
    ),
}


def detect(path_exists: Callable[[str], bool]) -> str:
    """The first preset (in ``PRESET_NAMES`` order) one of whose markers exists; else ``generic``."""
    for name in PRESET_NAMES:
        if any(path_exists(marker) for marker in PRESETS[name].markers):
            return name
    return "generic"


_RESTART_LOG = re.compile(r"^(\d+)\.log$")


def find_pod_logs(list_dir: Callable[[str], list[str]], specs: tuple[PodLog, ...], root: str = POD_LOG_ROOT) -> dict[str, str]:
    """kind -> the current log file of each HostProcess container found under ``root``.

    1. Pod directories are ``<namespace>_<pod>_<uid>``; a pod matches a spec by namespace and
       by its name starting with the DaemonSet's name.
    2. In ``<container>``, the file with the highest restart number (``0.log``, ``1.log``, ...) is
       the one being written; rotated copies (``0.log.20260101-...``) are older.
    3. The first spec that finds a file wins its kind (a node runs one flannel).
    """
    found: dict[str, str] = {}
    pods = list_dir(root)
    for spec in specs:
        if spec.kind in found:
            continue
        for pod_dir in pods:
            parts = pod_dir.split("_")
            if len(parts) < 3 or parts[0] != spec.namespace or not parts[1].startswith(spec.pod_prefix + "-"):
                continue
            directory = f"{root}\\{pod_dir}\\{spec.container}"
            numbered = [(int(m.group(1)), name) for name in list_dir(directory) if (m := _RESTART_LOG.match(name))]
            if numbered:
                found[spec.kind] = f"{directory}\\{max(numbered)[1]}"
                break
    return found


@dataclass(frozen=True)
class Layout:
    """Where this node's logs and known files are: the preset's, under the configuration's explicit paths."""

    preset: str
    files: dict[str, str]  # known file name -> path
    logs: dict[str, str]  # log kind -> path (fixed paths; pod logs are found each cycle)
    pod_logs: tuple[PodLog, ...]

    def log_paths(self, list_dir: Callable[[str], list[str]], explicit: dict[str, str]) -> dict[str, str]:
        """The logs to read this cycle: pod logs found now (a restarted pod has a new directory),
        then the preset's files, then the configuration's explicit entries."""
        return {**find_pod_logs(list_dir, self.pod_logs), **self.logs, **explicit}


def resolve_layout(
    preset: str, files: dict[str, str], path_exists: Callable[[str], bool], known_files: dict[str, str]
) -> Layout:
    """The layout of a node: ``preset`` (or the detected one), its files over ``known_files``, then ``files``."""
    name = preset or detect(path_exists)
    chosen = PRESETS[name]
    return Layout(name, {**known_files, **chosen.files, **files}, dict(chosen.logs), chosen.pod_logs)
