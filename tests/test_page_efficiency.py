"""The Efficiency page under AppTest: measure on tiny settings, see the chart."""

from apptest_util import click, new_app


def test_efficiency_page_measures_and_plots():
    at = new_app()
    at.switch_page("views/5_efficiency.py")
    at.run()
    assert not at.exception
    assert at.title[0].value == "Efficiency"
    assert "fig2" not in at.session_state
    at.selectbox(key="eff_preset").set_value("laptop")
    at.number_input(key="eff_repeats").set_value(1)
    at.number_input(key="eff_budget").set_value(0.1)
    at.run()
    click(at, "Measure")
    assert not at.exception
    result = at.session_state["fig2"]
    grid = at.session_state["choice"].grid
    assert result.grid == grid and result.preset == "laptop" and result.repeats == 1
    assert [t.chunk for t in result.field] == [1, 7, 14, 28, 56, 112, 224, grid * grid]
    assert all(t.seconds > 0 for t in result.field) and result.teacher_seconds > 0
    assert len(at.get("plotly_chart")) == 1
    assert len(at.dataframe) == 1
    assert "GPU" in " ".join(c.value for c in at.caption)
