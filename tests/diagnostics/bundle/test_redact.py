"""Redaction: every secret rule on real-looking text, and the consistent address / host mappings."""

from __future__ import annotations

import io
import ipaddress
import json
from pathlib import Path

import pytest

from diagnostics.bundle.redact import MARK, RedactOptions, Redactor

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "redaction"

# (fixture, secrets that must not survive, rules that must have fired)
CASES = [
    (
        "kubeconfig.yaml",
        [
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMv",
            "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlF",
            "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik5uM2RfQnRQdkh5dC1kU2JrUVZ6WTZ4T0ZaUkxpX0Z2VDZ3In0",
            "9f8e7d6c5b4a39281706",
            "U2lnbmF0dXJlT2ZUaGVJZFRva2Vu",
            "1//0gRefreshTokenValue-42",
            "Tr0ub4dor&3",
        ],
        {"kubeconfig-credentials"},
    ),
    ("sc-qc-kube-proxy.txt", ["7c3f9a1e2b4d6f80a1c3e5f7"], {"bearer-token"}),
    (
        "env-set.txt",
        [
            "q9Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jh0GfEdCbA",
            "Sup3r-S3cret!",
            "Pr0xyPa55",
            "ghp_R3gistryT0kenValue0123456789",
            "Zk3xP0q9LmN8vB7cX6zA5sD4fG3hJ2kL1",
        ],
        {"connection-string", "secret-value"},
    ),
    ("cni-calico.conf", ["Q2FsaWNvU2lnbmF0dXJlRm9yVGVzdHM", "eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6"], {"jwt"}),
    (
        "kubelet-secrets.log",
        [
            "kUb3l3tB3ar3rT0k3nV4lu3Xyz09",
            "xY9zW8vU7tS6rQ5pO4nM3lK2jI1hG0fE",
            "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04f",
        ],
        {"bearer-token", "sas-token", "private-key"},
    ),
]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(("name", "secrets", "rules"), CASES, ids=[c[0] for c in CASES])
def test_it_leaves_no_secret_of_real_files(name: str, secrets: list[str], rules: set[str]) -> None:
    redactor = Redactor()
    out = redactor.text(fixture(name))
    for secret in secrets:
        assert secret not in out
    assert rules <= set(redactor.counts)
    assert MARK in out


def test_it_keeps_what_the_checks_read_in_a_service_command_line() -> None:
    out = Redactor().text(fixture("sc-qc-kube-proxy.txt"))
    assert "--hostname-override=win-node-01" in out
    assert "--token=REDACTED" in out
    assert "--cluster-cidr=10.244.0.0/16" in out
    assert out.count("\r\n") == fixture("sc-qc-kube-proxy.txt").count("\r\n")


def test_it_keeps_json_valid_and_its_shape() -> None:
    out = Redactor().text(fixture("cni-calico.conf"))
    conf = json.loads(out)
    assert conf["policy"]["k8s_auth_token"] == MARK
    assert conf["policies"][0]["Value"]["ExceptionList"] == ["10.96.0.0/12", "10.244.0.0/16"]
    assert conf["etcd_key_file"] == ""  # a path setting, and empty: nothing to hide


def test_it_keeps_a_kubeconfig_valid_yaml() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load(Redactor().text(fixture("kubeconfig.yaml")))
    users = {u["name"]: u["user"] for u in config["users"]}
    assert users["system:node:win-node-01"]["client-key-data"] == MARK
    assert users["basic"]["password"] == MARK
    assert users["basic"]["username"] == "admin"
    assert config["clusters"][0]["cluster"]["server"] == "https://10.0.0.4:6443"


def test_it_redacts_each_agent_token_and_jwt_anywhere() -> None:
    redactor = Redactor()
    out = redactor.text(
        "sent wnd_Zk3xP0q9LmN8vB7cX6zA5sD4fG3hJ2kL1 and eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIz"
    )
    assert out == "sent wnd_REDACTED and REDACTED"
    assert redactor.counts == {"agent-token": 1, "jwt": 1}


def test_it_redacts_secrets_of_env_entries_in_json_and_yaml() -> None:
    redactor = Redactor()
    as_json = redactor.text('{"env": [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "MODE", "value": "fast"}]}')
    as_yaml = redactor.text(
        "    env:\n    - name: API_KEY\n      value: abcd1234\n    - name: MODE\n      value: fast\n"
    )
    assert "hunter2" not in as_json and '"fast"' in as_json
    assert "abcd1234" not in as_yaml and "value: fast" in as_yaml


def test_it_ignores_names_that_only_point_to_a_secret() -> None:
    text = "--token-file=C:\\k\\token --password-file=C:\\k\\pw secretName: registry-creds serviceAccountToken: x"
    redactor = Redactor()
    assert redactor.text(text) == text
    assert not redactor.counts


def test_it_does_not_take_the_next_key_of_a_go_struct_dump_for_a_password() -> None:
    line = "CLI flags config: {etcdUsername: etcdPassword: version:false kubeSubnetMgr:true}"
    assert Redactor().text(line) == line


@pytest.mark.parametrize("lines", [4, 40])
def test_it_redacts_a_pem_block_cut_across_stream_blocks(lines: int) -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(["A" * 64] * lines) + "\n-----END RSA PRIVATE KEY-----\n"
    text = "x" * 1000 + "\n" + key + "after\n"

    out = "".join(Redactor().stream(io.StringIO(text), block_chars=256))
    assert "AAAA" not in out
    assert out.startswith("x" * 1000 + "\n-----BEGIN RSA PRIVATE KEY-----")
    assert out.endswith("-----\nafter\n")


def test_it_does_nothing_when_told_not_to() -> None:
    text = fixture("env-set.txt")
    redactor = Redactor(RedactOptions.none())
    assert redactor.text(text) == text


# -- consistent mappings -----------------------------------------------------------------


def mapped(text: str, **options: object) -> tuple[str, Redactor]:
    redactor = Redactor(RedactOptions(ips=True, key=b"fixed-key", **options))  # type: ignore[arg-type]
    return redactor.text(text), redactor


def test_it_maps_an_address_the_same_way_everywhere() -> None:
    redactor = Redactor(RedactOptions(ips=True, key=b"k"))
    first = redactor.text("ManagementIP 10.0.1.11")
    second = redactor.text('"InternalIP": "10.0.1.11"')
    address = first.split()[-1]
    assert address != "10.0.1.11"
    assert address in second


def test_it_keeps_subnets_subnets_and_addresses_inside_them() -> None:
    out, _ = mapped("FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.3.1/24 pod 10.244.3.17 other 10.245.0.9")
    network, subnet, pod, other = (w.split("=")[-1] for w in out.split()[::1] if any(c.isdigit() for c in w))
    net = ipaddress.ip_network(network)
    assert net.prefixlen == 16 and net.network_address.packed[0] == 10
    assert ipaddress.ip_interface(subnet).network.subnet_of(net)
    assert ipaddress.ip_address(pod) in ipaddress.ip_interface(subnet).network
    assert ipaddress.ip_address(other) not in net
    assert subnet.endswith(".1/24")  # the host part (gateway .1) is kept


def test_it_keeps_special_addresses_netmasks_and_versions() -> None:
    text = "lo 127.0.0.1 any 0.0.0.0 apipa 169.254.10.2 mask 255.255.255.0 build 10.0.17763.1577 v6 ::1 fe80::1"
    out, redactor = mapped(text)
    assert out == text
    assert not redactor.counts


def test_it_maps_ipv6_and_macs_keeping_their_form() -> None:
    out, redactor = mapped("pod fd00:10:244:3::11/64 mac 00-15-5D-A1-B2-C3 and 00:15:5d:a1:b2:c3")
    words = out.split()
    assert ipaddress.ip_interface(words[1]).network.prefixlen == 64 and words[1] != "fd00:10:244:3::11/64"
    assert words[3].startswith("00-15-5D-") and words[3] != "00-15-5D-A1-B2-C3"
    assert words[5] == words[3].lower().replace("-", ":")
    assert redactor.counts["mac-address"] == 2


def test_it_maps_learned_host_and_domain_names_consistently() -> None:
    redactor = Redactor(RedactOptions(hosts=True, key=b"k"))
    redactor.learn_hosts(["win-node-01", "win-node-01.corp.example.org", "corp.example.org"])
    out = redactor.text(
        "Host Name . . . : WIN-NODE-01\r\nnode=win-node-01 fqdn win-node-01.corp.example.org "
        "image mcr.microsoft.com/oss/kubernetes/pause:3.9"
    )
    host = redactor.host("win-node-01")
    assert host.startswith("host-")
    assert "win-node-01" not in out.lower() and "corp.example.org" not in out
    assert f"node={host}" in out and f"fqdn {host}.domain-" in out
    assert "mcr.microsoft.com/oss/kubernetes/pause:3.9" in out
