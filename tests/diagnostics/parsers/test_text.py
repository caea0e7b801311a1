# ruff: noqa: E501 - kubectl prints these tables this wide; they are kept as printed
from __future__ import annotations

from diagnostics.parsers.text import read_probes, read_text

WIDE = """\
$ kubectl get nodes -o wide
NAME       STATUS     ROLES           AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE                         KERNEL-VERSION     CONTAINER-RUNTIME
win-a      NotReady   <none>          12m   v1.29.3   10.1.0.7      <none>        Windows Server 2022 Datacenter   10.0.20348.2340    containerd://1.7.13
cp-1       Ready      control-plane   14m   v1.30.1   10.0.0.4      <none>        Ubuntu 22.04.4 LTS               5.15.0-1057-azure  containerd://1.3.4
lnx-1      NotReady   <none>          12m   v1.30.1   10.1.0.6      <none>        Ubuntu 22.04.4 LTS               5.15.0-1057-azure  containerd://1.3.4
"""


class TestKubectlGetNodes:
    def test_only_windows_rows_become_nodes_and_the_control_plane_gives_the_server_version(self) -> None:
        facts = read_text(WIDE)

        [node] = facts.nodes
        assert node["metadata"]["name"] == "win-a"
        assert node["status"]["conditions"][0]["status"] == "False"
        info = node["status"]["nodeInfo"]
        assert info["kernelVersion"] == "10.0.20348.2340"
        assert info["containerRuntimeVersion"] == "containerd://1.7.13"
        assert info["kubeletVersion"] == "v1.29.3"
        assert facts.server_version == "v1.30.1"

    def test_rows_pasted_without_their_header_are_read_by_their_values(self) -> None:
        rows = "\n".join(WIDE.splitlines()[2:])

        [node] = read_text(rows).nodes

        assert node["metadata"]["name"] == "win-a"
        assert node["status"]["nodeInfo"]["osImage"] == "Windows Server 2022 Datacenter"

    def test_a_plain_table_counts_a_worker_only_in_text_about_windows(self) -> None:
        table = "NAME     STATUS     ROLES    AGE   VERSION\nmaster   Ready      master   5d    v1.15.1\nnode-7   NotReady   <none>   18h   v1.15.0\n"

        assert read_text(table).nodes == []
        [node] = read_text("start.ps1 fails on Windows Server 2019\n" + table).nodes
        assert node["metadata"]["name"] == "node-7"

    def test_a_table_retyped_in_markdown_is_read_by_its_pipes(self) -> None:
        table = (
            "|NAME      |  STATUS  | ROLES   |  AGE  |  VERSION |\n"
            "|--------- | ---------|-------- | ------|--------- |\n"
            "|cp-1      |  Ready   | master  |  44d  |  v1.28.2 |\n"
            "|win-7     |  NotReady|  <none> |  23d  |  v1.24.0 |\n"
        )

        facts = read_text(table)

        [node] = facts.nodes
        assert node["metadata"]["name"] == "win-7"
        assert node["status"]["conditions"][0]["status"] == "False"
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.24.0"
        assert facts.server_version == "v1.28.2"


class TestDescribeNode:
    def test_it_reads_the_ready_condition_system_info_and_memory(self) -> None:
        text = """\
Name:               win-b
Roles:              <none>
Labels:             kubernetes.io/os=windows
Taints:             <none>
Conditions:
  Type             Status  LastHeartbeatTime                 LastTransitionTime                Reason                       Message
  ----             ------  -----------------                 ------------------                ------                       -------
  Ready            False   Thu, 08 Feb 2024 11:55:40 +0100   Thu, 08 Feb 2024 11:55:40 +0100   KubeletNotReady              container runtime network not ready
Capacity:
  cpu:                4
  memory:             16776692Ki
Allocatable:
  cpu:                4
  memory:             16674292Ki
System Info:
  Kernel Version:             10.0.17763.5458
  OS Image:                   Windows Server 2019 Datacenter
  Container Runtime Version:  containerd://1.6.21
  Kubelet Version:            v1.27.9
"""
        [node] = read_text(text).nodes

        assert node["status"]["conditions"][0]["status"] == "False"
        assert "network not ready" in node["status"]["conditions"][0]["message"]
        assert node["status"]["capacity"]["memory"] == "16776692Ki"
        assert node["status"]["allocatable"]["memory"] == "16674292Ki"
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.27.9"

    def test_the_not_ready_taint_stands_for_a_missing_conditions_row(self) -> None:
        text = "Name:    win-c\nLabels:  kubernetes.io/os=windows\nTaints:  node.kubernetes.io/not-ready:NoSchedule\nConditions:\n"

        [node] = read_text(text).nodes

        assert node["status"]["conditions"][0]["status"] == "False"

    def test_the_last_node_event_decides_readiness(self) -> None:
        text = (
            "Normal   NodeReady     36m   kubelet, akswin000  Node akswin000 status is now: NodeReady\n"
            "Normal   NodeNotReady  48s   kubelet, akswin000  Node akswin000 status is now: NodeNotReady\n"
        )

        [node] = read_text(text).nodes

        assert node["status"]["conditions"][0]["reason"] == "NodeNotReady"


class TestResourcesAlone:
    BLOCKS = """\
Capacity:
 cpu:                            2
 memory:                         8388148Ki
Allocatable:
 cpu:                            2
 memory:                         8388148Ki
"""

    def test_capacity_and_allocatable_without_describe_node_are_the_unnamed_nodes_in_text_about_windows(self) -> None:
        facts = read_text("On a Windows node:\n```\n" + self.BLOCKS + "```\n")

        assert facts.nodes == []
        assert facts.resources == {
            "capacity": {"cpu": "2", "memory": "8388148Ki"},
            "allocatable": {"cpu": "2", "memory": "8388148Ki"},
        }

    def test_they_say_nothing_in_text_not_about_windows_or_inside_a_described_node(self) -> None:
        assert read_text(self.BLOCKS).resources == {}
        described = "Name:               lnx-1\nRoles:              <none>\n" + self.BLOCKS
        assert read_text("Windows pods fail\n" + described).resources == {}


class TestCniConfigAmongProse:
    CONF = '{"cniVersion": "0.2.0", "type": "win-bridge", "AdditionalArgs": [{"Name": "EndpointPolicy", "Value": {"Type": "OutBoundNAT", "ExceptionList": ["10.244.0.0/16"]}}]}'

    def test_a_pasted_cni_config_is_cut_out_of_the_prose(self) -> None:
        facts = read_text("here is the cni config:\n```\n" + self.CONF + "\n```\nit does not work\n")

        assert facts.cni_conf == self.CONF

    def test_other_json_and_a_mere_mention_of_the_exception_list_are_not_a_cni_config(self) -> None:
        assert read_text('the ExceptionList is wrong\n{"Name": "cbr0", "Type": "L2Bridge"}\n').cni_conf == ""


class TestVersionsInPassing:
    def test_an_issue_template_gives_the_kubelet_kernel_and_runtime(self) -> None:
        text = (
            "- Kubernetes version (use `kubectl version`): v1.13.1\n"
            "- Kernel (e.g. `uname -a`): 10.0.17763.316\n"
            "- Others: Docker EE 18.09.2\n"
        )

        info = read_text(text).node_info

        assert info == {
            "kubeletVersion": "v1.13.1",
            "kernelVersion": "10.0.17763.316",
            "containerRuntimeVersion": "docker://18.09.2",
        }

    def test_kubectl_version_gives_the_server_and_crictl_the_runtime(self) -> None:
        text = (
            'Server Version: version.Info{Major:"1", Minor:"16", GitVersion:"v1.16.3", GitCommit:"b3cb"}\n'
            "Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  v1.7.20\nRuntimeApiVersion:  v1\n"
        )

        facts = read_text(text)

        assert facts.server_version == "v1.16.3"
        assert facts.node_info["containerRuntimeVersion"] == "containerd://1.7.20"


class TestHns:
    def test_an_empty_get_hnsnetwork_is_a_fact_and_the_text_tells_the_network_mode(self) -> None:
        text = "PS C:\\k> Get-HNSNetwork\nPS C:\\k>\nflanneld wants an L2Bridge network named cbr0\n"

        facts = read_text(text)

        assert facts.hns_networks_empty
        assert facts.network_hint == "l2bridge"

    def test_a_filtered_get_hnsnetwork_printing_nothing_is_not_empty(self) -> None:
        assert not read_text("PS C:\\k> Get-HnsNetwork | ? Name -eq vxlan0\nPS C:\\k>\n").hns_networks_empty


class TestProbes:
    def test_kubectl_exec_ping_and_curl_are_from_the_pod_with_their_outcome(self) -> None:
        text = (
            "PS C:\\k> kubectl exec -n web iis-7d9 -- ping 8.8.8.8\n"
            "Pinging 8.8.8.8 with 32 bytes of data:\nRequest timed out.\n\n"
            "Ping statistics for 8.8.8.8:\n    Packets: Sent = 4, Received = 0, Lost = 4 (100% loss),\n"
            "PS C:\\k> kubectl exec -n web iis-7d9 -- curl.exe -sI https://www.bing.com\nHTTP/1.1 200 OK\n"
        )

        ping, curl = read_probes(text)

        assert (ping.kind, ping.target, ping.origin, ping.ok, ping.pod) == (
            "ping",
            "8.8.8.8",
            "pod",
            False,
            "web/iis-7d9",
        )
        assert (curl.kind, curl.target, curl.ok) == ("curl", "www.bing.com", True)

    def test_test_netconnection_to_a_nodeport_from_the_node(self) -> None:
        text = (
            "PS C:\\Users\\admin> Test-NetConnection 10.0.0.5 -Port 30080\n"
            "WARNING: TCP connect to (10.0.0.5 : 30080) failed\nTcpTestSucceeded : False\n"
        )

        [probe] = read_probes(text)

        assert (probe.kind, probe.target, probe.origin, probe.ok) == ("nodeport", "10.0.0.5:30080", "node", False)

    def test_prose_naming_a_command_is_not_a_transcript(self) -> None:
        assert read_probes("Success - PodIP - Test-NetConnection 10.42.16.102 -port 9500\n") == []
