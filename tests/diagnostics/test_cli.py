from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from diagnostics import cli, registry
from diagnostics.model import Evidence, Fail, Severity, Unknown
from diagnostics.registry import CheckSpec
from diagnostics.snapshot import NodeSnapshot
from tests.diagnostics.bundle.builders import FIXTURES, make_zip

ROOT = Path(__file__).resolve().parents[2]
EXPORTED = FIXTURES / "exported"


def _waiting(snap: NodeSnapshot) -> Iterator[Fail]:
    hits = snap.hits("flannel.waiting-for-network")
    if hits:
        yield Fail(
            summary="flanneld is stuck waiting for the network.",
            evidence=tuple(Evidence(h.source, h.excerpt, h.line) for h in hits),
            fix=(
                "Set NODE_NAME to this node's name.",
                "Restart flanneld:\nRestart-Service flanneld",
            ),
        )


def _hostile(snap: NodeSnapshot) -> Iterator[Fail]:
    yield Fail(
        summary="An excerpt with \x1b[2J\x1b]0;owned\x07 escapes and ``` fences <b>bold</b>.",
        evidence=(Evidence("logs/evil.log", "line \x1b[31mred\x1b[0m with ```` ticks", 7),),
    )


def _undecided(snap: NodeSnapshot) -> Iterator[Unknown]:
    yield Unknown(needs=("HNS endpoints (Get-HnsEndpoint)",))


SPECS = {
    "test.fires": CheckSpec(
        "test.fires", Severity.CRITICAL, "Flannel waits for the network", "https://example.test/fires", _waiting
    ),
    "test.hostile": CheckSpec("test.hostile", Severity.INFO, "Hostile text", "https://example.test/hostile", _hostile),
    "test.undecided": CheckSpec(
        "test.undecided", Severity.WARNING, "Needs endpoints", "https://example.test/u", _undecided
    ),
}


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> dict[str, CheckSpec]:
    """Run these checks only: the output under test does not change as the catalogue grows."""
    monkeypatch.setattr(registry, "all_checks", lambda: SPECS)
    monkeypatch.setattr(cli, "all_checks", lambda: SPECS)
    return SPECS


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_main(*args: str, stdout: io.StringIO | None = None) -> tuple[int, str, str]:
    out, err = stdout or io.StringIO(), io.StringIO()
    code = cli.main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


class TestJson:
    def test_it_prints_one_findings_document_and_exits_3_for_a_critical_finding(
        self, checks: dict[str, CheckSpec]
    ) -> None:
        code, out, err = run_main(str(EXPORTED), "--format", "json")
        assert (code, err) == (3, "")
        doc = json.loads(out)
        assert doc["format"] == "findings/v1"
        assert [f["check"] for f in doc["findings"]] == ["test.fires", "test.undecided", "test.hostile"]
        fires = doc["findings"][0]
        assert fires["node"] == "win-node-02"
        assert fires["status"] == "fail"
        assert fires["evidence"][0]["source"] == "win-node-02-20240611T093015Z/logs/flanneld.log"
        assert fires["evidence"][0]["line"] == 3
        assert fires["docs"] == "https://example.test/fires"
        assert {"path": "win-node-02-20240611T093015Z/logs/flanneld.log", "kind": "flanneld-log", "bytes": 3295} in doc[
            "inputs"
        ]
        assert any(s["path"].endswith("ISSUE.md") for s in doc["skipped"])

    def test_json_never_carries_colours_even_on_a_terminal(
        self, checks: dict[str, CheckSpec], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("NO_COLOR", raising=False)
        _code, out, _err = run_main(str(EXPORTED), "--format", "json", stdout=_Tty())
        assert "\x1b" not in out
        json.loads(out)

    def test_list_checks_prints_the_registry(self, checks: dict[str, CheckSpec]) -> None:
        code, out, _err = run_main("--list-checks", "--format", "json")
        assert code == 0
        assert json.loads(out)["checks"][0] == {
            "id": "test.fires",
            "severity": "critical",
            "title": "Flannel waits for the network",
            "docs": "https://example.test/fires",
        }


class TestText:
    def test_findings_come_worst_first_with_evidence_numbered_fix_and_docs(self, checks: dict[str, CheckSpec]) -> None:
        _code, out, _err = run_main(str(EXPORTED))
        assert out.index("CRITICAL (1)") < out.index("INFO (1)") < out.index("UNDECIDED (1)")
        assert "node win-node-02" in out
        assert "win-node-02-20240611T093015Z/logs/flanneld.log:3" in out
        assert "    1. Set NODE_NAME to this node's name." in out
        assert "    2. Restart flanneld:\n         Restart-Service flanneld" in out
        assert "Docs: https://example.test/fires" in out
        assert "Summary: 1 critical, 0 warning, 1 info; 1 undecided (missing data)" in out
        assert "ISSUE.md: issue text of an earlier export" in out

    def test_it_uses_colours_only_on_a_terminal_without_no_color(
        self, checks: dict[str, CheckSpec], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("NO_COLOR", raising=False)
        assert "\x1b[" not in run_main(str(EXPORTED))[1]
        assert "\x1b[1;31m" in run_main(str(EXPORTED), stdout=_Tty())[1]
        monkeypatch.setenv("NO_COLOR", "1")
        assert "\x1b[" not in run_main(str(EXPORTED), stdout=_Tty())[1]

    def test_escape_sequences_from_a_bundle_never_reach_the_terminal(self, checks: dict[str, CheckSpec]) -> None:
        _code, out, _err = run_main(str(EXPORTED))
        assert "\x1b" not in out and "\x07" not in out
        assert "line red with ```` ticks" in out

    def test_a_clean_node_says_so(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(registry, "all_checks", lambda: {})
        monkeypatch.setattr(cli, "all_checks", lambda: {})
        _code, out, _err = run_main(str(FIXTURES / "collectlogs"))
        assert out.startswith("Windows Node Doctor: 1 node (win-node-01), 0 checks\n\nNo problems found.")


class TestMarkdown:
    def test_it_renders_an_issue_comment_with_evidence_folded(self, checks: dict[str, CheckSpec]) -> None:
        _code, out, _err = run_main(str(EXPORTED), "--format", "markdown")
        assert out.startswith("## Windows Node Doctor findings\n")
        assert out.index("### Critical (1)") < out.index("### Info (1)")
        assert "<details><summary>Evidence</summary>" in out
        assert "`win-node-02-20240611T093015Z/logs/flanneld.log:3`" in out
        assert (
            "1. Set NODE_NAME to this node's name.\n2. Restart flanneld:\n\n"
            "   ```powershell\n   Restart-Service flanneld\n   ```" in out
        )

    def test_hostile_text_cannot_break_out_of_its_block(self, checks: dict[str, CheckSpec]) -> None:
        _code, out, _err = run_main(str(EXPORTED), "--format", "markdown")
        assert "&lt;b&gt;bold&lt;/b&gt;" in out
        assert "`````\nline red with ```` ticks\n`````" in out


class TestUnusableInput:
    @pytest.mark.parametrize("fmt", ["json", "text", "markdown"])
    def test_a_missing_path_exits_2_with_one_line_and_no_stdout(self, tmp_path: Path, fmt: str) -> None:
        code, out, err = run_main(str(tmp_path / "missing.zip"), "--format", fmt)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1 and "no such file or directory" in err

    def test_a_corrupt_archive_exits_2(self, tmp_path: Path) -> None:
        whole = make_zip(FIXTURES / "collectlogs", tmp_path / "c.zip").read_bytes()
        (tmp_path / "cut.zip").write_bytes(whole[:300])
        code, out, err = run_main(str(tmp_path / "cut.zip"), "--format", "json")
        assert (code, out) == (2, "")
        assert err.startswith("diagnose: error: ") and "corrupt or truncated zip" in err

    def test_something_that_is_not_a_bundle_exits_2(self, tmp_path: Path) -> None:
        (tmp_path / "holiday.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)))
        code, out, err = run_main(str(tmp_path / "holiday.jpg"), "--format", "json")
        assert (code, out) == (2, "")
        assert "not a bundle" in err

    def test_no_path_exits_2(self) -> None:
        code, out, err = run_main("--format", "json")
        assert (code, out) == (2, "")
        assert "PATH" in err


class TestManagementCommand:
    def test_call_command_prints_the_findings(self, checks: dict[str, CheckSpec]) -> None:
        out = io.StringIO()
        call_command("diagnose", str(EXPORTED), "--format", "json", "--exit-zero", stdout=out)
        assert json.loads(out.getvalue())["findings"][0]["check"] == "test.fires"

    def test_call_command_selects_a_node(self, checks: dict[str, CheckSpec]) -> None:
        out = io.StringIO()
        call_command(
            "diagnose",
            str(FIXTURES / "troubleshoot"),
            "-o",
            "json",
            "--node",
            "win-node-03",
            "--exit-zero",
            stdout=out,
        )
        assert {f["node"] for f in json.loads(out.getvalue())["findings"]} == {"win-node-03"}

    def test_unusable_input_is_a_command_error_with_status_2(self, tmp_path: Path) -> None:
        with pytest.raises(CommandError) as raised:
            call_command("diagnose", str(tmp_path / "missing"), stdout=io.StringIO())
        assert raised.value.returncode == 2


def run_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


class TestProcesses:
    """The real entry points, as an SRE runs them: only JSON on stdout, exit codes 0 and 2."""

    @pytest.mark.parametrize("entry", [["-m", "diagnostics"], ["manage.py", "diagnose"]])
    def test_a_bundle_gives_json_on_stdout_and_exit_0_with_exit_zero(self, entry: list[str], tmp_path: Path) -> None:
        bundle = make_zip(FIXTURES / "aks", tmp_path / "AKSWIN000000-20240611-093015_logs.zip", backslashes=True)
        done = run_process(*entry, str(bundle), "--format", "json", "--exit-zero")
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["format"] == "findings/v1"
        assert {"path": "kubelet.log", "kind": "kubelet-log", "bytes": 1211} in doc["inputs"]
        assert all(f["node"] == "akswin000000" for f in doc["findings"])

    @pytest.mark.parametrize("entry", [["-m", "diagnostics"], ["manage.py", "diagnose"]])
    def test_failing_findings_give_exit_3_for_critical_and_4_for_warnings_only(
        self, entry: list[str], tmp_path: Path
    ) -> None:
        critical = tmp_path / "kubelet.log"
        critical.write_text("F1017 17:21:13.974464   77496 server.go:207] [invalid configuration]\n")
        assert run_process(*entry, str(critical), "-o", "json").returncode == 3
        warning = tmp_path / "kube-proxy.log"
        warning.write_text('E1222 10:21:07.484910    5948 proxier.go:1202] "Policy creation failed" err="x"\n')
        assert run_process(*entry, str(warning), "-o", "json").returncode == 4
        healthy = tmp_path / "flanneld.log"
        healthy.write_text("I0416 11:46:48.830364    4680 kube.go:139] Waiting 10m0s for node controller to sync\n")
        assert run_process(*entry, str(healthy), "-o", "json").returncode == 0

    @pytest.mark.parametrize("entry", [["-m", "diagnostics"], ["manage.py", "diagnose"]])
    def test_unusable_input_gives_exit_2_one_line_on_stderr_and_empty_stdout(
        self, entry: list[str], tmp_path: Path
    ) -> None:
        done = run_process(*entry, str(tmp_path / "nope.tar.gz"), "--format", "json")
        assert done.returncode == 2
        assert done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1
        assert "no such file or directory" in done.stderr

    def test_list_checks_runs_without_a_database_or_redis(self) -> None:
        done = run_process("manage.py", "diagnose", "--list-checks", "--format", "json")
        assert done.returncode == 0, done.stderr
        assert isinstance(json.loads(done.stdout)["checks"], list)
