# Two targets do all the set-up on a fresh machine (see README "Quick start").
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install simulate test lint figures claims notebooks notebooks-html clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .

simulate: install
	$(BIN)/python -m collapse.simulate --noise 0.1

test: install
	$(BIN)/python -m ruff check collapse paper_repro tests
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2

figures: install
	$(BIN)/python -m paper_repro.figures

# The committed ledger, from the committed records (figures/store) and the study summaries its header names.
STUDY ?= figures/real_study_full.json
claims: install
	$(BIN)/python -m collapse.claims --store figures/store --study $(STUDY)

# JupyterLab on notebooks/ with the project's kernel; it prints the URL to open. On a machine without a browser:
# make notebooks JUPYTER_ARGS="--no-browser --port 8890"
JUPYTER_ARGS ?=
notebooks: install
	$(BIN)/python tools/open_notebooks.py $(JUPYTER_ARGS)

# Executed copies to read, plots inline: build/notebooks/*.html (index.html lists them)
notebooks-html: install
	$(BIN)/python tools/render_notebooks.py

lint: install
	$(BIN)/python -m ruff check collapse paper_repro tests

clean:
	rm -rf $(VENV) results build .pytest_cache .hypothesis
