"""Files: the upload limit, export names, what the app writes.

Uploads are never written under their own names (checked through the app in
test_reliability_app.py); the names of exported files are made safe from any
image name a user brings.
"""

import re
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from apm_viz.names import safe_filename, safe_stem
from apm_viz.images import FORMATS, MAX_FILE_BYTES, UPLOAD_TYPES
from apptest_util import new_app

ROOT = Path(__file__).resolve().parents[1]


def test_upload_limit_matches_the_image_limit():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_FILE_BYTES  # Streamlit counts MB


def test_every_uploader_offers_the_image_types_and_limit_of_the_engine():
    """Every uploader in the app, the sidebar's and the interpolation page's,
    offers exactly the engine's types and size limit, read from the widgets."""
    sidebar = new_app(image_source="Upload")
    page = new_app(grid=16)
    page.switch_page("views/3_interpolation.py")
    page.run()
    page.selectbox(key="interp_a").set_value("Upload…")
    page.selectbox(key="interp_b").set_value("Upload…")
    page.run()
    assert not sidebar.exception and not page.exception
    uploaders = {u.key: u for at in (sidebar, page) for u in at.get("file_uploader")}
    assert set(uploaders) == {"upload", "interp_a_upload", "interp_b_upload", "interp_more_up"}
    for key, up in uploaders.items():
        assert {t.lstrip(".") for t in up.proto.type} == set(UPLOAD_TYPES), key
        assert up.proto.max_upload_size_mb * 2**20 == MAX_FILE_BYTES, key


def test_upload_types_are_the_endings_of_the_formats_read():
    # PIL's own table of file endings: each offered ending opens as a format the engine reads, and
    # every format the engine reads can be uploaded.
    pil = Image.registered_extensions()
    reached = {pil[f".{t}"] for t in UPLOAD_TYPES}
    assert reached == set(FORMATS)
    assert "svg" not in UPLOAD_TYPES and "pdf" not in UPLOAD_TYPES


HOSTILE = [
    "../../etc/passwd", "..\\..\\windows\\system32\\x.png", "/abs/path/photo.jpg", "C:\\Users\\me\\cat.png",
    ".bashrc", "..", ".", "", None, "con.png", "NUL", "lpt1.tar.gz", "a\0b.png", "line\nbreak.png",
    "x" * 500 + ".png", "猫の写真.jpg", "café au lait.jpeg", "$(rm -rf ~).png", "`id`.png", "a|b>c<d.png",
    "name.with.many.dots.png", " spaced out .png", "-rf.png", "~/.ssh/id_rsa", "%2e%2e%2fetc.png",
    "\u202egnp.exe", "emoji 🏝️ island.webp",
]
SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


@pytest.mark.parametrize("name", HOSTILE)
def test_export_names_are_safe(name, tmp_path):
    for safe in (safe_filename(name), safe_stem(name)):
        assert SAFE.match(safe), safe
        assert len(safe) <= 80  # SAFE: no folders, no leading dot, no control characters
        assert safe.split(".")[0].lower() not in RESERVED
        path = (tmp_path / safe).resolve()
        assert path.parent == tmp_path.resolve()  # stays in the folder it is written to
        path.write_bytes(b"ok")  # and the system accepts it
        path.unlink()


def test_export_names_keep_what_is_harmless():
    assert safe_filename("My photo (1).JPG") == "My_photo_1.JPG"
    assert safe_filename("../../x y?.png") == "x_y.png"
    assert safe_stem("chelsea.jpg") == "chelsea"
    assert safe_filename("") == "image" and safe_filename("猫") == "image"
