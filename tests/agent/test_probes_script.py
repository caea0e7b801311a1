"""``agent/probes.ps1`` against the probe list, read with a PowerShell grammar.

No PowerShell runs on the test machines (none is installable from the package
registries they reach), so the script is checked statically: it parses as
PowerShell, its table holds exactly the probe ids of ``diagnostics.probes`` in
the same order (the agent reads a missing probe as the one that hung), and it
uses nothing that Constrained Language Mode or EDR rules single out.
"""

from __future__ import annotations

import re
from pathlib import Path

import tree_sitter
import tree_sitter_powershell

from agent.runner import SCRIPT, PowerShellRunner
from diagnostics.probes import HNS_PROBES, MACHINE_ENV_ALLOW_LIST, PROBES

SOURCE = SCRIPT.read_bytes()


def _tree() -> tree_sitter.Tree:
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    return parser.parse(SOURCE)


def _errors(node: tree_sitter.Node) -> list[str]:
    found = [f"line {node.start_point[0] + 1}: {node.text!r}"[:120]] if node.type == "ERROR" or node.is_missing else []
    for child in node.children:
        found += _errors(child)
    return found


def _table_ids() -> list[str]:
    """The keys of ``$Table = [ordered]@{ ... }``, in order."""
    text = SOURCE.decode("utf-8")
    table = text[text.index("$Table = [ordered]@{") :]
    return re.findall(r"^    '([a-z0-9.]+)'\s*=\s*\{", table, flags=re.MULTILINE)


def test_the_script_parses_as_powershell() -> None:
    assert _errors(_tree().root_node) == []


def test_the_table_holds_every_probe_id_and_nothing_else_in_the_same_order() -> None:
    assert _table_ids() == [p.id for p in PROBES]


def test_hns_probes_come_last_so_a_hung_hns_costs_nothing_else() -> None:
    ids = _table_ids()
    first_hns = min(ids.index(p) for p in HNS_PROBES)
    assert all(p.startswith("hns.") for p in ids[first_hns:])


def test_the_machine_variables_sent_are_the_allow_list() -> None:
    text = SOURCE.decode("utf-8")
    block = text[text.index("$EnvAllowList = @(") :].split(")", 1)[0]
    assert re.findall(r"'([A-Z_]+)'", block) == list(MACHINE_ENV_ALLOW_LIST)


def test_it_uses_nothing_constrained_language_mode_blocks() -> None:
    text = SOURCE.decode("utf-8").split("#>", 1)[1]  # past the help comment
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "Add-Type" not in code
    assert "[Console]" not in code and "OutputEncoding" not in code
    assert "New-Object" not in code
    # Static .NET calls ([Type]::Method()) are blocked for all but a few core types: use none.
    assert re.findall(r"\]::", code) == []


def test_the_agent_starts_it_with_file_not_an_encoded_command() -> None:
    argv = PowerShellRunner(hns_module=r"C:\k\hns.psm1").argv(PROBES[:3], 90, r"C:\Temp\out.json")
    assert argv[:5] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-File", str(SCRIPT)]
    assert "-EncodedCommand" not in argv and "-ExecutionPolicy" not in argv
    assert argv[argv.index("-Probes") + 1] == "os.version,os.hotfixes,computer.info"
    assert argv[argv.index("-Budget") + 1] == "90"
    assert argv[argv.index("-HnsModule") + 1] == r"C:\k\hns.psm1"
