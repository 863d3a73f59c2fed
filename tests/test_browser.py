"""The app in a real browser: `streamlit run app.py` on a loopback port, driven by
Playwright through Debian's Chromium (never a downloaded browser)."""

import re

import pytest

from real_server import ROOT, chromium, exceptions, export_panel, have_chromium, idle, open_page, screenshot, streamlit_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(1800),  # a server, a browser and a film on two cores: more than the default
    pytest.mark.skipif(not have_chromium(),
                       reason="needs Debian's 'chromium' package (apt-get install chromium); `make test` installs it"),
]


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:  # one per module: Playwright's sync API cannot run two at once in one thread
        yield b


@pytest.fixture(scope="module")
def page(browser):
    with streamlit_server() as server:
        pg = open_page(browser, server.url)
        idle(pg)
        yield pg
        assert "Traceback" not in server.log(), server.log()[-3000:]


def _shot(page, name: str):
    return screenshot(page, name)


def _idle(page, timeout: float = 600_000):
    idle(page, timeout)


def _no_exception(page):
    assert exceptions(page) == []


def test_run_scrub_and_render(page):
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "random init" in sidebar.inner_text()
    assert page.get_by_text("Deploy").count() == 0  # client.toolbarMode = "viewer"
    sidebar.get_by_text("16x16 (224 px)").click()
    _idle(page)
    assert sidebar.get_by_role("radio", name="16x16 (224 px)").is_checked()
    iters = page.get_by_label("TTT iterations")
    iters.fill("40")
    iters.press("Enter")
    _idle(page)
    run = page.get_by_role("button", name="Run")
    run.click()
    page.get_by_text("iteration 40/40").first.wait_for(timeout=900_000)
    run.and_(page.locator("[disabled]")).wait_for(timeout=900_000)
    export_panel(page).first.wait_for(timeout=120_000)  # the finished page
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


def _fill(page, label: str, value: int) -> None:
    box = page.get_by_label(label)
    box.fill(str(value))
    box.press("Enter")
    _idle(page)


def _goto(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title if title != "Islands" else "Islands of agreement").first.wait_for()
    _idle(page, 600_000)


def test_a_fresh_server_shows_the_page_at_once_and_keeps_a_run_pressed_while_the_engine_loads(browser):
    """The first page of a fresh server is drawn before torch is imported: title, image and an enabled
    Run, with a line saying the engine is loading; a Run pressed then starts by itself once it has."""
    with streamlit_server() as server:
        pg = open_page(browser, server.url, wait_for="Loading the engine")  # not the full page's heading  # torch, timm and the teacher take seconds
        pg.locator('[data-testid="stMain"] img').first.wait_for()
        run = pg.get_by_role("button", name="Run", exact=True).first
        assert run.is_enabled()
        assert pg.get_by_text("Loading the engine").count() >= 1
        assert pg.locator('[data-testid="stSidebar"]').get_by_text("Teacher weights").count() == 0
        run.click()
        # No second press: the run of the default settings appears (queued or training) once the page is full.
        pg.get_by_text(re.compile(r"iteration \d+/250")).first.wait_for(timeout=900_000)
        assert pg.locator('[data-testid="stSidebar"]').get_by_text("random init").count() >= 1
        assert pg.get_by_text("Loading the engine").count() == 0
        _no_exception(pg)
        pg.get_by_role("button", name="Reset", exact=True).click()
        _idle(pg)
        _no_exception(pg)
        pg.context.close()
        assert "Traceback" not in server.log(), server.log()[-3000:]
