"""The Service VIP test's arguments: each Service port probed by its protocol."""

from __future__ import annotations

from typing import Any

import pytest

from agent.protocol import RequestError, validate_args
from dashboard.cluster.models import ApiObject
from dashboard.models import Node, enroll
from dashboard.nodetests import resolve_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def node() -> Node:
    """A node of a cluster whose source lists the API Service, kube-dns and a syslog Service."""
    target, _token = enroll("prod-eu", "win-a")
    services = [
        ("default", "kubernetes", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}]),
        (
            "kube-system",
            "kube-dns",
            "10.96.0.10",
            [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
        ),
        ("logging", "syslog", "10.96.7.7", [{"name": "syslog", "port": 514, "protocol": "UDP"}]),
    ]
    for namespace, name, ip, ports in services:
        ApiObject.objects.create(
            cluster=target.cluster,
            kind="Service",
            namespace=namespace,
            name=name,
            data={"spec": {"clusterIP": ip, "ports": ports}},
        )
    return target


@pytest.mark.parametrize(
    ("form", "args"),
    [
        ({"service": "default/kubernetes:443/TCP"}, {"ip": "10.96.0.1", "port": 443}),
        ({"service": "kube-system/kube-dns:53/UDP"}, {"ip": "10.96.0.10", "port": 53, "protocol": "dns"}),
        ({"service": "kube-system/kube-dns:53/TCP"}, {"ip": "10.96.0.10", "port": 53, "protocol": "dns-tcp"}),
        ({"service": "10.96.0.10", "port": "53"}, {"ip": "10.96.0.10", "port": 53, "protocol": "dns"}),
    ],
)
def test_a_service_port_is_probed_by_its_protocol(node: Node, form: dict[str, str], args: dict[str, Any]) -> None:
    assert resolve_service(node, form) == args
    validate_args("service-vip", args)  # what the agent accepts


def test_a_udp_port_that_owes_no_answer_is_refused_with_why(node: Node) -> None:
    with pytest.raises(RequestError, match=r"514 is UDP.*owe no answer"):
        resolve_service(node, {"service": "logging/syslog:514/UDP"})
