"""The islands experiment's settings: one rule for the app, the command line and export.

- Supervision "auto" is token supervision (the paper's islands experiment:
  only the teacher's global token is supervised), for every teacher and every
  weight source.
- The query at each location is the paper figure's, [T | I_xy | p_xy]: with
  token supervision every location receives the same gradient, so the image
  reaches a location only through what its query reads. The authors' code
  reads [T | p_xy], one switch away (`query="authors"`).
- Two recipes. "aligned": this project's (Adam 1e-4, PyTorch's initialisation,
  mean pooling, 250 iterations; the grid defaults when the grid is
  supervised; aligned openTSNE frames). "authors": the authors' code (their
  query, N(0, 0.01) initialisation, Adam 1e-4 x 0.1 every 200 iterations, 1200
  iterations, attention pooling with 8 heads, a frame every 50 iterations;
  scikit-learn t-SNE with 3 components, perplexity 3 and random init, every
  frame on its own).

Other experiments keep what they need: Teacher vs APM supervises the grid
(`compare.converging_config`), and the interpolation memory decodes trigger
columns alone, so its query has no I_xy (`interpolate.memory_config`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from .errors import ApmVizError
from .islands import ProjectionConfig
from .ttt import TTTConfig, recommended

#: The queries an APM can read at a location (name -> how it is written).
QUERIES = {"figure": "[T | I_xy | p_xy]", "authors": "[T | p_xy]"}
#: What each query can show, one sentence each (the faces print these).
QUERY_CAN_SHOW = {
    "figure": "[T | I_xy | p_xy] also reads each location's own pixels I_xy, so even when only the global "
              "token is supervised its islands can follow the image.",
    "authors": "[T | p_xy] reaches a location only through the trigger column, which every location shares: "
               "under token supervision its islands follow the positional code whatever the teacher; only "
               "grid supervision gives them the image's structure.",
}
RECIPES = ("aligned", "authors")
LOSS_CHOICES = ("auto", "token", "grid", "grid+rgb", "rgb")

#: The authors' training settings (their code), beside their query and projection;
#: they draw a frame every 50 iterations.
AUTHORS_TTT = {"pooling": "attention", "init_std": 0.01, "lr": 1e-4, "lr_step": 200, "iters": 1200,
               "snapshots": tuple(range(0, 1201, 50))}
#: Iterations of the aligned recipe (the paper's figure).
ALIGNED_ITERS = 250


def resolve_loss(loss: str = "auto") -> str:
    """"auto" -> "token" (the paper's islands experiment), whatever the teacher
    and its weights; any other supervision is kept."""
    if loss not in LOSS_CHOICES:
        raise ApmVizError(f"unknown supervision {loss!r}; choose one of {', '.join(LOSS_CHOICES)}")
    return "token" if loss == "auto" else loss


def resolve_query(query: str = "auto", recipe: str = "aligned") -> str:
    """"auto" -> the recipe's query: the figure's for "aligned", the authors' for "authors"."""
    check_recipe(recipe)
    if query == "auto":
        return "authors" if recipe == "authors" else "figure"
    if query not in QUERIES:
        raise ApmVizError(f"unknown query {query!r}; choose one of auto, {', '.join(QUERIES)}")
    return query


def check_recipe(recipe: str) -> str:
    if recipe not in RECIPES:
        raise ApmVizError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return recipe


def islands_config(loss: str = "auto", query: str = "auto", recipe: str = "aligned", **overrides) -> TTTConfig:
    """The TTT settings of an islands run.

    loss, query: see `resolve_loss`, `resolve_query`. recipe: "aligned" or
    "authors". overrides: any `TTTConfig` field; None keeps the recipe's value
    (so a face can pass its every option, set or not).
    """
    loss = resolve_loss(loss)
    base: dict = dict(AUTHORS_TTT) if check_recipe(recipe) == "authors" else {"iters": ALIGNED_ITERS}
    base["local_patch"] = resolve_query(query, recipe) == "figure"
    base.update({k: v for k, v in overrides.items() if v is not None})
    if recipe == "authors":  # their settings, not the grid defaults, whatever is supervised
        return TTTConfig(loss=loss, **base)
    return recommended(loss, **base)


def islands_projection(recipe: str = "aligned", dims: int = 3, seed: int = 0, method: Optional[str] = None,
                       perplexity: Optional[float] = None) -> ProjectionConfig:
    """How an islands run's frames are projected: aligned openTSNE (this
    project's), or the authors' scikit-learn t-SNE (perplexity 3, random init,
    each frame on its own). dims: 3 (RGB) or, for the authors' grayscale
    variant, 1. method, perplexity: override the recipe's."""
    if check_recipe(recipe) == "authors":
        cfg = ProjectionConfig(method="sklearn-tsne", dims=dims, perplexity=3.0, aligned=False,
                               initialization="random", seed=seed)
    else:
        cfg = ProjectionConfig(dims=dims, seed=seed)
    if method is not None and method != cfg.method:
        cfg = ProjectionConfig(method=method, dims=dims, seed=seed, perplexity=cfg.perplexity)
    return cfg if perplexity is None else replace(cfg, perplexity=perplexity)


def describe(config: TTTConfig) -> str:
    """One line naming what decides an islands run: supervision, query, pooling, init, lr and schedule."""
    apm = config.apm_config()
    init = "PyTorch default init" if apm.init_std is None else f"N(0, {apm.init_std:g}) init"
    pool = "mean pooling" if apm.pooling == "mean" else f"attention pooling ({apm.attention_heads} heads)"
    sched = "constant" if not config.lr_step else f"x0.1 every {config.lr_step}"
    query = QUERIES["figure" if apm.local_patch else "authors"]
    return (f"{config.loss} supervision · query {query} · {pool} · {init} · Adam {config.lr:g} ({sched}) · "
            f"{config.iters} iterations")
