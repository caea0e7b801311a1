from __future__ import annotations

import contextlib
import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnostics.bundle.archive import (
    BundleError,
    Limits,
    MemberError,
    open_bundle,
    safe_member_path,
    sniff_format,
)
from tests.diagnostics.bundle.builders import FIXTURES, add_member, make_targz, make_zip, raw_zip


def read_all(path: Path, limits: Limits | None = None) -> tuple[dict[str, bytes], list[dict[str, str]]]:
    source = open_bundle(path, limits or Limits())
    contents = {entry.path: entry.stream.read() for entry in source.entries()}
    return contents, source.skipped


def reasons(skipped: list[dict[str, str]]) -> dict[str, str]:
    return {item["path"]: item["reason"] for item in skipped}


class TestMemberNames:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("logs/kubelet.log", "logs/kubelet.log"),
            ("./logs//kubelet.log", "logs/kubelet.log"),
            ("logs\\kubelet.log", "logs/kubelet.log"),
            ("a/./b/c.txt", "a/b/c.txt"),
        ],
    )
    def test_it_normalizes_harmless_names(self, name: str, expected: str) -> None:
        assert safe_member_path(name) == expected

    @pytest.mark.parametrize(
        ("name", "why"),
        [
            ("../evil", "traversal"),
            ("logs/../../evil", "traversal"),
            ("..\\..\\Windows\\System32\\evil.dll", "traversal"),
            ("/etc/passwd", "absolute path"),
            ("//server/share/x", "absolute path"),
            ("C:\\Windows\\x", "drive letter"),
            ("c:/Windows/x", "drive letter"),
            ("logs/kubelet.log:hidden", "':'"),
            ("logs/\x1b[31mred.txt", "control characters"),
            ("", "empty"),
            ("./", "no file name"),
            ("a" * 2000, "longer than"),
        ],
    )
    def test_it_refuses_unsafe_names(self, name: str, why: str) -> None:
        with pytest.raises(MemberError, match=why):
            safe_member_path(name)

    @given(st.text(max_size=300))
    def test_any_name_is_either_refused_or_made_relative_and_clean(self, name: str) -> None:
        try:
            clean = safe_member_path(name)
        except MemberError:
            return
        assert not clean.startswith("/")
        assert "\\" not in clean
        assert ".." not in clean.split("/")
        assert ":" not in clean
        assert all(part not in ("", ".") for part in clean.split("/"))


class TestFormats:
    def test_it_tells_formats_by_magic_bytes(self) -> None:
        assert sniff_format(b"PK\x03\x04rest") == "zip"
        assert sniff_format(gzip.compress(b"x")) == "gzip"
        assert sniff_format(b"plain text") is None

    def test_it_reads_a_zip_named_like_a_tarball(self, tmp_path: Path) -> None:
        path = make_zip(FIXTURES / "aks", tmp_path / "bundle.tar.gz")
        contents, _ = read_all(path)
        assert "kubelet.log" in contents

    def test_it_reads_a_tarball_without_an_extension(self, tmp_path: Path) -> None:
        path = make_targz(FIXTURES / "exported", tmp_path / "bundle")
        contents, _ = read_all(path)
        assert any(p.endswith("manifest.json") for p in contents)

    def test_it_reads_backslash_names_of_compress_archive(self, tmp_path: Path) -> None:
        path = make_zip(FIXTURES / "aks", tmp_path / "x.zip", backslashes=True)
        contents, _ = read_all(path)
        assert "adapters/Ethernet 2_int.txt" in contents

    def test_it_reads_a_directory_with_the_same_bytes_as_its_zip(self, tmp_path: Path) -> None:
        folder = FIXTURES / "collectlogs"
        from_dir, _ = read_all(folder)
        from_zip, _ = read_all(make_zip(folder, tmp_path / "c.zip"))
        from_tar, _ = read_all(make_targz(folder, tmp_path / "c.tgz"))
        assert from_dir == from_zip == from_tar

    def test_a_single_plain_file_is_a_bundle_of_one(self, tmp_path: Path) -> None:
        log = tmp_path / "kubelet.log"
        log.write_text("I0611 09:12:01.532114    4424 server.go:467] hello\n")
        contents, _ = read_all(log)
        assert list(contents) == ["kubelet.log"]


class TestHostileArchives:
    def test_it_skips_traversal_and_absolute_names_in_a_zip(self, tmp_path: Path) -> None:
        path = raw_zip(
            tmp_path / "evil.zip",
            [
                ("../evil.txt", b"x"),
                ("/etc/cron.d/evil", b"x"),
                ("C:\\Windows\\x.dll", b"x"),
                ("..\\..\\evil.ps1", b"x"),
                ("ok/kubelet.log", b"fine"),
            ],
        )
        contents, skipped = read_all(path)
        assert contents == {"ok/kubelet.log": b"fine"}
        assert len(skipped) == 4
        assert all(item["reason"].startswith("unsafe name") for item in skipped)

    def test_it_skips_links_and_devices_in_a_tar(self, tmp_path: Path) -> None:
        path = tmp_path / "links.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            add_member(tf, "logs/kubelet.log", b"real")
            add_member(tf, "logs/passwd", b"", kind=tarfile.SYMTYPE, link="/etc/passwd")
            add_member(tf, "logs/hard", b"", kind=tarfile.LNKTYPE, link="logs/kubelet.log")
            add_member(tf, "dev/null", b"", kind=tarfile.CHRTYPE)
            add_member(tf, "fifo", b"", kind=tarfile.FIFOTYPE)
            add_member(tf, "../../escape", b"x")
        contents, skipped = read_all(path)
        assert contents == {"logs/kubelet.log": b"real"}
        why = reasons(skipped)
        assert "symbolic link" in why["logs/passwd"]
        assert "hard link" in why["logs/hard"]
        assert "not a regular file" in why["dev/null"]
        assert "not a regular file" in why["fifo"]
        assert any("traversal" in r for r in why.values())

    def test_it_skips_symlinks_stored_in_a_zip(self, tmp_path: Path) -> None:
        path = tmp_path / "link.zip"
        with zipfile.ZipFile(path, "w") as zf:
            info = zipfile.ZipInfo("logs/kubelet.log")
            info.external_attr = (0o120777 << 16) | 0x20  # S_IFLNK, as Info-ZIP stores it
            zf.writestr(info, "/etc/passwd")
            zf.writestr("network.txt", "{}")
        contents, skipped = read_all(path)
        assert list(contents) == ["network.txt"]
        assert reasons(skipped) == {"logs/kubelet.log": "symbolic link (not followed)"}

    def test_it_does_not_follow_symlinks_in_a_directory(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_text("secret")
        bundle = tmp_path / "bundle"
        bundle.mkdir()
        (bundle / "kubelet.log").write_text("log")
        (bundle / "link.txt").symlink_to(outside / "secret.txt")
        (bundle / "linkdir").symlink_to(outside, target_is_directory=True)
        os.mkfifo(bundle / "pipe")
        contents, skipped = read_all(bundle)
        assert contents == {"kubelet.log": b"log"}
        why = reasons(skipped)
        assert "symbolic link" in why["link.txt"]
        assert "symbolic link to a directory" in why["linkdir"]
        assert "not a regular file" in why["pipe"]

    def test_it_refuses_a_zip_bomb_while_streaming(self, tmp_path: Path) -> None:
        path = raw_zip(tmp_path / "bomb.zip", [("kubelet.log", b"\0" * (64 << 20))])
        assert path.stat().st_size < 200_000
        with pytest.raises(BundleError, match="decompression bomb"):
            read_all(path)

    def test_it_refuses_a_tar_gz_bomb_even_in_members_it_skips(self, tmp_path: Path) -> None:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tf:
            add_member(tf, "zeros.bin", b"\0" * (8 << 20))
        path = tmp_path / "bomb.tar.gz"
        path.write_bytes(gzip.compress(raw.getvalue(), 9))
        with pytest.raises(BundleError, match="decompression bomb"):
            source = open_bundle(path, Limits(ratio_floor=1 << 20, max_ratio=100))
            for _entry in source.entries():
                pass  # never read: the tar stream still has to be decompressed to skip it

    def test_it_stops_at_the_total_size_limit(self, tmp_path: Path) -> None:
        path = raw_zip(tmp_path / "big.zip", [(f"f{i}.log", os.urandom(300_000)) for i in range(5)])
        with pytest.raises(BundleError, match="expands to more than"):
            read_all(path, Limits(max_total_bytes=1_000_000))

    def test_it_skips_a_member_larger_than_the_member_limit(self, tmp_path: Path) -> None:
        path = raw_zip(tmp_path / "m.zip", [("big.log", b"a" * 5000), ("small.log", b"b")])
        contents, skipped = read_all(path, Limits(max_member_bytes=1000))
        assert contents == {"small.log": b"b"}
        assert "larger than" in reasons(skipped)["big.log"]

    def test_it_refuses_too_many_members(self, tmp_path: Path) -> None:
        path = raw_zip(tmp_path / "many.zip", [(f"f{i}.txt", b"") for i in range(60)], compression=zipfile.ZIP_STORED)
        with pytest.raises(BundleError, match="more than 50 members"):
            read_all(path, Limits(max_members=50))

    def test_it_reports_a_truncated_gzip_clearly(self, tmp_path: Path) -> None:
        whole = make_targz(FIXTURES / "collectlogs", tmp_path / "whole.tar.gz").read_bytes()
        path = tmp_path / "cut.tar.gz"
        path.write_bytes(whole[: len(whole) // 2])
        with pytest.raises(BundleError, match="corrupt or truncated"):
            read_all(path)

    def test_it_reports_a_truncated_zip_clearly(self, tmp_path: Path) -> None:
        whole = make_zip(FIXTURES / "collectlogs", tmp_path / "whole.zip").read_bytes()
        path = tmp_path / "cut.zip"
        path.write_bytes(whole[: len(whole) // 2])
        with pytest.raises(BundleError, match="corrupt or truncated zip"):
            read_all(path)

    def test_random_bytes_named_as_an_archive_are_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "bundle.tar.gz"
        path.write_bytes(os.urandom(4096).replace(b"\x1f\x8b", b"xx").replace(b"PK", b"pk"))
        with pytest.raises(BundleError, match="not a zip or tar archive"):
            open_bundle(path)

    def test_a_missing_path_is_a_bundle_error(self, tmp_path: Path) -> None:
        with pytest.raises(BundleError, match="no such file or directory"):
            open_bundle(tmp_path / "nope.zip")

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.binary(max_size=3000), suffix=st.sampled_from([".zip", ".tar.gz", ".tgz", ".txt", ""]))
    def test_arbitrary_bytes_give_entries_or_a_bundle_error(self, tmp_path: Path, data: bytes, suffix: str) -> None:
        path = tmp_path / f"input{suffix}"
        path.write_bytes(data)
        with contextlib.suppress(BundleError):
            read_all(path)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.binary(min_size=1, max_size=2000), cut=st.integers(min_value=0, max_value=4000))
    def test_damaged_archives_give_entries_or_a_bundle_error(self, tmp_path: Path, data: bytes, cut: int) -> None:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w:gz") as tf:
            add_member(tf, "logs/kubelet.log", data)
        damaged = bytearray(raw.getvalue())
        position = cut % len(damaged)
        damaged[position] ^= 0xFF
        path = tmp_path / "damaged.tgz"
        path.write_bytes(bytes(damaged))
        with contextlib.suppress(BundleError):
            read_all(path)
