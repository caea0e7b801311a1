"""Flannel on Windows: subnet.env, the flanneld lifecycle, SourceVip files, VXLAN parameters."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from diagnostics.checks.common import (
    component_flags,
    hit_evidence,
    net_conf,
    node_hostname,
    node_ip,
    ps_quote,
    restart_command,
    subnet_env,
    uses_flannel,
)
from diagnostics.model import Evidence, Fail, FixStep, Severity, Unknown
from diagnostics.parsers.flannel import network_of, parse_source_vip
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot
from diagnostics.versions import FLANNEL_NODE_TO_POD_MIN, FLANNEL_VXLAN_PORT, FLANNEL_VXLAN_VNI, version_lt

DOCS = "https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/"
SUBNET_ENV_PATH = r"C:\run\flannel\subnet.env"

Outcome = Iterator[Fail | Unknown]


def subnet_env_text(snap: NodeSnapshot) -> str | None:
    """subnet.env for this node: the cluster network, this node's podCIDR (first address as gateway)."""
    pod_cidr = snap.pod_cidr()
    cidr = pod_cidr.value if pod_cidr is not None else _hns_pod_subnet(snap)
    if not cidr:
        return None
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
    _f, conf = net_conf(snap)
    cluster = (conf.network if conf else "") or (snap.cluster_view.cluster_cidr if snap.cluster_view else "")
    mtu = 1450 if conf is not None and conf.backend_type == "vxlan" else 1500
    lines = [
        f"FLANNEL_NETWORK={cluster or '<the cluster pod CIDR>'}",
        f"FLANNEL_SUBNET={net.network_address + 1}/{net.prefixlen}",
        f"FLANNEL_MTU={mtu}",
        "FLANNEL_IPMASQ=true",
    ]
    return "\n".join(lines)


def _hns_pod_subnet(snap: NodeSnapshot) -> str:
    """The node's pod subnet as the flannel-made HNS network (cbr0/vxlan0) holds it, when the API is not known."""
    if snap.hns_networks is None:
        return ""
    for net in snap.hns_networks.value:
        if net.name.lower() in ("cbr0", "vxlan0") and net.subnets:
            return net.subnets[0].prefix
    return ""


@check(
    "flannel.subnet-env-missing",
    severity=Severity.CRITICAL,
    title="Flannel's subnet.env is missing",
    docs=DOCS,
    plugins=("flannel",),
)
def subnet_env_missing(snap: NodeSnapshot) -> Outcome:
    hits = snap.hits("flannel.subnet-env-missing")
    fact = snap.file("subnet.env")
    if fact is not None and fact.exists:
        return  # the file is there now: errors still in the log tail are history
    flannel = uses_flannel(snap)
    missing = fact is not None and not fact.exists and flannel is not False
    if not hits and not missing:
        if (
            fact is None
            and flannel is not False
            and "flanneld" not in snap.logs_seen
            and "kubelet" not in snap.logs_seen
        ):
            yield Unknown(needs=(f"the file {SUBNET_ENV_PATH}", "the flanneld or kubelet log"))
        return
    path = fact.path if fact is not None else SUBNET_ENV_PATH
    evidence: list[Evidence] = []
    if missing and fact is not None:
        evidence.append(Evidence(fact.source, f"{fact.path} does not exist"))
    evidence.extend(hit_evidence(hits))
    fix: list[FixStep] = [
        FixStep(
            f"Restart flanneld: it writes {path} once it has the node's lease (read its log if the file does not "
            "appear).",
            (restart_command(snap, "flanneld"), f"Test-Path {ps_quote(path)}"),
        )
    ]
    text = subnet_env_text(snap)
    if text is not None:
        fix.append(
            FixStep(
                "Or write the file by hand, with this node's podCIDR as FLANNEL_SUBNET.",
                (
                    f"New-Item -ItemType Directory -Force (Split-Path {ps_quote(path)}) | Out-Null",
                    f"Set-Content -Path {ps_quote(path)} -Encoding ascii -Value @'\n{text}\n'@",
                ),
            )
        )
    else:
        name = node_hostname(snap)
        pod_cidr = (
            f"kubectl get node {name} -o jsonpath='{{.spec.podCIDR}}'"
            if name and name != "unknown"
            else "kubectl get nodes -o custom-columns=NAME:.metadata.name,POD_CIDR:.spec.podCIDR"
        )
        fix.append(
            FixStep(
                "Or copy /run/flannel/subnet.env from a control-plane node and change FLANNEL_SUBNET to this node's "
                "podCIDR.",
                (pod_cidr,),
            )
        )
    fix.append(FixStep("Delete the pods stuck in ContainerCreating so that their sandboxes are created again."))
    yield Fail(
        summary=f"{path} is missing, so the flannel CNI plugin cannot set up pod networking on this node."
        if missing
        else "The flannel CNI plugin could not read subnet.env: pod sandboxes fail to get a network.",
        evidence=tuple(evidence),
        fix=tuple(fix),
    )


def flanneld_args(snap: NodeSnapshot) -> str:
    """The seed's flanneld arguments, with this node's kubeconfig and interface IP."""
    kubeconfig = r"c:\k\config"
    flags = component_flags(snap, "flanneld")
    if flags is not None and flags.value.get("kubeconfig-file"):
        kubeconfig = flags.value["kubeconfig-file"]
    ip = node_ip(snap)
    iface = ip.value.split("/")[0] if ip is not None else "<this node's IP>"
    return f"--kubeconfig-file={kubeconfig} --iface={iface} --ip-masq=1 --kube-subnet-mgr=1"


def flanneld_exe(snap: NodeSnapshot) -> str:
    line = snap.component_command_line("flanneld")
    if line is not None:
        match = re.match(r'\s*"?([^"]*?flanneld(?:\.exe)?)"?(?:\s|$)', line.value, re.IGNORECASE)
        if match:
            return match.group(1)
    return r"C:\flannel\flanneld.exe"


@check(
    "flannel.waiting-for-network",
    severity=Severity.CRITICAL,
    title="flanneld is stuck waiting for the network",
    docs=DOCS,
    plugins=("flannel",),
)
def waiting_for_network(snap: NodeSnapshot) -> Outcome:
    hits = snap.hits("flannel.waiting-for-network")
    if not hits:
        if uses_flannel(snap) and not ({"flanneld", "start-script"} & set(snap.logs_seen)):
            yield Unknown(needs=("the flanneld log (or start.ps1 output)",))
        return
    first, last = min(hits, key=lambda h: h.line), max(hits, key=lambda h: h.line)
    name = node_hostname(snap)
    svc = snap.service("flanneld")
    if svc is not None and "nssm" in svc.command_line.lower():
        fix: tuple[str, ...] = (
            f"nssm set {svc.name} AppEnvironmentExtra NODE_NAME={name}",
            f"nssm set {svc.name} AppParameters {flanneld_args(snap)}",
            f"Restart-Service {svc.name}",
        )
    else:
        fix = (
            "Stop flanneld (and start.ps1 if it is still looping).",
            f'[Environment]::SetEnvironmentVariable("NODE_NAME", "{name}")',
            f"{flanneld_exe(snap)} {flanneld_args(snap)}",
        )
    yield Fail(
        summary=(
            f"The log ends in repeated 'Waiting for the Network to be created' (lines {first.line} to {last.line} "
            f"of {last.source}): flanneld never created the HNS network, usually because it started before the "
            "management IP was set."
        ),
        evidence=hit_evidence(hits),
        fix=(*fix, "Or run start.ps1 again; once the network exists, kubelet and kube-proxy can start."),
    )


@check(
    "flannel.stale-sourcevip",
    severity=Severity.WARNING,
    title="SourceVip files are left from an earlier pod subnet",
    docs=DOCS,
    plugins=("flannel",),
)
def stale_sourcevip(snap: NodeSnapshot) -> Outcome:
    expected = snap.pod_cidr()
    expected_net = network_of(expected.value) if expected else ""
    source = expected.source if expected else ""
    if not expected_net:
        _f, env = subnet_env(snap)
        if env is not None and env.subnet_network:
            expected_net, source = env.subnet_network, "subnet.env FLANNEL_SUBNET"
    if not expected_net:
        return
    stale: list[Evidence] = []
    paths: list[str] = []
    for name in ("SourceVip.json", "SourceVipRequest.json"):
        fact = snap.file(name)
        if fact is None or fact.content is None:
            continue
        try:
            vip = parse_source_vip(fact.content)
        except ValueError:
            continue
        net = ipaddress.ip_network(expected_net)
        outside = False
        if vip.ip:
            try:
                outside = ipaddress.ip_address(vip.ip) not in net
            except ValueError:
                outside = False
        if not outside and vip.subnet and vip.subnet != expected_net:
            outside = True
        if outside:
            value = vip.ip or vip.subnet
            stale.append(Evidence(fact.source, f"{fact.path}: {value} is outside {expected_net}"))
            paths.append(fact.path)
    if not stale:
        return
    yield Fail(
        summary=(
            f"{' and '.join(paths)} refer to another pod subnet than this node's {expected_net}: the node was "
            "deleted and joined again, and kube-proxy keeps the old source VIP."
        ),
        evidence=(*stale, Evidence(source, expected_net)),
        fix=(
            *(f"Remove-Item {ps_quote(p)}" for p in paths),
            restart_command(snap, "flanneld"),
            restart_command(snap, "kube-proxy"),
        ),
    )


@check(
    "flannel.vxlan-params",
    severity=Severity.WARNING,
    title="Flannel VXLAN uses a VNI or port Windows does not support",
    docs="https://kubernetes.io/docs/concepts/services-networking/windows-networking/",
    plugins=("flannel",),
)
def vxlan_params(snap: NodeSnapshot) -> Outcome:
    fact, conf = net_conf(snap)
    if fact is None or conf is None or conf.backend_type != "vxlan":
        return
    problems: list[str] = []
    if conf.vni != FLANNEL_VXLAN_VNI:
        problems.append(f'"VNI": {conf.vni if conf.vni is not None else "unset (defaults to 1)"}')
    if conf.port is not None and conf.port != FLANNEL_VXLAN_PORT:
        problems.append(f'"Port": {conf.port}')
    if not problems:
        return
    yield Fail(
        summary=f"Flannel's VXLAN backend on Windows works only with VNI {FLANNEL_VXLAN_VNI} and UDP port "
        f"{FLANNEL_VXLAN_PORT}; net-conf.json has {', '.join(problems)}.",
        evidence=(Evidence(fact.source, "Backend " + ", ".join(problems)),),
        fix=(
            f'Set "Backend": {{"Type": "vxlan", "VNI": {FLANNEL_VXLAN_VNI}, "Port": {FLANNEL_VXLAN_PORT}}} in the '
            "kube-flannel ConfigMap (net-conf.json) for every node, Linux included.",
            "Restart flanneld on every node (the kube-flannel DaemonSet pods, and flanneld on Windows).",
        ),
    )


_FLANNEL_TAG_RE = re.compile(r"flannel[^:/]*:v?(\d+\.\d+(?:\.\d+)?)", re.IGNORECASE)


@check(
    "flannel.version-node-to-pod",
    severity=Severity.INFO,
    title="Flannel before v0.12.0 cannot reach local pods from the node",
    docs="https://kubernetes.io/docs/concepts/services-networking/windows-networking/",
    plugins=("flannel",),
)
def version_node_to_pod(snap: NodeSnapshot) -> Outcome:
    _f, conf = net_conf(snap)
    if conf is None or conf.backend_type != "vxlan" or snap.pods is None:
        return
    for pod in snap.pods.value:
        spec = pod.get("spec") or {}
        for i, container in enumerate(spec.get("containers") or []):
            image = str(container.get("image") or "")
            match = _FLANNEL_TAG_RE.search(image)
            if match and version_lt(match.group(1), FLANNEL_NODE_TO_POD_MIN):
                name = (pod.get("metadata") or {}).get("name", "")
                yield Fail(
                    summary=f"Flannel {match.group(1)} with VXLAN: this node cannot reach its own pods "
                    "(supported from v0.12.0).",
                    evidence=(Evidence(f"{snap.pods.source} Pod/{name}", f"spec.containers[{i}].image: {image}"),),
                    fix=("Upgrade Flannel (the Windows flanneld and the kube-flannel DaemonSet) to v0.12.0 or later.",),
                )
                return


@check(
    "flannel.subnet-mismatch",
    severity=Severity.CRITICAL,
    title="The node's pod subnet differs between flannel, HNS and the API",
    docs=DOCS,
    probes=("hns.networks",),
    plugins=("flannel",),
)
def subnet_mismatch(snap: NodeSnapshot) -> Outcome:
    pod_cidr = snap.pod_cidr()
    if pod_cidr is None:
        return
    expected = network_of(pod_cidr.value)
    evidence: list[Evidence] = []
    fact, env = subnet_env(snap)
    if fact is not None and env is not None and env.subnet_network and env.subnet_network != expected:
        evidence.append(Evidence(fact.source, f"FLANNEL_SUBNET={env.subnet}"))
    if snap.hns_networks is not None and uses_flannel(snap):
        for net in snap.hns_networks.value:
            if net.name.lower() not in ("cbr0", "vxlan0"):
                continue
            prefixes = [network_of(s.prefix) for s in net.subnets if s.prefix]
            if prefixes and expected not in prefixes:
                evidence.append(
                    Evidence(
                        snap.hns_networks.source, f"{net.name} Subnets: {', '.join(s.prefix for s in net.subnets)}"
                    )
                )
    if not evidence:
        return
    text = subnet_env_text(snap)
    fix = [
        f"This node's podCIDR is {pod_cidr.value}; make flannel use it: stop flanneld, remove the stale "
        "HNS network (Get-HnsNetwork | ? Name -in 'cbr0','vxlan0' | Remove-HnsNetwork), then start flanneld.",
    ]
    if text is not None:
        fix.append(f"The subnet.env flanneld should then write:\n{text}")
    fix.append("Restart kube-proxy and delete this node's pods so that they get addresses in the new subnet.")
    yield Fail(
        summary=f"The API gives this node the pod subnet {pod_cidr.value}, but the node uses another one: "
        "pods get addresses the rest of the cluster routes elsewhere.",
        evidence=(Evidence(pod_cidr.source, pod_cidr.value), *evidence),
        fix=tuple(fix),
    )
