"""Bundle exports from the dashboard: the build, the pages and their permissions, the command, the live handler."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard import agents, bundles
from dashboard.diagnosis import check_node
from dashboard.models import Bundle, Node, Report, enroll
from dashboard.routing import websocket_application
from diagnostics.cli import diagnose
from tests.diagnostics.bundle.exports import SECRETS, scenario_report, with_secrets

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def bundle_dir(settings: Any, tmp_path: Path) -> Path:
    settings.WND_BUNDLE_DIR = tmp_path / "bundles"
    return settings.WND_BUNDLE_DIR


@pytest.fixture
def node() -> Node:
    """win-prod-02 of prod-eu after its agent reported a missing subnet.env (and leaked a few secrets)."""
    target, _token = enroll("prod-eu", "win-prod-02")
    document = with_secrets(scenario_report("subnet-env-missing"))
    Report.objects.create(
        node=target,
        collected_at="2026-11-24T10:15:40Z",
        agent_version="0.1.0",
        payload=Report.pack(json.dumps(document).encode()),
    )
    assert check_node(target.pk)
    return Node.objects.select_related("cluster").get(pk=target.pk)


def read_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_a_built_bundle_reads_back_into_the_findings_the_page_shows(node: Node, tmp_path: Path) -> None:
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    assert bundles.build(bundle.pk)
    bundle.refresh_from_db()
    assert (bundle.state, bundle.progress) == (Bundle.DONE, 100)
    path = bundles.file_path(bundle)
    assert path is not None and path.stat().st_size == bundle.size_bytes
    shown = sorted((f.check_id, f.subject, f.status) for f in node.findings.filter(resolved_at__isnull=True))
    read = diagnose(path)
    assert sorted((f.check, f.subject, f.status.slug) for f in read.document.findings) == shown
    assert "flannel.subnet-env-missing" in {c for c, _s, _st in shown}
    for name, data in read_members(path).items():
        assert not any(secret in data.decode() for secret in SECRETS), name
    assert {"bearer-token", "secret-value"} <= set(bundle.redactions)


def test_a_bundle_with_host_names_mapped_is_named_after_its_own_top_folder(node: Node) -> None:
    bundle = Bundle.objects.create(redact_hosts=True)
    bundle.nodes.set([node])
    assert bundles.build(bundle.pk)
    bundle.refresh_from_db()
    path = bundles.file_path(bundle)
    assert path is not None and "win-prod-02" not in bundle.file_name
    top = {name.split("/", 1)[0] for name in read_members(path)}
    assert top == {bundle.file_name.split("-", 1)[1].removesuffix(".tar.gz")}


def test_the_command_names_a_mapped_bundle_after_its_top_folder(node: Node, tmp_path: Path) -> None:
    out = io.StringIO()
    call_command(
        "bundle", "prod-eu/win-prod-02", "--out", str(tmp_path), "--redact-hosts", stdout=out, stderr=io.StringIO()
    )
    path = Path(out.getvalue().strip())
    assert {name.split("/", 1)[0] for name in read_members(path)} == {path.name.removesuffix(".tar.gz")}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left


def test_the_bundle_of_a_node_whose_agent_is_not_connected_says_so_and_holds_the_stored_tails(node: Node) -> None:
    out = io.BytesIO()
    bundles.export_nodes([node], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        manifest = json.load(tf.extractfile(next(m for m in tf.getmembers() if m.name.endswith("manifest.json"))))  # type: ignore[arg-type]
        issue = tf.extractfile(next(m for m in tf.getmembers() if m.name.endswith("ISSUE.md"))).read().decode()  # type: ignore[union-attr]
        kubelet = tf.extractfile(next(m for m in tf.getmembers() if m.name.endswith("logs/kubelet.log"))).read()  # type: ignore[union-attr]
    note = "Fresh logs could not be fetched from the node (its agent was not connected)"
    assert any(n.startswith(note) for n in manifest["notes"])
    assert note in issue
    assert issue.rstrip().endswith("/sig windows")
    stored = node.log_tails.get(kind="kubelet").text
    assert kubelet.decode().splitlines()[-1] == stored.splitlines()[-1]


# -- fresh logs from a connected agent ----------------------------------------------------

# What a Windows kubelet writes (klog), with a bearer token the bundle must not carry.
FRESH_KUBELET = (
    'I1124 10:15:41.101234    4312 kubelet.go:2421] "SyncLoop ADD" source="api" pods=["default/iis-7dd9c"]\r\n'
    'E1124 10:15:42.552107    4312 pod_workers.go:1298] "Error syncing pod, skipping" '
    'err="failed to \\"CreatePodSandbox\\" for \\"iis-7dd9c_default\\": plugin type=\\"flannel\\" failed '
    "(add): loadFlannelSubnetEnv failed: open C:\\\\run\\\\flannel\\\\subnet.env: The system cannot find the path "
    'specified." pod="default/iis-7dd9c"\r\n'
    'I1124 10:15:43.004411    4312 round_trippers.go:553] curl -v -XGET -H "Authorization: Bearer '
    "kUb3l3tB3ar3rT0k3nV4lu3Xyz09\" 'https://10.240.0.4:443/api/v1/nodes/win-prod-02'\r\n"
    'I1124 10:15:44.917020    4312 kubelet_node_status.go:486] "Fast updating node status as it just became ready"\r\n'
)
FRESH_KUBE_PROXY = 'I1124 10:15:44.120033    2210 proxier.go:1112] "Syncing HNS policies"\r\n'


def agent_socket(token: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        websocket_application, "/ws/agent/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )


def new_bundle(node: Node) -> Bundle:
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    return bundle


async def build_while(bundle: Bundle, agent: Any) -> bool:
    """Build ``bundle`` in a worker thread while ``agent`` (a coroutine) plays the node's agent."""
    # Not thread-sensitive: the consumer's own database calls must not queue behind the build.
    building = asyncio.ensure_future(sync_to_async(bundles.build, thread_sensitive=False)(bundle.pk))
    await agent
    return await asyncio.wait_for(building, timeout=60)


def bundle_file(bundle: Bundle) -> dict[str, bytes]:
    bundle.refresh_from_db()
    assert bundle.state == Bundle.DONE, bundle.error
    path = bundles.file_path(bundle)
    assert path is not None
    return read_members(path)


def member(members: dict[str, bytes], suffix: str) -> bytes:
    return next(data for name, data in members.items() if name.endswith(suffix))


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_connected_agent_is_asked_for_fresh_logs_and_the_bundle_holds_them(node: Node) -> None:
    _node, token = await database_sync_to_async(enroll)("prod-eu", "win-prod-02")
    socket = agent_socket(token)
    assert (await socket.connect())[0]
    bundle = await database_sync_to_async(new_bundle)(node)
    stages: list[str] = []

    async def agent() -> None:
        request = json.loads(await socket.receive_from(timeout=10))
        assert (request["type"], request["name"], request["args"]) == ("request", "collect-bundle-logs", {})
        stages.append(await database_sync_to_async(bundles.stage_of)(bundle.pk))
        logs = {
            "kubelet": {"path": "C:\\k\\kubelet.log", "text": FRESH_KUBELET},
            "kube-proxy": {"path": "C:\\k\\kube-proxy.log", "text": FRESH_KUBE_PROXY},
        }
        await socket.send_to(text_data=json.dumps({"type": "progress", "id": request["id"], "message": "reading"}))
        await socket.send_to(text_data=json.dumps({"type": "result", "id": request["id"], "data": {"logs": logs}}))

    assert await build_while(bundle, agent())
    await socket.disconnect()

    assert stages == ["asking win-prod-02 for fresh logs…"]
    members = await database_sync_to_async(bundle_file)(bundle)
    kubelet = member(members, "logs/kubelet.log").decode()
    assert 'kubelet_node_status.go:486] "Fast updating node status' in kubelet
    assert "loadFlannelSubnetEnv failed" in kubelet
    assert "kUb3l3tB3ar3rT0k3nV4lu3Xyz09" not in kubelet  # redacted like every other file
    assert "Syncing HNS policies" in member(members, "logs/kube-proxy.log").decode()
    stored_flannel = (await database_sync_to_async(node.log_tails.get)(kind="flanneld")).text
    assert member(members, "logs/flanneld.log").decode().splitlines()[-1] == stored_flannel.splitlines()[-1]
    manifest = json.loads(member(members, "manifest.json"))
    assert [n for n in manifest["notes"] if n.startswith("Fresh logs were collected")] == [
        "Fresh logs were collected from the node's agent for this bundle: logs/ holds the last 512 KiB of each "
        "log; containerd, flanneld: the dashboard's rolling tail (the agent sent none)."
    ]
    assert "Fresh logs were collected" in member(members, "ISSUE.md").decode()
    listed = {f["path"]: f for f in manifest["files"]}
    assert listed["logs/kubelet.log"]["windows_path"] == "C:\\k\\kubelet.log"

    # The logs stay out of the request history, and the build took them: nothing is left behind.
    history = await database_sync_to_async(agents.history)(node.pk)
    assert history[0]["state"] == "done" and "logs" not in history[0].get("data", {})
    assert await database_sync_to_async(agents.take_bundle_logs)(node.pk, history[0]["id"]) is None
    assert await database_sync_to_async(bundles.stage_of)(bundle.pk) == ""


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_agent_that_does_not_answer_in_time_gives_the_stored_tails_and_a_note(
    node: Node, settings: Any
) -> None:
    settings.WND_BUNDLE_LOGS_WAIT = 1
    _node, token = await database_sync_to_async(enroll)("prod-eu", "win-prod-02")
    socket = agent_socket(token)
    assert (await socket.connect())[0]
    bundle = await database_sync_to_async(new_bundle)(node)

    async def agent() -> None:
        request = json.loads(await socket.receive_from(timeout=10))
        assert request["name"] == "collect-bundle-logs"  # ...and never answered

    assert await build_while(bundle, agent())
    await socket.disconnect()
    members = await database_sync_to_async(bundle_file)(bundle)
    note = (
        "Fresh logs could not be fetched from the node (its agent did not answer within 1 s): "
        "logs/ holds the dashboard's rolling tail of each log, the last 128 KiB."
    )
    assert note in json.loads(member(members, "manifest.json"))["notes"]
    assert note in member(members, "ISSUE.md").decode()
    stored = (await database_sync_to_async(node.log_tails.get)(kind="kubelet")).text
    assert member(members, "logs/kubelet.log").decode().splitlines()[-1] == stored.splitlines()[-1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_agent_error_is_quoted_in_the_bundle(node: Node) -> None:
    _node, token = await database_sync_to_async(enroll)("prod-eu", "win-prod-02")
    socket = agent_socket(token)
    assert (await socket.connect())[0]
    bundle = await database_sync_to_async(new_bundle)(node)

    async def agent() -> None:
        request = json.loads(await socket.receive_from(timeout=10))
        refusal = {"type": "error", "id": request["id"], "error": "another request is running"}
        await socket.send_to(text_data=json.dumps(refusal))

    assert await build_while(bundle, agent())
    await socket.disconnect()
    members = await database_sync_to_async(bundle_file)(bundle)
    notes = json.loads(member(members, "manifest.json"))["notes"]
    assert any(
        n.startswith("Fresh logs could not be fetched from the node (its agent answered with an error: another")
        for n in notes
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_answer_with_malformed_logs_is_kept_bounded_and_never_crashes() -> None:
    target, token = await database_sync_to_async(enroll)("prod-eu", "win-odd")
    node = await database_sync_to_async(Node.objects.select_related("cluster").get)(pk=target.pk)
    socket = agent_socket(token)
    assert (await socket.connect())[0]
    record = await database_sync_to_async(agents.send_request)(node, "collect-bundle-logs", {})
    await socket.receive_from(timeout=10)
    huge = "x" * (agents.BUNDLE_LOGS_MAX_CHARS + 10) + "END"
    logs = {"kubelet": {"path": "C:\\k\\kubelet.log", "text": huge}, "bad": "not an object", "worse": {"text": 7}}
    await socket.send_to(text_data=json.dumps({"type": "result", "id": record["id"], "data": {"logs": logs}}))
    for _ in range(100):
        if (await database_sync_to_async(agents.request_record)(node.pk, record["id"]))["state"] == "done":
            break
        await asyncio.sleep(0.05)
    await socket.disconnect()
    kept = await database_sync_to_async(agents.take_bundle_logs)(node.pk, record["id"])
    assert kept is not None and set(kept) == {"kubelet"}
    path, text = kept["kubelet"]
    assert path == "C:\\k\\kubelet.log" and len(text) == agents.BUNDLE_LOGS_MAX_CHARS and text.endswith("END")


def test_a_build_is_claimed_once(node: Node) -> None:
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    assert bundles.build(bundle.pk)
    assert not bundles.build(bundle.pk)


def test_a_failed_build_says_why(node: Node, bundle_dir: Path) -> None:
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    bundle_dir.write_text("a file where the folder should be")
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    bundles.build(bundle.pk)  # the storage's folder cannot be created: the bundle says so
    bundle.refresh_from_db()
    assert bundle.state == Bundle.FAILED
    assert "is not a directory" in bundle.error
    empty, _token = enroll("prod-eu", "win-empty")
    bundle_dir.unlink()
    failing = Bundle.objects.create()
    failing.nodes.set([empty])
    bundles.build(failing.pk)
    failing.refresh_from_db()
    assert failing.state == Bundle.FAILED
    assert "nothing is known" in failing.error
    assert not list(bundle_dir.glob(".partial-*"))


# -- pages and permissions ----------------------------------------------------------------


def test_an_operator_exports_a_node_and_downloads_it(client: Any, operator: Any, node: Node) -> None:
    client.force_login(operator)
    response = client.post("/clusters/prod-eu/nodes/win-prod-02/bundles", {"format": "zip", "redact_ips": "1"})
    assert response.status_code == 302
    bundle = Bundle.objects.get()
    assert (bundle.fmt, bundle.redact, bundle.redact_ips, bundle.requested_by) == ("zip", True, True, operator)
    bundles.build(bundle.pk)
    page = client.get("/clusters/prod-eu/nodes/win-prod-02/").content.decode()
    assert 'id="bundle-status"' in page and f"/bundles/{bundle.pk}/download" in page
    download = client.get(f"/bundles/{bundle.pk}/download")
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith('attachment; filename="win-prod-02-')
    assert b"".join(download.streaming_content)[:2] == b"PK"


def test_a_viewer_can_neither_export_nor_download(client: Any, viewer: Any, node: Node) -> None:
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    bundles.build(bundle.pk)
    client.force_login(viewer)
    assert client.post("/clusters/prod-eu/nodes/win-prod-02/bundles").status_code == 403
    assert client.get(f"/bundles/{bundle.pk}/download").status_code == 403
    assert client.get("/clusters/prod-eu/nodes/win-prod-02/issue").status_code == 403
    assert "Export bundle" not in client.get("/clusters/prod-eu/nodes/win-prod-02/").content.decode()


def test_a_stranger_is_sent_to_sign_in(client: Any, node: Node) -> None:
    response = client.get("/clusters/prod-eu/nodes/win-prod-02/issue")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_an_unfinished_bundle_is_not_downloadable(client: Any, operator: Any, node: Node) -> None:
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    client.force_login(operator)
    assert client.get(f"/bundles/{bundle.pk}/download").status_code == 404
    assert "Waiting" in client.get(f"/bundles/{bundle.pk}/").content.decode()


def test_an_operator_exports_a_selection_from_the_fleet(client: Any, operator: Any, node: Node) -> None:
    other, _token = enroll("prod-eu", "win-other")
    client.force_login(operator)
    fleet = client.get("/").content.decode()
    assert f'name="node" value="{node.pk}"' in fleet and 'id="export-selection"' in fleet
    response = client.post("/bundles", {"node": [str(node.pk), str(other.pk)]})
    bundle = Bundle.objects.get()
    assert response["Location"] == f"/bundles/{bundle.pk}/"
    assert set(bundle.nodes.all()) == {node, other}


def test_open_issue_goes_to_github_with_the_template_prefilled(
    client: Any, operator: Any, node: Node, settings: Any
) -> None:
    settings.WND_ISSUE_REPOSITORY = "example/windows-issues"
    client.force_login(operator)
    response = client.get("/clusters/prod-eu/nodes/win-prod-02/issue")
    assert response.status_code == 302
    url = response["Location"]
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == ("github.com", "/example/windows-issues/issues/new")
    query = parse_qs(parts.query)
    assert query["template"] == ["bug-report.yaml"]
    assert "subnet.env" in query["title"][0]
    assert "flannel.subnet-env-missing" in query["problem"][0]
    assert len(url) <= 8000
    assert not any(secret in url for secret in SECRETS)


# -- the command --------------------------------------------------------------------------


def test_the_command_writes_a_bundle_of_named_nodes(node: Node, tmp_path: Path) -> None:
    out = io.StringIO()
    call_command(
        "bundle", "prod-eu/win-prod-02", "--out", str(tmp_path), "--redact-ips", stdout=out, stderr=io.StringIO()
    )
    path = Path(out.getvalue().strip())
    assert path.parent == tmp_path and path.name.startswith("win-prod-02-") and path.name.endswith(".tar.gz")
    manifest = json.loads(next(v for k, v in read_members(path).items() if k.endswith("manifest.json")))
    assert manifest["redaction"] == {"secrets": True, "ip_addresses": True, "host_names": False}
    assert manifest["redactions"]["ip-address"] > 0
    assert any(
        n.startswith("Fresh logs could not be fetched from the node (its agent was not connected)")
        for n in manifest["notes"]
    )


def test_the_command_can_leave_the_agents_alone(node: Node, tmp_path: Path) -> None:
    out = io.StringIO()
    call_command(
        "bundle", "prod-eu/win-prod-02", "--out", str(tmp_path), "--no-fresh-logs", stdout=out, stderr=io.StringIO()
    )
    manifest = json.loads(
        next(v for k, v in read_members(Path(out.getvalue().strip())).items() if k.endswith("manifest.json"))
    )
    assert any(n.startswith("Fresh logs were not requested from the node") for n in manifest["notes"])


def test_the_command_refuses_an_unknown_node(db: Any) -> None:
    with pytest.raises(CommandError, match="no node 'prod-eu/nope'"):
        call_command("bundle", "prod-eu/nope")
    with pytest.raises(CommandError, match="CLUSTER/NODE"):
        call_command("bundle", "nope")


# -- live --------------------------------------------------------------------------------


def test_the_node_consumer_renders_bundle_progress_for_operators(node: Node, operator: Any) -> None:
    from dashboard.consumers import NodeConsumer

    bundle = Bundle.objects.create(state=Bundle.RUNNING, progress=42)
    bundle.nodes.set([node])
    html = NodeConsumer()._render_bundle(bundle.pk)
    assert 'id="bundle-status"' in html and 'hx-swap-oob="morph"' in html and "42%" in html
    assert "fresh logs" not in html
    bundles.set_stage(bundle.pk, "asking win-prod-02 for fresh logs…")
    html = NodeConsumer()._render_bundle(bundle.pk)
    assert "42% · asking win-prod-02 for fresh logs…" in html
    bundles.set_stage(bundle.pk, "")
    assert bundles.stage_of(bundle.pk) == ""


def test_the_bundle_page_says_what_a_running_build_waits_for(client: Any, operator: Any, node: Node) -> None:
    bundle = Bundle.objects.create(state=Bundle.RUNNING, progress=0)
    bundle.nodes.set([node])
    bundles.set_stage(bundle.pk, "asking win-prod-02 for fresh logs…")
    client.force_login(operator)
    try:
        assert (
            "Building (0%): asking win-prod-02 for fresh logs…" in client.get(f"/bundles/{bundle.pk}/").content.decode()
        )
    finally:
        bundles.set_stage(bundle.pk, "")
