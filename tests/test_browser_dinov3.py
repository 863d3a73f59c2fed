"""Every page with a DINOv3 teacher in a real browser, on a server of its own. A file of its own:
Playwright's sync API cannot start while test_browser.py's module-wide browser is still open."""

import pytest

from real_server import chromium, export_panel, have_chromium, open_page, streamlit_server
from test_browser import _fill, _goto, _idle, _no_exception, _shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(not have_chromium(),
                       reason="needs Debian's 'chromium' package (apt-get install chromium); `make test` installs it"),
]


def test_every_page_with_a_dinov3_teacher():
    """A server of its own, a session that picks DINOv3 (patch 16, random init offline) and goes through every page."""
    with streamlit_server() as server, chromium() as browser:
        pg = open_page(browser, server.url)  # a busy 2-core machine renders each tick's figures slowly
        try:
            sidebar = pg.locator('[data-testid="stSidebar"]')
            sidebar.get_by_text("Teacher weights").first.wait_for()  # the engine has loaded
            _idle(pg)
            sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="Teacher").first.click()
            pg.keyboard.type("dinov3-small ·")  # the list scrolls; typing filters it
            pg.get_by_role("option", name="dinov3-small · DINOv3").click()
            sidebar.get_by_text("DINOv3: patch 16 px, width 384").wait_for()
            _idle(pg)
            sidebar.get_by_text("16x16 (256 px)").click()
            _idle(pg)
            assert sidebar.get_by_role("radio", name="16x16 (256 px)").is_checked()
            assert "random init" in sidebar.inner_text()

            pg.get_by_text("PCA", exact=True).first.click()  # quicker frames than t-SNE on a busy machine
            _idle(pg)
            _fill(pg, "TTT iterations", 10)
            pg.get_by_role("button", name="Run").first.click()
            pg.get_by_text("iteration 10/10").first.wait_for()
            export_panel(pg).first.wait_for()  # the finished page
            _idle(pg)
            _no_exception(pg)
            assert pg.get_by_text("APM islands").count() >= 1

            _goto(pg, "Teacher vs APM")
            _fill(pg, "TTT iterations", 20)
            pg.get_by_role("button", name="Run").first.click()
            pg.get_by_text("iteration 20/20").first.wait_for()
            _idle(pg)
            pg.get_by_text("Mean relative L1 error").first.wait_for()
            _no_exception(pg)

            _goto(pg, "Latent interpolation")
            _fill(pg, "Fit iterations", 20)
            pg.get_by_role("button", name="Fit", exact=True).first.click()
            pg.get_by_text("Smoothness (RGB)").first.wait_for()
            assert "teacher dinov3-small (random)" in pg.locator('[data-testid="stMain"]').inner_text()
            _no_exception(pg)

            _goto(pg, "Boring video")
            pg.get_by_text("APM and the teacher 16x16").first.wait_for()
            _no_exception(pg)

            _goto(pg, "Efficiency")
            pg.get_by_role("button", name="Measure").click()
            pg.get_by_text("Fastest APM field").first.wait_for()
            assert "against dinov3-small" in pg.locator('[data-testid="stMain"]').inner_text()
            _no_exception(pg)
            _shot(pg, "dinov3-efficiency.png")
        except Exception:
            _shot(pg, "dinov3-failure.png")
            raise
        finally:
            pg.context.close()
        assert "Traceback" not in server.log(), server.log()[-3000:]
