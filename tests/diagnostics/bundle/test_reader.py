from __future__ import annotations

import gzip
import json
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnostics.bundle import BundleError, read_bundle
from diagnostics.bundle.reader import BundleResult
from diagnostics.snapshot import NodeSnapshot
from tests.diagnostics.bundle.builders import FIXTURES, make_targz, make_zip


def only(result: BundleResult) -> NodeSnapshot:
    assert len(result.snapshots) == 1, [s.node for s in result.snapshots]
    return result.snapshots[0]


def kinds(result: BundleResult) -> dict[str, str]:
    return {i["path"]: i["kind"] for i in result.inputs}


class TestCollectlogsFolder:
    """Microsoft's collectlogs.ps1 output as it lands on disk: UTF-16 LE, CRLF, table then JSON."""

    def test_it_reads_every_powershell_output_into_the_snapshot(self) -> None:
        snap = only(read_bundle(FIXTURES / "collectlogs"))
        assert snap.hns_networks is not None
        assert [n.name for n in snap.hns_networks.value] == ["cbr0", "nat"]
        assert snap.hns_networks.value[0].management_ip == "10.0.1.14"
        assert snap.hns_endpoints is not None and len(snap.hns_endpoints.value) == 2
        assert snap.hns_policies is not None and snap.hns_policies.value[0].vips == ("10.96.0.1",)
        assert snap.os is not None and snap.os.value.build == 17763
        assert snap.hotfixes is not None and {h.id for h in snap.hotfixes.value} == {"KB5039217", "KB5039335"}
        assert snap.adapters is not None and "vEthernet (Ethernet)" in {a.name for a in snap.adapters.value}
        assert snap.services is not None and snap.service("kubeproxy") is not None
        assert snap.dynamic_ports is not None and snap.dynamic_ports.value.start == 49152

    def test_every_fact_names_its_file_inside_the_bundle(self) -> None:
        snap = only(read_bundle(FIXTURES / "collectlogs"))
        assert snap.hns_networks is not None and snap.hns_networks.source == "k3vj2m1q.yxd/network.txt"
        assert snap.os is not None and snap.os.source == "k3vj2m1q.yxd/winver.txt"

    def test_the_node_is_named_after_the_host_name_in_ipconfig(self) -> None:
        assert only(read_bundle(FIXTURES / "collectlogs")).node == "win-node-01"

    def test_files_it_does_not_read_are_listed_with_a_reason(self) -> None:
        result = read_bundle(FIXTURES / "collectlogs")
        skipped = {s["path"]: s["reason"] for s in result.skipped}
        assert "binary" in skipped["k3vj2m1q.yxd/winevt/System.evtx"]
        assert "k3vj2m1q.yxd/routes.txt" in skipped
        assert kinds(result)["k3vj2m1q.yxd/network.txt"] == "hns-networks"

    def test_a_zip_and_a_tarball_of_it_read_the_same(self, tmp_path: Path) -> None:
        folder = FIXTURES / "collectlogs"
        expected = only(read_bundle(folder))
        for archive in (make_zip(folder, tmp_path / "c.zip"), make_targz(folder, tmp_path / "c.tar.gz")):
            assert only(read_bundle(archive)) == expected


class TestAksZip:
    """collect-windows-logs.ps1: <computername>-<yyyyMMdd-hhmmss>_logs.zip, names with backslashes."""

    @pytest.fixture
    def result(self, tmp_path: Path) -> BundleResult:
        path = make_zip(FIXTURES / "aks", tmp_path / "AKSWIN000000-20240611-093015_logs.zip", backslashes=True)
        return read_bundle(path)

    def test_the_node_is_named_after_the_zip(self, result: BundleResult) -> None:
        assert only(result).node == "akswin000000"

    def test_logs_are_scanned_and_hits_cite_the_member_and_line(self, result: BundleResult) -> None:
        snap = only(result)
        hits = snap.hits("image.os-version-mismatch")
        assert {(h.source, h.line) for h in hits} >= {("kubelet.log", 5), ("containerd.log", 3)}
        assert snap.logs_seen == {"kubelet": "kubelet.log", "kube-proxy": "kubeproxy.log", "runtime": "containerd.log"}

    def test_cni_runtime_config_and_cluster_cidrs_are_read(self, result: BundleResult) -> None:
        snap = only(result)
        cni = snap.file("cni.conf")
        assert cni is not None and '"azure-vnet"' in (cni.content or "")
        toml = snap.file("containerd-config.toml")
        assert toml is not None and toml.path == r"C:\Program Files\containerd\config.toml"
        assert snap.cluster_view is not None
        assert (snap.cluster_view.cluster_cidr, snap.cluster_view.service_cidr) == ("10.244.0.0/16", "10.0.0.0/16")
        assert snap.images is not None and "mcr.microsoft.com/oss/kubernetes/pause" in {
            i.repository for i in snap.images.value
        }

    def test_the_v2_hns_network_in_the_zip_is_read(self, result: BundleResult) -> None:
        snap = only(result)
        assert snap.hns_networks is not None and snap.hns_networks.value[0].name == "azure"


class TestTroubleshootBundle:
    """troubleshoot.sh: cluster-resources/ API objects only, lists as client-go marshals them."""

    @pytest.fixture
    def result(self) -> BundleResult:
        return read_bundle(FIXTURES / "troubleshoot")

    def test_it_gives_one_snapshot_per_windows_node(self, result: BundleResult) -> None:
        assert [s.node for s in result.snapshots] == ["win-node-01", "win-node-03"]

    def test_each_node_gets_its_node_object_pods_and_events(self, result: BundleResult) -> None:
        first, third = result.snapshots
        assert first.node_object is not None and first.pod_cidr() is not None
        assert first.pod_cidr().value == "10.244.1.0/24"  # type: ignore[union-attr]
        assert first.pods is not None and [p["metadata"]["name"] for p in first.pods.value] == [
            "win-webserver-6c7d8f9b5-x2kqp"
        ]
        assert first.events is not None and [e["reason"] for e in first.events.value] == ["FailedCreatePodSandBox"]
        assert third.events is not None and [e["reason"] for e in third.events.value] == ["NodeNotReady"]

    def test_items_without_a_kind_take_it_from_the_folder(self, result: BundleResult) -> None:
        assert kinds(result)["support-bundle-2024-06-11T09_30_15/cluster-resources/pods/default.json"] == "pod"

    def test_controllers_are_checked_once_and_services_form_the_cluster_view(self, result: BundleResult) -> None:
        first, third = result.snapshots
        assert [w["metadata"]["name"] for w in first.workloads] == ["win-webserver"]
        assert third.workloads == ()
        assert first.cluster_view is not None and first.cluster_view.server_version == "v1.29.4"
        assert [s["metadata"]["name"] for s in first.cluster_view.services] == ["win-webserver"]
        assert [p.node for p in first.cluster_view.peers] == ["win-node-03"]
        assert first.cluster_view.peers[0].facts["runtime_version"] == "containerd://1.7.15"

    def test_node_selects_one_node(self) -> None:
        result = read_bundle(FIXTURES / "troubleshoot", node="win-node-03")
        assert [s.node for s in result.snapshots] == ["win-node-03"]

    def test_an_unknown_node_is_a_bundle_error_naming_the_nodes_found(self) -> None:
        with pytest.raises(
            BundleError, match=r"'win-node-99' is not in this bundle \(nodes found: win-node-01, win-node-03\)"
        ):
            read_bundle(FIXTURES / "troubleshoot", node="win-node-99")


class TestExportedBundle:
    @pytest.fixture
    def result(self, tmp_path: Path) -> BundleResult:
        return read_bundle(make_targz(FIXTURES / "exported", tmp_path / "win-node-02-20240611T093015Z.tar.gz"))

    def test_the_manifest_names_the_node_and_the_collection(self, result: BundleResult) -> None:
        snap = only(result)
        assert (snap.node, snap.cluster, snap.collected_at, snap.agent_version) == (
            "win-node-02",
            "prod-eu",
            "2024-06-11T09:30:15Z",
            "0.3.0",
        )

    def test_files_carry_their_windows_path_and_an_absent_file_is_a_fact(self, result: BundleResult) -> None:
        snap = only(result)
        subnet = snap.file("subnet.env")
        assert subnet is not None and subnet.path == r"C:\run\flannel\subnet.env"
        assert subnet.source == "win-node-02-20240611T093015Z/files/subnet.env"
        assert "FLANNEL_SUBNET=10.244.2.1/24" in (subnet.content or "")
        cni = snap.file("cni.conf")
        assert cni is not None and cni.path == r"C:\etc\cni\net.d\10-flannel.conf"
        source_vip = snap.file("SourceVip.json")
        assert source_vip is not None and not source_vip.exists

    def test_an_empty_event_list_means_no_events_rather_than_unknown(self, result: BundleResult) -> None:
        snap = only(result)
        assert snap.events is not None and snap.events.value == ()

    def test_logs_and_node_facts_are_read(self, result: BundleResult) -> None:
        snap = only(result)
        assert [h.line for h in snap.hits("flannel.waiting-for-network")] == [3, 40]
        assert snap.component_flags("kube-proxy") is not None
        assert snap.component_flags("kube-proxy").value["hostname-override"] == "win-node-02"  # type: ignore[union-attr]
        assert snap.os is not None and snap.os.value.ubr == 5936
        assert snap.cluster_view is not None and snap.cluster_view.server_version == "v1.29.4"

    def test_earlier_findings_are_not_trusted(self, result: BundleResult) -> None:
        assert any(s["path"].endswith("findings.json") for s in result.skipped)


class TestGrouping:
    def test_a_folder_per_node_gives_a_snapshot_per_node(self, tmp_path: Path) -> None:
        shutil.copytree(FIXTURES / "collectlogs" / "k3vj2m1q.yxd", tmp_path / "bundle" / "win-a")
        shutil.copytree(FIXTURES / "aks", tmp_path / "bundle" / "win-b")
        (tmp_path / "bundle" / "win-b" / "ip.txt").unlink(missing_ok=True)
        result = read_bundle(tmp_path / "bundle")
        assert [s.node for s in result.snapshots] == ["win-b", "win-node-01"]
        by_node = {s.node: s for s in result.snapshots}
        assert by_node["win-b"].hns_networks is not None
        assert by_node["win-b"].hns_networks.source == "win-b/network.txt"

    def test_a_hand_made_folder_with_no_name_is_node_unknown(self, tmp_path: Path) -> None:
        (tmp_path / "kubelet.log").write_text(
            "E0611 09:14:22.918300    4424 kuberuntime_manager.go:1] wincat not found\n"
        )
        assert only(read_bundle(tmp_path)).node == "unknown"

    def test_node_names_an_unnamed_bundle(self, tmp_path: Path) -> None:
        (tmp_path / "kubelet.log").write_text("I0611 09:12:01.532114    4424 server.go:467] started\n")
        assert only(read_bundle(tmp_path, node="win-x")).node == "win-x"

    def test_the_only_node_object_names_the_node_side_files(self, tmp_path: Path) -> None:
        shutil.copy(FIXTURES / "exported/win-node-02-20240611T093015Z/cluster/node.json", tmp_path / "node.json")
        shutil.copy(FIXTURES / "exported/win-node-02-20240611T093015Z/logs/flanneld.log", tmp_path / "flanneld.log")
        snap = only(read_bundle(tmp_path))
        assert snap.node == "win-node-02"
        assert snap.node_object is not None and snap.hits("flannel.waiting-for-network")

    def test_a_bundle_of_bare_manifests_is_checked_as_workloads(self, tmp_path: Path) -> None:
        (tmp_path / "app.yaml").write_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n"
            "      containers:\n      - name: web\n        image: mcr.microsoft.com/windows/nanoserver:ltsc2022\n"
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n"
        )
        snap = only(read_bundle(tmp_path))
        assert snap.node == "unknown"
        assert [w["kind"] for w in snap.workloads] == ["Deployment"]
        assert snap.cluster_view is not None and len(snap.cluster_view.services) == 1


class TestBadInput:
    def test_a_folder_with_nothing_recognized_is_not_a_bundle(self, tmp_path: Path) -> None:
        (tmp_path / "notes.txt").write_text("remember to buy milk\n")
        with pytest.raises(BundleError, match=r"not a bundle: .*notes.txt: not a file we know"):
            read_bundle(tmp_path)

    def test_invalid_yaml_is_skipped_with_the_reason(self, tmp_path: Path) -> None:
        (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: [unclosed\n")
        (tmp_path / "kubelet.log").write_text("I0611 09:12:01.532114    4424 server.go:467] started\n")
        result = read_bundle(tmp_path)
        assert "invalid YAML" in {s["path"]: s["reason"] for s in result.skipped}["bad.yaml"]

    def test_a_yaml_alias_bomb_is_refused(self, tmp_path: Path) -> None:
        lines = ["apiVersion: v1", "kind: ConfigMap", "a: &a [x, x, x, x, x, x, x, x, x]"]
        lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(20)]
        (tmp_path / "lol.yaml").write_text("\n".join(lines) + "\n")
        (tmp_path / "kubelet.log").write_text("I0611 09:12:01.532114    4424 server.go:467] started\n")
        result = read_bundle(tmp_path)
        assert "YAML aliases" in {s["path"]: s["reason"] for s in result.skipped}["lol.yaml"]

    def test_unreadable_powershell_output_is_skipped_not_fatal(self, tmp_path: Path) -> None:
        (tmp_path / "network.txt").write_text('[{"Name": "cbr0", "Type": ')
        (tmp_path / "kubelet.log").write_text("I0611 09:12:01.532114    4424 server.go:467] started\n")
        result = read_bundle(tmp_path)
        assert "network.txt" in {s["path"] for s in result.skipped}
        assert only(result).hns_networks is None


class TestStreaming:
    def test_a_large_log_in_a_zip_is_scanned_in_constant_memory(self, tmp_path: Path) -> None:
        needle = b"E0611 09:14:22.918300    4424 portforward.go:1] unable to do port forwarding: wincat not found\r\n"
        path = tmp_path / "big.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("kubelet.log", "w") as member:
            for block in range(200):  # ~40 MB of log, varied as real logs are (a bomb check would stop a flat one)
                member.write(
                    "".join(
                        f"I0611 09:{block % 60:02d}:{i % 60:02d}.{(block * 7919 + i * 104729) % 999999:06d}    4424 "
                        f'kubelet.go:2426] "SyncLoop (PLEG): event for pod" '
                        f'pod="default/web-{(i * 2654435761) % 99991:x}"'
                        f" event={{ID:{block * 2000 + i:x} Type:ContainerStarted}}\r\n"
                        for i in range(2000)
                    ).encode()
                )
            member.write(needle)
        tracemalloc.start()
        try:
            result = read_bundle(path)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        hits = only(result).hits("pause.wincat-missing")
        assert [h.line for h in hits] == [400_001]
        assert peak < 24 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_a_node_report_in_a_bundle_is_read_as_the_dashboard_reads_it(tmp_path: Path) -> None:
    report = {
        "format": "node-report/v1",
        "cluster": "prod-eu",
        "node": "win-node-07",
        "agent_version": "0.3.0",
        "collected_at": "2024-06-11T09:30:15Z",
        "files": {"subnet.env": {"path": "C:\\run\\flannel\\subnet.env", "exists": False}},
        "logs": {
            "flanneld": {
                "path": "C:\\k\\flanneld.log",
                "text": "I0611 main.go:403] Waiting for the Network to be created\n" * 3,
            }
        },
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    snap = only(read_bundle(tmp_path))
    assert (snap.node, snap.cluster) == ("win-node-07", "prod-eu")
    subnet = snap.file("subnet.env")
    assert subnet is not None and not subnet.exists
    assert snap.hits("flannel.waiting-for-network")


def test_a_lone_gzipped_log_is_read_as_the_log_inside(tmp_path: Path) -> None:
    text = (FIXTURES / "aks" / "kubelet.log").read_bytes()
    path = tmp_path / "kubelet.log.gz"
    path.write_bytes(gzip.compress(text))
    result = read_bundle(path)
    assert result.inputs == [{"path": "kubelet.log", "kind": "kubelet-log", "bytes": len(text)}]
    assert [h.line for h in only(result).hits("image.os-version-mismatch")] == [5, 6]


def test_a_cluster_without_windows_nodes_checks_its_workloads_once(tmp_path: Path) -> None:
    nodes = json.loads(
        (FIXTURES / "troubleshoot/support-bundle-2024-06-11T09_30_15/cluster-resources/nodes.json").read_text()
    )
    nodes["items"] = [n for n in nodes["items"] if n["metadata"]["name"] == "ctrl-01"]
    (tmp_path / "nodes.json").write_text(json.dumps(nodes))
    shutil.copytree(
        FIXTURES / "troubleshoot/support-bundle-2024-06-11T09_30_15/cluster-resources/deployments",
        tmp_path / "deployments",
    )
    snap = only(read_bundle(tmp_path))
    assert snap.node == "unknown"
    assert [w["metadata"]["name"] for w in snap.workloads] == ["win-webserver"]


def test_raw_probe_outputs_of_an_export_are_parsed_and_win_over_loose_files(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "exported", tmp_path / "b")
    node_dir = tmp_path / "b" / "win-node-02-20240611T093015Z" / "node"
    networks = (FIXTURES / "collectlogs" / "k3vj2m1q.yxd" / "network.txt").read_bytes()
    output = networks[2:].decode("utf-16-le").split("\r\n\r\n\r\n", 1)[1]
    (node_dir / "probes.json").write_text(
        json.dumps({"hns.networks": {"command": "Get-HnsNetwork | ConvertTo-Json -Depth 8", "output": output}})
    )
    snap = only(read_bundle(tmp_path / "b"))
    assert snap.hns_networks is not None
    assert snap.hns_networks.source == "win-node-02-20240611T093015Z/node/probes.json#hns.networks"
    assert [n.name for n in snap.hns_networks.value] == ["cbr0", "nat"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    members=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "network.txt",
                    "kubelet.log",
                    "ip.txt",
                    "pods.json",
                    "app.yaml",
                    "manifest.json",
                    "x.bin",
                    "winver.txt",
                ]
            ),
            st.binary(max_size=600) | st.text(max_size=600).map(str.encode),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_content_under_any_known_name_gives_a_result_or_a_bundle_error(
    tmp_path: Path, members: list[tuple[str, bytes]]
) -> None:
    path = tmp_path / "fuzz.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, (name, data) in enumerate(members):
            zf.writestr(f"d{i}/{name}", data)
    try:
        result = read_bundle(path)
    except BundleError:
        return
    assert result.snapshots


def test_deeply_nested_or_oddly_typed_objects_are_skipped_or_ignored(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text(
        '{"apiVersion": "v1", "kind": "Pod", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    (tmp_path / "deep.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: " + "[" * 50_000 + "\n")
    odd = {"kind": "PodList", "apiVersion": "v1", "items": [{"metadata": {"name": "p"}, "spec": ["not", "a", "dict"]}]}
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    (tmp_path / "manifest.json").write_text('{"format": "windows-node-bundle/v1", "node": "win-9", "files": [1, "x"]}')
    result = read_bundle(tmp_path)
    skipped = {s["path"]: s["reason"] for s in result.skipped}
    assert "nested too deeply" in skipped["deep.json"]
    assert "deep.yaml" in skipped
    snap = only(result)
    assert snap.node == "win-9"
    assert [w["metadata"]["name"] for w in snap.workloads] == ["p"]
