"""Any input -> a result or ValueError, never another exception (hypothesis)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnostics.parsers import powershell
from diagnostics.probes import PROBES

PARSERS: list[tuple[str, Callable[[Any], Any]]] = [(p.id, p.parse) for p in PROBES] + [
    ("parse_table", powershell.parse_table),
    ("parse_list", powershell.parse_list),
    ("parse_json_values", powershell.parse_json_values),
    ("split_table_and_json", powershell.split_table_and_json),
    ("records", powershell.records),
]

# Text shaped like PowerShell output: table rules, list separators, braces, JSON punctuation.
_FRAGMENTS = st.sampled_from(
    [
        "----",
        " : ",
        "@{",
        "}",
        "{",
        "[",
        "]",
        '"ID":  ',
        "null",
        "6",
        ",",
        "\r\n",
        "\n",
        "  ",
        "Name",
        "cbr0",
        "SERVICE_NAME:",
        "Protocol tcp",
        "Start Port",
        "IMAGE",
        "TAG",
        "10.0.17763.0",
        "...",
        "\\",
        '"',
        "/Date(1)/",
    ]
)
POWERSHELLISH = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=60).map("".join)


def _only_value_error(parse: Callable[[Any], Any], data: Any) -> None:
    with contextlib.suppress(ValueError):
        parse(data)


@pytest.mark.parametrize(("name", "parse"), PARSERS, ids=[n for n, _ in PARSERS])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=400), POWERSHELLISH))
def test_arbitrary_text_raises_only_value_error(name: str, parse: Callable[[Any], Any], text: str) -> None:
    _only_value_error(parse, text)


@pytest.mark.parametrize(("name", "parse"), PARSERS, ids=[n for n, _ in PARSERS])
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_value_error(name: str, parse: Callable[[Any], Any], data: bytes) -> None:
    _only_value_error(parse, data)


@pytest.mark.parametrize(("name", "parse"), PARSERS, ids=[n for n, _ in PARSERS])
@settings(max_examples=60, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "ID",
                        "Name",
                        "Type",
                        "Subnets",
                        "Ipams",
                        "Policies",
                        "PortMappings",
                        "Flags",
                        "Settings",
                        "IpConfigurations",
                        "HotFixID",
                        "InstalledOn",
                        "Status",
                        "CurrentBuild",
                        "images",
                        "MountPoint",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_raises_only_value_error(name: str, parse: Callable[[Any], Any], value: Any) -> None:
    import json

    _only_value_error(parse, json.dumps(value))


@given(data=st.binary(max_size=500))
def test_decode_output_accepts_any_bytes(data: bytes) -> None:
    assert isinstance(powershell.decode_output(data), str)


def test_truncated_real_outputs_give_partial_results_or_value_error(fixture_bytes) -> None:
    for probe in PROBES:
        sample = {
            "hns.networks": "hns-networks-v1.json",
            "hns.endpoints": "hns-endpoints-v1.json",
            "hns.policies": "hns-loadbalancers-v2.json",
            "services": "services.json",
            "net.ipconfig": "ipconfig-all.txt",
            "os.hotfixes": "collectlogs-winver.txt",
            "images": "crictl-images.json",
            "net.adapters": "netadapter.txt",
        }.get(probe.id)
        if sample is None:
            continue
        text = powershell.decode_output(fixture_bytes(sample))
        for cut in range(0, len(text), max(1, len(text) // 40)):
            _only_value_error(probe.parse, text[:cut])
