"""Presets: detection from the node's paths, and HostProcess pod logs under C:\\var\\log\\pods."""

from __future__ import annotations

from agent.presets import PRESETS, detect, find_pod_logs, resolve_layout

# A kubeadm node prepared with sig-windows-tools (PrepareNode.ps1) running kube-proxy and Flannel as
# HostProcess DaemonSets; the directory names follow the kubelet's <namespace>_<pod>_<uid> layout.
TREE = {
    r"C:\var\log\pods": [
        "kube-system_kube-proxy-windows-7xk2p_4b1c7f0e-2d55-4f35-9d4a-0a8e3c1f6b21",
        "kube-flannel_kube-flannel-ds-windows-amd64-q8m4t_91d3a6c2-7e0b-4c8f",
        "default_web-6c9f8d7b5-abcde_0f0e0d0c-0b0a-0908-0706-050403020100",
    ],
    r"C:\var\log\pods\kube-system_kube-proxy-windows-7xk2p_4b1c7f0e-2d55-4f35-9d4a-0a8e3c1f6b21\kube-proxy": [
        "0.log",
        "1.log",
        "0.log.20261203-101500",
    ],
    r"C:\var\log\pods\kube-flannel_kube-flannel-ds-windows-amd64-q8m4t_91d3a6c2-7e0b-4c8f\kube-flannel": ["0.log"],
}


def test_a_node_is_recognised_by_paths_only_its_kind_has() -> None:
    assert detect(lambda p: p == r"C:\var\lib\kubelet\kubeadm-flags.env") == "kubeadm"
    assert detect(lambda p: p == r"C:\k\azurecni") == "aks"
    assert detect(lambda p: p == r"C:\Program Files\Amazon\EKS") == "eks"
    assert detect(lambda p: p == r"C:\var\lib\rancher\rke2") == "rke2"
    assert detect(lambda p: False) == "generic"


def test_hostprocess_pod_logs_are_found_by_namespace_pod_and_container() -> None:
    found = find_pod_logs(lambda path: TREE.get(path, []), PRESETS["kubeadm"].pod_logs)
    assert found == {
        "kube-proxy": r"C:\var\log\pods\kube-system_kube-proxy-windows-7xk2p_4b1c7f0e-2d55-4f35-9d4a-0a8e3c1f6b21"
        r"\kube-proxy\1.log",
        "flanneld": r"C:\var\log\pods\kube-flannel_kube-flannel-ds-windows-amd64-q8m4t_91d3a6c2-7e0b-4c8f"
        r"\kube-flannel\0.log",
    }


def test_explicit_configuration_wins_over_the_preset() -> None:
    layout = resolve_layout(
        "kubeadm", {"kubelet-config.yaml": r"D:\kubelet\config.yaml"}, lambda p: False, {"subnet.env": r"C:\x"}
    )
    assert layout.preset == "kubeadm"
    assert layout.files["kubelet-config.yaml"] == r"D:\kubelet\config.yaml"
    assert layout.files["kubeadm-flags.env"] == r"C:\var\lib\kubelet\kubeadm-flags.env"
    logs = layout.log_paths(lambda path: TREE.get(path, []), {"containerd": r"D:\containerd.log"})
    assert logs["kubelet"] == r"C:\var\log\kubelet\kubelet.err.log"
    assert logs["containerd"] == r"D:\containerd.log" and logs["kube-proxy"].endswith(r"\kube-proxy\1.log")
