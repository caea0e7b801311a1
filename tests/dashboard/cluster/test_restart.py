"""A watcher restart with no change in the cluster changes nothing, against the real API server.

Measured before the start was ordered: the Event behind a ``pause.image-incompatible``
finding was kept after only some restarts, a Windows pod whose image does not look
Windows was dropped after most, and the finding opened and resolved again each time.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from dashboard.cluster.kube import KubernetesSource
from dashboard.cluster.models import ApiObject, SourceState, WorkloadFinding
from dashboard.models import Finding
from dashboard.monitoring import Delivery, FindingEvent, NotificationChannel
from tests.kubeapi import KubeApi

from .conftest import api_list, wait_for

RESTARTS = 5


def add_plain_windows_pod(kube: KubeApi) -> None:
    """A Windows app pod that only its node says is Windows (no selector, no Windows-looking image), and an
    Event about it (invented for this test, shaped like the lab's sandbox event)."""
    pod = copy.deepcopy(next(p for p in api_list("pods")["items"] if p["metadata"]["name"] == "clean-5d8f7c6b9-rrrrr"))
    pod["metadata"]["name"] = "shop-api-7c9d8b6f5-tttt1"
    pod["spec"].pop("nodeSelector", None)
    pod["spec"].pop("volumes", None)
    for container in pod["spec"]["containers"]:
        container["image"] = "registry.example.com/shop/api:1.4.2"
        container.pop("volumeMounts", None)
    pod["status"]["containerStatuses"] = []
    pod.setdefault("kind", "Pod")
    pod.setdefault("apiVersion", "v1")
    created = kube.create(pod)
    event = copy.deepcopy(api_list("events")["items"][0])
    event["metadata"]["name"] = "shop-api-7c9d8b6f5-tttt1.17e0b1a2c3d4e5f6"
    event["involvedObject"].update(name=created["metadata"]["name"], uid=created["metadata"]["uid"])
    event.pop("involvedObject", None)
    event["involvedObject"] = {
        "kind": "Pod",
        "namespace": "apps",
        "name": created["metadata"]["name"],
        "uid": created["metadata"]["uid"],
        "apiVersion": "v1",
    }
    event.setdefault("kind", "Event")
    event.setdefault("apiVersion", "v1")
    kube.create(event)


def counts() -> dict[str, Any]:
    return {
        "findings": sorted(Finding.objects.values_list("node__name", "check_id", "subject", "resolved_at")),
        "events": FindingEvent.objects.count(),
        "deliveries": Delivery.objects.count(),
        "workload findings": sorted(WorkloadFinding.objects.values_list("namespace", "name", "check_id", "subject")),
        "objects": sorted(ApiObject.objects.values_list("kind", "namespace", "name")),
    }


def test_restarting_the_watcher_five_times_changes_no_finding(
    kube: KubeApi, lab_kubeconfig: Path, run_sync: Any
) -> None:
    add_plain_windows_pod(kube)
    NotificationChannel.objects.create(name="ops", kind="webhook", target="http://127.0.0.1:9/hook")

    def run_once() -> None:
        source = KubernetesSource("lab", kubeconfig=str(lab_kubeconfig), context="lab")
        with run_sync(source) as running:
            running.settled()  # the first batch is the full diagnosis of the start
            wait_for(
                lambda: SourceState.objects.filter(cluster__name="lab", state=SourceState.CONNECTED).exists(),
                what="connected",
            )

    run_once()
    before = counts()
    assert ("Pod", "apps", "shop-api-7c9d8b6f5-tttt1") in before["objects"]
    assert ("Event", "apps", "shop-api-7c9d8b6f5-tttt1.17e0b1a2c3d4e5f6") in before["objects"]
    assert [f for f in before["findings"] if f[1] == "pause.image-incompatible" and f[3] is None]
    assert before["events"] > 0 and before["deliveries"] > 0  # the first start opened findings and notified
    for _ in range(RESTARTS):
        run_once()
        assert counts() == before
