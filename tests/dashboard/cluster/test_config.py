"""Which clusters to watch: WND_CLUSTERS and WND_CLUSTERS_FILE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dashboard.cluster.config import ClusterConfig, ConfigError, parse_env, parse_file


def test_it_reads_the_short_list() -> None:
    configs = parse_env("prod-eu, staging=context:aks-staging ,local=in-cluster,demo=simulated", "/etc/kube")
    assert configs == [
        ClusterConfig("prod-eu", kubeconfig="/etc/kube", context="prod-eu"),
        ClusterConfig("staging", kubeconfig="/etc/kube", context="aks-staging"),
        ClusterConfig("local", in_cluster=True),
        ClusterConfig("demo", simulated=True),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [("Prod_EU", "not a valid cluster name"), ("a=ftp:x", "must be context:"), ("a,a", "configured twice")],
)
def test_it_rejects_bad_entries_with_a_reason(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_env(value)


def test_it_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text("clusters:\n  - name: prod-eu\n    context: aks-prod\n    service_cidr: 10.96.0.0/12\n")
    assert parse_file(path) == [ClusterConfig("prod-eu", context="aks-prod", service_cidr="10.96.0.0/12")]
    path.write_text(json.dumps({"clusters": [{"name": "x", "colour": "red"}]}))
    with pytest.raises(ConfigError, match="unknown keys colour"):
        parse_file(path)


def test_a_simulated_cluster_needs_a_recording() -> None:
    with pytest.raises(ConfigError, match="no recorded cluster"):
        ClusterConfig("nowhere", simulated=True).source()


def test_the_demo_watches_the_configured_clusters_and_the_simulated_ones_only_when_none_is(settings: Any) -> None:
    from dashboard.management.commands.demo import watcher_command

    settings.WND_CLUSTERS, settings.WND_CLUSTERS_FILE = "", ""
    assert watcher_command()[-4:] == ["watch_cluster", "--simulated", "--tick", "20"]
    settings.WND_CLUSTERS = "mine=context:kind-mine"
    assert watcher_command()[-1] == "watch_cluster"
