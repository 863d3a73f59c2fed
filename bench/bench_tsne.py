"""t-SNE per frame on the same snapshots, with each frame's quality: this
project's aligned openTSNE projection with its previous defaults ("before") and
its current ones ("after"), against the authors' recipe (scikit-learn TSNE, 3
components, perplexity 3, random init, every frame from scratch).

Timing is interleaved frame by frame (before, after, authors), so load changes
hit all three alike. A frame's time is its whole cost: neighbour search,
affinities and optimisation.

Quality, the criterion the defaults were chosen by: every aligned frame is
compared with a reference optimised from the same previous embedding with the
same affinities for REFERENCE_ITERS steps at openTSNE's defaults (learning
rate N, momentum 0.8, theta 0.5); a first frame with one of FIRST_REFERENCE_ITERS
steps from the same initialisation. Trustworthiness and continuity (scikit-
learn's `trustworthiness`, NEIGHBOURS neighbours; continuity is trustworthiness
with the two spaces swapped) must lie within 0.01 of the reference's. The KL
divergence (exact, over all pairs) is reported as a ratio to the reference's.

    python bench/bench_tsne.py [--dims 3]   (trains a laptop 32x32 run for its snapshots)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import log, median, save

#: The frames the paper shows; the authors' recipe is timed on these.
AUTHOR_FRAMES = (0, 50, 100, 150, 200, 250)
REFERENCE_ITERS = 1000
FIRST_REFERENCE_ITERS = 2000
NEIGHBOURS = 10
BOUND = 0.01


def configs(dims: int = 3) -> dict:
    from apm_viz.islands import ProjectionConfig

    # "before": the defaults until this benchmark's change (100 steps from the
    # previous frame as it is, openTSNE's own neighbour search and learning rate).
    return {"before": ProjectionConfig(dims=dims, next_iters=100, neighbors="auto", smoothing=0, learning_rate=1.0),
            "after": ProjectionConfig(dims=dims)}


def authors_frame(field: np.ndarray, seed: int = 0) -> np.ndarray:
    """The authors' recipe for one frame: scikit-learn TSNE from scratch."""
    from sklearn.manifold import TSNE

    x = field.reshape(-1, field.shape[-1])
    return TSNE(n_components=3, perplexity=3, init="random", random_state=seed).fit_transform(x)


def kl_divergence(P, y: np.ndarray) -> float:
    """KL(P || Q) of an embedding y (N, d): Q from the Student-t kernel over all pairs."""
    P = P.tocoo()
    w = 1.0 / (1.0 + ((y[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(w, 0.0)
    q = w[P.row, P.col] / w.sum()
    return float((P.data * np.log(P.data / np.maximum(q, 1e-300))).sum())


def structure(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Trustworthiness and continuity of embedding y (N, d) of points x (N, D)."""
    from sklearn.manifold import trustworthiness

    return (float(trustworthiness(x, y, n_neighbors=NEIGHBOURS)),
            float(trustworthiness(y, x, n_neighbors=NEIGHBOURS)))


def reference(projector, x: np.ndarray, aff, previous) -> np.ndarray:
    """The long optimisation a frame is judged against (same start, same affinities)."""
    from openTSNE import TSNE, TSNEEmbedding

    own = projector._own(aff)
    cfg = projector.config
    if previous is None:
        est = TSNE(n_components=cfg.dims, perplexity=projector._perplexity(len(x)), n_iter=FIRST_REFERENCE_ITERS,
                   metric=cfg.metric, initialization=cfg.initialization, negative_gradient_method="bh",
                   random_state=cfg.seed, n_jobs=1)
        return np.asarray(est.fit(x, affinities=own))
    emb = TSNEEmbedding(previous.astype(np.float64).copy(), own, negative_gradient_method="bh", random_state=cfg.seed,
                        n_jobs=1)
    return np.asarray(emb.optimize(n_iter=REFERENCE_ITERS, exaggeration=None, momentum=0.8))


def quality(projector, x: np.ndarray, aff, previous, y: np.ndarray) -> dict:
    r = reference(projector, x, aff, previous)
    (t, c), (tr, cr) = structure(x, y), structure(x, r)
    return {"trust": t, "cont": c, "trust_ref": tr, "cont_ref": cr, "d_trust": t - tr, "d_cont": c - cr,
            "kl_ratio": kl_divergence(aff.P, y.astype(np.float64)) / kl_divergence(aff.P, r)}


def bench(run, dims: int = 3, with_quality: bool = True, variants: dict | None = None, authors: bool = True) -> dict:
    """variants: name -> ProjectionConfig to compare (default: `configs(dims)`); authors: time the
    authors' recipe too (3-D only)."""
    from dataclasses import asdict

    from apm_viz.islands import Projector, _prepare

    snaps = run.snapshots
    projectors = {name: Projector(cfg) for name, cfg in (variants or configs(dims)).items()}
    rows = []
    for s in snaps:
        row = {"iteration": s.iteration}
        x = _prepare(s.field)
        for name, proj in projectors.items():
            previous = proj.coords[-1] if proj.coords else None
            t = time.perf_counter()
            aff = proj.affinities(s.field)
            y = proj.add(s.field, aff)
            row[name + "_s"] = time.perf_counter() - t
            if with_quality:
                row[name] = quality(proj, x, aff, previous, y)
        if authors and dims == 3 and s.iteration in AUTHOR_FRAMES:
            t = time.perf_counter()
            y = authors_frame(s.field)
            row["authors_s"] = time.perf_counter() - t
            row["authors"] = dict(zip(("trust", "cont"), structure(x, y)))
        rows.append(row)
        log(_line(row))
    res = {"points": int(np.prod(snaps[0].field.shape[:2])), "dims": dims, "frames": rows,
           "reference_iters": REFERENCE_ITERS, "first_reference_iters": FIRST_REFERENCE_ITERS,
           "neighbours": NEIGHBOURS, "bound": BOUND,
           "configs": {name: asdict(p.config) for name, p in projectors.items()}}
    for name in projectors:
        res[name + "_first_s"] = rows[0][name + "_s"]
        res[name + "_later_median_s"] = median([r[name + "_s"] for r in rows[1:]])
        res[name + "_all_median_s"] = median([r[name + "_s"] for r in rows])
        if with_quality:
            later = [r[name] for r in rows[1:]]
            res[name + "_worst"] = {"d_trust": min(q["d_trust"] for q in later),
                                    "d_cont": min(q["d_cont"] for q in later),
                                    "kl_ratio": max(q["kl_ratio"] for q in later),
                                    "kl_ratio_median": median([q["kl_ratio"] for q in later]),
                                    "first": rows[0][name]}
            res[name + "_meets_bound"] = min(res[name + "_worst"]["d_trust"], res[name + "_worst"]["d_cont"]) >= -BOUND
    if authors and dims == 3:
        res["authors_s"] = {r["iteration"]: r["authors_s"] for r in rows if "authors_s" in r}
        theirs = median(list(res["authors_s"].values()))
        res["authors_median_s"] = theirs
        for name in projectors:
            res[name + "_speedup_later"] = theirs / res[name + "_later_median_s"]
            res[name + "_speedup_all"] = theirs / res[name + "_all_median_s"]
    log(summary(res))
    return res


def _line(row: dict) -> str:
    parts = [f"iteration {row['iteration']:3d}:"]
    for name in [k[:-2] for k in row if k.endswith("_s") and k != "authors_s"]:
        q = row.get(name)
        parts.append(f"{name} {row[name + '_s']:.2f} s" + (
            f" (trust {q['d_trust']:+.3f}, cont {q['d_cont']:+.3f}, KL x{q['kl_ratio']:.2f})" if q else ""))
    if "authors_s" in row:
        parts.append(f"authors {row['authors_s']:.2f} s")
    return "  ".join(parts)


def summary(res: dict) -> str:
    out = [f"t-SNE per {res['dims']}-D frame, {res['points']} points:"]
    for name in res["configs"]:
        line = (f"  {name}: first {res[name + '_first_s']:.2f} s, later median {res[name + '_later_median_s']:.2f} s")
        if name + "_worst" in res:
            w = res[name + "_worst"]
            line += (f"; worst later frame vs reference: trust {w['d_trust']:+.4f}, cont {w['d_cont']:+.4f}, "
                     f"KL x{w['kl_ratio']:.2f} (median x{w['kl_ratio_median']:.2f}); "
                     f"{'meets' if res[name + '_meets_bound'] else 'misses'} the {res['bound']} bound")
        if "authors_median_s" in res:
            line += f"; {res[name + '_speedup_later']:.1f}x the authors' recipe per later frame"
        out.append(line)
    if "authors_median_s" in res:
        out.append(f"  authors' recipe median {res['authors_median_s']:.2f} s")
    return "\n".join(out)


def main(argv=None):
    from bench_film import film_once

    p = argparse.ArgumentParser()
    p.add_argument("--dims", type=int, default=3, choices=(2, 3))
    a = p.parse_args(argv)
    _, film = film_once("laptop", 32)
    save("tsne" if a.dims == 3 else "tsne2d", bench(film.run, a.dims))


if __name__ == "__main__":
    main()
