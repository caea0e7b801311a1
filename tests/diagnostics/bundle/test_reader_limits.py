"""What the bundle reader parses is bounded: small caps for structured files, YAML with the C loader."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from diagnostics.bundle import reader
from diagnostics.bundle.reader import read_bundle
from tests.diagnostics.bundle.builders import add_member


def test_a_structured_file_over_its_cap_is_skipped_with_the_reason(tmp_path: Path) -> None:
    endpoints = json.dumps([{"ID": f"{i:032x}", "IPAddress": "10.244.1.5"} for i in range(40)]).encode()
    big = b"[" + b",".join([endpoints[1:-1]] * (reader.MAX_PARSED_BYTES // len(endpoints) + 2)) + b"]"
    path = tmp_path / "b.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        add_member(tf, "win-node-01/node/hnsendpoints.json", big)
        add_member(tf, "win-node-01/node/hnsnetwork.json", b'[{"Name": "cbr0", "Type": "L2Bridge"}]')
    result = read_bundle(path)
    assert [s["path"] for s in result.skipped] == ["win-node-01/node/hnsendpoints.json"]
    assert "larger than 8 MiB; not parsed" in result.skipped[0]["reason"]
    assert [i["kind"] for i in result.inputs] == ["hns-networks"]


def test_kubernetes_objects_have_a_larger_cap_than_other_structured_files() -> None:
    assert reader.MAX_PARSED_BYTES_BY_KIND["kubernetes-objects"] > reader.MAX_PARSED_BYTES


@pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False), reason="PyYAML built without libyaml")
def test_yaml_is_read_with_the_c_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[Any] = []
    real = yaml.load_all

    def spy(stream: Any, Loader: Any) -> Any:
        used.append(Loader)
        return real(stream, Loader=Loader)

    monkeypatch.setattr(yaml, "load_all", spy)
    docs = reader._load_documents("pods.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n")
    assert docs == [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}}]
    assert used == [yaml.CSafeLoader]
