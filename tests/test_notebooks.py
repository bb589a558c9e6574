"""The notebooks as stored: four of them, valid, without outputs, each opening with what it shows and how long it
takes and ending with where to go next.

Running them is tested through a real Jupyter server in ``test_notebooks_server.py``; rendering them to HTML in
``test_notebooks_render.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_tour.ipynb", "02_theory.ipynb", "03_sweep.ipynb",
                                           "04_real_images.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata.kernelspec.name == "python3"  # the kernel `make notebooks` installs (tools/open_notebooks.py)


def test_strip_check_agrees():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "strip_notebooks.py"), "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_what_and_how_long_and_ends_with_where_next(path):
    nb = nbformat.read(path, as_version=4)
    first, last = nb.cells[0], nb.cells[-1]
    assert first.cell_type == "markdown" and re.match(r"#\s+\S", first.source), "opens with a titled markdown cell"
    assert re.search(r"\bRuns? in about \d", first.source), "the opening cell says how long a run takes"
    assert last.cell_type == "markdown" and re.search(r"\bWhere next\b", last.source), \
        "the last cell says where to go next"
    names = set(re.findall(r"\b(0\d_\w+)\.ipynb\b", last.source)) - {path.stem}
    known = {p.stem for p in NOTEBOOKS}
    assert names <= known, f"links to notebooks that do not exist: {names - known}"
