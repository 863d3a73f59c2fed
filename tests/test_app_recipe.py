"""The Islands page's query, recipe and Advanced options, and the alignment beside the island count."""

from apptest_util import click, films, run_to_end, small_app

from apm_viz.alignment import alignment
from apm_viz.recipes import QUERY_CAN_SHOW, islands_config
from ui.state import film_key


def chart_titles(at) -> list[str]:
    import json

    out = []
    for el in at.get("plotly_chart"):
        title = json.loads(el.proto.spec).get("layout", {}).get("title", {})
        out.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return out


def test_the_page_runs_the_engines_rule_and_shows_the_alignment():
    at = small_app(iters=12)
    choice = at.session_state["choice"]
    assert not choice.teacher.weights.pretrained  # a random teacher gets the same rule as any other
    assert choice.ttt_config(12) == islands_config(preset="laptop", iters=12, seed=0)
    assert any(QUERY_CAN_SHOW["figure"] in c.value for c in at.sidebar.caption)
    click(at, "Run")
    run_to_end(at)
    assert not at.exception
    film = films(at)[film_key(choice, 12)]
    cfg = film.run.config
    assert cfg.loss == "token" and cfg.apm_config().local_patch
    last = film.run.snapshots[-1]
    a = alignment(last.field, film.teacher.grid)
    titles = chart_titles(at)
    assert any(f"teacher {a.teacher_share:.2f} / position {a.position_share:.2f}" in t for t in titles), titles
    assert any(t.startswith("alignment") for t in titles)
    # The authors' query is one switch away, and the page says what it can show.
    at.sidebar.radio(key="query").set_value("authors")
    at.run()
    assert any(QUERY_CAN_SHOW["authors"] in c.value for c in at.sidebar.caption)
    assert not at.session_state["choice"].ttt_config(12).apm_config().local_patch


def test_advanced_options_and_the_authors_recipe_reach_the_run():
    at = small_app(iters=12)
    at.sidebar.selectbox(key="adv_pooling").set_value("attention")
    at.sidebar.selectbox(key="adv_init").set_value("N(0, std)")
    at.run()
    at.sidebar.selectbox(key="adv_schedule").set_value("x0.1 every N iterations")
    at.run()
    cfg = at.session_state["choice"].ttt_config(12)
    assert cfg.apm_config().pooling == "attention" and cfg.apm_config().init_std == 0.01 and cfg.lr_step == 200
    at.sidebar.selectbox(key="adv_pooling").set_value(None)
    at.sidebar.selectbox(key="adv_init").set_value("recipe's")
    at.sidebar.selectbox(key="adv_schedule").set_value("recipe's")
    at.toggle(key="recipe_toggle").set_value(True)
    at.run()
    choice = at.session_state["choice"]
    assert choice.recipe == "authors" and at.number_input(key="iters").value == 1200
    at.number_input(key="iters").set_value(10)  # the widget's smallest
    at.run()
    assert at.session_state["choice"].ttt_config(10) == islands_config(recipe="authors", preset="laptop", iters=10,
                                                                       seed=0)
    click(at, "Run")
    run_to_end(at)
    assert not at.exception
    key = film_key(at.session_state["choice"], 10)  # (a finished film of an earlier test may be shared)
    assert key in films(at), [k[-4:] for k in films(at)]
    film = films(at)[key]
    assert film.run.iterations[-1] == 10
    assert film.run.config.apm_config().pooling == "attention" and not film.run.config.apm_config().local_patch
    titles = chart_titles(at)
    assert any(t.startswith("authors'") for t in titles) and any(t.startswith("aligned") for t in titles), titles
    assert (len(film.run.snapshots) - 1, 3) in film._authors
    assert any("positional code, not the image" in i.value for i in at.info)
