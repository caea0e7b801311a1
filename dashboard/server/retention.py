"""What a stored report keeps: the machine environment by allow-list, credentials in what is kept removed.

Agents send their node's machine environment variables (``env.machine``): the checks read
only a few of them (``KUBE_NETWORK``, whether ``HTTP_PROXY``/``HTTPS_PROXY`` are set), and
the rest may hold anything an administrator put there (database passwords, registry
credentials, tokens). The dashboard stores only the variables a check or a person
troubleshooting a Windows node needs (``ALLOWED``), and the kept values are redacted
(a proxy URL keeps its host, not its password). The agent has an allow-list of its own;
this one holds whatever an agent sends.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from diagnostics.bundle.redact import redact_secrets

# Kubernetes and container networking, proxies, and the system's own (paths, processors, OS).
ALLOWED = re.compile(
    r"^(?:KUBE[A-Z0-9_]*|KUBELET[A-Z0-9_]*|CONTAINERD[A-Z0-9_]*|CONTAINER_RUNTIME[A-Z0-9_]*|CNI[A-Z0-9_]*|"
    r"FLANNEL[A-Z0-9_]*|CALICO[A-Z0-9_]*|HNS[A-Z0-9_]*|WINS[A-Z0-9_]*|NODE_NAME|NODE_IP|"
    r"HTTPS?_PROXY|NO_PROXY|PATH|PATHEXT|OS|PROCESSOR_[A-Z0-9_]+|NUMBER_OF_PROCESSORS|SYSTEMROOT|SYSTEMDRIVE|"
    r"WINDIR|COMSPEC|DRIVERDATA|PROGRAMDATA|PROGRAMFILES(?:\(X86\))?|TEMP|TMP|PSMODULEPATH|COMPUTERNAME|"
    r"USERDOMAIN|USERDNSDOMAIN)$",
    re.IGNORECASE,
)


def keep_environment(env: dict[str, Any]) -> dict[str, Any]:
    """The allowed variables of ``env``, their values redacted."""
    counts: Counter[str] = Counter()
    return {
        name: redact_secrets(value, counts) if isinstance(value, str) else value
        for name, value in env.items()
        if ALLOWED.match(str(name))
    }


def strip_report(document: dict[str, Any]) -> bool:
    """Keep only what is retained of ``document`` (in place); True when anything was removed or redacted.

    Only a JSON object output is filtered (what the agent sends); another shape is left to
    the export's redaction.
    """
    probes = document.get("probes")
    probe = probes.get("env.machine") if isinstance(probes, dict) else None
    if not isinstance(probe, dict):
        return False
    output = probe.get("output")
    if not isinstance(output, str) or not output.lstrip().startswith("{"):
        return False
    try:
        env = json.loads(output)
    except ValueError:
        return False
    if not isinstance(env, dict):
        return False
    kept = keep_environment(env)
    if kept == env:
        return False
    probe["output"] = json.dumps(kept, indent=4, ensure_ascii=False)
    return True
