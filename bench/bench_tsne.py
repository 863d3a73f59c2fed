"""t-SNE per frame on the same snapshots: this project's aligned openTSNE
projection (3-D, perplexity 30, each frame starting from the previous one)
against the authors' recipe (scikit-learn TSNE, 3 components, perplexity 3,
random init, every frame from scratch).

    python bench/bench_tsne.py   (trains a laptop 32x32 run for its snapshots)
"""

from __future__ import annotations

import time

import numpy as np

from common import log, median, save

#: The frames the paper shows; the authors' recipe is timed on these.
AUTHOR_FRAMES = (0, 50, 100, 150, 200, 250)


def authors_frame(field: np.ndarray, seed: int = 0) -> np.ndarray:
    """The authors' recipe for one frame: scikit-learn TSNE from scratch."""
    from sklearn.manifold import TSNE

    x = field.reshape(-1, field.shape[-1])
    return TSNE(n_components=3, perplexity=3, init="random", random_state=seed).fit_transform(x)


def bench(run) -> dict:
    from apm_viz.islands import Projector, ProjectionConfig

    snaps = run.snapshots
    proj = Projector(ProjectionConfig(dims=3))
    ours = []
    for s in snaps:
        t = time.perf_counter()
        proj.add(s.field)
        ours.append(time.perf_counter() - t)
    theirs = {}
    for s in snaps:
        if s.iteration in AUTHOR_FRAMES:
            t = time.perf_counter()
            authors_frame(s.field)
            theirs[s.iteration] = time.perf_counter() - t
    later = median(ours[1:])
    res = {"points": int(np.prod(snaps[0].field.shape[:2])), "frames": [s.iteration for s in snaps],
           "ours_s": ours, "ours_first_s": ours[0], "ours_later_median_s": later,
           "ours_all_median_s": median(ours), "authors_s": theirs,
           "authors_median_s": median(list(theirs.values()))}
    res["speedup_later"] = res["authors_median_s"] / later
    res["speedup_all"] = res["authors_median_s"] / res["ours_all_median_s"]
    log(f"t-SNE per frame, {res['points']} points: ours first {ours[0]:.2f} s, later median {later:.2f} s; "
        f"authors' recipe median {res['authors_median_s']:.2f} s -> {res['speedup_later']:.1f}x "
        f"(later frames), {res['speedup_all']:.1f}x (all frames)")
    return res


def main():
    from bench_film import film_once

    _, film = film_once("laptop", 32)
    save("tsne", bench(film.run))


if __name__ == "__main__":
    main()
