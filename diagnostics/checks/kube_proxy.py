"""kube-proxy's configuration on a Windows node."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from diagnostics.checks.common import change_arguments_steps, node_hostname
from diagnostics.model import Evidence, Fail, FixStep, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import Fact, NodeSnapshot

DOCS = "https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/"

Outcome = Iterator[Fail | Unknown]

_PROGRAM_RE = re.compile(r'^\s*("[^"]*"|\S+)\s*(.*)$', re.DOTALL)


def _split_program(command_line: str) -> tuple[str, str]:
    """(program, arguments) of a command line; a leading nssm.exe is not the program."""
    match = _PROGRAM_RE.match(command_line)
    program, rest = (match.group(1), match.group(2)) if match else (command_line, "")
    if "nssm" in program.lower():
        return ("", rest.strip()) if rest.lstrip().startswith("-") else _split_program(rest)
    return program, rest.strip()


def _pod_command(snap: NodeSnapshot) -> Fact[str] | None:
    """kube-proxy run as a (HostProcess) pod on this node: its container command and args joined."""
    if snap.pods is None:
        return None
    for pod in snap.pods.value:
        meta = pod.get("metadata") or {}
        if "kube-proxy" not in str(meta.get("name", "")):
            continue
        containers: list[dict[str, Any]] = (pod.get("spec") or {}).get("containers") or []
        for i, container in enumerate(containers):
            words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
            if words:
                source = f"{snap.pods.source} Pod/{meta.get('namespace', '')}/{meta.get('name', '')}"
                return Fact(" ".join(words), f"{source} spec.containers[{i}]")
    return None


@check(
    "kube-proxy.hostname-override-missing",
    severity=Severity.CRITICAL,
    title="kube-proxy runs without --hostname-override",
    docs=DOCS,
    probes=("services", "processes"),
)
def hostname_override_missing(snap: NodeSnapshot) -> Outcome:
    line = snap.component_command_line("kube-proxy")
    from_pod = False
    if line is None:
        line = _pod_command(snap)
        from_pod = True
    if line is None:
        if snap.services is None and snap.processes is None:
            yield Unknown(needs=("kube-proxy's command line (services or processes)",))
        return
    if "hostname-override" in line.value:
        return
    if from_pod and not re.search(r"kube-proxy(?:\.exe)?\s", line.value + " "):
        return  # a start script runs kube-proxy; its flags are not visible here
    hostname = node_hostname(snap)
    flag = f"--hostname-override={hostname}"
    svc = snap.service("kube-proxy") or snap.service("kubeproxy")
    fix: tuple[FixStep | str, ...]
    if from_pod:
        fix = (f"Add {flag} (or --hostname-override=$(NODE_NAME) from the downward API) to the kube-proxy DaemonSet.",)
    elif svc is not None:
        program, params = _split_program(line.value)
        fix = change_arguments_steps(svc, program, f"{params} {flag}".strip())
    else:
        fix = (
            FixStep(
                f"Start kube-proxy with {flag} (the seed runs it so).",
                (f"C:\\k\\kube-proxy.exe {flag} <its other flags>",),
            ),
        )
    yield Fail(
        summary="kube-proxy does not pass --hostname-override, so it does not recognise this node's endpoints as "
        "local and deletes container vNICs and HNS endpoints.",
        evidence=(Evidence(line.source, line.value),),
        fix=fix,
    )
