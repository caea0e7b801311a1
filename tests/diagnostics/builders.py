"""``make_snapshot(**overrides)``: a healthy Windows node, changed only where a test says so.

The healthy node: Windows Server 2022 (20348), containerd 1.7.20, kubelet v1.30.4,
Flannel host-gw with the ``cbr0`` L2Bridge HNS network on ``vEthernet (Ethernet)``,
podCIDR 10.244.2.0/24, node IP 10.0.0.15, kubelet/kube-proxy/flanneld as nssm services
with ``--hostname-override``, subnet.env present, and real API objects and logs from
``tests/fixtures/checks/healthy`` and ``tests/fixtures/logs``.

Overrides replace ``NodeSnapshot`` fields, except:

- ``files``: merged into the healthy files; a value of ``None`` removes that file from
  what was collected, a ``str`` is the file's content, a ``FileFact`` is used as is;
- ``logs``: ``{kind: text}`` replaces that kind's healthy log and re-runs the analyzers
  (a ``(source, text)`` pair names the source);
- ``pods``/``events``/``node_object``: plain JSON values are wrapped in a ``Fact``;
- ``node_patch``: a function that changes a copy of the Node object.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from diagnostics.facts import (
    BitLocker,
    ComputerInfo,
    HnsEndpoint,
    HnsEvent,
    HnsLoadBalancer,
    HnsNetwork,
    HnsPortMapping,
    HnsSubnet,
    HotFix,
    Image,
    IpInterface,
    NetAdapter,
    OsInfo,
    PortRange,
    Service,
)
from diagnostics.logs import scan_text
from diagnostics.probes import KNOWN_FILES
from diagnostics.snapshot import ClusterView, Fact, FileFact, NodeSnapshot, PeerSummary

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HEALTHY = FIXTURES / "checks" / "healthy"
LOGS = FIXTURES / "logs"
PATHS = {f.name: f.default_path for f in KNOWN_FILES}

NODE = "win-node-1"


def fixture_text(relative: str) -> str:
    return (FIXTURES / relative).read_text(encoding="utf-8")


def fixture_json(relative: str) -> Any:
    return json.loads(fixture_text(relative))


def file_fact(name: str, content: str | None) -> FileFact:
    path = PATHS.get(name, name)
    return FileFact(path=path, content=content, source=path)


KUBELET_CMD = (
    r"C:\k\nssm.exe --hostname-override=win-node-1 --v=2 --pod-infra-container-image=registry.k8s.io/pause:3.9 "
    r"--resolv-conf= --enable-debugging-handlers --cluster-dns=10.96.0.10 --cluster-domain=cluster.local "
    r"--kubeconfig=c:\k\config --hairpin-mode=promiscuous-bridge --image-pull-progress-deadline=20m "
    r"--cgroups-per-qos=false --log-dir=c:\k\logs --logtostderr=false --enforce-node-allocatable= "
    r"--container-runtime-endpoint=npipe:////./pipe/containerd-containerd --system-reserved=memory=2Gi "
    r"--kube-reserved=memory=512Mi"
)
KUBE_PROXY_CMD = (
    r"C:\k\nssm.exe --v=4 --proxy-mode=kernelspace --hostname-override=win-node-1 --kubeconfig=c:\k\config "
    r"--network-name=cbr0 --enable-dsr=false --log-dir=c:\k\logs --logtostderr=false"
)
FLANNELD_CMD = r"C:\k\nssm.exe --kubeconfig-file=c:\k\config --iface=10.0.0.15 --ip-masq=1 --kube-subnet-mgr=1"


def healthy_node() -> dict[str, Any]:
    return fixture_json("checks/healthy/node.json")


def healthy_pods() -> tuple[dict[str, Any], ...]:
    return tuple(fixture_json("checks/healthy/pods.json")["items"])


def _healthy() -> NodeSnapshot:
    networks = (
        HnsNetwork(
            id="3D0B8C4A-6E2F-4F5B-9A1C-7E8D9F0A1B2C",
            name="cbr0",
            type="l2bridge",
            subnets=(HnsSubnet("10.244.2.0/24", "10.244.2.1"),),
            management_ip="10.0.0.15",
            adapter_name="Ethernet",
            schema=1,
        ),
        HnsNetwork(
            id="C08CB7B8-9B3C-408E-8E30-5E16A3AEB444",
            name="nat",
            type="nat",
            subnets=(HnsSubnet("172.25.96.0/20", "172.25.96.1"),),
        ),
    )
    endpoints = (
        HnsEndpoint("A1E2C3D4-0001-4B5C-8D9E-0F1A2B3C4D5E", "cbr0_ep", "10.244.2.2", networks[0].id, "Attached"),
        HnsEndpoint(
            "7B1C9E02-5F3A-4D6B-9C8E-1A2B3C4D5E6F",
            "4c1f0e9a7b3d2c5e8f6a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e_cbr0",
            "10.244.2.7",
            networks[0].id,
            "Attached",
            mac="00-15-5D-6B-21-07",
        ),
        HnsEndpoint(
            "E9D8C7B6-0003-4A5B-8C9D-0E1F2A3B4C5D", "Ethernet", "10.244.3.12", networks[0].id, "", is_remote=True
        ),
    )
    policies = (
        HnsLoadBalancer(
            "F4E3D2C1-1111-4A2B-8C3D-4E5F6A7B8C9D",
            vips=("10.101.48.211",),
            ports=(HnsPortMapping("TCP", 80, 80),),
            endpoint_ids=(endpoints[1].id, endpoints[2].id),
        ),
        HnsLoadBalancer(
            "F4E3D2C1-2222-4A2B-8C3D-4E5F6A7B8C9D",
            vips=(),
            ports=(HnsPortMapping("TCP", 80, 31080),),
            endpoint_ids=(endpoints[1].id, endpoints[2].id),
        ),
    )
    services = (
        Service("kubelet", "Running", "Automatic", KUBELET_CMD, "kubelet"),
        Service("kube-proxy", "Running", "Automatic", KUBE_PROXY_CMD, "kube-proxy"),
        Service("flanneld", "Running", "Automatic", FLANNELD_CMD, "flanneld"),
        Service(
            "containerd",
            "Running",
            "Automatic",
            r'"C:\Program Files\containerd\containerd.exe" --run-service',
            "containerd",
        ),
        Service("hns", "Running", "Manual", r"C:\Windows\system32\svchost.exe -k NetSvcs -p", "Host Network Service"),
    )
    files = {
        "subnet.env": file_fact("subnet.env", fixture_text("checks/healthy/subnet.env")),
        "net-conf.json": file_fact("net-conf.json", fixture_text("checks/healthy/net-conf.json")),
        "cni.conf": file_fact("cni.conf", fixture_text("checks/healthy/cni.conf")),
        "SourceVip.json": file_fact("SourceVip.json", None),
        "SourceVipRequest.json": file_fact("SourceVipRequest.json", None),
        "containerd-config.toml": file_fact(
            "containerd-config.toml", fixture_text("checks/healthy/containerd-config.toml")
        ),
    }
    peers = (
        PeerSummary(
            "win-node-2",
            {
                "pause_image": "registry.k8s.io/pause:3.9",
                "runtime_version": "containerd://1.7.20",
                "os_build": "20348",
                "kube_proxy_network": "cbr0",
            },
        ),
        PeerSummary(
            "win-node-3",
            {
                "pause_image": "registry.k8s.io/pause:3.9",
                "runtime_version": "containerd://1.7.20",
                "os_build": "20348",
                "kube_proxy_network": "cbr0",
            },
        ),
    )
    view = ClusterView(
        server_version="v1.30.4",
        cluster_cidr="10.244.0.0/16",
        service_cidr="10.96.0.0/12",
        services=(fixture_json("checks/healthy/service.json"),),
        endpoint_slices=(fixture_json("checks/healthy/endpointslice.json"),),
        peers=peers,
        source="api",
    )
    return NodeSnapshot(
        node=NODE,
        cluster="prod-eu",
        collected_at="2026-11-24T10:00:00Z",
        agent_version="0.3.0",
        os=Fact(OsInfo(20348, 2762, "ServerDatacenter", "Windows Server 2022 Datacenter", "21H2"), "probe:os.info"),
        hotfixes=Fact((HotFix("KB5041160", "8/13/2024"), HotFix("KB5041590", "8/13/2024")), "probe:os.hotfixes"),
        hns_networks=Fact(networks, "probe:hns.networks"),
        hns_endpoints=Fact(endpoints, "probe:hns.endpoints"),
        hns_policies=Fact(policies, "probe:hns.policies"),
        hns_events=Fact((), "probe:hns.events"),
        adapters=Fact(
            (
                NetAdapter("vEthernet (Ethernet)", "Hyper-V Virtual Ethernet Adapter", 14, "Up", "00-15-5D-6B-21-00"),
                NetAdapter("vEthernet (nat)", "Hyper-V Virtual Ethernet Adapter #2", 22, "Up", "00-15-5D-A3-00-11"),
                NetAdapter("Ethernet", "Microsoft Hyper-V Network Adapter", 6, "Up", "00-15-5D-6B-21-00", "10 Gbps"),
            ),
            "probe:net.adapters",
        ),
        ip_config=Fact(
            (
                IpInterface(
                    "vEthernet (Ethernet)",
                    "Hyper-V Virtual Ethernet Adapter",
                    ipv4=("10.0.0.15/24",),
                    mac="00-15-5D-6B-21-00",
                    gateways=("10.0.0.1",),
                    dns_servers=("10.0.0.2",),
                ),
                IpInterface("vEthernet (nat)", "Hyper-V Virtual Ethernet Adapter #2", ipv4=("172.25.96.1/20",)),
            ),
            "probe:net.ipconfig",
        ),
        services=Fact(services, "probe:os.services"),
        processes=Fact((), "probe:os.processes"),
        machine_env=Fact(
            {"Path": r"C:\Windows\system32;C:\Windows;C:\k", "NODE_NAME": NODE, "KUBE_NETWORK": "cbr0"},
            "probe:os.env",
        ),
        computer=Fact(ComputerInfo("Microsoft Corporation", "Virtual Machine", True), "probe:os.computer"),
        bitlocker=Fact((BitLocker("C:", "On", "FullyEncrypted"),), "probe:os.bitlocker"),
        images=Fact(
            (
                Image(
                    "registry.k8s.io/pause",
                    "3.9",
                    "sha256:e6f1816883972d4be47bd48879a08919b96afcd344132622e4d444987919323c",
                    "127MB",
                ),
                Image(
                    "mcr.microsoft.com/windows/servercore/iis",
                    "windowsservercore-ltsc2022",
                    "sha256:0e2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b",
                    "2.21GB",
                ),
            ),
            "probe:runtime.images",
        ),
        dynamic_ports=Fact(PortRange(49152, 16384), "probe:net.dynamicports"),
        excluded_ports=Fact((PortRange(50000, 100), PortRange(5357, 1)), "probe:net.excludedports"),
        files=files,
        node_object=Fact(healthy_node(), f"Node/{NODE}"),
        pods=Fact(healthy_pods(), "api pods"),
        events=Fact((), "api events"),
        workloads=(fixture_json("checks/healthy/deployment.json"),),
        cluster_view=view,
    )


HEALTHY_LOGS = {
    "flanneld": (r"C:\k\flanneld.log", "logs/flanneld-healthy.log"),
    "kubelet": (r"C:\k\kubelet.log", "logs/kubelet-healthy.log"),
    "kube-proxy": (r"C:\k\kube-proxy.log", "logs/kube-proxy-healthy.log"),
}


def make_snapshot(**overrides: Any) -> NodeSnapshot:
    """The healthy node with ``overrides`` applied (see the module docstring)."""
    snap = _healthy()
    files = dict(snap.files)
    for name, value in (overrides.pop("files", None) or {}).items():
        if value is None:
            files.pop(name, None)
        elif isinstance(value, FileFact):
            files[name] = value
        else:
            files[name] = file_fact(name, value if value is not False else None)
    texts = {kind: (path, fixture_text(rel)) for kind, (path, rel) in HEALTHY_LOGS.items()}
    for kind, value in (overrides.pop("logs", None) or {}).items():
        if value is None:
            texts.pop(kind, None)
        elif isinstance(value, tuple):
            texts[kind] = value
        else:
            texts[kind] = (rf"C:\k\{kind}.log", value)
    hits = tuple(h for kind, (path, text) in texts.items() for h in scan_text(text, source=path, kind=kind))
    node_patch: Callable[[dict[str, Any]], None] | None = overrides.pop("node_patch", None)
    if node_patch is not None and snap.node_object is not None:
        node = copy.deepcopy(snap.node_object.value)
        node_patch(node)
        overrides["node_object"] = Fact(node, snap.node_object.source)
    for key in ("pods", "events", "node_object"):
        value = overrides.get(key)
        if value is not None and not isinstance(value, Fact):
            overrides[key] = Fact(tuple(value) if key != "node_object" else value, f"api {key}")
    return replace(
        snap,
        files=files,
        logs_seen={kind: path for kind, (path, _t) in texts.items()},
        log_hits=hits,
        **overrides,
    )


def hns_event(message: str, time: str = "2026-11-24T09:41:12Z", level: str = "Error", event_id: int = 7031) -> HnsEvent:
    return HnsEvent(time, level, event_id, message)


def without_services(*names: str) -> Fact[tuple[Service, ...]]:
    """The healthy node's services minus ``names``."""
    base = _healthy().services
    assert base is not None
    return Fact(tuple(s for s in base.value if s.name not in names), base.source)


def with_services(*changed: Service) -> Fact[tuple[Service, ...]]:
    """The healthy node's services with ``changed`` replacing those of the same name (or added)."""
    base = _healthy().services
    assert base is not None
    names = {s.name for s in changed}
    return Fact(tuple(s for s in base.value if s.name not in names) + changed, base.source)
