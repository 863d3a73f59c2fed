"""The Test-time classification page in a real browser: `streamlit run app.py` on a
loopback port, driven by Playwright through Debian's Chromium. The tiny random-init
CLIP, one image, a short run: both top-5s on screen, the random-weights message,
no exception; then a bad label file gives one line and the page keeps its run."""

import pytest

from real_server import chromium, exceptions, export_panel, have_chromium, idle, open_page, screenshot, streamlit_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(1800),  # a server, a browser and a run on two cores
    pytest.mark.skipif(not have_chromium(),
                       reason="needs Debian's 'chromium' package (apt-get install chromium); `make test` installs it"),
]

ITERS = 12
WAIT_MS = 900_000
HEADLINE = "Random weights: these predictions are chance and mean nothing."


@pytest.fixture(scope="module")
def page():
    with streamlit_server() as server, chromium() as browser:
        pg = open_page(browser, server.url + "/classification", wait_for="Test-time classification",
                       timeout_ms=WAIT_MS)
        idle(pg, WAIT_MS)
        yield pg
        assert "Traceback" not in server.log(), server.log()[-3000:]


def choose(page, label: str, option: str) -> None:
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()
    idle(page, WAIT_MS)


def test_a_short_run_shows_both_top5s_and_says_they_are_chance(page):
    main = page.locator('[data-testid="stMain"]')
    choose(page, "CLIP", "tiny random CLIP (2 blocks, for tests)")
    choose(page, "Prompt templates", "single (1)")
    main.get_by_text("Random init", exact=True).click()
    idle(page, WAIT_MS)
    iters = main.get_by_label("TTT iterations")
    iters.fill(str(ITERS))
    iters.press("Enter")
    idle(page, WAIT_MS)
    run = main.get_by_role("button", name="Run", exact=True)
    run.click()
    page.get_by_text(f"iteration {ITERS}/{ITERS}").first.wait_for(timeout=WAIT_MS)
    run.and_(page.locator("[disabled]")).wait_for(timeout=WAIT_MS)
    export_panel(page).first.wait_for(timeout=120_000)  # the finished page
    idle(page, WAIT_MS)
    assert exceptions(page) == []
    topk = page.locator(".st-key-cls-topk .js-plotly-plot")
    topk.wait_for(timeout=WAIT_MS)
    shown = topk.inner_text()
    assert "CLIP zero-shot" in shown and f"APM at iteration {ITERS}" in shown
    assert topk.locator(".bars .point").count() == 10  # five bars in each chart
    assert page.get_by_text(HEADLINE).count() >= 1
    assert page.get_by_text("Export for slides").count() == 1
    screenshot(page, "classification.png")


def test_a_bad_label_file_is_one_line_and_the_run_stays(page, tmp_path):
    bad = tmp_path / "animals.txt"
    bad.write_text("only-one-label\n")
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("My label file", exact=True).click()
    idle(page, WAIT_MS)
    main.locator('input[type="file"]').set_input_files(str(bad))
    err = page.locator('[data-testid="stAlertContentError"]').filter(has_text="animals.txt")
    err.first.wait_for(timeout=WAIT_MS)
    assert "\n" not in err.first.inner_text().strip()
    idle(page, WAIT_MS)
    assert exceptions(page) == []
    assert main.get_by_role("button", name="Run", exact=True).is_disabled()
    assert "CLIP zero-shot" in page.locator(".st-key-cls-topk .js-plotly-plot").inner_text()
