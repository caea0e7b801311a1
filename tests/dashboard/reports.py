"""A builder of realistic ``node-report/v1`` documents for dashboard tests."""

from __future__ import annotations

import itertools
from typing import Any

_sequence = itertools.count(1)

SUBNET_ENV = (
    "FLANNEL_NETWORK=10.244.0.0/16\r\nFLANNEL_SUBNET=10.244.3.1/24\r\nFLANNEL_MTU=1450\r\nFLANNEL_IPMASQ=true\r\n"
)
KUBELET_LOG = (
    'I1124 10:15:32.123456    4242 server.go:416] "Kubelet version" kubeletVersion="v1.30.2"\r\n'
    'I1124 10:15:33.000001    4242 kubelet.go:2337] "Starting kubelet main sync loop"\r\n'
)


def make_report(
    *,
    cluster: str = "prod-eu",
    node: str = "win-node-01",
    subnet_env: str | None = SUBNET_ENV,
    logs: dict[str, str] | None = None,
    sequence: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A report of a healthy-looking node; ``subnet_env=None`` reports the file missing."""
    report: dict[str, Any] = {
        "format": "node-report/v1",
        "cluster": cluster,
        "node": node,
        "agent_version": "0.1.0",
        "collected_at": "2026-11-24T10:15:40Z",
        "sequence": next(_sequence) if sequence is None else sequence,
        "probes": {},
        "files": {
            "subnet.env": {
                "path": "C:\\run\\flannel\\subnet.env",
                "exists": subnet_env is not None,
                "content": subnet_env,
            }
        },
        "logs": {
            kind: {"path": f"C:\\k\\{kind}.log", "offset": 0, "text": text}
            for kind, text in (logs if logs is not None else {"kubelet": KUBELET_LOG}).items()
        },
    }
    report.update(extra)
    return report
