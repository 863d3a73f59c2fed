"""A direct link to a page, the first request a freshly started server gets,
shows that page with the app's sidebar: why the pages live in views/ and not
pages/ (Streamlit would run a pages/ file on its own, without app.py)."""

import pytest

from real_server import chromium, exceptions, have_chromium, idle, open_page, streamlit_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(1800),  # a server and a browser on two busy cores
    pytest.mark.skipif(not have_chromium(),
                       reason="needs Debian's 'chromium' package (apt-get install chromium); `make test` installs it"),
]

#: The six pages of the navigation, as README's "The app" names them.
TITLES = ("Islands", "Teacher vs APM", "Latent interpolation", "Boring video", "Efficiency",
          "Test-time classification")


@pytest.mark.parametrize("path, title, own_widget", [
    ("teacher_vs_apm", "Teacher vs APM", "Run to compare"),
    ("efficiency", "Efficiency", None),
])
def test_direct_link_on_a_fresh_server_shows_the_page_with_its_sidebar(path, title, own_widget):
    with streamlit_server() as server, chromium() as browser:
        page = open_page(browser, f"{server.url}/{path}", wait_for=None)
        sidebar = page.locator('[data-testid="stSidebar"]')
        # The full page: the shared sidebar (ui/sidebar.py) that app.py draws, once the engine has loaded
        # (a fresh server may first show the page's title alone while it loads).
        sidebar.get_by_text("Teacher weights").first.wait_for(timeout=600_000)
        page.get_by_role("heading", name=title, level=1).first.wait_for(timeout=600_000)
        idle(page, 600_000)
        assert page.url.rstrip("/").endswith("/" + path)
        assert page.get_by_role("heading", level=1).first.inner_text().strip() == title
        assert "Teacher weights" in sidebar.inner_text()
        assert sidebar.get_by_role("combobox", name="Sample").input_value() == "chelsea.jpg"  # the default sample
        nav = [a.inner_text().strip() for a in sidebar.locator('[data-testid="stSidebarNavLink"]').all()]
        assert sorted(nav) == sorted(TITLES), nav
        if own_widget:
            assert page.get_by_text(own_widget).count() >= 1
        assert exceptions(page) == []
        assert "Traceback" not in server.log(), server.log()[-3000:]
