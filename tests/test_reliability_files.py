"""Files: the upload limit, export names, what the app writes.

Uploads are never written under their own names (checked through the app in
test_reliability_app.py); the names of exported files are made safe from any
image name a user brings.
"""

import re
import tomllib
from pathlib import Path

import pytest

from apm_viz.export import safe_filename, safe_stem
from apm_viz.images import MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parents[1]


def test_upload_limit_matches_the_image_limit():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_FILE_BYTES  # Streamlit counts MB


def test_only_image_types_are_offered_for_upload():
    text = (ROOT / "ui" / "sidebar.py").read_text()
    types = re.search(r"file_uploader\([^)]*type=\[([^\]]*)\]", text, re.S)
    assert types is not None
    offered = set(re.findall(r'"(\w+)"', types.group(1)))
    assert offered <= {"png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"} and "svg" not in offered


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
