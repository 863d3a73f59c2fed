"""The app in a real browser: `streamlit run app.py` on a loopback port, driven by
Playwright through Debian's Chromium (never a downloaded browser)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(1800),  # a server, a browser and a film on two cores: more than the default
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="needs Debian's 'chromium' package (apt-get install chromium); `make test` installs it"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", APM_VIZ_WEIGHTS_DIR=str(tmp_path_factory.mktemp("weights")))
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                 "--server.address", "127.0.0.1", "--server.headless", "true"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("streamlit did not start:\n" + log.read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1600, "height": 1200})
        pg.set_default_timeout(120_000)
        pg.goto(server)
        pg.get_by_text("Islands of agreement").first.wait_for()
        _idle(pg)
        yield pg
        browser.close()


def _shot(page, name: str) -> Path:
    folder = Path(os.environ.get("APM_VIZ_SCREENSHOTS", ROOT / ".pytest_cache" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _idle(page, timeout: float = 120_000):
    """Wait until the script run in progress (if any) has finished."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout)
    page.wait_for_timeout(300)


def _no_exception(page):
    assert page.locator('[data-testid="stException"]').count() == 0


def test_run_scrub_and_render(page):
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "random init" in sidebar.inner_text()
    sidebar.get_by_text("16x16 (224 px)").click()
    _idle(page)
    assert sidebar.get_by_role("radio", name="16x16 (224 px)").is_checked()
    iters = page.get_by_label("TTT iterations")
    iters.fill("40")
    iters.press("Enter")
    _idle(page)
    run = page.get_by_role("button", name="Run")
    run.click()
    page.get_by_text("iteration 40/40").first.wait_for(timeout=240_000)
    run.and_(page.locator("[disabled]")).wait_for(timeout=240_000)
    _idle(page)
    _no_exception(page)
    plots = page.locator(".js-plotly-plot")
    assert plots.count() >= 6  # input, island map, 2-D, 3-D, teacher, loss, count
    assert page.locator(".js-plotly-plot .gl-container canvas, .js-plotly-plot canvas").count() >= 1  # 3-D
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="TTT iteration").get_by_role("slider")
    assert slider.get_attribute("aria-valuetext") == "40"
    slider.focus()
    slider.press("Home")
    _idle(page)
    assert slider.get_attribute("aria-valuetext") == "0"
    _no_exception(page)
    assert page.get_by_text("APM islands").count() >= 1
    _shot(page, "islands.png")


def test_bad_upload_shows_one_line_and_keeps_working(page, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_text("this is not a picture")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Upload", exact=True).click()
    _idle(page)
    sidebar.locator('input[type="file"]').set_input_files(str(bad))
    err = page.locator('[data-testid="stAlertContentError"]').filter(has_text="holiday.png")
    err.first.wait_for(timeout=60_000)
    assert "\n" not in err.first.inner_text().strip()
    _no_exception(page)
    # The previous image and its finished run are still on screen.
    page.locator('[data-testid="stSlider"]').filter(has_text="TTT iteration").wait_for()
    good = tmp_path / "cat.jpg"
    good.write_bytes((ROOT / "assets" / "coffee.jpg").read_bytes())
    sidebar.locator('input[type="file"]').set_input_files(str(good))
    page.get_by_text("Press Run to start test-time training.").wait_for(timeout=60_000)
    _no_exception(page)
    _shot(page, "upload.png")
