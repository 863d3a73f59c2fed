"""Every benchmark in one run, so the ratios compare numbers taken under the
same conditions; results go to bench/results.json (BENCHMARKS.md explains them).

    python bench/run_all.py [--quick] [--only ttt,film,tsne,authors,fig2,memory,ray,browser] [--before CHECKOUT]

The whole default run takes about 15-20 minutes on two busy CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, log, machine, save  # noqa: E402

SECTIONS = ("ttt", "film", "tsne", "authors", "fig2", "memory", "ray", "browser")


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="fewer presets and grids")
    p.add_argument("--only", default=",".join(SECTIONS))
    p.add_argument("--before", type=Path, help="browser: an older checkout measured beside this one")
    a = p.parse_args(argv)
    only = set(a.only.split(","))
    if RESULTS.exists() and only == set(SECTIONS):
        RESULTS.unlink()
    save("machine", machine())
    t0 = time.perf_counter()
    films, rows, ttt_rows, tsne = {}, [], [], None
    if "ttt" in only:
        import bench_ttt

        ttt_rows = bench_ttt.bench(bench_ttt.QUICK_COMBOS if a.quick else bench_ttt.CPU_COMBOS)
        save("ttt", ttt_rows)
    if only & {"film", "tsne", "authors"}:
        import bench_film

        rows, films = bench_film.bench(bench_film.QUICK if a.quick else bench_film.COMBOS)
        save("film", rows)
    if only & {"tsne", "authors"}:
        import bench_tsne

        tsne = bench_tsne.bench(films[("laptop", 32)].run)
        save("tsne", tsne)
    if "authors" in only:
        # The authors' settings end to end against this project's default film
        # (laptop preset, live 2-D + 3-D aligned frames), same image and teacher.
        # A measured paper-ttt film is used when there is one; otherwise the
        # total is composed from parts measured in this run: the teacher, 250 x
        # the paper-ttt 32x32 step, and scikit-learn's frames (same point count).
        import bench_tsne

        film_rows = {(r["preset"], r["grid"]): r for r in rows}
        ours = film_rows[("laptop", 32)]
        if ("paper-ttt", 32) in films:
            paper = film_rows[("paper-ttt", 32)]
            ttt_s, how = paper["ttt_s"], "measured film"
            frames = {}
            for s in films[("paper-ttt", 32)].run.snapshots:
                if s.iteration in bench_tsne.AUTHOR_FRAMES:
                    t = time.perf_counter()
                    bench_tsne.authors_frame(s.field)
                    frames[s.iteration] = time.perf_counter() - t
        else:
            paper_rows = [r for r in ttt_rows if (r["preset"], r["grid"]) == ("paper-ttt", 32)]
            if not paper_rows:  # `ttt` not in this run: the one step it needs, measured now
                import bench_ttt

                paper_rows = bench_ttt.bench([("paper-ttt", 32)], plain=False)
            step = paper_rows[0]["step_s"]
            ttt_s, how = 251 * step, "composed: 251 x paper-ttt 32x32 step + scikit-learn frames of the laptop run"
            frames = tsne["authors_s"]
        authors = ours["teacher_total_s"] + ttt_s + sum(frames.values())
        res = {"how": how, "authors_total_s": authors, "authors_ttt_s": ttt_s, "authors_frames_s": frames,
               "teacher_s": ours["teacher_total_s"], "ours_total_s": ours["total_s"],
               "ratio": authors / ours["total_s"]}
        save("authors", res)
        log(f"end to end ({how}): authors' settings {authors:.0f} s vs this project's defaults "
            f"{ours['total_s']:.0f} s -> {res['ratio']:.1f}x")
    if "fig2" in only:
        import bench_fig2

        save("fig2", bench_fig2.bench(presets=("laptop", "paper-ttt") if a.quick else bench_fig2.PRESETS,
                                      teachers=("dinov2-small",) if a.quick else bench_fig2.TEACHERS))
    if "memory" in only:
        import bench_memory

        save("memory", bench_memory.bench(bench_memory.RUNS[:1] if a.quick else bench_memory.RUNS))
    if "ray" in only:
        # evaluate in process against --ray local, and one image's cost per preset (bench_ray.py).
        import bench_ray

        save("ray", bench_ray.bench(quick=a.quick))
    if "browser" in only:
        # The page in headless Chromium on a fresh server, beside the same film in the engine alone.
        import bench_browser

        save("browser", bench_browser.bench(before=a.before))
    log(f"all benchmarks: {time.perf_counter() - t0:.0f} s; results in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
