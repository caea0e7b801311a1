from __future__ import annotations

import gzip
import json
from pathlib import Path

from agent.app import Agent
from agent.config import AgentConfig
from agent.scenario import ScenarioRunner
from agent.sender import ReportQueue, Sender
from diagnostics.report import parse_report

from .conftest import SCENARIOS


def _sender(url: str, sleeps: list[float] | None = None, attempts: int = 4) -> Sender:
    return Sender(
        url,
        "s3cret",
        max_attempts=attempts,
        backoff_base=0.5,
        backoff_max=8,
        sleep=(sleeps if sleeps is not None else []).append,
        rng=lambda: 1.0,
    )


def _agent(tmp_path: Path, url: str, *, sleeps: list[float] | None = None, queue_max: int = 20 * 1024 * 1024) -> Agent:
    cfg = AgentConfig(dashboard=url, state_dir=str(tmp_path / "state"), queue_max_bytes=queue_max)
    runner = ScenarioRunner(SCENARIOS / "healthy" / "scenario.json", tmp_path / "replay")
    return Agent(cfg, runner, sender=_sender(url, sleeps))


def test_it_posts_gzip_json_with_the_bearer_token(tmp_path: Path, dashboard) -> None:
    result = _agent(tmp_path, dashboard.url).cycle()
    assert (result.sent, result.pending) == (1, 0)
    headers = dashboard.headers[0]
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"] == "application/json"
    parse_report(dashboard.reports[0])


def test_it_retries_server_errors_with_growing_backoff_then_delivers(tmp_path: Path, dashboard) -> None:
    dashboard.responses = [(503, b"", {}), (500, b"", {}), (429, b"", {"Retry-After": "5"})]
    sleeps: list[float] = []
    result = _agent(tmp_path, dashboard.url, sleeps=sleeps).cycle()
    assert result.sent == 1 and len(dashboard.reports) == 1
    assert sleeps == [0.5, 1.0, 5.0]  # 0.5 * 2**n with full jitter (rng=1), then Retry-After


def test_a_client_error_is_not_retried_and_its_message_is_logged(tmp_path: Path, dashboard, caplog) -> None:
    dashboard.responses = [(400, b'{"error": "probes.hns.networks.output must be a string"}', {})]
    agent = _agent(tmp_path, dashboard.url)
    result = agent.cycle()
    assert (result.sent, result.rejected, result.pending) == (0, 1, 0)
    assert "probes.hns.networks.output must be a string" in caplog.text
    agent.cycle()
    assert [r["sequence"] for r in dashboard.reports] == [2]


def test_reports_queued_while_the_dashboard_is_down_arrive_in_order_exactly_once(
    tmp_path: Path, dashboard, closed_port_url
) -> None:
    down = _agent(tmp_path, closed_port_url)
    for _ in range(3):
        assert down.cycle().pending >= 1
    assert len(down.queue.items()) == 3
    # A restart with the dashboard back: the sequence continues, the queue drains in order.
    up = _agent(tmp_path, dashboard.url)
    up.cycle()
    up.cycle()
    assert [r["sequence"] for r in dashboard.reports] == [1, 2, 3, 4, 5]
    assert up.queue.items() == []
    offsets = [r["logs"]["kubelet"]["offset"] for r in dashboard.reports]
    texts = [r["logs"]["kubelet"]["text"] for r in dashboard.reports]
    assert offsets[0] == 0 and texts[0] and all(t == "" for t in texts[1:])


def test_a_server_that_fails_first_report_blocks_the_later_ones(tmp_path: Path, dashboard) -> None:
    agent = _agent(tmp_path, dashboard.url)
    dashboard.responses = [(502, b"", {})] * 4
    agent.cycle()
    assert dashboard.reports == [] and len(agent.queue.items()) == 1
    agent.cycle()
    assert [r["sequence"] for r in dashboard.reports] == [1, 2]


def test_the_queue_bound_drops_the_oldest_and_later_reports_count_them(
    tmp_path: Path, dashboard, closed_port_url
) -> None:
    probe = _agent(tmp_path / "size", closed_port_url)
    probe.collect_and_queue()
    probe.collect_and_queue()
    steady = probe.queue.items()[1].stat().st_size  # later reports carry no old log lines
    bound = int(steady * 2.5)
    down = _agent(tmp_path, closed_port_url)
    down.queue.max_bytes = bound
    for _ in range(5):
        down.collect_and_queue()
    assert [p.name[:12] for p in down.queue.items()] == ["000000000004", "000000000005"]
    up = _agent(tmp_path, dashboard.url)
    up.queue.max_bytes = bound
    up.cycle()
    # Queueing report 6 dropped report 4 too, and with it the drop report 4 was announcing.
    assert [r["sequence"] for r in dashboard.reports] == [5, 6]
    announced = sum(r["dropped_reports"] for r in dashboard.reports)
    assert announced + up.state.dropped == 4  # reports 1-4: each counted once, now or in the next report
    up.cycle()
    assert sum(r["dropped_reports"] for r in dashboard.reports) == 4


def test_the_sequence_survives_a_restart(tmp_path: Path, dashboard) -> None:
    _agent(tmp_path, dashboard.url).cycle()
    _agent(tmp_path, dashboard.url).cycle()
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["sequence"] == 2
    assert [r["sequence"] for r in dashboard.reports] == [1, 2]


def test_queue_files_are_written_before_sending(tmp_path: Path, closed_port_url) -> None:
    queue = ReportQueue(tmp_path / "q", 10 * 1024 * 1024)
    queue.put({"sequence": 7, "format": "node-report/v1"})
    assert [p.name for p in queue.items()] == ["000000000007.json.gz"]
    queue.put({"sequence": 8, "format": "node-report/v1", "dropped_reports": 3})
    assert queue.items()[1].name == "000000000008-3.json.gz" and queue.max_sequence() == 8
    result = _sender(closed_port_url, attempts=2).flush(queue)
    assert result.pending == 2 and "refused" in result.last_error.lower()


def test_an_agent_whose_state_is_lost_starts_a_new_instance_and_keeps_it_across_restarts(
    tmp_path: Path, dashboard
) -> None:
    _agent(tmp_path, dashboard.url).cycle()
    _agent(tmp_path, dashboard.url).cycle()
    first, second = (r["agent_instance"] for r in dashboard.reports)
    assert first == second and len(first) == 32
    (tmp_path / "state" / "state.json").unlink()  # the node was reimaged
    _agent(tmp_path, dashboard.url).cycle()
    third = dashboard.reports[-1]
    assert third["agent_instance"] != first and third["sequence"] == 1


def test_a_dashboard_answering_503_keeps_the_report_queued_for_later(tmp_path: Path, dashboard) -> None:
    dashboard.responses = [(503, b'{"error": "database"}', {"Retry-After": "10"})] * 4
    agent = _agent(tmp_path, dashboard.url)
    result = agent.cycle()
    assert (result.sent, result.rejected, result.pending) == (0, 0, 1)
    agent.cycle()
    assert [r["sequence"] for r in dashboard.reports] == [1, 2]


def test_no_nul_or_lone_surrogate_is_ever_sent(tmp_path: Path) -> None:
    queue = ReportQueue(tmp_path / "q", 1024 * 1024)
    queue.put({"sequence": 1, "logs": {"kubelet": {"text": "cut \ud800 here\u0000"}}})
    text = gzip.decompress(queue.items()[0].read_bytes()).decode("utf-8")
    assert json.loads(text)["logs"]["kubelet"]["text"] == "cut \ufffd here\ufffd"
