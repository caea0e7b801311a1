"""The node page's "Tests from the node": which Services can be probed, and what a result means.

A result is read against the FAQ's known limitations of Windows nodes: a NodePort that does
not answer from the node itself, ICMP that does not leave the cluster, partially qualified
names that do not resolve. Those outcomes are *expected*; anything else that fails is a
*problem*. The verdict is shown next to the form that ran the test, with when and by whom.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.protocol import RequestError
from dashboard.cluster.models import ApiObject
from dashboard.models import Node

EXPECTED = "expected"
PROBLEM = "problem"
PASSED = "passed"

# Why an outcome is expected on Windows (the catalogue's limitation checks say the same).
LIMITATIONS = {
    "nodeport": "Known limitation (network.nodeport-local): a Windows node cannot reach its own NodePorts. "
    "Test from another node or from outside the cluster.",
    "ping": "Known limitation (network.icmp-external): ICMP does not leave the cluster from Windows. "
    "curl answering is what matters.",
    "dns-partial": "Known limitation (dns.pqdn-unsupported): Windows uses one DNS suffix, so partially "
    "qualified names may not resolve. Use the fully qualified name.",
}


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service the cluster source lists, as the Service VIP test offers it."""

    namespace: str
    name: str
    cluster_ip: str
    port: int
    protocol: str
    port_name: str

    @property
    def value(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}/{self.protocol}"

    @property
    def label(self) -> str:
        named = f" ({self.port_name})" if self.port_name else ""
        return f"{self.namespace}/{self.name} — {self.cluster_ip}:{self.port}/{self.protocol}{named}"


def service_ports(node: Node, limit: int = 200) -> list[ServicePort]:
    """The ClusterIP Services of the node's cluster, one entry per port (headless Services left out).

    The ``kubernetes`` Service comes first: it is TCP and always there, a sound default.
    """
    rows = ApiObject.objects.filter(cluster_id=node.cluster_id, kind="Service").order_by("namespace", "name")
    found: list[ServicePort] = []
    for row in rows[:limit]:
        spec = row.data.get("spec") or {}
        ip = str(spec.get("clusterIP") or "")
        if not ip or ip == "None":
            continue
        for p in spec.get("ports") or []:
            if not isinstance(p, dict) or not isinstance(p.get("port"), int):
                continue
            found.append(
                ServicePort(
                    row.namespace, row.name, ip, p["port"], str(p.get("protocol") or "TCP"), str(p.get("name") or "")
                )
            )
    found.sort(key=lambda s: (not (s.namespace == "default" and s.name == "kubernetes"), s.namespace, s.name, s.port))
    return found


def resolve_service(node: Node, form: Any) -> dict[str, Any]:
    """The ``service-vip`` arguments for the Service the form names.

    The form sends ``service`` (``namespace/name:port/protocol`` from the list, or a ClusterIP
    with ``port``). When the cluster source lists Services, the address must be one of their
    ClusterIPs. Port 53 is asked a DNS query (over the port's protocol), another TCP port is probed
    with curl; another UDP port is refused (nothing owes an answer to an empty datagram).
    """
    text = str(form.get("service", "")).strip()
    port_text = str(form.get("port", "")).strip()
    known = service_ports(node)
    if not text:
        raise RequestError("Choose a Service, or type a ClusterIP and a port.")
    chosen: ServicePort | None = next((s for s in known if s.value == text), None)
    if chosen is None:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise RequestError(f"{text!r} is neither a Service of this cluster nor an IP address.") from None
        if not port_text.isdigit():
            raise RequestError("Give the Service's port with its ClusterIP.")
        matches = [s for s in known if s.cluster_ip == text]
        if known and not matches:
            raise RequestError(f"No Service of cluster {node.cluster.name} has the ClusterIP {text}.")
        chosen = next((s for s in matches if s.port == int(port_text)), None)
        if matches and chosen is None:
            ports = ", ".join(f"{s.port}/{s.protocol}" for s in matches)
            raise RequestError(
                f"{matches[0].namespace}/{matches[0].name} ({text}) has no port {port_text}: it has {ports}."
            )
        if chosen is None:
            return {"ip": text, "port": int(port_text)}
    if chosen.port == 53 and chosen.protocol in ("UDP", "TCP"):  # a DNS Service: asked a DNS query
        return {"ip": chosen.cluster_ip, "port": 53, "protocol": "dns" if chosen.protocol == "UDP" else "dns-tcp"}
    if chosen.protocol != "TCP":
        raise RequestError(
            f"{chosen.namespace}/{chosen.name} port {chosen.port} is {chosen.protocol}: the Service VIP test "
            "connects over TCP, or sends a DNS query to port 53; other UDP services owe no answer to a probe."
        )
    return {"ip": chosen.cluster_ip, "port": chosen.port}


def _verdict(kind: str, ok: bool, detail: Any, siblings: list[dict[str, Any]]) -> tuple[str, str]:
    """(verdict, explanation) of one connectivity result."""
    if ok:
        return PASSED, ""
    if kind == "nodeport":
        return EXPECTED, LIMITATIONS["nodeport"]
    if kind == "ping":
        curl_ok = any(r.get("kind") == "curl" and r.get("ok") for r in siblings)
        if curl_ok:
            return EXPECTED, LIMITATIONS["ping"]
        return PROBLEM, "Neither ping nor curl reached the target: the node has no way out to it."
    if kind == "dns":
        qualified = detail.get("qualified") if isinstance(detail, dict) else None
        if qualified == "partial":
            return EXPECTED, LIMITATIONS["dns-partial"]
        return PROBLEM, "A fully qualified name did not resolve: check the DNS Service and kube-proxy on this node."
    if kind == "service-vip":
        return (
            PROBLEM,
            "The Service did not answer on its ClusterIP from this node: check kube-proxy and the HNS load balancers.",
        )
    if kind == "curl":
        return PROBLEM, "curl did not reach the target."
    return PROBLEM, ""


def present(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The last results of each test, newest first, with verdicts, times and who ran them.

    Returns ``{request name with "_" for "-": [record, ...]}`` so each form shows its results beside it.
    """
    by_name: dict[str, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: -float(r.get("created") or 0)):
        results = []
        raw = [r for r in record.get("results") or [] if isinstance(r, dict)]
        for r in raw:
            verdict, why = _verdict(str(r.get("kind", "")), bool(r.get("ok")), r.get("detail"), raw)
            results.append({**r, "verdict": verdict, "why": why})
        created = record.get("created")
        view = {
            **record,
            "results": results,
            "at": datetime.fromtimestamp(float(created), UTC) if created else None,
            "problem": any(r["verdict"] == PROBLEM for r in results),
        }
        by_name.setdefault(str(record.get("name", "")).replace("-", "_"), []).append(view)
    return by_name
