"""The registry against the catalogue, and the healthy node against every check."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnostics.facts import ConnectivityResult
from diagnostics.model import Status
from diagnostics.registry import all_checks, run
from tests.diagnostics.builders import make_snapshot

CATALOGUE = Path(__file__).resolve().parents[3] / ".." / "shared" / "spec" / "CHECKS.md"


def catalogue_ids() -> set[str]:
    """Ids in the first cell of every table row of spec/CHECKS.md."""
    ids = set()
    for line in CATALOGUE.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            ids.add(line.split("`")[1])
    return ids


def test_the_registry_covers_exactly_every_id_of_the_catalogue() -> None:
    assert set(all_checks()) == catalogue_ids()


def test_every_check_has_a_title_and_docs_link() -> None:
    for spec in all_checks().values():
        assert spec.title and spec.docs.startswith("https://"), spec.id


def test_a_healthy_node_fails_no_check_and_leaves_none_undecided() -> None:
    findings = run(make_snapshot())

    assert [(f.check, f.status.slug, f.summary) for f in findings] == []


def test_no_check_crashes_on_an_empty_snapshot() -> None:
    from diagnostics.snapshot import NodeSnapshot

    findings = run(NodeSnapshot(node="win-node-1"))

    assert not [f for f in findings if f.summary.startswith("The check itself failed")]
    assert all(f.status is Status.UNKNOWN for f in findings)


FILE_NAMES = (
    "subnet.env",
    "net-conf.json",
    "cni.conf",
    "SourceVip.json",
    "SourceVipRequest.json",
    "containerd-config.toml",
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(FILE_NAMES), st.one_of(st.none(), st.text(max_size=300)), max_size=6),
    st.lists(
        st.builds(
            ConnectivityResult,
            st.sampled_from(["ping", "curl", "nodeport", "service-vip", "dns"]),
            st.text(max_size=30),
            st.sampled_from(["node", "pod", "peer"]),
            st.booleans(),
        ),
        max_size=4,
    ),
)
def test_no_check_crashes_on_garbage_files_or_connectivity_results(files: dict, tests: list) -> None:
    snap = make_snapshot(
        files={k: (v if v is not None else False) for k, v in files.items()}, connectivity=tuple(tests)
    )

    crashed = [f.check for f in run(snap) if f.summary.startswith("The check itself failed")]

    assert crashed == []


def test_what_a_cluster_change_re_runs_is_declared_on_the_checks() -> None:
    from diagnostics.registry import checks_reading

    assert checks_reading("services") == ("hns.lb-policy-missing", "hns.stale-remote-endpoints")
    assert checks_reading("peers", "server") == ("node.config-drift", "node.version-skew")
    assert all(all_checks()[c].reads == {"workloads"} for c in all_checks() if c.startswith("workload."))


def test_a_check_that_reads_an_unknown_part_is_refused() -> None:
    import pytest

    from diagnostics.model import Severity
    from diagnostics.registry import check

    with pytest.raises(ValueError, match="reads unknown parts"):
        check("lab.example", severity=Severity.INFO, title="An example", reads={"cluster"})
