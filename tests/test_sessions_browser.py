"""Several people on one real server: `streamlit run app.py` on loopback, one
Playwright browser context per person (its own Streamlit session).

Three sessions train different samples at the same time; each one's numbers
(the metrics and manifest the talk bundle holds) equal the same run computed
alone by the engine in this process, and equal that seed trained alone on a
fresh server. Every progress line a page shows pairs an iteration with that
iteration's own loss. A fourth session with the first one's settings gets the
finished film without training. No page and no server log shows an exception.
"""

import hashlib
import json
import re
import time

import pytest

from real_server import ROOT, chromium, exceptions, export_panel, have_chromium, idle, open_page, screenshot, streamlit_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(2400),  # two servers, four sessions and three films at once on two cores
    pytest.mark.skipif(not have_chromium(), reason="needs Debian's 'chromium' package (apt-get install chromium)"),
]

ITERS = 20
SESSIONS = (("chelsea.jpg", 12), ("coffee.jpg", 13), ("rocket.jpg", 14))
#: The server's worker settings: three runs at once, one torch thread each.
SERVER_ENV = {"APM_VIZ_MAX_RUNS": "3", "APM_VIZ_RUN_THREADS": "1"}
PROGRESS = re.compile(rf"iteration (\d+)/{ITERS} · loss ([0-9.e+-]+|—)")
WAIT_MS = 600_000


def choose(page, sample: str, seed: int) -> None:
    """The sidebar and the page's iterations, as a person sets them."""
    sb = page.locator('[data-testid="stSidebar"]')
    sb.locator('[data-testid="stSelectbox"]').filter(has_text="Sample").click()
    page.get_by_role("option", name=sample, exact=True).click()
    idle(page)
    sb.get_by_text("16x16 (224 px)").click()
    idle(page)
    seed_box = sb.get_by_label("Seed")
    seed_box.fill(str(seed))
    seed_box.press("Enter")
    idle(page)
    iters = page.get_by_label("TTT iterations")
    iters.fill(str(ITERS))
    iters.press("Enter")
    idle(page)


def progress(page) -> tuple[int, str] | None:
    line = page.get_by_text(PROGRESS).first
    if line.count() == 0:
        return None
    m = PROGRESS.search(line.inner_text())
    return (int(m.group(1)), m.group(2)) if m else None


def finished(page) -> bool:
    return export_panel(page).count() > 0


def numbers(page) -> dict:
    """The film's metrics and manifest, downloaded as a person would. If no download comes, the page is
    kept as a screenshot and its text goes into the failure."""
    page.get_by_text("Export for slides").first.click()
    try:
        with page.expect_download(timeout=WAIT_MS) as d:
            page.get_by_role("button", name="Metrics and manifest .json").click()
    except Exception as err:
        shot = screenshot(page, f"no-download-{time.time():.0f}.png")
        text = page.locator('[data-testid="stMain"]').inner_text()
        raise AssertionError(f"no download ({err}); page at {shot}, its text ends: {text[-1500:]}") from err
    return json.loads(open(d.value.path(), "rb").read())


def train(pages: dict, seen: dict) -> None:
    """Press Run on every page, then watch their progress lines until each film is done and its
    finished page's line has been read (a page caught between two of its script runs can show the
    export without the line: one read there missed the last line once)."""
    for page in pages.values():
        page.get_by_role("button", name="Run").click()
    deadline = time.time() + WAIT_MS / 1000
    waiting = set(pages)
    while waiting and time.time() < deadline:
        for name in list(waiting):
            page = pages[name]
            done = finished(page)
            p = progress(page)  # read after `finished`, so a line read on a finished page is its last one
            if p is not None and p[1] != "—":
                seen[name].add(p)
            if done and p is not None and p[0] == ITERS:
                waiting.discard(name)
        time.sleep(0.2)
    assert not waiting, f"not finished with its last line on screen: {waiting}"


def engine_alone(sample: str, seed: int):
    """The same run, computed by the engine alone in this process with the server's thread settings."""
    import torch

    from apm_viz.images import load_image
    from apm_viz.islands import island_history
    from apm_viz.pipeline import encode
    from apm_viz.teachers import create_teacher
    from apm_viz.recipes import islands_config
    from apm_viz.ttt import run_ttt
    from apm_viz.worker_process import fix_threads

    before = torch.get_num_threads()
    limits = fix_threads(int(SERVER_ENV["APM_VIZ_RUN_THREADS"]))
    try:
        teacher = create_teacher("dinov2-small", None, allow_download=True, seed=seed)  # what the sidebar builds
        image = load_image(ROOT / "assets" / sample)
        out = encode(image, teacher, 16)
        config = islands_config(preset="laptop", iters=ITERS, seed=seed)  # Automatic: the one rule, for every teacher
        run = run_ttt(out, config)
    finally:
        torch.set_num_threads(before)
        limits.restore_original_limits()
    counts = island_history([s.field for s in run.snapshots], 0.8, 4)
    return image, config, run, [[i, c] for i, c in zip(run.iterations, counts)]


def check_numbers(got: dict, sample: str, seed: int, expected) -> None:
    image, config, run, islands = expected
    man, met = got["manifest"], got["metrics"]
    assert man["image"]["sha256"] == image.sha256 == hashlib.sha256((ROOT / "assets" / sample).read_bytes()).hexdigest()
    assert man["seed"] == seed and man["settings"]["grid"] == 16
    assert man["settings"]["ttt"] == config.to_dict()
    assert man["teacher"]["weights_source"] == "random"
    assert met["status"] == "done"
    assert met["loss"] == [[i, v] for i, v in run.losses]  # bit for bit
    assert met["islands"] == islands


def check_progress(seen: set, run) -> None:
    """Every progress line shown paired an iteration with that iteration's own loss."""
    losses = dict(run.losses)
    assert seen, "no progress line was seen"
    wrong = [(i, shown, f"{losses[i]:.3e}") for i, shown in seen if shown != f"{losses[i]:.3e}"]
    assert not wrong, wrong
    assert (ITERS, f"{losses[ITERS]:.3e}") in seen


@pytest.fixture(scope="module")
def engine():
    return {s: engine_alone(s, seed) for s, seed in SESSIONS}


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def together(browser, engine):
    """Three sessions training at once on a fresh server, then a fourth with the first one's settings."""
    with streamlit_server(env=SERVER_ENV) as server:
        pages = {s: open_page(browser, server.url) for s, _ in SESSIONS}
        for (sample, seed) in SESSIONS:
            choose(pages[sample], sample, seed)
        seen = {s: set() for s in pages}
        train(pages, seen)
        got = {s: numbers(p) for s, p in pages.items()}
        shot = screenshot(pages[SESSIONS[0][0]], "three-sessions.png")
        fourth = open_page(browser, server.url)
        choose(fourth, *SESSIONS[0])
        # Every line it shows until the film and its line are on screen (the line is read after `finished`,
        # as in `train`; a page caught between two of its script runs may show the one without the other):
        # a film trained again would show earlier iterations.
        lines, deadline = set(), time.time() + WAIT_MS / 1000
        while time.time() < deadline:
            done = finished(fourth)
            lines.add(progress(fourth))
            if done and lines - {None}:
                break
            time.sleep(0.2)
        reuse = {"finished": finished(fourth), "run disabled": fourth.get_by_role("button", name="Run").is_disabled(),
                 "lines": lines - {None}, "numbers": numbers(fourth)}
        errors = {s: exceptions(p) for s, p in list(pages.items()) + [("fourth", fourth)]}
        for p in list(pages.values()) + [fourth]:
            p.context.close()
        yield {"numbers": got, "seen": seen, "reuse": reuse, "errors": errors, "log": server.log(), "shot": shot}


def test_three_sessions_at_once_each_get_their_own_result(together, engine):
    for sample, seed in SESSIONS:
        check_numbers(together["numbers"][sample], sample, seed, engine[sample])
        check_progress(together["seen"][sample], engine[sample][2])
    assert not any(together["errors"].values()), together["errors"]
    assert "Traceback" not in together["log"] and "Exception" not in together["log"], together["log"][-3000:]


def test_a_fourth_session_reuses_the_finished_film(together, engine):
    reuse = together["reuse"]
    assert reuse["finished"] and reuse["run disabled"], reuse
    assert reuse["lines"] == {(ITERS, f"{engine[SESSIONS[0][0]][2].losses[-1][1]:.3e}")}, reuse["lines"]
    assert reuse["numbers"]["metrics"] == together["numbers"][SESSIONS[0][0]]["metrics"]


def test_a_seed_alone_on_a_fresh_server_matches_it_beside_others(browser, together, engine):
    sample, seed = SESSIONS[0]
    with streamlit_server(env=SERVER_ENV) as server:
        page = open_page(browser, server.url)
        choose(page, sample, seed)
        seen = {sample: set()}
        train({sample: page}, seen)
        alone = numbers(page)
        assert not exceptions(page)
        page.context.close()
        assert "Traceback" not in server.log()
    assert alone["metrics"]["loss"] == together["numbers"][sample]["metrics"]["loss"]
    assert alone["metrics"]["islands"] == together["numbers"][sample]["metrics"]["islands"]
    check_progress(seen[sample], engine[sample][2])
