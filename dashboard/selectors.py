"""Kubernetes label selectors (``app=web,tier!=db,zone in (a, b),!legacy``), parsed once and matched.

The grammar is the API's: requirements joined by commas; each one ``key``, ``!key``,
``key=value`` (or ``==``), ``key!=value``, ``key in (v1, v2)`` or ``key notin (v1, v2)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY_RE = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}$")
_VALUE_RE = re.compile(rf"^({_NAME})?$")
_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ_RE = re.compile(r"^(?P<key>[^!=\s]+)\s*(?P<op>==|=|!=)\s*(?P<value>\S*)$")


class SelectorError(ValueError):
    """The selector does not parse; the message names the requirement."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # exists, !exists, in, notin
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return labels.get(self.key) not in self.values  # notin: a missing key matches, as in the API


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise SelectorError(f"unbalanced '(' in {text!r}")
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _key(key: str, part: str) -> str:
    if not _KEY_RE.match(key):
        raise SelectorError(f"{key!r} in {part!r} is not a valid label key")
    return key


def _value(value: str, part: str) -> str:
    if not _VALUE_RE.match(value):
        raise SelectorError(f"{value!r} in {part!r} is not a valid label value")
    return value


def parse_selector(text: str) -> Selector:
    """Parse a selector; an empty one matches everything. Raises ``SelectorError``."""
    if len(text) > 500:
        raise SelectorError("the selector is longer than 500 characters")
    if not text.strip():
        return Selector(())
    requirements: list[Requirement] = []
    for part in _split(text):
        if not part:
            raise SelectorError(f"empty requirement in {text!r}")
        if found := _SET_RE.match(part):
            values = frozenset(_value(v.strip(), part) for v in found["values"].split(","))
            if not found["values"].strip():
                raise SelectorError(f"{part!r} needs at least one value in the parentheses")
            requirements.append(Requirement(_key(found["key"], part), found["op"], values))
        elif found := _EQ_RE.match(part):
            op = "notin" if found["op"] == "!=" else "in"
            value = _value(found["value"], part)
            requirements.append(Requirement(_key(found["key"], part), op, frozenset({value})))
        elif part.startswith("!"):
            requirements.append(Requirement(_key(part[1:].strip(), part), "!exists"))
        else:
            requirements.append(Requirement(_key(part, part), "exists"))
    return Selector(tuple(requirements))
