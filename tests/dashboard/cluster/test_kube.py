"""``KubernetesSource`` against a local API server, through the real ``kubernetes`` client.

Lists, watches, resume from a resource version, 410 Gone, an API server that
goes away and comes back, and RBAC that is too narrow.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from dashboard.cluster import kube
from dashboard.cluster.kube import KubernetesSource
from dashboard.cluster.models import ApiObject, SourceState
from dashboard.cluster.resources import NODES, PODS, RESOURCES
from dashboard.cluster.source import Forbidden, Gone
from dashboard.models import Node

from .conftest import FIXTURES, wait_for
from .fakeapi import FakeApiServer

MODELS = {
    "nodes": "V1NodeList",
    "pods": "V1PodList",
    "pods-stuck": "V1PodList",
    "events": "CoreV1EventList",
    "services": "V1ServiceList",
    "endpointslices": "V1EndpointSliceList",
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_fixtures_are_what_the_client_deserializes(name: str) -> None:
    text = (FIXTURES / f"{name}.json").read_text()
    listing = ApiClient().deserialize(text, MODELS[name], "application/json")
    assert len(listing.items) == len(json.loads(text)["items"]) > 0
    assert all(item.metadata.name and item.metadata.uid for item in listing.items)


def source_for(fake: FakeApiServer, tmp_path: Path, **options: Any) -> KubernetesSource:
    return KubernetesSource("lab", kubeconfig=str(fake.kubeconfig(tmp_path)), context="fake", **options)


def test_it_lists_every_kind_in_pages(fake_api: FakeApiServer, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(kube, "PAGE", 3)
    source = source_for(fake_api, tmp_path)
    assert source.server_version() == "v1.31.1"
    pods = source.list(PODS)
    assert [p["metadata"]["name"] for p in pods.items] == [
        p["metadata"]["name"] for p in fake_api.source.objects("Pod")
    ]
    assert len(fake_api.lists("pods")) == -(-len(pods.items) // 3)  # every page asked for
    assert pods.items[0] == fake_api.source.objects("Pod")[0]  # the API's JSON, untouched
    for resource in RESOURCES:
        assert source.list(resource).resource_version == pods.resource_version


def test_a_watch_yields_changes_after_the_given_version(fake_api: FakeApiServer, tmp_path: Path) -> None:
    source = source_for(fake_api, tmp_path)
    start = source.list(NODES).resource_version
    node = fake_api.source.get("Node", "win-2022")
    node["metadata"]["labels"]["example.com/pool"] = "blue"
    fake_api.source.apply("Node", node)
    stop = threading.Event()
    events = source.watch(NODES, start, stop)
    assert next(events).type == "OPEN"
    change = next(events)
    stop.set()
    assert change.type == "MODIFIED"
    assert change.object["metadata"]["labels"]["example.com/pool"] == "blue"
    assert int(change.resource_version) > int(start)
    assert fake_api.watches("nodes")[-1]["resourceVersion"] == start


def test_a_too_old_version_raises_gone(fake_api: FakeApiServer, tmp_path: Path) -> None:
    source = source_for(fake_api, tmp_path)
    start = source.list(PODS).resource_version
    fake_api.source.apply("Pod", fake_api.source.objects("Pod")[0])
    fake_api.source.compact()
    with pytest.raises(Gone):
        list(source.watch(PODS, start, threading.Event()))


def test_a_forbidden_list_names_the_missing_permission(fake_api: FakeApiServer, tmp_path: Path) -> None:
    fake_api.forbidden.add("endpointslices")
    source = source_for(fake_api, tmp_path)
    with pytest.raises(Forbidden) as caught:
        source.list(next(r for r in RESOURCES if r.plural == "endpointslices"))
    message = str(caught.value)
    assert "list endpointslices.discovery.k8s.io" in message
    assert "deploy/kubernetes/base/dashboard/rbac.yaml" in message
    assert 'cannot list resource "endpointslices"' in message  # the API server's own words


def test_an_unusable_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot use kubeconfig .* context missing"):
        KubernetesSource("lab", kubeconfig=str(tmp_path / "nope"), context="missing")


# -- the sync, end to end, against the local API server ---------------------------------------


def test_the_sync_resumes_watches_from_the_last_version(fake_api: FakeApiServer, tmp_path: Path, run_sync: Any) -> None:
    fake_api.max_watch_seconds = 0.5  # streams end often: each new watch must resume, not list again
    with run_sync(source_for(fake_api, tmp_path), diagnose=False) as running:
        running.settled()
        wait_for(lambda: len(fake_api.watches("pods")) >= 3, what="three pod watches")
        pod = fake_api.source.get("Pod", "clean-5d8f7c6b9-rrrrr", "apps")
        pod["status"]["containerStatuses"][0]["restartCount"] = 3
        fake_api.source.apply("Pod", pod)
        wait_for(
            lambda: ApiObject.objects.filter(
                kind="Pod", name="clean-5d8f7c6b9-rrrrr", data__status__containerStatuses__0__restartCount=3
            ).exists(),
            what="the pod change stored",
        )
        first = int(fake_api.watches("pods")[0]["resourceVersion"])
        wait_for(
            lambda: int(fake_api.watches("pods")[-1]["resourceVersion"]) > first,
            what="a watch resumed from the pod change's version",
        )
        versions = [int(q["resourceVersion"]) for q in fake_api.watches("pods")]
    assert len(fake_api.lists("pods")) == 1  # listed once, then only watched
    assert versions == sorted(versions)


def test_gone_makes_the_sync_list_again(fake_api: FakeApiServer, tmp_path: Path, run_sync: Any) -> None:
    fake_api.max_watch_seconds = 0.3
    with run_sync(source_for(fake_api, tmp_path), diagnose=False) as running:
        running.settled()
        fake_api.down()
        # While the API server is away, a pod goes and history is compacted.
        fake_api.source.apply("Pod", fake_api.source.get("Pod", "clean-5d8f7c6b9-rrrrr", "apps"), "DELETED")
        fake_api.source.compact()
        fake_api.up()
        wait_for(lambda: len(fake_api.lists("pods")) >= 2, what="a second list of pods")
        wait_for(
            lambda: not ApiObject.objects.filter(kind="Pod", name="clean-5d8f7c6b9-rrrrr").exists(),
            what="the deleted pod gone from the store",
        )
        wait_for(lambda: SourceState.objects.get(cluster__name="lab").state == SourceState.CONNECTED)


def test_an_api_server_that_goes_away_is_shown_and_recovered_without_restart(
    fake_api: FakeApiServer, tmp_path: Path, run_sync: Any
) -> None:
    fake_api.max_watch_seconds = 0.3
    with run_sync(source_for(fake_api, tmp_path), diagnose=False) as running:
        running.settled()
        assert SourceState.objects.get(cluster__name="lab").state == SourceState.CONNECTED
        fake_api.down()
        state = wait_for(
            lambda: SourceState.objects.filter(cluster__name="lab", state=SourceState.ERROR).first(),
            what="the error state",
        )
        assert f"cannot reach the API server at {fake_api.url}" in state.message
        assert state.error_since is not None
        node = fake_api.source.get("Node", "win-2019")
        node["metadata"]["labels"]["example.com/pool"] = "green"
        fake_api.source.apply("Node", node)
        fake_api.up()
        wait_for(
            lambda: SourceState.objects.filter(cluster__name="lab", state=SourceState.CONNECTED).exists(),
            what="connected again",
        )
        wait_for(
            lambda: (
                ApiObject.objects.get(kind="Node", name="win-2019").data["metadata"]["labels"].get("example.com/pool")
                == "green"
            ),
            what="the change made while the server was away",
        )
    assert SourceState.objects.get(cluster__name="lab").error_since is None


def test_rbac_too_narrow_shows_which_permission_is_missing(
    fake_api: FakeApiServer, tmp_path: Path, run_sync: Any
) -> None:
    fake_api.forbidden.add("pods")
    with run_sync(source_for(fake_api, tmp_path), diagnose=False):
        state = wait_for(
            lambda: SourceState.objects.filter(cluster__name="lab", state=SourceState.ERROR).first(),
            what="the error state",
        )
        assert "may not list pods (cluster-wide)" in state.message
        assert "Grant 'list' on 'pods'" in state.message
        # The other kinds still sync.
        wait_for(lambda: Node.objects.filter(cluster__name="lab", in_api=True).count() == 3, what="the nodes")
        fake_api.forbidden.clear()  # the operator applies deploy/kubernetes/base/dashboard/rbac.yaml
        wait_for(
            lambda: SourceState.objects.filter(cluster__name="lab", state=SourceState.CONNECTED).exists(),
            what="connected once allowed",
        )
        assert ApiObject.objects.filter(kind="Pod").exists()
