"""The Windows CNI config: the OutBoundNAT ExceptionList."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator

from diagnostics.checks.common import cni_conf, component_flags, hit_evidence, management_subnet, net_conf, subnet_env
from diagnostics.model import Evidence, Fail, FixStep, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import Fact, NodeSnapshot

DOCS = "https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/"

Outcome = Iterator[Fail | Unknown]


def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def required_exceptions(snap: NodeSnapshot) -> list[tuple[str, Fact[str]]]:
    """(role, CIDR) the ExceptionList must cover: the cluster (pod) CIDR, the service CIDR, the management subnet."""
    out: list[tuple[str, Fact[str]]] = []
    view = snap.cluster_view
    cluster = view.cluster_cidr if view is not None and view.cluster_cidr else ""
    source = view.source + " cluster_cidr" if cluster and view is not None else ""
    if not cluster:
        fact, conf = net_conf(snap)
        if fact is not None and conf is not None and conf.network:
            cluster, source = conf.network, fact.source + " Network"
    if not cluster:
        fact_env, env = subnet_env(snap)
        if fact_env is not None and env is not None and env.network:
            cluster, source = env.network, fact_env.source + " FLANNEL_NETWORK"
    if cluster:
        out.append(("cluster subnet", Fact(cluster, source)))
    if view is not None and view.service_cidr:
        out.append(("service subnet", Fact(view.service_cidr, view.source + " service_cidr")))
    else:
        # Without the API, kubelet's --cluster-dns (the DNS Service's ClusterIP) lies in the service CIDR.
        flags = component_flags(snap, "kubelet")
        dns = flags.value.get("cluster-dns", "").split(",")[0] if flags is not None else ""
        if dns and flags is not None:
            out.append(("service subnet", Fact(dns, f"{flags.source} kubelet --cluster-dns (inside the service CIDR)")))
    mgmt = management_subnet(snap)
    if mgmt is not None:
        out.append(("management (host) subnet", mgmt))
    return out


def _covered(cidr: str, entries: list[str]) -> bool:
    want = _net(cidr)
    if want is None:
        return True
    for entry in entries:
        have = _net(entry)
        if have is not None and have.version == want.version and want.subnet_of(have):  # type: ignore[arg-type]
            return True
    return False


def _as_cidr(value: str, entries: list[str]) -> str:
    """A required CIDR for the corrected list; a bare address (the cluster DNS IP) becomes the entry holding it."""
    if "/" in value:
        return value
    holder = next((e for e in entries if _covered(value, [e])), None)
    return holder or f"<the service CIDR, which holds {value}>"


@check(
    "cni.exceptionlist",
    severity=Severity.WARNING,
    title="The CNI OutBoundNAT ExceptionList is wrong for this cluster",
    docs=DOCS,
)
def exceptionlist(snap: NodeSnapshot) -> Outcome:
    fact, conf = cni_conf(snap)
    hits = snap.hits("cni.exceptionlist")
    if fact is None or conf is None or conf.exception_list is None:
        if hits:  # an endpoint's own OutBoundNAT policy, quoted in a trace, holds a placeholder
            yield Fail(
                summary="An HNS endpoint's OutBoundNAT exceptions hold a placeholder instead of this cluster's "
                "CIDRs: the CNI config was never filled in, so pod traffic to the service CIDR (or the cluster) is "
                "SNATed and breaks.",
                evidence=hit_evidence(hits),
                fix=(
                    FixStep(
                        "Put the cluster CIDR, the service CIDR and the node (management) subnet in the CNI config's "
                        "OutBoundNAT ExceptionList in place of the placeholder, then recreate the pods.",
                        (
                            "Get-ChildItem C:\\etc\\cni\\net.d, C:\\k\\cni\\config -ErrorAction SilentlyContinue",
                            "kubectl cluster-info dump | Select-String 'service-cluster-ip-range|cluster-cidr'",
                        ),
                    ),
                ),
            )
        return
    entries = list(conf.exception_list)
    required = required_exceptions(snap)
    if not required:
        yield Unknown(
            needs=(
                "the cluster (pod) CIDR and the service CIDR: the cluster's API, net-conf.json or subnet.env, "
                "or kubelet's --cluster-dns",
            ),
        )
        return
    missing = [(role, cidr) for role, cidr in required if not _covered(cidr.value, entries)]
    # External destinations the pods failed to reach although an exception stops their SNAT.
    blocked: list[tuple[str, str]] = []
    for r in snap.connectivity:
        if r.origin != "pod" or r.ok:
            continue
        host = r.target.split("://")[-1].split("/")[0].split(":")[0]
        if any(_covered(host, [cidr.value]) for _role, cidr in required):
            continue
        for entry in entries:
            if _covered(host, [entry]):
                blocked.append((entry, r.target))
                break
    if not missing and not blocked:
        return
    wrong = {entry for entry, _target in blocked}
    corrected = [_as_cidr(cidr.value, entries) for _role, cidr in required]
    corrected += [e for e in entries if e not in wrong and not _covered(e, corrected)]
    evidence = [Evidence(fact.source, f"{conf.exception_list_path}: {json.dumps(entries)}")]
    evidence += [Evidence(cidr.source, f"{role}: {cidr.value}") for role, cidr in missing]
    evidence += [
        Evidence(f"connectivity from pod to {target}", f"failed; {target} is inside {entry}")
        for entry, target in blocked
    ]
    problems = [f"lacks the {role} {cidr.value}" for role, cidr in missing]
    problems += [
        f"contains {entry}, so traffic to {target} is not SNATed and gets no reply" for entry, target in blocked
    ]
    yield Fail(
        summary=f"The OutBoundNAT ExceptionList in {fact.path} " + "; ".join(problems) + ".",
        evidence=tuple(evidence),
        fix=(
            f'Set {conf.exception_list_path} in {fact.path} to: "ExceptionList": {json.dumps(corrected)}',
            "The change applies to pods created afterwards: delete this node's pods so that they get new endpoints.",
        ),
    )
