"""Real reports for export tests: an agent in scenario mode, optionally with secrets planted where nodes leak them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from diagnostics.model import Finding
from diagnostics.registry import run
from diagnostics.report import parse_report, snapshot_from_report

ROOT = Path(__file__).resolve().parents[3]
REDACTION = ROOT / "tests" / "fixtures" / "redaction"

SECRETS = (
    "7c3f9a1e2b4d6f80a1c3e5f7",  # kube-proxy --token in its service command line
    "Sup3r-S3cret!",  # machine env
    "q9Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jh0GfEdCbA",  # storage connection string
    "Q2FsaWNvU2lnbmF0dXJlRm9yVGVzdHM",  # CNI config token
    "kUb3l3tB3ar3rT0k3nV4lu3Xyz09",  # bearer header in the kubelet log
    "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04f",  # private key in the kubelet log
    "Zk3xP0q9LmN8vB7cX6zA5sD4fG3hJ2kL1",  # an agent token
)


def scenario_report(name: str = "subnet-env-missing") -> dict[str, Any]:
    from agent.app import Agent
    from agent.config import AgentConfig
    from agent.scenario import ScenarioRunner

    with tempfile.TemporaryDirectory() as tmp:
        cfg = AgentConfig(dashboard="http://127.0.0.1:9", state_dir=tmp)
        agent = Agent(cfg, ScenarioRunner(ROOT / "agent" / "scenarios" / name / "scenario.json", Path(tmp) / "replay"))
        report: dict[str, Any] = json.loads(json.dumps(agent.collect_and_queue().report))
    return report


def with_secrets(report: dict[str, Any]) -> dict[str, Any]:
    """The report of a node that leaks: a token on kube-proxy's command line, secrets in env, CNI config and logs."""
    services = json.loads(report["probes"]["services"]["output"])
    for svc in services:
        if svc["Name"] in ("kube-proxy", "kubeproxy"):
            svc["AppParameters"] = (svc.get("AppParameters") or "") + " --token=7c3f9a1e2b4d6f80a1c3e5f7"
    report["probes"]["services"]["output"] = json.dumps(services, indent=4)
    env = json.loads(report["probes"]["env.machine"]["output"])
    env["DB_PASSWORD"] = "Sup3r-S3cret!"
    env["AZURE_STORAGE_CONNECTION_STRING"] = (
        "DefaultEndpointsProtocol=https;AccountName=winlogs;AccountKey=q9Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jh0GfEdCbA+/==;"
        "EndpointSuffix=core.windows.net"
    )
    env["WND_AGENT_TOKEN"] = "wnd_Zk3xP0q9LmN8vB7cX6zA5sD4fG3hJ2kL1"
    report["probes"]["env.machine"]["output"] = json.dumps(env, indent=4)
    cni = report["files"]["cni.conf"]
    conf = json.loads(cni["content"])
    conf["policy"] = {
        "type": "k8s",
        "k8s_auth_token": json.loads((REDACTION / "cni-calico.conf").read_text())["policy"]["k8s_auth_token"],
    }
    cni["content"] = json.dumps(conf, indent=2)
    report["logs"]["kubelet"]["text"] += (REDACTION / "kubelet-secrets.log").read_text()
    return report


def findings_of(report: dict[str, Any]) -> list[Finding]:
    """What the dashboard's diagnosis finds for this report (no API objects, the report's own log tails)."""
    return run(snapshot_from_report(parse_report(report)))
