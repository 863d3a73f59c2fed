# Two commands: `make run` starts the app, `make test` runs the tests.
# Each sets up what it needs. The virtual environment lives outside the
# clone, keyed by a hash of the requirements, so fresh clones reuse it.
PYTHON ?= python3
REQ_HASH := $(shell cat requirements.txt requirements-test.txt | sha256sum | cut -c1-12)
VENV ?= $(HOME)/.cache/apm-viz/venv-$(REQ_HASH)
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test setup browser bench clean-venv

# The path holds the requirements' hash, so the marker alone says the venv is current.
$(VENV)/.ready:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

setup: $(VENV)/.ready
	$(PY) -m pip install -q --no-deps -e .

# Debian's Chromium drives kaleido (static figure export) and the browser tests.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: install Debian's 'chromium' package for static export and browser tests"; fi; }

run: setup browser
	$(PY) -m streamlit run app.py --server.port $(PORT)

test: setup browser
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

bench: setup
	$(PY) bench/run_all.py

clean-venv:
	rm -rf $(VENV)
