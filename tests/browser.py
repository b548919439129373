"""Debian's Chromium (/usr/bin/chromium, installed by `make test`) driven by Playwright, for
the tests of the widget and the admin service's pages. Never `playwright install`: no browser
is downloaded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Headless in a container: no sandbox, no GPU, and none of its own network chatter.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing (make test installs Debian's chromium)")


@contextmanager
def chromium() -> Iterator[Browser]:
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def watched_page(browser: Browser, wait_ms: int, init_script: str | None = None,
                 **context: Any) -> Iterator[Page]:
    """A page in a fresh browser context (`context`: its options, e.g. timezone_id); when the
    block ends, no script error and nothing the page's own Content-Security-Policy refused
    (an inline style or script slipped in would be)."""
    browser_context = browser.new_context(**context)
    if init_script is not None:
        browser_context.add_init_script(init_script)
    page = browser_context.new_page()
    page.set_default_timeout(wait_ms)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text else None)
    try:
        yield page
    finally:
        browser_context.close()
    assert not problems, problems
