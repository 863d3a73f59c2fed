"""The Boring video page under Streamlit's AppTest, offline, with random-init MViTv2."""

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "views/4_boring_video.py"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page at a 16x16 teacher grid, no network, an empty torch hub cache and weights folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        mp.setenv("APM_VIZ_WEIGHTS_DIR", str(tmp_path_factory.mktemp("weights")))
        at = AppTest.from_file(APP, default_timeout=240)
        at.session_state["grid"] = 16
        at.session_state["seed"] = 31  # a run of its own, not another test's finished one
        at.run()
        at.switch_page(PAGE)
        at.run()
        yield at


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def test_renders_offline_with_random_init_and_says_so(page):
    at = page
    assert not at.exception, at.exception
    assert at.title[0].value == "Boring video"
    assert "Random-init MViTv2" in texts(at.warning)
    assert "random init: seed 31" in texts(at.caption)
    assert at.selectbox(key="video_block").value == 1  # the authors' "second layer"
    assert at.slider(key="video_frame").value == 0
    assert "No APM run" in texts(at.info)
    assert "centre frames 3 and 4 differ by" in texts(at.markdown)
    assert "Island counts at τ = 0.80" in texts(at.caption) and "the teacher 16x16" in texts(at.caption)
    # input, MViTv2 map, teacher map, two 3-D scatters: no APM yet.
    assert len(at.get("plotly_chart")) == 5


def test_block_and_frame_reuse_the_tokens_and_all_frames_show(page):
    at = page
    at.radio(key="video_projection").set_value("PCA 3-D")
    at.selectbox(key="video_block").set_value(0)
    at.slider(key="video_frame").set_value(4)
    at.run()
    assert not at.exception, at.exception
    assert "reused from the cache" in texts(at.caption)
    assert at.checkbox(key="video_full").value is False  # block 0 is pooled to 28x28 before projecting
    at.checkbox(key="video_all_frames").check()
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["token frame"]) == list(range(8))
    assert table["vs frame 4"][4] == 0
    # Every input frame is the same; the middle token frames agree, frame 0 stands apart (zero padding).
    assert table["vs frame 4"][3] < 0.1 and table["vs frame 4"][0] > table["vs frame 4"][3]
    captions = [c for e in at.get("image") for c in e.captions]
    assert len(captions) == 8 and captions[7].startswith("frame 7 · ")


def test_a_bad_weights_file_is_one_line_and_the_model_stays(page):
    at = page
    folder = Path(os.environ["APM_VIZ_WEIGHTS_DIR"])
    (folder / "junk.pth").write_bytes(b"not a checkpoint")
    at.radio(key="video_weights_mode").set_value("Local file")
    at.run()
    assert not at.exception, at.exception
    errors = texts(at.error)
    assert "junk.pth: not a readable weights file" in errors and "keeping the previous" in errors
    assert "Random-init MViTv2" in texts(at.warning)
    (folder / "junk.pth").unlink()
    at.radio(key="video_weights_mode").set_value("Random init")
    at.run()
    assert not at.exception


def test_apm_islands_from_the_islands_run_appear_beside(page):
    at = page
    at.switch_page("views/1_islands.py")
    at.run()
    at.number_input(key="iters").set_value(20)
    at.run()
    next(b for b in at.button if b.label.endswith("Run")).click()
    at.run()
    from apptest_util import handles, run_to_end

    run_to_end(at)
    assert [h.status for h in handles(at).values()] == ["done"]
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    assert "No APM run" not in texts(at.info)
    assert len(at.get("plotly_chart")) == 7  # now with APM's map and its 3-D scatter
    specs = " ".join(c.proto.spec for c in at.get("plotly_chart"))
    assert "APM, iteration 20" in specs
