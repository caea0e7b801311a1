"""``KubernetesSource`` and the sync against the real API server (kube-apiserver v1.28.0, etcd, RBAC).

Lists in pages, watches, resume from a resource version, a real 410 Gone after
etcd compaction, an API server that restarts, RBAC with the shipped ClusterRole
and too narrow, and a token that is replaced while the watcher runs.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from dashboard.cluster import kube as kube_module
from dashboard.cluster.kube import KubernetesSource
from dashboard.cluster.models import ApiObject, SourceState
from dashboard.cluster.resources import ENDPOINT_SLICES, NODES, PODS, RESOURCES, Resource
from dashboard.cluster.source import Forbidden, Gone, Page, WatchEvent
from dashboard.models import Node
from tests.kubeapi import KubeApi

from .conftest import FIXTURES, wait_for

MODELS = {
    "nodes": "V1NodeList",
    "pods": "V1PodList",
    "pods-stuck": "V1PodList",
    "events": "CoreV1EventList",
    "services": "V1ServiceList",
    "endpointslices": "V1EndpointSliceList",
}
READ_ALL_BUT_PODS = [
    {"apiGroups": [""], "resources": ["nodes", "events", "services"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_fixtures_are_what_the_client_deserializes(name: str) -> None:
    text = (FIXTURES / f"{name}.json").read_text()
    listing = ApiClient().deserialize(text, MODELS[name], "application/json")
    assert len(listing.items) == len(json.loads(text)["items"]) > 0
    assert all(item.metadata.name and item.metadata.uid for item in listing.items)


class Recorded:
    """A source whose lists and watches are recorded, and whose watches can be held back (``hold``)."""

    def __init__(self, source: KubernetesSource) -> None:
        self.source = source
        self.lists: list[str] = []
        self.watches: list[tuple[str, str]] = []
        self.open = threading.Event()
        self.open.set()
        self.versions = 0

    def server_version(self) -> str:
        self.versions += 1
        return self.source.server_version()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    def pages(self, resource: Resource) -> Iterator[Page]:
        self.lists.append(resource.plural)
        yield from self.source.pages(resource)

    def watch(self, resource: Resource, version: str, stop: threading.Event) -> Iterator[WatchEvent]:
        while not self.open.wait(0.05):
            if stop.is_set():
                return
        self.watches.append((resource.plural, version))
        yield from self.source.watch(resource, version, stop)

    def pod_watches(self) -> list[int]:
        return [int(v) for plural, v in self.watches if plural == "pods"]


def source_for(kubeconfig: Path, **options: Any) -> KubernetesSource:
    return KubernetesSource("lab", kubeconfig=str(kubeconfig), context="lab", **options)


def narrow_kubeconfig(kube: KubeApi, tmp_path: Path, rules: list[dict[str, Any]]) -> tuple[Path, str]:
    account = f"narrow-{uuid.uuid4().hex[:8]}"
    kube.grant("windows-node-doctor", account, rules)
    token = kube.token("windows-node-doctor", account)
    return kube.kubeconfig_for(tmp_path / f"{account}.kubeconfig", token=token, context="lab"), account


def connected() -> bool:
    return SourceState.objects.filter(cluster__name="lab", state=SourceState.CONNECTED).exists()


def test_it_lists_every_kind_in_pages(kube: KubeApi, lab_kubeconfig: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(kube_module, "PAGE", 3)
    source = source_for(lab_kubeconfig)
    assert source.server_version() == "v1.28.0"
    pages = list(source.pages(PODS))
    expected = [p["metadata"]["name"] for p in kube.items("Pod")]
    assert [p["metadata"]["name"] for page in pages for p in page.items] == expected
    assert len(pages) == -(-len(expected) // 3) and [p.last for p in pages][-1]
    assert len({p.resource_version for p in pages}) == 1  # one consistent snapshot
    assert pages[0].items[0]["spec"] == kube.items("Pod")[0]["spec"]  # the API's JSON, untouched
    for resource in RESOURCES:
        assert source.list(resource).items


def test_a_watch_yields_changes_after_the_given_version(kube: KubeApi, lab_kubeconfig: Path) -> None:
    source = source_for(lab_kubeconfig)
    start = source.list(NODES).resource_version
    node = kube.get("Node", "win-2022")
    node["metadata"]["labels"]["example.com/pool"] = "blue"
    kube.update(node)
    stop = threading.Event()
    events = source.watch(NODES, start, stop)
    assert next(events).type == "OPEN"
    change = next(events)
    stop.set()
    assert change.type == "MODIFIED"
    assert change.object["metadata"]["labels"]["example.com/pool"] == "blue"
    assert int(change.resource_version) > int(start)


def test_a_compacted_version_raises_gone(kube: KubeApi, lab_kubeconfig: Path) -> None:
    source = source_for(lab_kubeconfig)
    start = source.list(PODS).resource_version
    kube.delete("Pod", "clean-5d8f7c6b9-rrrrr", "apps")
    kube.compact()
    kube.restart()  # a new watch cache: the old version is only in etcd, which compacted it
    with pytest.raises(Gone):
        list(source.watch(PODS, start, threading.Event()))


def test_a_forbidden_list_names_the_missing_permission(kube: KubeApi, tmp_path: Path) -> None:
    kubeconfig, _ = narrow_kubeconfig(kube, tmp_path, READ_ALL_BUT_PODS[:1])
    with pytest.raises(Forbidden) as caught:
        source_for(kubeconfig).list(ENDPOINT_SLICES)
    message = str(caught.value)
    assert "list endpointslices.discovery.k8s.io" in message
    assert "deploy/kubernetes/base/dashboard/rbac.yaml" in message
    assert 'cannot list resource "endpointslices"' in message  # the API server's own words


def test_an_unusable_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot use kubeconfig .* context missing"):
        KubernetesSource("lab", kubeconfig=str(tmp_path / "nope"), context="missing")


# -- the sync, end to end, against the real API server ---------------------------------------


def test_the_sync_resumes_watches_from_the_last_version(lab_kubeconfig: Path, kube: KubeApi, run_sync: Any) -> None:
    source = Recorded(source_for(lab_kubeconfig, watch_seconds=1))  # streams end often: each must resume
    with run_sync(source, diagnose=False) as running:
        running.settled()
        wait_for(lambda: len(source.pod_watches()) >= 3, what="three pod watches")
        pod = kube.get("Pod", "clean-5d8f7c6b9-rrrrr", "apps")
        pod["status"]["containerStatuses"][0]["restartCount"] = 3
        kube.patch_status("Pod", "clean-5d8f7c6b9-rrrrr", "apps", pod["status"])
        wait_for(
            lambda: ApiObject.objects.filter(
                kind="Pod", name="clean-5d8f7c6b9-rrrrr", data__status__containerStatuses__0__restartCount=3
            ).exists(),
            what="the pod change stored",
        )
        first = source.pod_watches()[0]
        wait_for(lambda: source.pod_watches()[-1] > first, what="a watch resumed from the pod change's version")
        versions = source.pod_watches()
    assert source.lists.count("pods") == 1  # listed once, then only watched
    assert versions == sorted(versions)


def test_a_real_gone_makes_the_sync_list_again_and_counts_as_a_sync(
    lab_kubeconfig: Path, kube: KubeApi, run_sync: Any
) -> None:
    source = Recorded(source_for(lab_kubeconfig))
    with run_sync(source, diagnose=False) as running:
        running.settled()
        wait_for(connected, what="connected")
        synced = SourceState.objects.get(cluster__name="lab").last_sync_at
        source.open.clear()  # the watcher is away while a pod goes and etcd compacts its history
        kube.restart()
        kube.delete("Pod", "clean-5d8f7c6b9-rrrrr", "apps")
        kube.compact()
        kube.restart()
        source.open.set()
        wait_for(lambda: source.lists.count("pods") >= 2, what="a second list of pods")
        wait_for(
            lambda: not ApiObject.objects.filter(kind="Pod", name="clean-5d8f7c6b9-rrrrr").exists(),
            what="the deleted pod gone from the store",
        )
        wait_for(connected, what="connected again")
        wait_for(lambda: SourceState.objects.get(cluster__name="lab").last_sync_at > synced, what="a newer sync time")


def test_an_api_server_that_goes_away_is_shown_and_recovered_without_restart(
    lab_kubeconfig: Path, kube: KubeApi, run_sync: Any
) -> None:
    messages: set[str] = set()

    def seen(state: str) -> SourceState | None:
        current = SourceState.objects.filter(cluster__name="lab").first()
        if current is not None:
            messages.add(current.message)
        return current if current is not None and current.state == state else None

    source = Recorded(source_for(lab_kubeconfig))
    with run_sync(source, diagnose=False) as running:
        running.settled()
        wait_for(connected, what="connected")
        versions = source.versions
        args = kube.kill_apiserver()
        state = wait_for(lambda: seen(SourceState.ERROR), what="the error state")
        assert f"cannot reach the API server at {kube.server}" in state.message
        assert state.error_since is not None
        kube.start_apiserver(args)
        wait_for(lambda: seen(SourceState.CONNECTED), what="connected again")
        wait_for(lambda: source.versions > versions, what="the version asked again after the reconnection")
        node = kube.get("Node", "win-2019")
        node["metadata"]["labels"]["example.com/pool"] = "green"
        kube.update(node)
        wait_for(
            lambda: (
                ApiObject.objects.get(kind="Node", name="win-2019").data["metadata"]["labels"].get("example.com/pool")
                == "green"
            ),
            what="a change after the restart",
        )
    assert SourceState.objects.get(cluster__name="lab").error_since is None
    # While its authorization caches load, a starting API server answers 403: that is not an RBAC problem.
    assert not [m for m in messages if "Grant '" in m]


def test_rbac_too_narrow_shows_which_permission_is_missing(kube: KubeApi, tmp_path: Path, run_sync: Any) -> None:
    kubeconfig, account = narrow_kubeconfig(kube, tmp_path, READ_ALL_BUT_PODS)
    with run_sync(source_for(kubeconfig), diagnose=False):
        state = wait_for(
            lambda: SourceState.objects.filter(cluster__name="lab", state=SourceState.ERROR).first(),
            what="the error state",
        )
        assert "may not list pods (cluster-wide)" in state.message
        assert "Grant 'list' on 'pods'" in state.message
        # The other kinds still sync.
        wait_for(lambda: Node.objects.filter(cluster__name="lab", in_api=True).count() == 3, what="the nodes")
        kube.grant("windows-node-doctor", account, role="node-doctor-dashboard-read")  # the shipped ClusterRole
        wait_for(connected, what="connected once allowed")
        assert ApiObject.objects.filter(kind="Pod").exists()
        # Pods listed after the nodes: the pods of Windows nodes are kept, whatever their images say.
        assert ApiObject.objects.filter(kind="Pod", node_name="win-2022").exists()


EXEC_PLUGIN = """import json, pathlib, sys
token = pathlib.Path(sys.argv[1]).read_text().strip()
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""


def exec_kubeconfig(kube: KubeApi, tmp_path: Path, token_file: Path) -> Path:
    """A kubeconfig whose credentials come from an exec plugin (as cloud providers' kubeconfigs do)."""
    plugin = tmp_path / "plugin.py"
    plugin.write_text(EXEC_PLUGIN)
    path = kube.kubeconfig_for(tmp_path / "exec.kubeconfig", token="unused", context="lab")
    config = json.loads(path.read_text())
    config["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(plugin), str(token_file)],
            "interactiveMode": "Never",
        }
    }
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("credentials", ["token file", "exec plugin"])
def test_a_replaced_token_is_read_again_when_the_old_one_is_refused(
    kube: KubeApi, tmp_path: Path, run_sync: Any, credentials: str
) -> None:
    kube.dashboard_token()  # the shipped RBAC
    holder = kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"holder-{uuid.uuid4().hex[:6]}", "namespace": "windows-node-doctor"},
            "spec": {
                "serviceAccountName": "node-doctor-dashboard",
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}],
            },
        }
    )
    token_file = tmp_path / "token"
    token_file.write_text(kube.token("windows-node-doctor", "node-doctor-dashboard", pod=holder))
    if credentials == "exec plugin":
        kubeconfig = exec_kubeconfig(kube, tmp_path, token_file)
    else:
        kubeconfig = kube.kubeconfig_for(tmp_path / "rotating.kubeconfig", token_file=str(token_file), context="lab")
    with run_sync(source_for(kubeconfig, watch_seconds=1), diagnose=False) as running:
        running.settled()
        wait_for(connected, what="connected")
        # The pod the token is bound to goes: the token is refused from now on (as an expired one would be).
        kube.delete("Pod", holder["metadata"]["name"], "windows-node-doctor")
        state = wait_for(
            lambda: SourceState.objects.filter(cluster__name="lab", state=SourceState.ERROR).first(),
            what="the refusal shown",
        )
        assert "Unauthorized" in state.message
        token_file.write_text(kube.token("windows-node-doctor", "node-doctor-dashboard"))  # a new token
        wait_for(connected, what="connected with the new token, without a restart")


def test_stopping_closes_the_watch_streams(lab_kubeconfig: Path, kube: KubeApi, run_sync: Any) -> None:
    running = run_sync(source_for(lab_kubeconfig), diagnose=False)  # streams of 240 s and more
    with running:
        running.settled()
        wait_for(connected, what="connected")
    assert not running.thread.is_alive()
    assert not [t for t in running.sync.threads if t.is_alive()]
    assert SourceState.objects.get(cluster__name="lab").state == SourceState.STOPPED
