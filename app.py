"""apm-viz: `streamlit run app.py`. Navigation over views/ and the shared sidebar."""

from pathlib import Path

import streamlit as st

from ui import boot, runs

st.set_page_config(page_title="apm-viz: islands of agreement", page_icon="🏝️", layout="wide")

# Not "pages/": Streamlit would also treat that folder as an old-style multipage app
# (a direct link to a page would then run it without this script and its sidebar;
# tests/test_direct_link_browser.py opens one on a fresh server).
PAGES = Path(__file__).parent / "views"
TITLES = {"islands": "Islands", "teacher_vs_apm": "Teacher vs APM", "interpolation": "Latent interpolation",
          "boring_video": "Boring video", "efficiency": "Efficiency",
          "classification": "Test-time classification"}


def _pages():
    out = []
    for i, path in enumerate(sorted(PAGES.glob("[0-9]*_*.py"))):
        stem = path.stem.split("_", 1)[1]
        out.append(st.Page(str(path), title=TITLES.get(stem, stem.replace("_", " ").capitalize()),
                           url_path=stem, default=i == 0))
    return out


# st.navigation before any widget: widgets created earlier lose their first change.
page = st.navigation(_pages())
boot.start()
runs.manager()  # the worker processes start with the server's first page: warm by the first Run
if not boot.ready():  # a fresh server: a first look at once, the full page once the engine has loaded
    boot.first_look(page.title, islands=page.title == TITLES["islands"])

from ui import sidebar  # noqa: E402  (imports the engine: after the first look)

st.session_state["choice"] = sidebar.render()
page.run()
