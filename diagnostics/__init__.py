"""Windows Node Doctor's diagnostics engine: pure Python, no Django.

Collect (agent report, Kubernetes API, bundle) -> a frozen ``NodeSnapshot`` ->
pure checks -> findings in the ``findings/v1`` shape.
"""

from __future__ import annotations

from diagnostics.model import Evidence, Fail, Finding, Severity, Status, Unknown
from diagnostics.registry import REGISTRY, CheckSpec, run, run_iter
from diagnostics.snapshot import NodeSnapshot

__all__ = [
    "REGISTRY",
    "CheckSpec",
    "Evidence",
    "Fail",
    "Finding",
    "NodeSnapshot",
    "Severity",
    "Status",
    "Unknown",
    "run",
    "run_iter",
]
