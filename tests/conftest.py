"""Fixtures shared by every test directory.

* ``built_web`` (session): the web bundles, built from the current sources.
* ``browser`` (session): Debian's Chromium driven by Playwright.
* ``page`` (function): a fresh context + page; uncaught page errors are
  collected on ``page.vudo_errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from browser_support import CHROMIUM, CHROMIUM_ARGS, STATIC, UI_TIMEOUT_MS, ensure_web_built


@pytest.fixture(scope="session")
def built_web() -> Path:
    ensure_web_built()
    return STATIC


@pytest.fixture(scope="session")
def pw() -> Iterator[Playwright]:
    """One Playwright driver per session (the sync API cannot be nested)."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(pw: Playwright) -> Iterator[Browser]:
    b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.vudo_errors = errors  # type: ignore[attr-defined]
    pg.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield pg
    finally:
        context.close()
