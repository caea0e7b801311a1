"""Writes the preset scenarios: node-probes/v1 documents as ``agent/probes.ps1`` writes them.

    PYTHONPATH=. python agent/scenarios/presets/build.py

Deterministic: running it again gives the same files. What each scenario is made
of, and where it comes from, is in ``PROVENANCE.md`` beside this file. The
per-probe outputs start from the demo's ``healthy`` recordings (real
``ConvertTo-Json`` shapes of Windows PowerShell 5.1, HCN v2 objects) and are
compressed and projected to the fields the script selects.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HEALTHY = HERE.parent / "healthy"
STRUCTURED = HERE.parents[2] / "tests" / "fixtures" / "powershell" / "structured"

# The fields probes.ps1 selects (Select-Object lists of its table).
FIELDS = {
    "hns.networks": (
        "ID",
        "Name",
        "Type",
        "Flags",
        "ManagementIP",
        "NetworkAdapterName",
        "AddressPrefix",
        "Subnets",
        "Ipams",
        "Policies",
        "SchemaVersion",
    ),
    "hns.endpoints": (
        "ID",
        "Name",
        "State",
        "MacAddress",
        "IPAddress",
        "IsRemoteEndpoint",
        "VirtualNetwork",
        "VirtualNetworkName",
        "Namespace",
        "IpConfigurations",
        "HostComputeNetwork",
        "HostComputeNamespace",
        "Flags",
    ),
    "hns.policies": (
        "ID",
        "FrontendVIPs",
        "PortMappings",
        "HostComputeEndpoints",
        "SourceVIP",
        "Flags",
        "Policies",
        "References",
        "IsApplied",
    ),
}


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _select(objects: list[dict[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{f: o.get(f) for f in fields} for o in objects]


def _listed(path: Path) -> list[dict[str, Any]]:
    value = json.loads(_text(path))
    return value if isinstance(value, list) else [value]


def _structured_network() -> dict[str, str]:
    """The healthy node's ``ipconfig /all`` as the structured cmdlets give it (same addresses, JSON)."""
    from diagnostics.parsers.windows import parse_ipconfig

    [host] = parse_ipconfig((HEALTHY / "probes" / "net.ipconfig.txt").read_bytes())
    index = 14  # its ifIndex in net.adapters
    config = {
        "InterfaceAlias": host.name,
        "InterfaceIndex": index,
        "InterfaceDescription": host.description,
        "CompartmentId": 1,
        "MacAddress": host.mac,
        "IPv4Address": list(host.ipv4),
        "IPv6Address": list(host.ipv6),
        "IPv4DefaultGateway": list(host.gateways),
        "DNSServer": list(host.dns_servers),
    }
    addresses = [
        {
            "InterfaceAlias": host.name,
            "InterfaceIndex": index,
            "IPAddress": a,
            "PrefixLength": 24,
            "AddressFamily": "IPv4",
        }
        for a in host.ipv4
    ] + [
        {
            "InterfaceAlias": host.name,
            "InterfaceIndex": index,
            "IPAddress": a,
            "PrefixLength": 64,
            "AddressFamily": "IPv6",
        }
        for a in host.ipv6
    ]
    routes = [
        {
            "DestinationPrefix": "0.0.0.0/0",
            "NextHop": host.gateways[0],
            "InterfaceAlias": host.name,
            "InterfaceIndex": index,
            "RouteMetric": 0,
            "CompartmentId": 1,
        },
        {
            "DestinationPrefix": "10.0.1.0/24",
            "NextHop": "0.0.0.0",
            "InterfaceAlias": host.name,
            "InterfaceIndex": index,
            "RouteMetric": 256,
            "CompartmentId": 1,
        },
    ]
    interfaces = [
        {
            "InterfaceAlias": host.name,
            "InterfaceIndex": index,
            "AddressFamily": family,
            "NlMtu": 1500,
            "ConnectionState": "Connected",
            "CompartmentId": 1,
        }
        for family in ("IPv4", "IPv6")
    ]
    return {
        "net.ipconfig": _compact([config]),
        "net.ipaddresses": _compact(addresses),
        "net.routes": _compact(routes),
        "net.interfaces": _compact(interfaces),
    }


def healthy_outputs() -> dict[str, str]:
    """probe id -> output, from the healthy recordings, as the script would print them."""
    probes = HEALTHY / "probes"
    out = {
        "os.version": _compact(json.loads(_text(probes / "os.version.json"))),
        "os.hotfixes": _compact(_listed(probes / "os.hotfixes.json")),
        "computer.info": _compact(json.loads(_text(probes / "computer.info.json"))),
        "bitlocker": _compact(_listed(probes / "bitlocker.json")),
        "env.machine": _compact({}),
        "services": _compact(_listed(probes / "services.json")),
        "processes": _compact(_listed(probes / "processes.json")),
        "images": _text(probes / "images.json"),
        "net.adapters": _compact(_listed(probes / "net.adapters.json")),
        **_structured_network(),
        "ports.dynamic": _text(STRUCTURED / "tcp-settings.json").strip(),
        "ports.dynamic.udp": _compact([{"DynamicPortRangeStartPort": 49152, "DynamicPortRangeNumberOfPorts": 16384}]),
        "ports.excluded": _text(STRUCTURED / "netsh-excluded-en.txt"),
        "ports.excluded.udp": _text(STRUCTURED / "netsh-excluded-en.txt").replace("Protocol tcp", "Protocol udp"),
        "hyperv.events": "[]",
        "hns.events": "[]",
        "hns.networks": _compact(_select(_listed(probes / "hns.networks.json"), FIELDS["hns.networks"])),
        "hns.endpoints": _compact(_select(_listed(probes / "hns.endpoints.json"), FIELDS["hns.endpoints"])),
        "hns.policies": _compact(_select(_listed(probes / "hns.policies.json"), FIELDS["hns.policies"])),
        "hns.namespaces": "[]",
        "hns.diag": "",
    }
    env = json.loads(_text(probes / "env.machine.json"))
    out["env.machine"] = _compact(
        {k: v for k, v in env.items() if k.upper() in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")}
    )
    return out


def document(outputs: dict[str, str], *, powershell: str = "5.1.20348.2340", language: str = "FullLanguage") -> str:
    """The file probes.ps1 writes: a header line, one line per probe, an end line."""
    header = {
        "format": "node-probes/v1",
        "powershell": powershell,
        "language": language,
        "hns": "HostNetworkingService",
    }
    lines = [_compact(header)[:-1] + ',"probes":[']
    for probe_id, output in outputs.items():
        record = {"id": probe_id, "output": output, "error": None, "ms": 40, "truncated": False, "timed_out": False}
        lines.append(_compact(record) + ",")
    lines.append('{"end":true,"ms":2400}]}')
    return "\r\n".join(lines) + "\r\n"


def _guid(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed)).upper()


def large_outputs(endpoints: int, load_balancers: int) -> dict[str, str]:
    """The healthy node grown to ``endpoints`` HNS endpoints and ``load_balancers`` load balancers.

    The objects copy the shape of the recorded ones (HCN v2); addresses and ids are generated.
    Most endpoints are remote (Flags 1), as on a node of a large cluster.
    """
    outputs = healthy_outputs()
    network = _select(_listed(HEALTHY / "probes" / "hns.networks.json"), FIELDS["hns.networks"])[0]
    template = _select(_listed(HEALTHY / "probes" / "hns.endpoints.json"), FIELDS["hns.endpoints"])[0]
    eps = []
    for n in range(endpoints):
        ep = dict(template)
        ep["ID"] = _guid(f"endpoint-{n}")
        ep["Name"] = f"{_guid(f'sandbox-{n}').lower()}_cbr0"
        ep["IpConfigurations"] = [
            {"IpAddress": f"10.{244 + n // 62500}.{(n // 250) % 250}.{n % 250 + 2}", "PrefixLength": 24}
        ]
        ep["MacAddress"] = "0E-2A-" + "-".join(f"{(n >> s) & 0xFF:02X}" for s in (24, 16, 8, 0))
        ep["Flags"] = 0 if n < 60 else 1
        ep["HostComputeNetwork"] = network["ID"]
        eps.append(ep)
    lb_template = _select(_listed(HEALTHY / "probes" / "hns.policies.json"), FIELDS["hns.policies"])[0]
    lbs = []
    for n in range(load_balancers):
        lb = dict(lb_template)
        lb["ID"] = _guid(f"lb-{n}")
        lb["FrontendVIPs"] = [f"10.96.{n // 250}.{n % 250 + 1}"]
        lb["HostComputeEndpoints"] = [eps[(n * 3 + k) % endpoints]["ID"] for k in range(3)]
        lb["PortMappings"] = [
            {"Protocol": 6, "InternalPort": 8080, "ExternalPort": 80 + n % 2, "DistributionType": 0, "Flags": 0}
        ]
        lbs.append(lb)
    outputs["hns.endpoints"] = _compact(eps)
    outputs["hns.policies"] = _compact(lbs)
    return outputs


def hung_document(outputs: dict[str, str], hung: str) -> str:
    """The file as the agent finds it after ending a script stuck in ``hung``: every line before it, no end."""
    lines = document(outputs).split("\r\n")
    cut = next(n for n, line in enumerate(lines) if line.startswith(f'{{"id":"{hung}"'))
    return "\r\n".join(lines[:cut]) + "\r\n"


def _write(name: str, scenario: dict[str, Any], outputs: dict[str, str], files: dict[str, str]) -> None:
    folder = HERE / name
    (folder / "files").mkdir(parents=True, exist_ok=True)
    (folder / "probes.json").write_bytes(b"\xef\xbb\xbf" + document(outputs).encode("utf-8"))
    if "hns-hung" in scenario.get("variants", {}):
        hung = hung_document(outputs, "hns.networks").encode("utf-8")
        (folder / "probes-hns-hung.json").write_bytes(b"\xef\xbb\xbf" + hung)
    for file_name, text in files.items():
        (folder / "files" / file_name).write_text(text, encoding="utf-8")
    (folder / "scenario.json").write_text(json.dumps(scenario, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _healthy_files() -> dict[str, dict[str, Any]]:
    doc = json.loads((HEALTHY / "scenario.json").read_text(encoding="utf-8"))
    out = {}
    for name, spec in doc["files"].items():
        spec = dict(spec)
        if "source" in spec:
            spec["source"] = "../../healthy/" + spec["source"]
        out[name] = spec
    return out


def _healthy_logs(paths: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        kind: {"path": path, "source": f"../../healthy/logs/{source}.log", "lines_per_cycle": 20}
        for kind, (path, source) in {k: (v, k) for k, v in paths.items()}.items()
    }


KUBEADM_FLAGS = (
    'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=npipe:////./pipe/containerd-containerd '
    '--pod-infra-container-image=registry.k8s.io/pause:3.10"\n'
)
KUBELET_CONFIG = """apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
cgroupDriver: cgroupfs
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
resolvConf: ""
rotateCertificates: true
"""
KUBE_PROXY_POD = r"C:\var\log\pods\kube-system_kube-proxy-windows-7xk2p_4b1c7f0e-2d55-4f35-9d4a-0a8e3c1f6b21"
FLANNEL_POD = r"C:\var\log\pods\kube-flannel_kube-flannel-ds-windows-amd64-q8m4t_91d3a6c2-7e0b-4c8f"


def build() -> None:
    base: dict[str, Any] = {
        "format": "node-scenario/v1",
        "cluster": "lab",
        "variant": None,
        "variants": {},
        "document": "probes.json",
    }

    # 1. kubeadm with sig-windows-tools: kubelet under nssm, kube-proxy and flannel as HostProcess pods.
    outputs = healthy_outputs()
    services = [s for s in json.loads(outputs["services"]) if s.get("Name") in ("kubelet", "containerd", "hns")]
    outputs["services"] = _compact(services)
    files = _healthy_files()
    files["kubeadm-flags.env"] = {"path": r"C:\var\lib\kubelet\kubeadm-flags.env", "source": "files/kubeadm-flags.env"}
    files["kubelet-config.yaml"] = {"path": r"C:\var\lib\kubelet\config.yaml", "source": "files/kubelet-config.yaml"}
    logs = _healthy_logs({"kubelet": r"C:\var\log\kubelet\kubelet.err.log"})
    logs["kube-proxy"] = {
        "path": KUBE_PROXY_POD + r"\kube-proxy\0.log",
        "source": "../../healthy/logs/kube-proxy.log",
        "lines_per_cycle": 20,
    }
    logs["flanneld"] = {
        "path": FLANNEL_POD + r"\kube-flannel\0.log",
        "source": "../../healthy/logs/flanneld.log",
        "lines_per_cycle": 20,
    }
    _write(
        "kubeadm-hostprocess",
        {
            **base,
            "node": "win-kubeadm-01",
            "description": "kubeadm node prepared with sig-windows-tools: kubelet under nssm logging to "
            "C:\\var\\log\\kubelet, kube-proxy and Flannel as HostProcess DaemonSets (logs under C:\\var\\log\\pods).",
            "paths": [r"C:\var\lib\kubelet\kubeadm-flags.env"],
            # Switch "variant" to "hns-hung": the Host Network Service stops answering (Get-HnsNetwork hangs).
            "variants": {"hns-hung": {"document": "probes-hns-hung.json"}},
            "files": files,
            "logs": logs,
        },
        outputs,
        {"kubeadm-flags.env": KUBEADM_FLAGS, "kubelet-config.yaml": KUBELET_CONFIG},
    )

    # 2. A large node: 2,000 endpoints and 1,000 load balancers.
    _write(
        "large-node",
        {
            **base,
            "node": "win-large-01",
            "description": "The healthy node in a large cluster: 2,000 HNS endpoints and 1,000 load balancers.",
            "files": _healthy_files(),
            "logs": _healthy_logs({"kubelet": r"C:\k\kubelet.log", "kube-proxy": r"C:\k\kube-proxy.log"}),
        },
        large_outputs(2000, 1000),
        {},
    )

    # 3. A German node: structured probes read the same; event text and netsh labels are German.
    outputs = healthy_outputs()
    outputs["ports.excluded"] = _text(STRUCTURED / "netsh-excluded-de.txt")
    outputs["ports.excluded.udp"] = outputs["ports.excluded"].replace("Protokoll tcp", "Protokoll udp")
    hotfixes = json.loads(outputs["os.hotfixes"])
    for fix in hotfixes:
        fix["Description"] = {"Update": "Update", "Security Update": "Sicherheitsupdate"}.get(
            fix["Description"], fix["Description"]
        )
    outputs["os.hotfixes"] = _compact(hotfixes)
    _write(
        "localized-de",
        {
            **base,
            "node": "win-de-01",
            "description": "The healthy node on a German Windows Server image (de-DE display language).",
            "files": _healthy_files(),
            "logs": _healthy_logs({"kubelet": r"C:\k\kubelet.log", "kube-proxy": r"C:\k\kube-proxy.log"}),
        },
        outputs,
        {},
    )


if __name__ == "__main__":
    build()
