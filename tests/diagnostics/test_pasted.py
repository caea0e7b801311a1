# ruff: noqa: E501 - kubectl prints these tables this wide; they are kept as printed
"""A single file or paste given to ``diagnose`` is read whole: its own kind, every log line, kubectl output in it."""

from __future__ import annotations

from pathlib import Path

from diagnostics.cli import diagnose
from diagnostics.model import FixStep, Status

TWO_WINDOWS_NODES = """\
$ kubectl get nodes -o wide
NAME     STATUS     ROLES           AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE                         KERNEL-VERSION    CONTAINER-RUNTIME
win-1    NotReady   <none>          12m   v1.25.3   10.1.0.7      <none>        Windows Server 2019 Datacenter   10.0.17763.2366   containerd://1.6.8
win-2    Ready      <none>          12m   v1.25.3   10.1.0.5      <none>        Windows Server 2019 Datacenter   10.0.17763.2366   containerd://1.6.8
cp       Ready      control-plane   14m   v1.25.3   10.0.0.4      <none>        Ubuntu 18.04.5 LTS               5.3.0-1034-azure  containerd://1.3.4
"""


def diagnosed(tmp_path: Path, text: str, name: str = "pasted.txt") -> dict[tuple[str, str], Status]:
    path = tmp_path / name
    path.write_text(text)
    doc = diagnose(path).document
    return {(f.node, f.check): f.status for f in doc.findings}


def test_each_windows_node_of_a_pasted_table_is_checked_and_linux_rows_are_not(tmp_path: Path) -> None:
    found = diagnosed(tmp_path, TWO_WINDOWS_NODES)

    assert found[("win-1", "node.not-ready")] is Status.FAIL
    assert ("win-2", "node.not-ready") not in found
    assert not any(node == "cp" for node, _ in found)
    assert ("win-1", "runtime.version-unsupported") not in found  # containerd 1.3.4 is the Linux row's


def test_text_of_no_known_kind_is_read_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(
        "E0806 09:37:43.105541  614364 cni.go:260] open /run/flannel/subnet.env: The system cannot find the path specified.\n"
    )

    doc = diagnose(path).document

    assert doc.inputs and doc.skipped == []
    assert any(f.check == "flannel.subnet-env-missing" and f.status is Status.FAIL for f in doc.findings)


def test_ipconfig_without_a_vethernet_adapter_is_evidence_only_when_the_node_expects_one(tmp_path: Path) -> None:
    ipconfig = (
        "Windows IP Configuration\n\nEthernet adapter Ethernet:\n\n"
        "   IPv4 Address. . . . . . . . . . . : 172.31.0.19\n   Subnet Mask . . . . . . . . . . . : 255.255.255.0\n"
    )
    alone = diagnosed(tmp_path, ipconfig)
    with_mode = diagnosed(tmp_path, "The node runs flannel in l2bridge mode.\n" + ipconfig, name="b.txt")

    assert alone[("unknown", "hns.network-missing")] is Status.UNKNOWN
    assert with_mode[("unknown", "hns.network-missing")] is Status.FAIL


def test_capacity_and_allocatable_pasted_alone_decide_the_memory_reserve(tmp_path: Path) -> None:
    blocks = "Capacity:\n memory:   {}\nAllocatable:\n memory:   {}\n"

    nothing_reserved = diagnosed(tmp_path, "Windows node:\n" + blocks.format("8388148Ki", "8388148Ki"))
    enough_reserved = diagnosed(tmp_path, "Windows node:\n" + blocks.format("7339572Ki", "3565108Ki"), name="b.txt")

    assert nothing_reserved[("unknown", "node.memory-reserve-low")] is Status.FAIL
    assert ("unknown", "node.memory-reserve-low") not in enough_reserved


def test_a_failing_external_ping_alone_is_undecided_and_with_a_working_curl_it_is_the_limitation(
    tmp_path: Path,
) -> None:
    ping = (
        "PS C:\\k> kubectl exec web-1 -- ping 8.8.8.8\nPinging 8.8.8.8 with 32 bytes of data:\nRequest timed out.\n"
        "    Packets: Sent = 4, Received = 0, Lost = 4 (100% loss),\n"
    )
    curl = "PS C:\\k> kubectl exec web-1 -- curl.exe -sI https://www.bing.com\nHTTP/1.1 200 OK\n"

    assert diagnosed(tmp_path, ping)[("unknown", "network.icmp-external")] is Status.UNKNOWN
    assert diagnosed(tmp_path, ping + curl, name="b.txt")[("unknown", "network.icmp-external")] is Status.FAIL


def test_commands_in_fix_steps_never_name_an_unknown_node_or_a_path_inside_the_input(tmp_path: Path) -> None:
    path = tmp_path / "pasted.txt"
    path.write_text(
        "I0503 13:39:40.008179 5324 cni.go:364] open /run/flannel/subnet.env: The system cannot find the path.\n"
        "F0503 13:39:41.000000 5324 server.go:207] failed to run Kubelet\n"
    )
    doc = diagnose(path).document

    commands = [c for f in doc.findings for step in f.steps for c in step.commands]
    assert commands
    assert not any("unknown" in c or str(tmp_path) in c or "pasted.txt" in c for c in commands)


def test_an_os_mismatch_on_a_sandbox_is_shown_under_the_pause_image(tmp_path: Path) -> None:
    path = tmp_path / "pasted.txt"
    path.write_text(
        "E0109 14:03:00.426806 9544 remote_runtime.go:135] RunPodSandbox from runtime service failed: "
        "hcs::CreateComputeSystem 5eae: The container operating system does not match the host operating system.\n"
    )
    findings = {f.check: f for f in diagnose(path).document.findings}

    assert findings["image.os-version-mismatch"].caused_by == "pause.image-incompatible"
    assert findings["pause.image-incompatible"].caused_by == ""


def test_fix_steps_keep_the_old_single_string_form_readable() -> None:
    step = FixStep("Restart kube-proxy so it programs every Service again.", ("Restart-Service kube-proxy",))

    assert FixStep.from_text(step.as_text()) == step
    assert FixStep.from_text("Read the log: Get-Content C:\\k\\kubelet.log -Tail 50") == FixStep(
        "Read the log.", ("Get-Content C:\\k\\kubelet.log -Tail 50",)
    )


def test_the_text_and_markdown_outputs_show_an_effect_under_its_cause_with_commands_fenced(tmp_path: Path) -> None:
    from diagnostics.cli import render_markdown, render_text

    path = tmp_path / "pasted.txt"
    path.write_text(
        "E0109 14:03:00.426806 9544 remote_runtime.go:135] RunPodSandbox from runtime service failed: "
        "hcs::CreateComputeSystem 5eae: The container operating system does not match the host operating system.\n"
    )
    diagnosis = diagnose(path)

    text = render_text(diagnosis)
    cause = text.index("[pause.image-incompatible]")
    assert text.index("because of pause.image-incompatible") > cause
    markdown = render_markdown(diagnosis)
    assert "Because of `pause.image-incompatible`." in markdown
    assert "   ```powershell\n" in markdown and "\n   crictl pull registry.k8s.io/pause:3.10\n" in markdown
