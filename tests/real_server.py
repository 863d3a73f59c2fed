"""The app as a person uses it: `streamlit run app.py` on a loopback port and
Playwright pages through Debian's Chromium (never a downloaded browser).

Reusable by tests and benchmarks:

    with streamlit_server(env={"APM_VIZ_MAX_RUNS": "3"}) as server, chromium() as browser:
        page = open_page(browser, server.url)
        ...
        assert "Traceback" not in server.log()

`streamlit_server` starts a fresh server (fresh caches, fresh run manager) and
stops it; `chromium` launches one headless browser, in which each
`open_page` is its own browser context, i.e. its own Streamlit session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: As root Chromium needs --no-sandbox; the rest keep it from reaching out.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def have_chromium() -> bool:
    return Path(CHROMIUM).exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    log_path: Path
    process: subprocess.Popen

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def streamlit_server(env: Optional[dict] = None, start_timeout: float = 180,
                     root: Path = ROOT) -> Iterator[Server]:
    """A fresh `streamlit run app.py` on 127.0.0.1, offline, with its own weights folder.

    env: extra environment variables for the server (e.g. APM_VIZ_MAX_RUNS).
    root: the checkout whose app.py runs (another worktree, to compare versions).
    The server's stdout and stderr go to `Server.log_path`.
    """
    folder = Path(tempfile.mkdtemp(prefix="apm-viz-server-"))
    weights = folder / "weights"
    weights.mkdir()
    port = free_port()
    full_env = dict(os.environ, HF_HUB_OFFLINE="1", APM_VIZ_WEIGHTS_DIR=str(weights), PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    log_path = folder / "streamlit.log"
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                 "--server.address", "127.0.0.1", "--server.headless", "true"],
                                cwd=root, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", log_path, proc)
    try:
        deadline = time.time() + start_timeout
        while True:
            try:
                if urllib.request.urlopen(server.url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("streamlit did not start:\n" + server.log()[-3000:])
                time.sleep(0.3)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def chromium():
    """One headless Chromium (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, width: int = 1600, height: int = 1200, timeout_ms: float = 600_000,
              wait_for: Optional[str] = "Islands of agreement"):
    """A new browser context (a session of its own) on `url`, once `wait_for` is on screen."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.goto(url)
    if wait_for:
        page.get_by_text(wait_for).first.wait_for()
    return page


def idle(page, timeout_ms: float = 600_000) -> None:
    """Wait until the script run in progress (if any) has finished."""
    page.wait_for_timeout(400)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout_ms)
    page.wait_for_timeout(200)


def export_panel(page):
    """The page's "Export for slides" expander: a page draws it only once its run is done, so it marks
    the finished page (the last progress line can be on screen while the run is still live)."""
    return page.locator('[data-testid="stExpander"]').filter(has_text="Export for slides")


def exceptions(page) -> list[str]:
    """The text of every exception box on the page."""
    return [e.inner_text() for e in page.locator('[data-testid="stException"]').all()]


def screenshot(page, name: str) -> Path:
    folder = Path(os.environ.get("APM_VIZ_SCREENSHOTS", ROOT / ".pytest_cache" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    return path
