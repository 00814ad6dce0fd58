"""Fixtures of the portal tests: a real `shulian serve` over a seeded demo city, and headless Chromium.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (never ``playwright install``).
Without it (or without Playwright) the browser tests skip with one line saying so; ``make test``
installs it with apt-get where it can.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import run_cli, start_serve

CHROMIUM = os.environ.get("SHULIAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHULIAN = [sys.executable, "-m", "api.cli"]
PASSPHRASE = "portal test passphrase"


def browser_unavailable() -> str | None:
    """None when the browser tests can run, else one line saying why not."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"no chromium at {CHROMIUM}: `apt-get install -y chromium` (make test does it as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@dataclass
class PortalServer:
    url: str
    env: dict[str, str]
    home: Path


def _run(env: dict[str, str], *args: str) -> None:
    run_cli(env, *args)


def start_server(
    tmp: Path, *, environment: str = "development", seed: bool = True
) -> tuple[subprocess.Popen[bytes], PortalServer]:
    env = dict(os.environ)
    env.update(
        SHULIAN_HOME=str(tmp / "home"),
        SHULIAN_DB=f"sqlite:///{tmp / 'ledger.db'}",
        SHULIAN_PASSPHRASE=PASSPHRASE,
        SHULIAN_ENV=environment,
    )
    _run(env, "init", "--origin", "portal.example.gov.cn/shulian")
    if seed:
        _run(env, "demo")
    proc, url = start_serve(env)
    return proc, PortalServer(url, env, tmp / "home")


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalServer]:
    """`shulian serve` (SHULIAN_ENV=development) over a fresh ledger with the demo city."""
    proc, server = start_server(tmp_path_factory.mktemp("portal"))
    yield server
    proc.terminate()
    proc.wait(10)


def clone_server(portal: PortalServer, tmp: Path, **extra_env: str) -> tuple[subprocess.Popen[bytes], PortalServer]:
    """Another `shulian serve` over a copy of ``portal``'s seeded ledger and keys (SQLite online backup), for
    a test that changes server-wide state (witnesses, the clock of objections) without paying for a demo city."""
    import sqlite3

    src_db = portal.env["SHULIAN_DB"].removeprefix("sqlite:///")
    shutil.copytree(portal.home, tmp / "home")
    with sqlite3.connect(src_db) as src, sqlite3.connect(tmp / "ledger.db") as dst:
        src.backup(dst)
    env = dict(portal.env)
    env.update(SHULIAN_HOME=str(tmp / "home"), SHULIAN_DB=f"sqlite:///{tmp / 'ledger.db'}", **extra_env)
    proc, url = start_serve(env)
    return proc, PortalServer(url, env, tmp / "home")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser: Any, url: str, *, width: int = 1200, **context: Any) -> Any:
    """A page in a fresh context (its own IndexedDB and localStorage); ``page.errors`` collects uncaught
    errors and Content-Security-Policy violations, which the tests require to stay empty."""
    ctx = browser.new_context(viewport={"width": width, "height": 900}, **context)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.errors = errors
    page.goto(url)
    return page


def demo_sign_in(page: Any, name: str) -> None:
    """Click the demo identity ``name`` and wait until the page has loaded and verified what it shows."""
    page.click(f'button.demo-id[data-name="{name}"]', timeout=20_000)
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
