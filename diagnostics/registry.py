"""The check registry: one function per check id, registered with ``@check``.

A check function takes a ``NodeSnapshot`` and yields ``Fail`` or ``Unknown``
outcomes (nothing when the node passes). The registry stamps each outcome with
the check's id, severity, title and docs to make a ``Finding``.

Two declarations keep checks from deciding on what they cannot know:
``probes`` names the agent probes a check's verdict rests on; when one of them
timed out or was cut (``NodeSnapshot.incomplete``) the check is not run and
says ``unknown`` with the reason, never ``fail``. ``plugins`` names the network
plugins a check is about (``flannel``); on a node known to run another one
(Calico, Azure CNI) the check does not run at all.

Each check also declares what it ``reads`` (``READS``): the dashboard re-runs, after a
change on one side (a report, the API's Node object, the other Windows nodes, services),
exactly the checks that read that side, and builds only the parts of the snapshot they read.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from diagnostics.model import DOCS_BASE, Evidence, Fail, Finding, Severity, Status, Unknown, fix_steps
from diagnostics.snapshot import NodeSnapshot

log = logging.getLogger(__name__)

CheckFunc = Callable[[NodeSnapshot], Iterable[Fail | Unknown]]

# What a check may read, by where it comes from:
READS: dict[str, str] = {
    "agent": "the node's own report: probes, files, logs, connectivity tests",
    "node": "the node's Node object from the API",
    "workloads": "the pods bound to the node and the events about them",
    "peers": "the other Windows nodes of the cluster",
    "services": "the cluster's Services and EndpointSlices",
    "server": "the API server's version and the cluster's CIDRs",
}
# A check that declares nothing reads the node's own data (its report, its Node object,
# its pods); the checks of the ``workload`` area judge pods only.
DEFAULT_READS = frozenset({"agent", "node", "workloads"})
AREA_READS = {"workload": frozenset({"workloads"})}


@dataclass(frozen=True)
class CheckSpec:
    id: str
    severity: Severity
    title: str
    docs: str
    func: CheckFunc
    probes: tuple[str, ...] = ()  # probe ids whose output the verdict rests on
    plugins: tuple[str, ...] = ()  # network plugins the check is about; empty: any
    reads: frozenset[str] = DEFAULT_READS

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "severity": self.severity.slug, "title": self.title, "docs": self.docs}


REGISTRY: dict[str, CheckSpec] = {}


def check(
    check_id: str,
    *,
    severity: Severity,
    title: str,
    docs: str = DOCS_BASE,
    probes: tuple[str, ...] = (),
    plugins: tuple[str, ...] = (),
    reads: Iterable[str] | None = None,
) -> Callable[[CheckFunc], CheckFunc]:
    """Register a check function under a stable id from spec/CHECKS.md (see the module docstring).

    ``reads`` names the parts of the snapshot the check reads (keys of ``READS``); by default
    the node's own data (``DEFAULT_READS``, or ``AREA_READS`` of its area).
    """
    area = check_id.split(".", 1)[0]
    declared = frozenset(reads) if reads is not None else AREA_READS.get(area, DEFAULT_READS)
    unknown = sorted(declared - READS.keys())
    if unknown:
        raise ValueError(f"check {check_id!r} reads unknown parts {unknown}: use {sorted(READS)}")

    def register(func: CheckFunc) -> CheckFunc:
        if check_id in REGISTRY:
            raise ValueError(f"check id {check_id!r} registered twice")
        REGISTRY[check_id] = CheckSpec(check_id, severity, title, docs, func, probes, plugins, declared)
        return func

    return register


def all_checks() -> dict[str, CheckSpec]:
    """The registry with every area module imported."""
    importlib.import_module("diagnostics.checks")
    return REGISTRY


def checks_reading(*parts: str) -> tuple[str, ...]:
    """Ids of the checks that read any of ``parts`` (keys of ``READS``), sorted: what a change there re-runs."""
    wanted = set(parts)
    return tuple(sorted(cid for cid, spec in all_checks().items() if spec.reads & wanted))


def reads_of(check_ids: Iterable[str] | None) -> frozenset[str]:
    """Everything the given checks (all when None) read together."""
    specs = all_checks()
    chosen = specs.values() if check_ids is None else [specs[c] for c in check_ids if c in specs]
    return frozenset().union(*(spec.reads for spec in chosen))


def _stamp(spec: CheckSpec, snap: NodeSnapshot, status: Status, summary: str, **fields: Any) -> Finding:
    """A finding of ``spec`` on ``snap``'s node."""
    fields.setdefault("title", spec.title)
    return Finding(
        check=spec.id,
        severity=spec.severity,
        status=status,
        node=snap.node,
        cluster=snap.cluster,
        summary=summary,
        docs=spec.docs,
        **fields,
    )


def _finding(spec: CheckSpec, snap: NodeSnapshot, outcome: Fail | Unknown) -> Finding:
    if isinstance(outcome, Unknown):
        summary = "Not enough data to decide; needs: " + ", ".join(outcome.needs)
        return _stamp(spec, snap, Status.UNKNOWN, summary, subject=outcome.subject)
    return _stamp(
        spec,
        snap,
        Status.FAIL,
        outcome.summary,
        title=outcome.title or spec.title,
        evidence=outcome.evidence,
        fix=tuple(s if isinstance(s, str) else s.as_text() for s in outcome.fix),
        steps=fix_steps(outcome.fix),
        subject=outcome.subject,
    )


def run_iter(snap: NodeSnapshot, only: Iterable[str] | None = None) -> Iterator[Finding]:
    """Run the checks (all, or the ids/areas in ``only``) and yield findings as they come.

    A check that raises is reported as an ``unknown`` finding naming the error,
    so one broken check never hides the others.
    """
    from diagnostics.checks.common import network_plugin

    wanted = set(only) if only is not None else None
    for spec in all_checks().values():
        if wanted is not None and spec.id not in wanted and spec.area not in wanted:
            continue
        if spec.plugins:
            plugin = network_plugin(snap)
            if plugin is not None and plugin.value not in spec.plugins:
                continue  # about another network plugin than the one this node runs
        cut = [snap.incomplete[p] for p in spec.probes if p in snap.incomplete]
        if cut:
            summary = "Not enough data to decide: " + "; ".join(cut) + "."
            yield _stamp(spec, snap, Status.UNKNOWN, summary, evidence=tuple(Evidence("agent", c) for c in cut))
            continue
        try:
            outcomes = list(spec.func(snap))
        except Exception as exc:  # a bug in one check must not stop the run
            log.exception("check %s failed on node %s", spec.id, snap.node)
            summary = f"The check itself failed: {type(exc).__name__}: {exc}"
            yield _stamp(spec, snap, Status.UNKNOWN, summary, evidence=(Evidence("diagnostics", repr(exc)),))
            continue
        for outcome in outcomes:
            yield _finding(spec, snap, outcome)


# Root causes: a failing finding (key) is explained by another failing finding on the same node
# (value, first match wins). The effect then says "because of ..." and is shown under its cause.
CAUSES: dict[str, tuple[str, ...]] = {
    "hns.lb-policy-missing": ("hns.network-missing", "node.hns-crash", "node.hns-unresponsive"),
    "hns.endpoint-state": ("hns.network-missing", "node.hns-crash", "node.hns-unresponsive"),
    "hns.stale-remote-endpoints": ("hns.network-missing", "node.hns-crash"),
    "hns.management-ip-mismatch": ("hns.network-missing",),
    "image.os-version-mismatch": ("pause.image-incompatible",),
    "flannel.subnet-env-missing": ("flannel.waiting-for-network", "node.components-not-running"),
    "node.not-ready": ("node.components-not-running", "hns.network-missing", "flannel.subnet-env-missing"),
    "network.service-vip-from-node": ("hns.lb-policy-missing",),
    "pause.wincat-missing": ("pause.image-incompatible",),
}


def _explains(cause: Finding, effect: Finding) -> bool:
    """Whether ``cause`` explains ``effect``; an OS mismatch is the pause image's only when seen on a sandbox."""
    if effect.check == "image.os-version-mismatch":
        lines = {(e.source, e.line) for e in cause.evidence}
        return bool(effect.evidence) and all((e.source, e.line) in lines for e in effect.evidence)
    return True


def link_causes(findings: list[Finding]) -> list[Finding]:
    """``findings`` of one node with ``caused_by`` set where another failing finding explains one."""
    failing = {f.check: f for f in findings if f.status is Status.FAIL}
    out = []
    for finding in findings:
        if finding.status is Status.FAIL and not finding.caused_by:
            for cause_id in CAUSES.get(finding.check, ()):
                cause = failing.get(cause_id)
                if cause is not None and _explains(cause, finding):
                    finding = dataclasses.replace(finding, caused_by=cause_id)
                    break
        out.append(finding)
    return out


def run(snap: NodeSnapshot, only: Iterable[str] | None = None) -> list[Finding]:
    return link_causes(list(run_iter(snap, only)))
