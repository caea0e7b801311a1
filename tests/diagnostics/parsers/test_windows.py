from __future__ import annotations

import pytest

from diagnostics.facts import BitLocker, HotFix, PortRange
from diagnostics.parsers import windows


class TestOsVersion:
    def test_it_reads_the_registry_current_version(self, fixture_bytes) -> None:
        info = windows.parse_os_version(fixture_bytes("os-version.json"))
        assert (info.build, info.ubr, info.version) == (20348, 2340, "10.0.20348.2340")
        assert info.product_name == "Windows Server 2022 Datacenter"
        assert (info.edition, info.display_version) == ("ServerDatacenter", "21H2")

    def test_it_falls_back_to_release_id_on_2019(self, fixture_bytes) -> None:
        info = windows.parse_os_version(fixture_bytes("os-version-2019.json"))
        assert (info.build, info.ubr, info.display_version) == (17763, 1577, "1809")

    def test_it_reads_environment_osversion_without_inventing_a_ubr(self, fixture_bytes) -> None:
        info = windows.parse_os_version(fixture_bytes("osversion-table.txt"))
        assert (info.build, info.ubr) == (17763, None)

    def test_it_reads_the_version_line_of_collectlogs_winver(self, fixture_bytes) -> None:
        assert windows.parse_os_version(fixture_bytes("collectlogs-winver.txt")).build == 17763

    def test_it_raises_value_error_without_a_build(self) -> None:
        with pytest.raises(ValueError, match="OS version"):
            windows.parse_os_version("Get-ItemProperty : Access is denied")


class TestHotfixes:
    def test_it_reads_the_probe_json(self, fixture_bytes) -> None:
        fixes = windows.parse_hotfixes(fixture_bytes("hotfixes.json"))
        assert fixes[0] == HotFix("KB5034439", "2024-02-13")

    def test_it_reads_the_datetime_object_windows_powershell_writes(self, fixture_bytes) -> None:
        [fix] = windows.parse_hotfixes(fixture_bytes("hotfixes-datetime.json"))
        assert fix == HotFix("KB4489899", "2019-03-12T00:00:00Z")

    def test_it_reads_the_table_after_the_version_line_in_winver(self, fixture_bytes) -> None:
        fixes = windows.parse_hotfixes(fixture_bytes("collectlogs-winver.txt"))
        assert [f.id for f in fixes] == ["KB4470788", "KB4471332", "KB4489899"]
        assert fixes[2].installed_on == "3/12/2019 12:00:00 AM"

    def test_no_hotfix_marker_means_none(self) -> None:
        assert windows.parse_hotfixes("Microsoft Windows NT 10.0.17763.0\r\n\r\n<No hotfix>\r\n") == ()


class TestAdapters:
    def test_it_reads_json_and_table_alike(self, fixture_bytes) -> None:
        from_json = windows.parse_adapters(fixture_bytes("netadapter.json"))
        from_table = windows.parse_adapters(fixture_bytes("netadapter.txt"))
        assert from_json[0] == from_table[0]
        assert from_table[0].name == "vEthernet (Ethernet)"
        assert from_table[0].if_index == 14 and from_table[0].status == "Up"


class TestIpconfig:
    def test_it_reads_adapter_blocks_with_continuation_lines(self, fixture_bytes) -> None:
        interfaces = windows.parse_ipconfig(fixture_bytes("ipconfig-all.txt"))
        veth = interfaces[0]
        assert veth.name == "vEthernet (Ethernet)"
        assert veth.ipv4 == ("10.0.1.11",)
        assert veth.gateways == ("10.0.1.1",)
        assert veth.dns_servers == ("168.63.129.16", "10.0.0.10")
        assert veth.dns_suffix == "prod.internal"
        assert veth.mac == "00-15-5D-01-4B-11"
        assert interfaces[1].name.startswith("isatap.") and interfaces[1].ipv4 == ()

    def test_it_raises_value_error_on_other_text(self) -> None:
        with pytest.raises(ValueError, match="ipconfig"):
            windows.parse_ipconfig("'ipconfig' is not recognized as an internal or external command")


class TestServices:
    def test_it_puts_the_real_command_line_of_nssm_services(self, fixture_bytes) -> None:
        services = {s.name: s for s in windows.parse_services(fixture_bytes("services.json"))}
        proxy = services["kube-proxy"]
        assert proxy.command_line.startswith("C:\\k\\kube-proxy.exe --v=4 --proxy-mode=kernelspace")
        assert "--hostname-override=win-prod-01" in proxy.command_line
        assert proxy.running and proxy.start_type == "Automatic"
        assert services["kubelet"].command_line.startswith("C:\\k\\kubelet.exe --windows-service")
        assert services["hns"].start_type == "Manual"

    def test_it_reads_the_get_service_table(self, fixture_bytes) -> None:
        services = {s.name: s for s in windows.parse_services(fixture_bytes("get-service.txt"))}
        assert services["flanneld"].status == "Stopped"
        assert services["hns"].display_name == "Host Network Service"

    def test_it_merges_sc_qc_and_queryex_blocks(self, fixture_bytes) -> None:
        services = {s.name: s for s in windows.parse_services(fixture_bytes("scqueryex.txt"))}
        proxy = services["kube-proxy"]
        assert proxy.command_line == "C:\\k\\nssm.exe"
        assert proxy.start_type == "Automatic"
        assert proxy.status == "Stopped"
        assert services["hns"].running

    def test_it_reads_enum_numbers_windows_powershell_serializes(self) -> None:
        [svc] = windows.parse_services('{"Name": "kubelet", "Status": 4, "StartType": 2}')
        assert (svc.status, svc.start_type) == ("Running", "Automatic")


class TestProcessesAndMachine:
    def test_it_reads_process_command_lines(self, fixture_bytes) -> None:
        procs = windows.parse_processes(fixture_bytes("processes.json"))
        kubelet = next(p for p in procs if p.name == "kubelet.exe")
        assert kubelet.pid == 3140 and "--pod-infra-container-image=registry.k8s.io/pause:3.9" in kubelet.command_line

    def test_it_reads_machine_environment_json_and_table(self, fixture_bytes) -> None:
        env = windows.parse_machine_env(fixture_bytes("env-machine.json"))
        assert env["HTTPS_PROXY"] == "http://proxy.prod.internal:3128"
        table = windows.parse_machine_env(fixture_bytes("env-machine-table.txt"))
        assert table["HTTP_PROXY"] == "http://proxy.prod.internal:3128"

    def test_it_reads_the_computer_model(self, fixture_bytes) -> None:
        info = windows.parse_computer_info(fixture_bytes("computer.json"))
        assert info.is_vm and info.hypervisor_present is True
        listed = windows.parse_computer_info(fixture_bytes("computer-list.txt"))
        assert (listed.manufacturer, listed.model, listed.is_vm) == ("VMware, Inc.", "VMware7,1", True)

    def test_it_reads_bitlocker_names_and_numbers(self, fixture_bytes) -> None:
        assert windows.parse_bitlocker(fixture_bytes("bitlocker.json")) == (BitLocker("C:", "Off", "FullyDecrypted"),)
        assert windows.parse_bitlocker(fixture_bytes("bitlocker-enums.json")) == (
            BitLocker("C:", "On", "FullyEncrypted"),
            BitLocker("D:", "Off", "FullyDecrypted"),
        )
        assert windows.parse_bitlocker("[]") == ()


class TestPorts:
    def test_it_reads_the_tcp_dynamic_range(self, fixture_bytes) -> None:
        assert windows.parse_dynamic_port_range(fixture_bytes("dynamicportrange.txt")) == PortRange(49152, 16384)

    def test_it_reads_only_tcp_excluded_ranges(self, fixture_bytes) -> None:
        ranges = windows.parse_excluded_port_ranges(fixture_bytes("excludedportrange.txt"))
        assert ranges == (PortRange(5357, 1), PortRange(50000, 60), PortRange(50060, 64), PortRange(50124, 64))

    def test_it_raises_value_error_on_other_text(self) -> None:
        with pytest.raises(ValueError, match="dynamic port range"):
            windows.parse_dynamic_port_range("The requested operation requires elevation (Run as administrator).")
        with pytest.raises(ValueError, match="excluded port ranges"):
            windows.parse_excluded_port_ranges("The requested operation requires elevation (Run as administrator).")


class TestEvents:
    def test_it_reads_hns_events(self, fixture_bytes) -> None:
        crash, _start = windows.parse_hns_events(fixture_bytes("hns-events.json"))
        assert (crash.id, crash.level) == (7031, "Error")
        assert "terminated unexpectedly" in crash.message
        assert crash.time == "2025-11-24T07:58:12.4410000Z"

    def test_it_converts_the_date_form_of_windows_powershell(self, fixture_bytes) -> None:
        [event] = windows.parse_hns_events(fixture_bytes("hns-events-date.json"))
        assert event.time.startswith("2025-11-24T")

    def test_no_events_is_an_empty_tuple(self) -> None:
        assert windows.parse_hns_events("") == ()
