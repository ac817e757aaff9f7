"""The dashboard's fixtures: one chromium for the session, a fresh context (cookies, storage) per test.

Every page a test opens must log nothing to the console at error level and throw nothing: the
``page`` fixture fails the test after the fact when it did.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page

from tests.support.browser import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium per module: Playwright's sync API keeps an event loop running in this thread while it
    lives, and the in-process tests that follow (``asyncio.run`` in their fixtures) cannot start under it."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-GB", timezone_id="Asia/Shanghai")
    context.set_default_timeout(10_000)
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text} at {message.location}")

    def on_error(error: Error) -> None:
        errors.append(f"page error: {error}")

    opened = context.new_page()
    opened.on("console", on_console)
    opened.on("pageerror", on_error)
    try:
        yield opened
    finally:
        context.close()
    assert not errors, "\n".join(errors)
