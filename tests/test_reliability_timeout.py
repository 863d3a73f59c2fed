"""A test that hangs fails and names itself (pytest-timeout), so a run never
waits for the CI's own limit."""

import subprocess
import sys
import tomllib

from conftest import ROOT

HUNG = '''
import pathlib
import time


def test_waits_forever():
    time.sleep(3600)


def test_after_it():
    (pathlib.Path(__file__).parent / "after_it_ran").write_text("ran")  # the parent reads it: the run went on
'''


def test_the_project_sets_a_default_timeout(pytestconfig):
    configured = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["timeout"]
    assert float(pytestconfig.getini("timeout")) == float(configured) > 0  # the plugin is loaded and reads it


def test_a_hung_test_fails_names_itself_and_the_run_goes_on(tmp_path):
    (tmp_path / "test_hung.py").write_text(HUNG)
    # The project's own pytest settings, with the limit shortened so this check is quick.
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                           str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), "-o", "timeout=2",
                           str(tmp_path / "test_hung.py")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Timeout" in out and "FAILED test_hung.py::test_waits_forever" in out, out
    assert "1 failed, 1 passed" in out, out
    assert (tmp_path / "after_it_ran").read_text() == "ran", out
