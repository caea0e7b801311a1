"""Running validated on-demand requests (see ``agent.protocol``) with fixed programs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.protocol import Request
from agent.tail import read_tail

if TYPE_CHECKING:
    from agent.app import Agent

BUNDLE_LOG_BYTES = 512 * 1024
COMMAND_TIMEOUT = 20.0


def execute(request: Request, agent: Agent, progress: Callable[[str], None]) -> dict[str, Any]:
    """The ``result`` fields for ``request``: ``results`` (connectivity) and/or ``data``."""
    handler = _HANDLERS[request.name]
    return handler(request.args, agent, progress)


def _collect_now(args: dict[str, Any], agent: Agent, progress: Callable[[str], None]) -> dict[str, Any]:
    progress("collecting")
    collection = agent.collect_and_queue()
    progress("sending")
    flushed = agent.flush()
    return {"data": {"sequence": collection.report["sequence"], "sent": flushed.pending == 0}}


def _bundle_logs(args: dict[str, Any], agent: Agent, progress: Callable[[str], None]) -> dict[str, Any]:
    logs: dict[str, dict[str, str]] = {}
    for kind, source in agent.runner.log_sources(agent.collector.log_paths()).items():
        progress(f"reading {source.path}")
        chunk = read_tail(
            source.path, source.local_path, None, max_bytes=BUNDLE_LOG_BYTES, initial_bytes=BUNDLE_LOG_BYTES
        )
        if chunk is not None:
            logs[kind] = {"path": chunk.path, "text": chunk.text}
    return {"data": {"logs": logs}}


def _run(agent: Agent, argv: list[str]) -> tuple[bool, str]:
    result = agent.runner.run_command(argv, COMMAND_TIMEOUT)
    return result.error is None, (result.output + (f"\n{result.error}" if result.error else "")).strip()


def _test(kind: str, target: str, ok: bool, output: str, **detail: str) -> dict[str, Any]:
    return {"kind": kind, "target": target, "origin": "node", "ok": ok, "output": output[-4000:], "detail": detail}


def _curl(agent: Agent, url: str) -> tuple[bool, str]:
    # curl.exe ships with Windows Server 2019+; -w prints the status even when the body is discarded.
    return _run(agent, ["curl.exe", "-sS", "-o", "NUL", "-m", "5", "-w", "HTTP %{http_code} in %{time_total}s", url])


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _ping_vs_curl(args: dict[str, Any], agent: Agent, progress: Callable[[str], None]) -> dict[str, Any]:
    target, port = args["target"], args["port"]
    progress(f"ping {target}")
    ping_ok, ping_out = _run(agent, ["ping.exe", "-n", "2", "-w", "1000", target])
    ping_ok = ping_ok and "TTL=" in ping_out.upper()
    progress(f"curl {target}:{port}")
    curl_ok, curl_out = _curl(agent, _url(target, port))
    return {"results": [_test("ping", target, ping_ok, ping_out), _test("curl", f"{target}:{port}", curl_ok, curl_out)]}


def _nodeport(args: dict[str, Any], agent: Agent, progress: Callable[[str], None]) -> dict[str, Any]:
    target = f"{args['node_ip']}:{args['port']}"
    progress(f"curl {target} from the node")
    ok, out = _curl(agent, _url(args["node_ip"], args["port"]))
    return {"results": [_test("nodeport", target, ok, out)]}


def _service_vip(args: dict[str, Any], agent: Agent, progress: Callable[[str], None]) -> dict[str, Any]:
    target = f"{args['ip']}:{args['port']}"
    if args.get("protocol") in ("dns", "dns-tcp"):
        over_tcp = args["protocol"] == "dns-tcp"
        progress(f"DNS query to {target} from the node")
        ok, out = _ask_dns_server(agent, args["ip"], over_tcp=over_tcp)
        return {"results": [_test("service-vip", f"{target}/{'TCP' if over_tcp else 'UDP'}", ok, out, protocol="dns")]}
    progress(f"curl {target} from the node")
    ok, out = _curl(agent, _url(args["ip"], args["port"]))
    return {"results": [_test("service-vip", target, ok, out)]}


# The name a DNS Service is asked for: any answer, even "no such name" (another cluster domain),
# proves the ClusterIP answers from the node; only a timeout or an unreachable server does not.
PROBE_NAME = "kubernetes.default.svc.cluster.local"


def dns_server_command(powershell: str, server: str, *, over_tcp: bool = False) -> list[str]:
    """Ask ``server`` (an IP address, validated) over UDP or TCP; print the records, or the error's
    id, which names the DNS response code (``DNS_ERROR_RCODE_…``) or the timeout in every language."""
    tcp = " -TcpOnly" if over_tcp else ""
    script = (
        f"try {{ Resolve-DnsName -Name '{PROBE_NAME}' -Server '{server}'{tcp} -DnsOnly -QuickTimeout -ErrorAction Stop"
        " | Select-Object Name, IPAddress | ConvertTo-Json -Compress }"
        " catch { 'error: ' + $_.FullyQualifiedErrorId; exit 1 }"
    )
    return [powershell, "-NoProfile", "-NonInteractive", "-Command", script]


def _ask_dns_server(agent: Agent, server: str, *, over_tcp: bool) -> tuple[bool, str]:
    command = dns_server_command(agent.config.powershell, server, over_tcp=over_tcp)
    result = agent.runner.run_command(command, COMMAND_TIMEOUT)
    out = (result.output + (f"\n{result.error}" if result.error else "")).strip()
    return result.error is None or "DNS_ERROR_RCODE" in out, out


def resolve_command(powershell: str, name: str) -> list[str]:
    """The command that resolves ``name`` (validated by ``agent.protocol``: letters, digits, '-', dots)."""
    script = (
        f"Resolve-DnsName -Name '{name}' -ErrorAction Stop | Where-Object IPAddress"
        " | Select-Object Name, IPAddress | ConvertTo-Json -Compress"
    )
    return [powershell, "-NoProfile", "-NonInteractive", "-Command", script]


def _resolve(agent: Agent, name: str) -> tuple[bool, str]:
    """Resolve-DnsName asks the Windows DNS client, as applications do (suffix search list, hosts
    file), and answers in JSON whatever the system's language; nslookup, which has a resolver of
    its own and localized messages, is the fallback where PowerShell cannot start."""
    result = agent.runner.run_command(resolve_command(agent.config.powershell, name), COMMAND_TIMEOUT)
    if result.error is None or not result.error.startswith("cannot start"):
        ok = result.error is None and '"IPAddress"' in result.output
        return ok, (result.output + (f"\n{result.error}" if result.error else "")).strip()
    ok, out = _run(agent, ["nslookup.exe", name])
    return ok and "can't find" not in out and "Non-existent domain" not in out, out


def _dns_lookup(args: dict[str, Any], agent: Agent, progress: Callable[[str], None]) -> dict[str, Any]:
    results = []
    for name in args["names"]:
        progress(f"Resolve-DnsName {name}")
        ok, out = _resolve(agent, name)
        # Windows resolves only one suffix level: "kubernetes.default" (partial) fails where the FQDN works.
        qualified = "fqdn" if name.endswith(".") or name.count(".") >= 4 else "partial"
        results.append(_test("dns", name, ok, out, qualified=qualified))
    return {"results": results}


_HANDLERS: dict[str, Callable[[dict[str, Any], Agent, Callable[[str], None]], dict[str, Any]]] = {
    "collect-now": _collect_now,
    "collect-bundle-logs": _bundle_logs,
    "ping-vs-curl": _ping_vs_curl,
    "nodeport": _nodeport,
    "service-vip": _service_vip,
    "dns-lookup": _dns_lookup,
}
