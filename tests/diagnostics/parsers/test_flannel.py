from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics.parsers.flannel import (
    network_of,
    parse_cni_conf,
    parse_containerd_sandbox_image,
    parse_net_conf,
    parse_source_vip,
    parse_subnet_env,
)
from tests.diagnostics.builders import fixture_text

PARSERS = (parse_subnet_env, parse_net_conf, parse_cni_conf, parse_source_vip, parse_containerd_sandbox_image)


class TestSubnetEnv:
    def test_it_reads_the_file_flanneld_writes(self) -> None:
        env = parse_subnet_env(fixture_text("checks/healthy/subnet.env"))

        assert env.network == "10.244.0.0/16"
        assert env.subnet == "10.244.2.1/24"
        assert env.subnet_network == "10.244.2.0/24"
        assert env.mtu == 1500 and env.ipmasq is True

    def test_it_reads_a_bom_and_blank_lines(self) -> None:
        assert parse_subnet_env("\ufeff\r\nFLANNEL_SUBNET=10.244.4.1/24\r\n").subnet == "10.244.4.1/24"

    def test_it_rejects_text_without_any_variable(self) -> None:
        with pytest.raises(ValueError, match=r"subnet\.env"):
            parse_subnet_env("<html>404</html>")


class TestNetConf:
    def test_it_reads_the_backend(self) -> None:
        conf = parse_net_conf('{"Network": "10.244.0.0/16", "Backend": {"Type": "VXLAN", "VNI": 4096, "Port": 4789}}')

        assert (conf.network, conf.backend_type, conf.vni, conf.port) == ("10.244.0.0/16", "vxlan", 4096, 4789)

    def test_it_rejects_a_json_array(self) -> None:
        with pytest.raises(ValueError, match="expected a JSON object"):
            parse_net_conf("[]")


class TestCniConf:
    def test_it_finds_the_exception_list_of_a_flannel_delegate(self) -> None:
        conf = parse_cni_conf(fixture_text("checks/healthy/cni.conf"))

        assert (conf.name, conf.type, conf.delegate_type) == ("cbr0", "flannel", "win-bridge")
        assert conf.exception_list == ("10.244.0.0/16", "10.96.0.0/12", "10.0.0.0/24")
        assert conf.exception_list_path == "delegate.policies[0].Value.ExceptionList"

    def test_it_reads_keys_in_any_case_as_rancher_writes_them(self) -> None:
        text = (
            '{"delegate": {"type": "win-bridge", "policies": [{"name": "EndpointPolicy", "value": '
            '{"ExceptionList": ["10.42.0.0/16", "10.43.0.0/16"], "Type": "OutBoundNAT"}}]}, "type": "flannel"}'
        )

        conf = parse_cni_conf(text)

        assert conf.exception_list == ("10.42.0.0/16", "10.43.0.0/16")
        assert conf.exception_list_path == "delegate.policies[0].value.ExceptionList"

    def test_it_reports_no_list_without_an_outbound_nat_policy(self) -> None:
        assert parse_cni_conf('{"name": "cbr0", "type": "win-bridge"}').exception_list is None


class TestSourceVip:
    def test_it_reads_the_ipam_result_and_the_request(self) -> None:
        assert parse_source_vip('{"ip4": {"ip": "10.244.5.13/24"}}').ip == "10.244.5.13"
        request = '{"ipam": {"type": "host-local", "ranges": [{"subnet": "10.244.5.0/24"}]}}'
        assert parse_source_vip(request).subnet == "10.244.5.0/24"
        assert parse_source_vip('{"ips": [{"address": "10.244.5.13/24"}]}').subnet == "10.244.5.0/24"


class TestContainerdConfig:
    def test_it_reads_the_v2_sandbox_image(self) -> None:
        text = fixture_text("checks/healthy/containerd-config.toml")
        assert parse_containerd_sandbox_image(text) == "registry.k8s.io/pause:3.9"

    def test_it_reads_the_v3_pinned_sandbox_image(self) -> None:
        text = (
            'version = 3\n[plugins."io.containerd.cri.v1.images".pinned_images]\n'
            '  sandbox = "registry.k8s.io/pause:3.10"\n'
        )
        assert parse_containerd_sandbox_image(text) == "registry.k8s.io/pause:3.10"

    def test_it_rejects_broken_toml(self) -> None:
        with pytest.raises(ValueError, match="not valid TOML"):
            parse_containerd_sandbox_image("[plugins\nsandbox_image = ")


def test_network_of_normalizes_or_gives_empty() -> None:
    assert network_of("10.244.4.1/24") == "10.244.4.0/24"
    assert network_of("nonsense") == ""


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PARSERS), st.text())
def test_every_parser_returns_or_raises_value_error_on_any_text(parser, text: str) -> None:
    with contextlib.suppress(ValueError):
        parser(text)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Network",
                    "Backend",
                    "Type",
                    "VNI",
                    "Port",
                    "delegate",
                    "policies",
                    "AdditionalArgs",
                    "Value",
                    "ExceptionList",
                    "Settings",
                    "Exceptions",
                    "plugins",
                    "name",
                    "type",
                    "ip4",
                    "ip",
                    "ips",
                    "address",
                    "ipam",
                    "subnet",
                    "ranges",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from((parse_net_conf, parse_cni_conf, parse_source_vip)), JSONISH)
def test_json_parsers_survive_any_shape_of_json(parser, value) -> None:
    with contextlib.suppress(ValueError):
        parser(json.dumps(value))
