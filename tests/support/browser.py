"""A real browser for the dashboard's tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download needs the internet; ``executable_path`` points it at the
system's chromium instead (``.ci/run`` installs it where missing). Root needs ``--no-sandbox``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless chromium for the length of the block; skipped where none is installed, except on CI."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `apt-get install chromium` (.ci/run does it)")
        pytest.skip("chromium is not installed: `apt-get install chromium`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()
