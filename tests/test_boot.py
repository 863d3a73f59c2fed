"""The first look's warm-up: what it leaves in the caches for the first Run."""

from pathlib import Path

from apm_viz.images import load_image

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_warm_up_leaves_the_default_teacher_and_its_view_of_the_sample_cached(monkeypatch):
    from ui import boot, cache, sidebar

    boot._warm_up()
    assert boot._error is None
    calls = []
    monkeypatch.setattr(cache, "create_teacher", lambda *a, **k: calls.append(("teacher", a)))
    monkeypatch.setattr(cache, "encode", lambda *a, **k: calls.append(("encode", a)))
    # what a new session's sidebar asks for: chelsea.jpg, the default teacher, the Grid radio's default
    key = sidebar.default_teacher_key(sidebar.DEFAULT_TEACHER)
    image = load_image(ASSETS / "chelsea.jpg")
    teacher = cache.get_teacher(*key)
    out = cache.get_teacher_output(image.sha256, key, sidebar.DEFAULT_GRID, image, teacher)
    assert calls == []  # both came from the caches
    assert sidebar.DEFAULT_GRID == 32 and out.grid.shape[:2] == (32, 32)
    assert out.model == sidebar.DEFAULT_TEACHER
