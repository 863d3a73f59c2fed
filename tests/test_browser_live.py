"""Live islands in a real browser: while a run trains, the page draws each new
frame inside its polling fragment, and the whole page (sidebar, controls,
notes) runs again only when the run's state changes.

Read from the session's own websocket: every message the server sends is a
Streamlit `ForwardMsg`; a script run ends with `script_finished`, which says
whether it was the whole page or a fragment, and a figure sent in full (not as
a reference to one the browser holds) is a new figure.
"""

import re

import pytest

from real_server import chromium, exceptions, export_panel, have_chromium, idle, streamlit_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(not have_chromium(), reason="needs Debian's 'chromium' package (apt-get install chromium)"),
]

ITERS = 100


def record(page) -> list:
    """Every ForwardMsg the page receives, decoded, in order."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msgs: list = []

    def on_frame(payload):
        if isinstance(payload, (bytes, bytearray)):
            m = ForwardMsg()
            m.ParseFromString(bytes(payload))
            msgs.append(m)

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    return msgs


def runs_and_maps(msgs: list) -> tuple[int, int, int]:
    """(whole-page runs, fragment runs, island maps sent in full) among `msgs`."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    full = frag = maps = 0
    for m in msgs:
        kind = m.WhichOneof("type")
        if kind == "script_finished":
            if m.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                full += 1
            elif m.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                frag += 1
        elif kind == "delta" and m.delta.WhichOneof("type") == "new_element":
            el = m.delta.new_element
            if el.WhichOneof("type") == "plotly_chart" and "APM islands" in el.plotly_chart.spec:
                maps += 1
    return full, frag, maps


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_while_training_new_frames_are_drawn_without_running_the_whole_page(browser):
    with streamlit_server() as server:
        page = browser.new_context(viewport={"width": 1600, "height": 1200}).new_page()
        page.set_default_timeout(600_000)
        msgs = record(page)  # before the page opens its websocket
        page.goto(server.url)
        page.get_by_text("Islands of agreement").first.wait_for()
        idle(page)
        page.locator('[data-testid="stSidebar"]').get_by_text("16x16 (224 px)").click()
        idle(page)
        box = page.get_by_label("TTT iterations")
        box.fill(str(ITERS))
        box.press("Enter")
        idle(page)
        start = len(msgs)
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text(re.compile(rf"iteration {ITERS}/{ITERS}")).first.wait_for(timeout=900_000)
        export_panel(page).first.wait_for(timeout=300_000)
        idle(page)
        full, frag, maps = runs_and_maps(msgs[start:])
        frames = re.search(r"(\d+)/(\d+) frames", page.get_by_text(re.compile(r"\d+/\d+ frames")).first.inner_text())
        assert not exceptions(page)
        page.context.close()
        assert "Traceback" not in server.log(), server.log()[-3000:]
    n = int(frames.group(2))
    assert int(frames.group(1)) == n >= 10
    # New island maps reached the browser while the film trained (a frame that lands while the
    # page draws another is passed over for the newest), each in a run of the fragment; the whole
    # page ran for Run itself and for the handover once the film was done (once more at most, for
    # a state that changed in between, e.g. queued -> running). Measured: 2 whole-page runs, 5
    # fragment runs, 7 maps; the page that ran the whole page for each new frame: 6, 2 and 5.
    assert maps >= 4 and frag >= 4, (full, frag, maps)
    assert full <= 3, (full, frag, maps)
