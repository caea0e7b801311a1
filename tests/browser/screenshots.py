"""Screenshots of the fleet, a critical node, History and the Diagnose page, at 1440 and 390 px.

    .venv/bin/python tests/browser/screenshots.py [OUT_DIR]      (or: bin/screenshots)

Runs ``manage.py demo`` on a private database and port (real web server, worker, simulated
agents and cluster), waits for the simulated nodes to report, then adds a week of finding
history so the History charts have something to draw. That history is INVENTED for the
pictures (random opened/resolved findings on the demo's nodes); everything else on the
screenshots is what the demo produces. Chromium is /usr/bin/chromium, driven by Playwright.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
WIDTHS = {"1440": (1440, 900), "390": (390, 844)}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup_django(var_dir: Path) -> None:
    os.environ["WND_VAR_DIR"] = str(var_dir)
    os.environ["DATABASE_URL"] = f"sqlite:///{var_dir / 'db.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def wait_for_reports(nodes_wanted: int, timeout: float = 180.0) -> None:
    from dashboard.models import Node

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reported = Node.objects.filter(last_report_at__isnull=False, last_diagnosed_report_id__gt=0).count()
        if reported >= nodes_wanted:
            return
        time.sleep(2)
    raise SystemExit(f"the demo's nodes did not report within {timeout:.0f} s")


def invent_history(seed: int = 7) -> None:
    """A week of opened/resolved findings on the demo's nodes (invented, for the charts only)."""
    from django.utils import timezone

    from dashboard.models import Finding, Node
    from dashboard.monitoring import FindingEvent

    rng = random.Random(seed)
    now = timezone.now()
    checks = [
        ("hns.network-missing", "critical", "The HNS network for pods is missing"),
        ("flannel.subnet-env-missing", "critical", "subnet.env is missing"),
        ("kube-proxy.hostname-override", "warning", "kube-proxy runs without --hostname-override"),
        ("pause.image-incompatible", "critical", "The pause image does not match the host's Windows build"),
        ("node.version-skew", "warning", "Kubelet version is skewed from the control plane"),
        ("os.hotfix-missing", "warning", "A hotfix the overlay network needs is missing"),
        ("dns.pqdn-unsupported", "info", "Partially qualified names do not resolve from Windows pods"),
    ]
    nodes = list(Node.objects.all())
    for i in range(90):
        node = rng.choice(nodes)
        check_id, severity, title = rng.choice(checks)
        opened = now - timedelta(hours=rng.uniform(2, 7 * 24))
        resolved = opened + timedelta(minutes=rng.uniform(5, 36 * 60))
        finding = Finding.objects.create(
            node=node,
            check_id=check_id,
            subject=f"invented-{i}",
            severity=severity,
            title=title,
            summary="Invented for the screenshots' history charts.",
            first_seen=opened,
            last_seen=min(resolved, now),
            resolved_at=resolved if resolved < now else None,
        )
        FindingEvent.objects.create(finding=finding, node=node, kind=FindingEvent.OPENED, at=opened)
        if resolved < now:
            FindingEvent.objects.create(finding=finding, node=node, kind=FindingEvent.RESOLVED, at=resolved)


def shoot(url: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from dashboard.models import Node

    critical = Node.objects.filter(health="critical").select_related("cluster").order_by("-critical_count").first()
    node = critical or Node.objects.select_related("cluster").order_by("-health_rank").first()
    assert node is not None, "the demo has no node"
    pages = {
        "fleet": "/",
        "node-critical": node.get_absolute_url(),
        "history": "/history?window=7d",
        "diagnose": "/diagnose",
    }
    excerpt = (ROOT / "agent" / "scenarios" / "flanneld-waiting-for-network" / "logs").glob("*flannel*")
    paste = next(iter(sorted(excerpt)), None)
    written: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for label, (width, height) in WIDTHS.items():
            for scheme in ("light", "dark") if label == "1440" else ("light",):
                context = browser.new_context(
                    base_url=url, viewport={"width": width, "height": height}, color_scheme=scheme
                )
                page = context.new_page()
                page.goto("/login/")
                page.get_by_label("User name").fill("operator")
                page.get_by_label("Password").fill("operator-demo")
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{url}/")
                for name, path in pages.items():
                    if scheme == "dark" and name not in ("fleet", "node-critical"):
                        continue
                    page.goto(path)
                    if name in ("fleet", "node-critical"):
                        page.locator("#live-status.live").wait_for(timeout=15_000)
                    if name == "node-critical":
                        first = page.locator("#node-findings details.finding-body").first
                        if first.count():
                            first.locator("summary").first.click()
                    if name == "diagnose" and paste is not None:
                        page.locator("textarea[name='text']").fill(paste.read_text(errors="replace")[-6000:])
                        page.get_by_role("button", name="Analyze the text").click()
                        page.locator("#diagnose-result h2").wait_for(timeout=30_000)
                    page.wait_for_timeout(500)
                    suffix = "" if scheme == "light" else "-dark"
                    target = out / f"{name}-{label}{suffix}.png"
                    page.screenshot(path=str(target), full_page=True)
                    first_screen = out / f"{name}-{label}{suffix}-first-screen.png"
                    page.evaluate("window.scrollTo(0, 0)")
                    page.screenshot(path=str(first_screen))
                    written += [target, first_screen]
                context.close()
        browser.close()
    return written


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "var" / "screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wnd-shots-") as tmp:
        var_dir = Path(tmp)
        setup_django(var_dir)
        port = free_port()
        env = {**os.environ, "WND_LOG_LEVEL": "WARNING"}
        demo = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "demo", "--port", str(port), "--interval", "5"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            from dashboard.server.embedded import wait_for_http

            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=120)
            wait_for_reports(nodes_wanted=7)
            invent_history()
            for path in shoot(f"http://127.0.0.1:{port}", out):
                print(path)
        finally:
            demo.terminate()
            demo.wait(30)


if __name__ == "__main__":
    main()
