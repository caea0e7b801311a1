from __future__ import annotations

import pytest

from diagnostics.parsers.powershell import (
    decode_output,
    is_truncated,
    parse_hashtable,
    parse_json_values,
    parse_list,
    parse_table,
    parse_tables,
    split_array,
    split_table_and_json,
)

GET_PROCESS = (
    "\r\n"
    "Handles  NPM(K)    PM(K)      WS(K)     CPU(s)     Id  SI ProcessName\r\n"
    "-------  ------    -----      -----     ------     --  -- -----------\r\n"
    "    412      27    61412      78120      35.22   3140   0 kubelet\r\n"
    "   1290      96   143220     121404   1,204.55  12876   0 kube-proxy\r\n"
    "\r\n"
)


class TestDecodeOutput:
    def test_it_decodes_utf16_le_with_bom_and_crlf(self) -> None:
        data = b"\xff\xfe" + "Name : cbr0\r\nType : L2Bridge\r\n".encode("utf-16-le")
        assert decode_output(data) == "Name : cbr0\nType : L2Bridge\n"

    def test_it_decodes_utf16_be_with_bom(self) -> None:
        assert decode_output(b"\xfe\xff" + "cbr0\r\n".encode("utf-16-be")) == "cbr0\n"

    def test_it_decodes_utf8_with_and_without_bom(self) -> None:
        assert decode_output("\ufeffvEthernet (Ethernet)\r\n".encode()) == "vEthernet (Ethernet)\n"
        assert decode_output("Zürich\r\n".encode()) == "Zürich\n"

    def test_it_recognizes_utf16_le_that_lost_its_bom(self) -> None:
        assert decode_output("Start Port      : 49152\r\n".encode("utf-16-le")) == "Start Port      : 49152\n"

    def test_it_replaces_undecodable_bytes_instead_of_failing(self) -> None:
        assert decode_output(b"ok \xff\xfe\xfd end").startswith("ok ")

    def test_it_refuses_text_that_is_not_bytes(self) -> None:
        with pytest.raises(ValueError):
            decode_output("already text")  # type: ignore[arg-type]


class TestParseTable:
    def test_it_reads_a_padded_table_with_right_aligned_numbers(self) -> None:
        rows = parse_table(GET_PROCESS)
        assert rows[0] == {
            "Handles": "412",
            "NPM(K)": "27",
            "PM(K)": "61412",
            "WS(K)": "78120",
            "CPU(s)": "35.22",
            "Id": "3140",
            "SI": "0",
            "ProcessName": "kubelet",
        }
        assert rows[1]["CPU(s)"] == "1,204.55"
        assert rows[1]["Id"] == "12876"

    def test_it_reads_get_netadapter_from_a_utf16_file(self, fixture_bytes) -> None:
        rows = parse_table(fixture_bytes("netadapter.txt"))
        assert [r["Name"] for r in rows] == ["vEthernet (Ethernet)", "Ethernet", "vEthernet (nat)"]
        assert rows[0]["InterfaceDescription"] == "Hyper-V Virtual Ethernet Adapter #2"
        assert rows[2]["ifIndex"] == "112"
        assert rows[0]["LinkSpeed"] == "10 Gbps"

    def test_it_keeps_truncated_cells_marked(self, fixture_bytes) -> None:
        rows = parse_table(fixture_bytes("env-machine-table.txt"))
        path = next(r["Value"] for r in rows if r["Name"] == "Path")
        assert is_truncated(path)
        assert is_truncated("C:\\Windows\\system32;C:\u2026")
        assert not is_truncated("C:\\k")

    def test_it_reads_every_table_of_a_file(self) -> None:
        text = GET_PROCESS + "Status   Name\n------   ----\nRunning  hns\n"
        tables = parse_tables(text)
        assert len(tables) == 2
        assert tables[1] == [{"Status": "Running", "Name": "hns"}]

    def test_it_raises_value_error_without_a_table(self) -> None:
        with pytest.raises(ValueError, match="no PowerShell table"):
            parse_table("just some words\nand more\n")


class TestParseList:
    def test_it_reads_format_list_blocks_and_joins_wrapped_values(self, fixture_bytes) -> None:
        [network] = parse_list(fixture_bytes("hns-networks-list.txt"))
        assert network["Name"] == "cbr0"
        assert network["AdditionalParams"] == ""
        assert network["Subnets"].startswith("{@{AdditionalParams=; AddressPrefix=10.244.1.0/24;")
        assert network["Subnets"].endswith("ObjectType=5; Policies=System.Object[]; State=0}}")

    def test_it_splits_arrays_and_hashtables(self) -> None:
        items = split_array("{@{Id=1; Name=a, b}, @{Id=2; Name=c}}")
        assert items == ["@{Id=1; Name=a, b}", "@{Id=2; Name=c}"]
        assert parse_hashtable(items[1]) == {"Id": "2", "Name": "c"}
        assert split_array("{10.96.0.10, 10.96.0.11}") == ["10.96.0.10", "10.96.0.11"]
        assert split_array("{}") == []

    def test_it_refuses_a_value_that_is_not_a_hashtable(self) -> None:
        with pytest.raises(ValueError):
            parse_hashtable("{a, b}")

    def test_it_raises_value_error_without_key_value_lines(self) -> None:
        with pytest.raises(ValueError, match="no PowerShell list"):
            parse_list("\n\n   \n")


class TestJson:
    def test_it_reads_a_single_object_as_a_list_of_one(self, fixture_bytes) -> None:
        [obj] = parse_json_values(fixture_bytes("os-version.json"))
        assert obj["CurrentBuild"] == "20348"

    def test_it_reads_json_after_the_table_collectlogs_writes_first(self, fixture_bytes) -> None:
        before, body = split_table_and_json(fixture_bytes("collectlogs-network.txt"))
        assert parse_table(before)[1]["Name"] == "cbr0"
        assert body.lstrip().startswith("[")
        assert [o["Name"] for o in parse_json_values(fixture_bytes("collectlogs-network.txt"))] == ["nat", "cbr0"]

    def test_it_reads_documents_appended_one_after_another(self) -> None:
        text = '{\r\n    "Name":  "a"\r\n}\r\n[\r\n    {\r\n        "Name":  "b"\r\n    }\r\n]\r\n'
        assert [o["Name"] for o in parse_json_values(text)] == ["a", "b"]

    def test_it_returns_the_complete_elements_of_a_truncated_array(self, fixture_bytes) -> None:
        objs = parse_json_values(fixture_bytes("hns-endpoints-v2-truncated.json"))
        assert len(objs) == 2

    def test_it_raises_value_error_on_a_truncated_object(self) -> None:
        with pytest.raises(ValueError, match="unreadable JSON"):
            parse_json_values('{\n    "Name":  "cbr0",\n    "Type":  "L2Br')

    def test_it_raises_value_error_without_json(self) -> None:
        with pytest.raises(ValueError, match="no JSON"):
            parse_json_values("Name Type\n---- ----\ncbr0 L2Bridge\n")
