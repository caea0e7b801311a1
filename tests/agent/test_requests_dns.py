"""The DNS request: Resolve-DnsName's JSON decides, in any language; nslookup only where PowerShell cannot start."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agent.protocol import Request
from agent.requests import execute, resolve_command
from agent.runner import CommandResult


class Programs:
    """Answers per program name. A stand-in for process starts: no Windows host runs here."""

    def __init__(self, answers: dict[str, CommandResult]) -> None:
        self.answers = answers
        self.started: list[list[str]] = []

    def run_command(self, argv: list[str], timeout: float) -> CommandResult:
        self.started.append(argv)
        return self.answers[argv[0]]


def lookup(answers: dict[str, CommandResult], name: str = "kubernetes.default.svc.cluster.local.") -> Any:
    runner = Programs(answers)
    agent = SimpleNamespace(runner=runner, config=SimpleNamespace(powershell="powershell.exe"))
    request = Request("r-1", "dns-lookup", {"names": [name]})
    return execute(request, agent, lambda _text: None)["results"][0], runner.started  # type: ignore[arg-type]


def test_the_name_is_single_quoted_in_a_fixed_command_line() -> None:
    argv = resolve_command("powershell.exe", "kubernetes.default")
    assert argv[:4] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command"]
    assert "Resolve-DnsName -Name 'kubernetes.default' -ErrorAction Stop" in argv[4]
    assert "-EncodedCommand" not in argv


def test_an_answer_with_an_address_is_a_success_whatever_the_language() -> None:
    found = CommandResult('{"Name":"kubernetes.default.svc.cluster.local","IPAddress":"10.96.0.1"}', None, 30.0)
    result, started = lookup({"powershell.exe": found})
    assert result["ok"] and [argv[0] for argv in started] == ["powershell.exe"]


def test_a_localized_failure_is_a_failure_without_reading_its_words() -> None:
    # Resolve-DnsName on a German node: the exit status and the missing JSON decide, not the text.
    error = "Resolve-DnsName : kubernetes.default : DNS-Name ist nicht vorhanden"
    result, _started = lookup({"powershell.exe": CommandResult("", error, 30.0)}, "kubernetes.default")
    assert not result["ok"] and "nicht vorhanden" in result["output"]


def test_nslookup_answers_where_powershell_cannot_start() -> None:
    missing = CommandResult("", "cannot start powershell.exe: No such file or directory", 1.0)
    printed = "Server:  kube-dns\nAddress:  10.96.0.10\n\nName:    kubernetes\nAddress:  10.96.0.1\n"
    answer = CommandResult(printed, None, 5.0)
    result, started = lookup({"powershell.exe": missing, "nslookup.exe": answer})
    assert result["ok"] and [argv[0] for argv in started] == ["powershell.exe", "nslookup.exe"]


def probe_vip(answer: CommandResult, protocol: str) -> tuple[Any, list[list[str]]]:
    runner = Programs({"powershell.exe": answer})
    agent = SimpleNamespace(runner=runner, config=SimpleNamespace(powershell="powershell.exe"))
    request = Request("r-2", "service-vip", {"ip": "10.96.0.10", "port": 53, "protocol": protocol})
    return execute(request, agent, lambda _text: None)["results"][0], runner.started  # type: ignore[arg-type]


def test_a_dns_service_vip_is_asked_a_query_over_its_protocol() -> None:
    found = CommandResult('{"Name":"kubernetes.default.svc.cluster.local","IPAddress":"10.96.0.1"}', None, 30.0)
    result, started = probe_vip(found, "dns-tcp")
    assert result["ok"] and result["target"] == "10.96.0.10:53/TCP"
    assert "-Server '10.96.0.10' -TcpOnly -DnsOnly" in started[0][4]
    _result, started = probe_vip(found, "dns")
    assert "-TcpOnly" not in started[0][4]


def test_a_dns_server_that_answers_no_such_name_is_reachable() -> None:
    # Another cluster domain: the server answered, in whatever language its message is.
    answer = CommandResult(
        "error: DNS_ERROR_RCODE_NAME_ERROR,Microsoft.DnsClient.Commands.ResolveDnsName", "exit status 1", 40.0
    )
    result, _started = probe_vip(answer, "dns")
    assert result["ok"]


def test_a_dns_server_that_times_out_is_not_reachable() -> None:
    answer = CommandResult("error: ERROR_TIMEOUT,Microsoft.DnsClient.Commands.ResolveDnsName", "exit status 1", 4000.0)
    result, _started = probe_vip(answer, "dns")
    assert not result["ok"] and "ERROR_TIMEOUT" in result["output"]
