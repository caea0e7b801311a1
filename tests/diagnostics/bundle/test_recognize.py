from __future__ import annotations

import json

import pytest

from diagnostics.bundle.recognize import recognize, sniff_text
from tests.diagnostics.bundle.builders import FIXTURES

COLLECTLOGS = FIXTURES / "collectlogs" / "k3vj2m1q.yxd"


def utf16(text: str) -> bytes:
    return b"\xff\xfe" + text.replace("\n", "\r\n").encode("utf-16-le")


class TestByName:
    @pytest.mark.parametrize(
        ("path", "kind"),
        [
            ("kubelet.log", "kubelet-log"),
            ("c/k/KUBELET.ERR.LOG", "kubelet-log"),
            ("kubelet.txt", "kubelet-log"),
            ("kubelet.log.1", "kubelet-log"),
            ("kubeproxy.err.log", "kube-proxy-log"),
            ("logs/kube-proxy.log", "kube-proxy-log"),
            ("flanneld.log", "flanneld-log"),
            ("containerd.err.log", "runtime-log"),
            ("docker.log", "runtime-log"),
            ("start-kubelet.log", "start-script-log"),
            ("start.txt", "start-script-log"),
            ("describe-pod.txt", "describe"),
            ("transcript-2024.txt", "transcript"),
            ("debug/network.txt", "hns-networks"),
            ("Get-HnsNetwork.json", "hns-networks"),
            ("node/hnsnetwork.json", "hns-networks"),
            ("endpoint.txt", "hns-endpoints"),
            ("policy.txt", "hns-policies"),
            ("netadapter.txt", "net-adapters"),
            ("ip.txt", "ip-config"),
            ("ipconfig-all.txt", "ip-config"),
            ("windowsServices.txt", "services"),
            ("winver.txt", "winver"),
            ("hotfix.json", "hotfixes"),
            ("excludedportrange.txt", "excluded-ports"),
            ("dynamicportrange.txt", "dynamic-ports"),
            ("20240611-093015-cri-containerd-images.txt", "images"),
            ("files/subnet.env", "subnet-env"),
            ("net-conf.json", "net-conf"),
            ("10-azure.conflist", "cni-config"),
            ("etc/cni/net.d/cni.conf", "cni-config"),
            ("SourceVip.json", "source-vip"),
            ("SourceVipRequest.json", "source-vip-request"),
            ("kubeclusterconfig.json", "aks-cluster-config"),
        ],
    )
    def test_it_knows_files_by_name_in_any_case_and_folder(self, path: str, kind: str) -> None:
        assert recognize(path, b"some text\r\n").kind == kind

    @pytest.mark.parametrize(
        ("path", "reason"),
        [
            ("winevt/System.evtx", "event log"),
            ("WER-20240611.zip", "nested archive"),
            ("networkdetailed.txt", "network.txt is read instead"),
            ("__MACOSX/._kubelet.log", "macOS"),
            ("ISSUE.md", "issue text"),
        ],
    )
    def test_it_says_why_it_skips_known_files(self, path: str, reason: str) -> None:
        found = recognize(path, b"PK\x03\x04" if path.endswith(".zip") else b"text")
        assert found.kind is None
        assert reason in found.reason

    def test_a_binary_file_under_a_log_name_is_skipped(self) -> None:
        assert recognize("kubelet.log", b"\x00\x01\x02\x03" * 100).reason.startswith("binary")


class TestByContent:
    def test_a_renamed_collectlogs_network_file_is_still_hns_networks(self) -> None:
        head = (COLLECTLOGS / "network.txt").read_bytes()
        assert recognize("attachment-1.txt", head).kind == "hns-networks"

    def test_endpoints_and_policies_are_told_apart_by_their_keys(self) -> None:
        assert recognize("a.txt", (COLLECTLOGS / "endpoint.txt").read_bytes()).kind == "hns-endpoints"
        assert recognize("b.txt", (COLLECTLOGS / "policy.txt").read_bytes()).kind == "hns-policies"

    def test_ipconfig_output_is_recognized(self) -> None:
        assert recognize("out.txt", (COLLECTLOGS / "ip.txt").read_bytes()).kind == "ip-config"

    def test_kubernetes_yaml_is_recognized(self) -> None:
        text = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
        assert recognize("deploy.yaml", text).kind == "kubernetes-objects"

    def test_kubernetes_json_list_without_kind_is_recognized(self) -> None:
        head = json.dumps({"metadata": {}, "items": [{"metadata": {"name": "a"}}]}).encode()
        assert recognize("cluster-resources/pods/default.json", head).kind == "kubernetes-objects"

    def test_kubectl_describe_output_goes_to_the_log_analyzer(self) -> None:
        text = (
            "Name:             win-webserver-6c7d8f9b5-x2kqp\n"
            "Namespace:        default\n"
            "Node:             win-node-01/10.0.1.14\n"
            "Events:\n"
            "  Type     Reason                  Age   From     Message\n"
            "  ----     ------                  ----  ----     -------\n"
        )
        assert recognize("pod.txt", text.encode()).kind == "describe"

    def test_a_powershell_transcript_goes_to_the_log_analyzer(self) -> None:
        text = (
            "PS C:\\Users\\azureuser> ping 8.8.8.8\r\n\r\n"
            "Pinging 8.8.8.8 with 32 bytes of data:\r\nRequest timed out.\r\n"
        )
        assert recognize("notes.txt", utf16(text)).kind == "transcript"

    def test_a_manifest_json_that_is_not_ours_is_not_taken_for_one(self) -> None:
        head = json.dumps({"name": "my-app", "version": "1.0.0"}).encode()
        assert recognize("manifest.json", head).kind != "bundle-manifest"

    def test_unknown_text_is_skipped_with_a_reason(self) -> None:
        found = recognize("notes.txt", b"remember to buy milk\n")
        assert not found
        assert found.reason == "not a file we know (by name or content)"


class TestSniffText:
    def test_it_decodes_utf16_with_a_bom_even_when_cut_mid_character(self) -> None:
        data = utf16("Windows IP Configuration")[:-1]
        assert (sniff_text(data) or "").startswith("Windows IP Config")

    def test_it_calls_nul_bytes_binary(self) -> None:
        assert sniff_text(b"MZ\x90\x00\x03\x00\x00\x00") is None
