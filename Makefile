# Two targets do all the set-up on a fresh machine (see README "Quick start").
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install simulate test lint figures claims clean

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
	$(BIN)/python -m pytest -q -p no:cacheprovider

figures: install
	$(BIN)/python -m paper_repro.figures

claims: install
	$(BIN)/python -m collapse.claims

lint: install
	$(BIN)/python -m ruff check collapse paper_repro tests

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
