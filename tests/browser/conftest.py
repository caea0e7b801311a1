from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.integration.live import session_cookie
from tests.stack import Stack, running_stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


# Per module, not per session: Playwright's sync API keeps an event loop running
# in this thread while it is alive, which the asyncio tests that follow cannot share.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def stack(transactional_db: Any) -> Iterator[Stack]:
    with running_stack() as running:
        yield running


@pytest.fixture
def signed_in(browser: Browser, stack: Stack) -> Any:
    """Open a page signed in as ``user`` (a fresh browser context each time)."""
    opened: list[Any] = []

    def open_as(user: Any) -> Page:
        context = browser.new_context(base_url=stack.url)
        context.add_cookies([{"name": "sessionid", "value": session_cookie(user).split("=", 1)[1], "url": stack.url}])
        opened.append(context)
        return context.new_page()

    yield open_as
    for context in opened:
        context.close()
