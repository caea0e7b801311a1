"""The secrets corpus (tests/fixtures/secrets): load it, plant it in a node's report and API objects, find survivors."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "secrets" / "corpus.yaml"


@dataclass(frozen=True)
class Entry:
    id: str
    where: str
    secrets: tuple[str, ...]
    text: str = ""
    obj: dict[str, Any] = field(default_factory=dict)
    keep: tuple[str, ...] = ()


def load() -> list[Entry]:
    entries = []
    for raw in yaml.safe_load(CORPUS.read_text(encoding="utf-8")):
        entries.append(
            Entry(
                id=raw["id"],
                where=raw["where"],
                secrets=tuple(raw["secrets"]),
                text=raw.get("text", ""),
                obj=raw.get("object") or {},
                keep=tuple(raw.get("keep") or ()),
            )
        )
    return entries


def plant(report: dict[str, Any], entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """Add every entry to ``report`` (in place) where it says; return the API objects (pods) of the ``api`` ones."""
    env = json.loads(report["probes"]["env.machine"]["output"])
    processes = json.loads(report["probes"]["processes"]["output"])
    pods: list[dict[str, Any]] = []
    for n, entry in enumerate(entries):
        if entry.where == "env":
            for line in entry.text.splitlines():
                name, _, value = line.partition("=")
                env[name] = value
        elif entry.where == "process":
            processes.append({"Name": entry.text.split()[0], "ProcessId": 9000 + n, "CommandLine": entry.text.strip()})
        elif entry.where.startswith("file:"):
            item = report["files"][entry.where.removeprefix("file:")]
            item["content"] = (item.get("content") or "") + "\n" + entry.text
        elif entry.where.startswith("log:"):
            log = report["logs"][entry.where.removeprefix("log:")]
            log["text"] = log["text"] + entry.text.replace("\n", "\r\n")
        elif entry.where == "api":
            pods.append({"apiVersion": "v1", "kind": "Pod", **entry.obj})
        else:
            raise ValueError(f"{entry.id}: unknown place {entry.where!r}")
    report["probes"]["env.machine"]["output"] = json.dumps(env, indent=4)
    report["probes"]["processes"]["output"] = json.dumps(processes, indent=4)
    return pods


def survivors(texts: dict[str, str], entries: Iterable[Entry]) -> list[tuple[str, str, str]]:
    """(entry id, secret, where found) for every secret value still present in ``texts`` (name -> text)."""
    found = []
    for entry in entries:
        for secret in entry.secrets:
            for name, text in texts.items():
                if secret in text:
                    found.append((entry.id, secret, name))
    return found
