"""The Teacher vs APM page under Streamlit's AppTest: an own grid run, scrubbing, metrics, settings."""

import pytest

from apptest_util import films, new_app, run_to_end

PAGE = "views/2_teacher_vs_apm.py"


def own_films(at) -> dict:
    return films(at, "tva")


def run_own(at) -> None:
    next(b for b in at.button if b.label.endswith("Run")).click()
    at.run()
    run_to_end(at, "tva")


@pytest.fixture(scope="module")
def finished():
    at = new_app(grid=16, loss="grid")
    at.switch_page(PAGE)
    at.run()
    assert not at.exception
    at.number_input(key="tva_iters").set_value(60)
    at.run()
    run_own(at)
    return at


def test_page_before_a_run_explains_and_offers_both_settings():
    at = new_app(grid=16)
    at.switch_page(PAGE)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Teacher vs APM"
    settings = at.radio(key="tva_settings")
    assert [o.split()[0] for o in settings.options] == ["Converging", "Paper"] and settings.value == "converging"
    assert any("Press **Run**" in c.value for c in at.caption)


def test_grid_run_shows_error_falling(finished):
    at = finished
    assert not at.exception
    (film,) = own_films(at).values()
    run = film.run
    assert run.status == "done" and run.config.loss == "grid" and run.config.local_patch
    slider = at.select_slider(key="tva_iter")
    assert list(slider.options) == [str(i) for i in run.iterations] and slider.value == 60
    metrics = {m.label: m.value for m in at.metric}
    rel = float(metrics["Mean relative L1 error"])
    assert rel < 0.6  # from about 1.0 at iteration 0
    assert any(label.startswith("Locations under") for label in metrics)
    summary = next(c.value for c in at.caption if c.value.startswith("Mean relative L1 error:"))
    assert "at iteration 0" in summary and "at iteration 60" in summary
    comp = next(iter(at.session_state["tva_comparisons"].values()))[1]
    curve = comp.curve()
    assert curve[-1][1] < 0.6 * curve[0][1]
    # Queried at 2x and 4x the 16x16 grid.
    assert {q.field.shape[:2] for q in comp._queries.values()} == {(32, 32), (64, 64)}


def test_scrubbing_and_metrics_read_without_training(finished):
    at = finished
    (film,) = own_films(at).values()
    before = (film.iteration, len(film.run.losses))
    at.select_slider(key="tva_iter").set_value(0)
    at.run()
    assert not at.exception
    rel0 = float(next(m.value for m in at.metric if m.label == "Mean relative L1 error"))
    assert rel0 > 0.9
    at.radio(key="tva_metric").set_value("cosine")
    at.radio(key="tva_scale").set_value("fixed over the run")
    at.run()
    assert not at.exception
    assert any(m.label == "Mean error (1 − cos)" for m in at.metric)
    assert (film.iteration, len(film.run.losses)) == before


def test_paper_settings_are_one_click_away_and_start_their_own_film(finished):
    at = finished
    at.radio(key="tva_settings").set_value("paper")
    at.number_input(key="tva_iters").set_value(20)
    at.run()
    assert not at.exception
    run_own(at)
    paper = [f for f in own_films(at).values() if f.run.config.lr == 1e-4]
    assert len(paper) == 1 and paper[0].run.status == "done" and not paper[0].run.config.local_patch


def test_reads_the_islands_pages_grid_run():
    from apptest_util import click, run_to_end, small_app

    at = small_app(iters=20, loss="grid", seed=32)  # a run of its own, not another test's
    click(at, "Run")
    run_to_end(at)
    at.switch_page(PAGE)
    at.run()
    assert not at.exception
    source = at.radio(key="tva_source")
    assert len(source.options) == 2
    source.set_value(source.options[1])
    at.run()
    assert not at.exception
    assert at.select_slider(key="tva_iter").value == 20
    rel = float(next(m.value for m in at.metric if m.label == "Mean relative L1 error"))
    assert 0 < rel < 1.0
    assert not own_films(at)  # nothing of its own was trained
