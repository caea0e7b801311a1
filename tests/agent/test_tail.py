from __future__ import annotations

from pathlib import Path

from agent.tail import read_tail


def _tail(path: Path, previous, initial_bytes: int = 64):
    return read_tail("C:\\k\\kubelet.log", str(path), previous, max_bytes=1024, initial_bytes=initial_bytes)


def test_it_sends_each_complete_line_once(tmp_path: Path) -> None:
    log = tmp_path / "kubelet.log"
    log.write_bytes(b"I1124 08:00:00.000001    3140 a.go:1] one\n")
    first = _tail(log, None)
    assert first.text == "I1124 08:00:00.000001    3140 a.go:1] one\n" and first.offset == 0
    again = _tail(log, first.state)
    assert again.text == "" and not again.rotated
    with open(log, "ab") as fh:
        fh.write(b"I1124 08:00:01.000001    3140 a.go:1] two\nI1124 08:00:02.0000")
    second = _tail(log, first.state)
    assert second.text == "I1124 08:00:01.000001    3140 a.go:1] two\n"
    assert second.offset == first.state["offset"]
    with open(log, "ab") as fh:
        fh.write(b"01    3140 a.go:1] three\n")
    third = _tail(log, second.state)
    assert third.text == "I1124 08:00:02.000001    3140 a.go:1] three\n"


def test_the_first_read_of_a_big_log_starts_at_a_line_near_its_end(tmp_path: Path) -> None:
    log = tmp_path / "kubelet.log"
    log.write_bytes(b"".join(b"line %03d of an old log\n" % i for i in range(100)))
    chunk = _tail(log, None)
    assert chunk.text.startswith("line ") and chunk.text.endswith("line 099 of an old log\n")
    assert len(chunk.text) <= 64
    assert chunk.offset > 0


def test_it_detects_a_log_that_shrank_as_rotated(tmp_path: Path) -> None:
    log = tmp_path / "kubelet.log"
    log.write_bytes(b"old line one\nold line two\n")
    first = _tail(log, None)
    with open(log, "r+b") as fh:
        fh.truncate(0)
        fh.write(b"new\n")
    chunk = _tail(log, first.state)
    assert chunk.rotated and chunk.text == "new\n" and chunk.offset == 0


def test_it_detects_a_log_replaced_by_a_new_file_as_rotated(tmp_path: Path) -> None:
    log = tmp_path / "kubelet.log"
    log.write_bytes(b"a\n")
    first = _tail(log, None)
    keep = tmp_path / "keep"
    keep.write_bytes(b"")  # hold the old inode so the new file cannot reuse it
    log.replace(tmp_path / "kubelet.log.1")
    log.write_bytes(b"b\nc\nd\n")
    chunk = _tail(log, first.state)
    assert chunk.rotated and chunk.text == "b\nc\nd\n"


def test_it_reads_utf16_logs_two_bytes_at_a_time(tmp_path: Path) -> None:
    log = tmp_path / "flanneld.log"
    log.write_bytes(b"\xff\xfe" + "Waiting for the Network to be created\r\n".encode("utf-16-le"))
    first = _tail(log, None, initial_bytes=4096)
    assert first.text == "Waiting for the Network to be created\n"
    with open(log, "ab") as fh:
        fh.write("Waiting for the Network to be created\r\n".encode("utf-16-le"))
    second = _tail(log, first.state)
    assert second.text == "Waiting for the Network to be created\n"
    assert second.offset % 2 == 0


def test_a_missing_log_gives_nothing(tmp_path: Path) -> None:
    assert _tail(tmp_path / "absent.log", None) is None


def test_a_utf16_log_without_a_byte_order_mark_is_read_as_utf16(tmp_path: Path) -> None:
    log = tmp_path / "kube-proxy.log"
    lines = "I1204 10:00:00.000000    4242 server_others.go:123] Using winkernel proxier.\r\n"
    log.write_bytes((lines * 3).encode("utf-16-le"))  # Out-File copies can lose the BOM
    chunk = read_tail(str(log), str(log), None, max_bytes=1 << 20, initial_bytes=1 << 20)
    assert chunk is not None
    assert chunk.text == lines.replace("\r\n", "\n") * 3
    assert "\x00" not in chunk.text and chunk.state["encoding"] == "utf-16-le"
    with log.open("ab") as fh:
        fh.write("E1204 10:00:01.000000    4242 proxier.go:1] Policy creation failed\r\n".encode("utf-16-le"))
    later = read_tail(str(log), str(log), chunk.state, max_bytes=1 << 20, initial_bytes=1 << 20)
    assert later is not None and later.text == "E1204 10:00:01.000000    4242 proxier.go:1] Policy creation failed\n"


def test_nul_bytes_in_a_utf8_log_never_reach_the_text(tmp_path: Path) -> None:
    log = tmp_path / "kubelet.log"
    log.write_bytes(b"I1204 kubelet started\n\x00\x00\x00I1204 after a crash\n")  # a file pre-allocated by a crash
    chunk = read_tail(str(log), str(log), None, max_bytes=1 << 20, initial_bytes=1 << 20)
    assert chunk is not None and chunk.text == "I1204 kubelet started\nI1204 after a crash\n"
