"""On-demand requests: the WebSocket protocol between the agent and the dashboard.

Connection
    The agent connects to ``{dashboard}/ws/agent/`` (``wss://`` for an https
    dashboard) with ``Authorization: Bearer <token>``; the dashboard closes the
    connection (code 4401) when the token is not valid. The agent reconnects
    with exponential backoff (1 s doubling to 60 s, with jitter).

Messages (JSON text frames)
    agent -> dashboard, once connected::

        {"type": "hello", "cluster": "prod-eu", "node": "win-prod-01",
         "agent_version": "0.1.0", "requests": ["collect-now", ...]}

    dashboard -> agent::

        {"type": "request", "id": "r-42", "name": "ping-vs-curl", "args": {"target": "8.8.8.8"}}

    ``id`` is chosen by the dashboard (1-64 characters of ``[A-Za-z0-9._:-]``) and
    is echoed in every answer. Then, agent -> dashboard::

        {"type": "progress", "id": "r-42", "message": "ping 8.8.8.8"}          (zero or more)
        {"type": "result", "id": "r-42", "name": "ping-vs-curl", "ok": true,
         "results": [ConnectivityResult, ...], "data": {...}}                   (exactly one, or)
        {"type": "error", "id": "r-42", "error": "unknown request 'format-c'"}

    ``ok`` is true when the request ran (a failed ping is a result, not an
    error); each ConnectivityResult is ``{"kind", "target", "origin": "node",
    "ok", "output", "detail"}`` as ``diagnostics.facts.ConnectivityResult``. The
    results are also attached to the agent's next report (``connectivity``).

Requests (nothing else exists; each runs a fixed program with validated arguments, never a shell)
    ``collect-now``          {}                               -> data {"sequence": n, "sent": bool}
    ``collect-bundle-logs``  {}                               -> data {"logs": {kind: {"path", "text"}}}
                                                                 (last 512 KiB of each log)
    ``ping-vs-curl``         {"target": host-or-ip, "port"?: 1-65535}
                                                              -> results [ping, curl]
    ``nodeport``             {"port": 30000-32767, "node_ip"?: ip}
                                                              -> results [nodeport] (from the node itself)
    ``service-vip``          {"ip": ip, "port": 1-65535, "protocol"?: "tcp" | "dns" | "dns-tcp"}
                                                              -> results [service-vip]
                                                                 (tcp: curl; dns, dns-tcp: a DNS query
                                                                 to the ClusterIP on port 53, over UDP
                                                                 or TCP)
    ``dns-lookup``           {"names": [host, ...] (1-10)}    -> results [dns per name], detail
                                                                 {"qualified": "fqdn" | "partial"}

    Host names follow RFC 1123 (letters, digits, '-', dots; at most 253
    characters); a trailing dot marks an FQDN. Anything else is refused with an
    ``error`` message naming the argument.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

REQUESTS = ("collect-now", "collect-bundle-logs", "ping-vs-curl", "nodeport", "service-vip", "dns-lookup")
_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
MAX_NAMES = 10


class RequestError(ValueError):
    """A request that is refused; the message is sent back to the dashboard."""


@dataclass(frozen=True)
class Request:
    id: str
    name: str
    args: dict[str, Any]


def parse_request(raw: str | bytes) -> Request:
    """Decode and validate a request frame; ``RequestError`` says what is wrong."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise RequestError("the message is not JSON") from None
    if not isinstance(data, dict) or data.get("type") != "request":
        raise RequestError("expected a message of type 'request'")
    req_id = data.get("id")
    if not isinstance(req_id, str) or not _ID_RE.match(req_id):
        raise RequestError("id must be 1-64 characters of letters, digits and . _ : -")
    name = data.get("name")
    if name not in REQUESTS:
        raise RequestError(f"unknown request {str(name)[:64]!r}; known: {', '.join(REQUESTS)}")
    args = data.get("args", {})
    if not isinstance(args, dict):
        raise RequestError("args must be an object")
    return Request(req_id, str(name), validate_args(str(name), args))


def validate_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a known request, checked strictly; extra arguments are refused."""
    allowed: dict[str, tuple[str, ...]] = {
        "collect-now": (),
        "collect-bundle-logs": (),
        "ping-vs-curl": ("target", "port"),
        "nodeport": ("port", "node_ip"),
        "service-vip": ("ip", "port", "protocol"),
        "dns-lookup": ("names",),
    }
    extra = sorted(set(args) - set(allowed[name]))
    if extra:
        raise RequestError(f"{name} does not take {', '.join(extra)}")
    out: dict[str, Any] = {}
    if name == "ping-vs-curl":
        out["target"] = host(args.get("target"), "target")
        out["port"] = port(args["port"], "port") if "port" in args else 80
    elif name == "nodeport":
        out["port"] = port(args.get("port"), "port", low=30000, high=32767)
        out["node_ip"] = ip(args["node_ip"], "node_ip") if "node_ip" in args else "127.0.0.1"
    elif name == "service-vip":
        out["ip"] = ip(args.get("ip"), "ip")
        out["port"] = port(args.get("port"), "port")
        out["protocol"] = args.get("protocol", "tcp")
        if out["protocol"] not in ("tcp", "dns", "dns-tcp"):
            raise RequestError("protocol must be tcp, dns or dns-tcp")
        if out["protocol"] != "tcp" and out["port"] != 53:
            raise RequestError("a DNS Service VIP is probed on port 53")
    elif name == "dns-lookup":
        names = args.get("names")
        if not isinstance(names, list) or not 1 <= len(names) <= MAX_NAMES:
            raise RequestError(f"names must be a list of 1 to {MAX_NAMES} host names")
        out["names"] = [host(n, "names", allow_ip=False) for n in names]
    return out


def ip(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{label} must be an IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise RequestError(f"{label} {value[:64]!r} is not an IP address") from None


def host(value: Any, label: str, *, allow_ip: bool = True) -> str:
    """An IP address or an RFC 1123 host name (a trailing dot kept: it marks an FQDN)."""
    if not isinstance(value, str) or not value:
        raise RequestError(f"{label} must be a host name or an IP address")
    if allow_ip:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    name = value[:-1] if value.endswith(".") else value
    if len(name) > 253 or not all(_LABEL_RE.match(label_) for label_ in name.split(".")):
        raise RequestError(f"{label} {value[:64]!r} is not a valid host name")
    return value


def port(value: Any, label: str, *, low: int = 1, high: int = 65535) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(f"{label} must be an integer from {low} to {high}")
    return value


def message(kind: str, req_id: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "id": req_id, **fields})
