"""Pages as a person sees them: Debian's Chromium driven by Playwright (its own browser
downloads are never used), for the report and the run summary."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    """The system Chromium (make setup installs it): missing FAILS, never skips."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed; the page tests need it (make setup)")


@contextmanager
def browser_page(width: int = 1280, height: int = 900) -> Iterator:
    """A fresh page in a fresh headless Chromium; every request off the page is recorded in
    ``page.requests_seen`` (a self-contained page makes none but its own file:// load)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.requests_seen = []
            page.on("request", lambda r: page.requests_seen.append(r.url))
            page.dialogs_seen = []
            page.on("dialog", lambda d: (page.dialogs_seen.append(d.message), d.dismiss()))
            page.errors_seen = []
            page.on("pageerror", lambda e: page.errors_seen.append(str(e)))
            yield page
        finally:
            browser.close()
