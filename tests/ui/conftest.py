"""Browser fixtures for tests/ui: headless Chromium from Debian (tools/ui/install-browser.sh installs it),
driven by Playwright, and a collector of the failed HTTP responses a page got.

Playwright's own browser download is never used: `executable_path` is Debian's chromium."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator:
    """One headless Chromium for the session (a new context per test keeps tests apart)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: tests/ui use Debian's chromium (run tools/ui/install-browser.sh)"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        # --no-sandbox: the tests run as root here, where Chromium's sandbox refuses to start.
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


@dataclass
class FailedResponses:
    """Every response with a 4xx/5xx status a page received (method, status, URL), so a test can fail on
    a page that looks fine but whose calls to the API were refused."""

    failures: list[str] = field(default_factory=list)

    def watch(self, page) -> None:
        page.on("response", self._record)
        page.on("requestfailed", self._record_failed)

    def _record(self, response) -> None:
        if response.status >= 400:
            self.failures.append(f"{response.request.method} {response.status} {response.url}")

    def _record_failed(self, request) -> None:
        # net::ERR_ABORTED is the page cancelling its own fetch (the UI aborts a history read it replaces
        # when it re-renders): no answer from the server at all, so not a refusal.
        if request.failure and "ERR_ABORTED" in request.failure:
            return
        self.failures.append(f"{request.method} failed ({request.failure}) {request.url}")

    def assert_none(self) -> None:
        assert not self.failures, "the page got failed responses:\n" + "\n".join(self.failures)


@pytest.fixture
async def page(browser) -> AsyncIterator:
    """A fresh browser context and page (1400x1000); `page.failed_responses` collects its failed calls."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    p = await context.new_page()
    p.failed_responses = FailedResponses()
    p.failed_responses.watch(p)
    try:
        yield p
    finally:
        await context.close()
