from __future__ import annotations

import codecs
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics import logs
from diagnostics.logs import KINDS, MAX_HITS_PER_CHECK, detect_kind, scan_file, scan_lines, scan_text

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "logs"


def checks(hits) -> list[tuple[str, int]]:
    return [(h.check, h.line) for h in hits]


class TestScanText:
    def test_it_maps_a_kubelet_sandbox_error_to_subnet_env_missing(self) -> None:
        text = (LOGS / "kubelet-subnet-env.log").read_text()

        hits = list(scan_text(text, source=r"C:\k\kubelet.log", kind="kubelet"))

        assert checks(hits) == [
            ("flannel.subnet-env-missing", 2),
            ("flannel.subnet-env-missing", 3),
            ("flannel.subnet-env-missing", 4),
        ]
        assert hits[0].source == r"C:\k\kubelet.log" and hits[0].log_kind == "kubelet"
        assert hits[0].excerpt.startswith("E1124 10:02:13.551902    4242 remote_runtime.go:193]")

    def test_it_maps_the_os_mismatch_to_both_the_image_and_the_pause_checks(self) -> None:
        hits = list(scan_text((LOGS / "kubelet-os-mismatch.log").read_text(), source="kubelet.log", kind="kubelet"))

        assert {h.check for h in hits} == {"image.os-version-mismatch", "pause.image-incompatible"}

    def test_it_strips_ansi_colours_and_carriage_returns_from_excerpts(self) -> None:
        [hit] = scan_text((LOGS / "kube-proxy-color.log").read_text(), source="kube-proxy.log", kind="kube-proxy")

        assert hit.check == "hns.lb-policy-missing"
        assert hit.line == 2
        assert hit.excerpt.startswith("E1124 10:31:09.203311")
        assert hit.excerpt.endswith('(0x803b0013)"')

    def test_it_matches_posix_paths_and_either_case(self) -> None:
        text = (
            "  Warning  FailedCreatePodSandBox  2m  kubelet  LOADFLANNELSUBNETENV FAILED: "
            "open /run/flannel/subnet.env: no such file or directory\n"
        )

        assert checks(scan_text(text, source="describe.txt", kind="describe")) == [("flannel.subnet-env-missing", 1)]

    def test_it_finds_nothing_in_healthy_logs(self) -> None:
        for name, kind in (
            ("flanneld-healthy.log", "flanneld"),
            ("kubelet-healthy.log", "kubelet"),
            ("kube-proxy-healthy.log", "kube-proxy"),
        ):
            assert list(scan_text((LOGS / name).read_text(), source=name, kind=kind)) == [], name

    def test_it_keeps_the_first_hits_and_the_last_one_of_a_flood(self) -> None:
        line = "E1124 10:00:00.000000 1 x.go:1] wincat not found\n"
        hits = list(scan_text("I1124 start\n" + line * 100, source="k.log", kind="kubelet"))

        assert len(hits) == MAX_HITS_PER_CHECK + 1
        assert [h.line for h in hits[:3]] == [2, 3, 4]
        assert hits[-1].line == 101

    def test_it_counts_lines_across_blocks(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(logs, "BLOCK_CHARS", 64)
        text = "".join(f"I1124 line {i:04d} of filler text\n" for i in range(1, 200))
        text += "E1124 the error: wincat not found\n"

        [hit] = scan_text(text, source="k.log", kind="kubelet")

        assert hit.line == 200

    def test_it_accepts_text_without_a_final_newline(self) -> None:
        assert checks(scan_text("a\nwincat not found", source="t", kind=None)) == [("pause.wincat-missing", 2)]


class TestEndsInRepeatedWaiting:
    def test_it_reports_the_run_of_waiting_lines_ending_the_log(self) -> None:
        hits = list(scan_text((LOGS / "start-waiting.log").read_text(), source="start.log", kind="start-script"))

        assert checks(hits) == [("flannel.waiting-for-network", 2), ("flannel.waiting-for-network", 6)]
        assert hits[0].excerpt == "Waiting for the Network to be created"

    def test_it_ignores_waiting_lines_the_log_moved_past(self) -> None:
        text = (LOGS / "start-waiting.log").read_text() + "Starting kubelet\r\n\r\n"
        assert list(scan_text(text, source="start.log", kind="start-script")) == []

    def test_it_needs_the_line_repeated(self) -> None:
        text = "Starting flanneld\r\nWaiting for the Network to be created\r\n"
        assert list(scan_text(text, source="start.log", kind="start-script")) == []

    def test_it_follows_a_run_across_blocks(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(logs, "BLOCK_CHARS", 50)
        text = "Starting flanneld\n" + "Waiting for the Network to be created\n" * 30 + "\n"

        hits = list(scan_text(text, source="start.log", kind="flanneld"))

        assert checks(hits) == [("flannel.waiting-for-network", 2), ("flannel.waiting-for-network", 31)]

    def test_it_does_not_apply_to_kubelet_logs(self) -> None:
        text = "Waiting for the Network to be created\n" * 3
        assert list(scan_text(text, source="kubelet.log", kind="kubelet")) == []


class TestScanLines:
    def test_it_gives_the_same_hits_as_scan_text(self) -> None:
        text = (LOGS / "kubelet-subnet-env.log").read_text()
        with (LOGS / "kubelet-subnet-env.log").open(encoding="utf-8", newline="") as fh:
            from_lines = list(scan_lines(fh, source="k", kind="kubelet"))

        assert from_lines == list(scan_text(text, source="k", kind="kubelet"))


class TestScanFile:
    def test_it_reads_utf16_with_a_bom_and_crlf_as_powershell_writes_it(self) -> None:
        hits = list(scan_file(LOGS / "kubelet-subnet-env.utf16.log"))

        assert checks(hits)[0] == ("flannel.subnet-env-missing", 2)
        assert hits[0].log_kind == "kubelet"
        assert not hits[0].excerpt.endswith("\r")

    def test_it_reads_utf16_without_a_bom_and_utf8_with_one(self, tmp_path: Path) -> None:
        text = "Starting flanneld\r\n" + "Waiting for the Network to be created\r\n" * 3
        (tmp_path / "start.log").write_bytes(text.encode("utf-16-le"))
        (tmp_path / "flanneld.log").write_bytes(codecs.BOM_UTF8 + text.encode())

        for name in ("start.log", "flanneld.log"):
            assert checks(scan_file(tmp_path / name)) == [
                ("flannel.waiting-for-network", 2),
                ("flannel.waiting-for-network", 4),
            ], name

    def test_it_keeps_line_numbers_across_read_chunks(self, tmp_path: Path) -> None:
        path = tmp_path / "kubelet.log"
        with path.open("w", encoding="utf-16") as fh:  # BOM + UTF-16: chunks split inside characters
            for i in range(3000):
                fh.write(f"I1124 10:00:00.{i:06d} 4242 kubelet.go:1] ordinary line ünïcödé {i}\r\n")
            fh.write("E1124 10:00:01.000000 4242 kubelet.go:2] unable to do port forwarding: wincat not found\r\n")
        blocks = list(logs.iter_file_blocks(path, chunk_bytes=4096))

        assert len(blocks) > 10
        assert checks(logs._scan_blocks(blocks, "k", "kubelet")) == [("pause.wincat-missing", 3001)]


class TestDetectKind:
    @pytest.mark.parametrize(
        ("name", "kind"),
        [
            (r"C:\k\kubelet.log", "kubelet"),
            ("kubelet.err.log", "kubelet"),
            ("logs/kube-proxy.log", "kube-proxy"),
            (r"C:\k\kubeproxy.stderr.log", "kube-proxy"),
            ("flanneld.log", "flanneld"),
            ("containerd.log", "runtime"),
            ("docker.log", "runtime"),
            ("start-kubelet.log", "start-script"),
            ("start.txt", "start-script"),
            ("describe-pod-iis.txt", "describe"),
            ("transcript-20261124.txt", "transcript"),
            ("session.txt", "transcript"),
        ],
    )
    def test_it_knows_logs_by_name(self, name: str, kind: str) -> None:
        assert detect_kind(name, "") == kind

    def test_it_sniffs_content_under_other_names(self) -> None:
        assert detect_kind("a.txt", (LOGS / "kube-proxy-healthy.log").read_text()) == "kube-proxy"
        assert detect_kind("b.txt", (LOGS / "flanneld-healthy.log").read_text()) == "flanneld"
        assert detect_kind("c.txt", (LOGS / "kubelet-healthy.log").read_text()) == "kubelet"
        assert detect_kind("d.txt", "Name:         iis-web\nNamespace:    default\nEvents:\n") == "describe"
        assert detect_kind("e.txt", "PS C:\\Users\\admin> ping 8.8.8.8\n") == "transcript"
        assert detect_kind("f.txt", 'time="2026-11-24T10:00:00Z" level=info msg="starting containerd"\n') == "runtime"
        assert detect_kind("g.txt", "hello") is None
        assert detect_kind("network.txt", '[{"Name": "vxlan0", "Type": "Overlay", "Flags": 8}]') is None


@settings(max_examples=200, deadline=None)
@given(st.text(), st.sampled_from((None, *KINDS)))
def test_scan_text_never_fails_on_any_text(text: str, kind: str | None) -> None:
    for hit in scan_text(text, source="x", kind=kind):
        assert hit.line >= 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "Waiting for the Network to be created",
                "",
                "\r",
                "wincat not found",
                "İ loadFlannelSubnetEnv failed",
                "\x1b[31m",
                "x" * 50,
                "\u2028",
                "does not match the host operating system sandbox",
            ]
        ),
        max_size=40,
    ),
    st.sampled_from((None, "flanneld", "kubelet")),
)
def test_scan_text_gives_line_numbers_that_point_at_the_matched_line(parts: list[str], kind: str | None) -> None:
    text = "\n".join(parts)
    lines = text.split("\n")
    for hit in scan_text(text, source="x", kind=kind):
        assert logs.clean_line(lines[hit.line - 1]) == hit.excerpt


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=4000))
def test_scan_file_never_fails_on_any_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "kubelet.log"
    path.write_bytes(data)
    list(scan_file(path))
    list(scan_file(path, kind="flanneld"))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=2000))
def test_detect_kind_never_fails(name: str, head: str) -> None:
    assert detect_kind(name, head) in (None, *KINDS)


# Real lines of every fixture log (flanneld's "Waiting for the Network" run among them), cut
# at random places into the pieces an agent sends: a rolling tail kept with ``append_to_tail``
# must always give exactly what a full ``scan_text`` of the tail gives.
FIXTURE_LINES = [
    line
    for path in sorted(LOGS.glob("*.log"))
    if "utf16" not in path.name
    for line in path.read_text().splitlines(keepends=True)
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(FIXTURE_LINES), max_size=120),
    st.lists(st.integers(min_value=0, max_value=8000), max_size=12),
    st.integers(min_value=1, max_value=3000),
    st.sampled_from((None, "flanneld", "kubelet", "kube-proxy")),
)
def test_a_rolling_tail_scanned_piece_by_piece_hits_what_a_full_scan_hits(
    lines: list[str], cuts: list[int], limit: int, kind: str | None
) -> None:
    log = "".join(lines)
    bounds = sorted({0, len(log), *(c for c in cuts if c < len(log))})
    text, matches = "", None
    for start, end in itertools.pairwise(bounds):
        text, matches = logs.append_to_tail(text, matches, log[start:end], limit=limit, kind=kind)
        assert len(text) <= limit
        assert matches == logs.scan_matches(text, kind=kind)
        incremental = logs.hits_from_matches(matches, text, source="kubelet.log", kind=kind)
        assert incremental == list(scan_text(text, source="kubelet.log", kind=kind))


class TestIncrementalScan:
    def test_it_keeps_the_cap_and_the_latest_repeat_across_appends(self) -> None:
        line = (LOGS / "kubelet-subnet-env.log").read_text().splitlines(keepends=True)[1]
        text, matches = "", None
        for _ in range(MAX_HITS_PER_CHECK + 5):
            text, matches = logs.append_to_tail(text, matches, line, limit=1 << 20, kind="kubelet")

        hits = logs.hits_from_matches(matches, text, source="kubelet.log", kind="kubelet")

        assert [h.line for h in hits] == [*range(1, MAX_HITS_PER_CHECK + 1), MAX_HITS_PER_CHECK + 5]
        assert hits == list(scan_text(text, source="kubelet.log", kind="kubelet"))

    def test_it_renumbers_matches_when_the_head_of_the_tail_is_cut(self) -> None:
        line = (LOGS / "kubelet-subnet-env.log").read_text().splitlines(keepends=True)[1]
        text, matches = logs.append_to_tail("", None, "noise\n" * 3 + line, limit=1 << 20, kind="kubelet")
        assert [m[1] for m in matches] == [4]

        text, matches = logs.append_to_tail(text, matches, "more\n", limit=len(line) + 13, kind="kubelet")

        assert text.startswith("noise\n" + line[:10]) and [m[1] for m in matches] == [2]


class TestRealWorldLines:
    """Lines as people paste them: inside event-log tables, after prompts, wrapped, alone."""

    def found(self, text: str, kind: str | None = None) -> list[tuple[str, int]]:
        return checks(scan_text(text, source="pasted.txt", kind=kind))

    def test_a_klog_fatal_line_after_an_event_log_table_prefix_is_a_dead_component(self) -> None:
        line = "  173410 May 09 18:41  Information kube-proxy  0 F0509 18:41:13.804062  3176 server.go:477] bye\n"
        assert self.found(line) == [("node.components-not-running", 1)]

    def test_panics_exits_and_crash_loops_are_dead_components_but_errors_are_not(self) -> None:
        text = (
            "E0307 18:34:36.028964    4216 server.go:749] kubelet needs to run as uid `0`\n"
            "panic: runtime error: invalid memory address or nil pointer dereference\n"
            "C:\\ProgramData\\Kubernetes\\flanneld.exe exited unexpectedly 1\n"
            "kube-system   kube-proxy-windows-bzcf8   0/1   CrashLoopBackOff   5 (95s ago)   5m15s\n"
            "kube-system   kube-proxy-tm6fk           0/1   CrashLoopBackOff   2             6h15m\n"
        )
        assert self.found(text) == [("node.components-not-running", n) for n in (2, 3, 4)]

    def test_the_os_mismatch_is_the_pause_images_only_on_a_sandbox_even_a_wrapped_one(self) -> None:
        sandbox = (
            '"CreatePodSandbox" for "web-1_default" with CreatePodSandboxError: failed to start sandbox:\n'
            "failure in a Windows system call:\n"
            "The operating system of the container does not match the operating system of the host. (0xc0370101)\n"
        )
        app = (
            "Error: failed to start container: The container operating system does not match the host operating system."
        )

        assert {c for c, _ in self.found(sandbox)} == {"pause.image-incompatible", "image.os-version-mismatch"}
        assert {c for c, _ in self.found(app)} == {"image.os-version-mismatch"}

    def test_a_sandbox_error_without_an_os_signal_is_neither_image_check(self) -> None:
        text = (
            "Warning FailedCreatePodSandBox pod/web Failed to create pod sandbox: rpc error: failed to start sandbox "
            'container for pod "web": hcsshim::PrepareLayer - failed failed in Win32: The device is not ready. (0x15)\n'
        )
        assert self.found(text) == []

    def test_kube_proxy_hns_errors_are_recognised_in_a_paste(self) -> None:
        text = (
            'E1222 10:21:07.484910 5948 proxier.go:1202] "Policy creation failed" err="hcnCreateLoadBalancer failed"\n'
            "E0518 14:24:32.251322    2656 proxier.go:649] Network cbr0 not found\n"
        )
        assert self.found(text) == [("hns.lb-policy-missing", 1), ("hns.network-missing", 2)]

    def test_a_placeholder_in_quoted_outboundnat_exceptions_is_an_exceptionlist_problem(self) -> None:
        text = 'Settings={"Policies":[{"Type":"OutBoundNAT","Settings":{"Exceptions":["<ServiceCIDR>"]}}]}\n'
        good = 'Request={"Policies":[{"Type":"OutBoundNAT","Settings":{"Exceptions":["10.96.0.0/12"]}}]}\n'
        assert self.found(text) == [("cni.exceptionlist", 1)]
        assert self.found(good) == []

    def test_a_kubelet_log_quoting_waiting_for_the_network_is_still_a_kubelet_log(self) -> None:
        head = (
            "Log file created at: 2020/03/07 18:34:35\n"
            "E0307 18:34:38.928696    4216 kubelet.go:1844] skipping pod synchronization\n"
            "I0307 18:34:39.000000    4216 cni.go:257] Waiting for the Network to be created\n"
        )
        assert detect_kind("pasted.txt", head) == "kubelet"
