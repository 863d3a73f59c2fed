"""The islands film in a real browser beside the engine alone, in one run, for
this checkout ("after") and optionally an older one ("before").

For each checkout, one after the other in the same minutes:
- engine: that checkout's `IslandsFilm` advanced in one fresh Python process
  started in it, with the settings its page runs by default (chelsea.jpg,
  laptop preset, 32x32, 250 iterations, random-init DINOv2 ViT-S/14; the
  page's Automatic supervision: grid before the recipes, token since), as
  `bench/bench_film.py`'s `film_once` times it;
- browser: a fresh `streamlit run app.py` of that checkout on a loopback port
  (tests/real_server.py), driven by Playwright through Debian's Chromium
  (headless, never a downloaded browser), as a new user meets it: the first
  page with its defaults (the same film), then Run, until the film is done.

What is timed in the browser:
- page usable: from asking for the page until an image is shown in the main
  area and the button named exactly "Run" is enabled (a fresh server's first
  page);
- full page: until the sidebar is drawn (the engine has loaded); Run is
  pressed then, the first Run of that server;
- first frame: from clicking Run until a chart titled "APM islands" (the
  island map) is on screen; on pages with a PCA preview that is the preview;
- film: from clicking Run until the page reads "iteration 250/250" and
  "15/15 frames";
- warm first frame: then, on the same server (workers, teacher, the image's
  encoding and caches warm), 10 more iterations and Run again, until the new
  film's island map is on screen.
The same selectors read both the old page and the keyed one (`islands-input`,
`islands-map`, `islands-progress`): the moments compared are the same.

    python bench/bench_browser.py [--before /path/to/old/checkout] [--grid 32] [--iters 250]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from common import ROOT, log, save

sys.path.insert(0, str(ROOT / "tests"))
from real_server import chromium, open_page, streamlit_server  # noqa: E402

#: The sidebar's default grid and the page's default iterations (a run with others sets them first).
DEFAULT_GRID, DEFAULT_ITERS = 32, 250
MAIN = '[data-testid="stMain"]'

_ENGINE = """
import json, sys, time
sys.path[:0] = ["bench", "."]
from apm_viz.film import IslandsFilm
from apm_viz.images import load_image
from apm_viz.pipeline import encode
from apm_viz.teachers import create_teacher
try:  # the page's rule since the recipes: `recipes.islands_config` (token supervision)
    from apm_viz.recipes import islands_config
    config = islands_config("auto", "auto", "aligned", preset="laptop", iters={iters}, seed=0)
except ImportError:  # before them, a random teacher's Automatic was grid supervision
    from apm_viz.ttt import recommended
    config = recommended("grid", preset="laptop", iters={iters})
t0 = time.perf_counter()
out = encode(load_image("assets/chelsea.jpg"), create_teacher("dinov2-small", weights="random"), {grid})
t_teacher = time.perf_counter() - t0
t1 = time.perf_counter()
film, first = IslandsFilm(out, config), None
while not film.done:
    film.advance(budget=0.6)
    if first is None and film.frames >= 1:
        first = time.perf_counter() - t1
row = dict(loss=config.loss, teacher_total_s=t_teacher, film_s=time.perf_counter() - t1, ttt_s=film.run.seconds,
           first_frame_s=first, status=film.run.status, snapshots=len(film.run.snapshots))
print("ROW " + json.dumps(row, default=float))
"""


def _frames_text(iters: int) -> str:
    from apm_viz.ttt import default_snapshots

    n = len(default_snapshots(iters))
    return f"{n}/{n} frames"


def engine_once(root: Path, grid: int = DEFAULT_GRID, iters: int = DEFAULT_ITERS) -> dict:
    """`film_once` of the checkout at `root`, in a fresh process started there (its own code)."""
    env = dict(os.environ, PYTHONPATH=str(root), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", _ENGINE.format(grid=grid, iters=iters)], cwd=root, env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(next(line[4:] for line in out.splitlines() if line.startswith("ROW ")))


def browser_once(url: str, grid: int = DEFAULT_GRID, iters: int = DEFAULT_ITERS, timeout_s: float = 1800) -> dict:
    """Seconds to a usable page, and from Run to the first frame and to the finished film."""
    with chromium() as browser:
        t0 = time.perf_counter()
        page = open_page(browser, url, timeout_ms=timeout_s * 1000, wait_for=None)
        main = page.locator(MAIN)
        run = page.get_by_role("button", name="Run", exact=True)
        main.locator("img").first.wait_for(state="visible")
        run.and_(page.locator(":enabled")).wait_for()
        usable = time.perf_counter() - t0
        page.locator('[data-testid="stSidebar"]').get_by_text("Seed").first.wait_for()  # the full page
        full_page = time.perf_counter() - t0
        if grid != DEFAULT_GRID:
            page.locator('[data-testid="stSidebar"]').get_by_text(f"{grid}x{grid} ({grid * 14} px)").click()
        if iters != DEFAULT_ITERS:
            box = page.get_by_label("TTT iterations")
            box.fill(str(iters))
            box.press("Enter")
        if grid != DEFAULT_GRID or iters != DEFAULT_ITERS:
            page.wait_for_timeout(500)
            page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
            run.and_(page.locator(":enabled")).wait_for()
        t1 = time.perf_counter()
        run.click()
        main.locator(".js-plotly-plot").filter(has_text="APM islands").first.wait_for(state="visible")
        first = time.perf_counter() - t1
        main.get_by_text(f"iteration {iters}/{iters}").filter(has_text=_frames_text(iters)).first.wait_for()
        film = time.perf_counter() - t1
        errors = page.locator('[data-testid="stException"]').count()
        warm = warm_first_frame(page, iters)
    return {"page_usable_s": usable, "full_page_s": full_page, "first_frame_s": first, "film_s": film,
            "warm_first_frame_s": warm, "exceptions_on_page": errors}


def warm_first_frame(page, iters: int, timeout_ms: float = 300_000) -> Optional[float]:
    """Seconds from Run to the island map of a new film on a server that has run one: the same
    image and teacher (encoded already), 10 more iterations (a new film, the same first frame)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    main = page.locator(MAIN)
    chart = main.locator(".js-plotly-plot").filter(has_text="APM islands")
    box = page.get_by_label("TTT iterations")
    box.fill(str(iters + 10))
    box.press("Enter")
    try:
        chart.first.wait_for(state="detached", timeout=timeout_ms)  # the new settings have no film yet
        run = page.get_by_role("button", name="Run", exact=True)
        run.and_(page.locator(":enabled")).wait_for(timeout=timeout_ms)
        t = time.perf_counter()
        run.click()
        chart.first.wait_for(state="visible", timeout=timeout_ms)
    except PlaywrightTimeout:  # a page that keeps the last film on screen: not measured
        return None
    return time.perf_counter() - t


def checkout_once(root: Path, grid: int, iters: int) -> dict:
    """The engine film and the browser film of one checkout, with their ratios."""
    engine = engine_once(root, grid, iters)
    with streamlit_server(root=root, env={"PYTHONPATH": str(root)}) as server:
        browser = browser_once(server.url, grid, iters)
        server_exceptions = server.log().count("Traceback")
    res = {"root": str(root), "commit": _commit(root), "engine": engine, "browser": browser,
           "server_tracebacks": server_exceptions,
           "film_ratio": browser["film_s"] / engine["film_s"],
           "first_frame_ratio": browser["first_frame_s"] / engine["first_frame_s"]}
    log(f"{res['commit']}: page usable {browser['page_usable_s']:.1f} s, full {browser['full_page_s']:.1f} s "
        f"(engine teacher build + encode "
        f"{engine['teacher_total_s']:.1f} s); first frame {browser['first_frame_s']:.1f} s after Run (engine "
        f"{engine['first_frame_s']:.1f} s, {res['first_frame_ratio']:.2f}x); film {browser['film_s']:.1f} s "
        f"(engine {engine['film_s']:.1f} s, {res['film_ratio']:.2f}x); warm first frame "
        f"{browser['warm_first_frame_s']} s")
    return res


def _commit(root: Path) -> str:
    return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def bench(grid: int = DEFAULT_GRID, iters: int = DEFAULT_ITERS, before: Optional[Path] = None) -> dict:
    """Before (an older checkout, if given) and after (this one), one after the other in this run."""
    res = {"grid": grid, "iters": iters, "preset": "laptop", "load_average_start": os.getloadavg()}
    if before is not None:
        res["before"] = checkout_once(Path(before).resolve(), grid, iters)
    res["after"] = checkout_once(ROOT, grid, iters)
    res["load_average_end"] = os.getloadavg()
    if before is not None:
        b, a = res["before"], res["after"]
        res["after_over_before"] = {k: a["browser"][k] / b["browser"][k]
                                    for k in ("page_usable_s", "full_page_s", "first_frame_s", "film_s",
                                              "warm_first_frame_s")
                                    if a["browser"][k] and b["browser"][k]}
        res["after_over_before"]["engine_film_s"] = a["engine"]["film_s"] / b["engine"]["film_s"]
        log("after / before: " + ", ".join(f"{k} {v:.2f}x" for k, v in res["after_over_before"].items()))
    return res


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--before", type=Path, help="an older checkout to measure first (its own app and engine)")
    p.add_argument("--grid", type=int, default=DEFAULT_GRID, choices=(16, 32))
    p.add_argument("--iters", type=int, default=DEFAULT_ITERS)
    a = p.parse_args(argv)
    save("browser", bench(a.grid, a.iters, a.before))


if __name__ == "__main__":
    main()
