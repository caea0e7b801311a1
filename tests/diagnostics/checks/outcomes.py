"""Shared assertions for check tests."""

from __future__ import annotations

from diagnostics.model import Finding, Status
from diagnostics.registry import run
from diagnostics.snapshot import NodeSnapshot


def findings(snap: NodeSnapshot, check_id: str) -> list[Finding]:
    return run(snap, only=[check_id])


def failures(snap: NodeSnapshot, check_id: str) -> list[Finding]:
    return [f for f in findings(snap, check_id) if f.status is Status.FAIL]


def unknowns(snap: NodeSnapshot, check_id: str) -> list[Finding]:
    return [f for f in findings(snap, check_id) if f.status is Status.UNKNOWN]
