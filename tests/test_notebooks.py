"""The notebooks run headless from top to bottom (nbclient, the ``python3`` kernel of this interpreter) and are stored
without outputs.

Measured on the 2-core CPU machine: 01 about 25 s, 02 about 15 s, 03 about 35 s, 04 about 15 s with finished
``paper_repro`` runs present (about a minute more when it has to train its small pair), so they stay in the default
suite. ``04_real_images`` needs Fashion-MNIST in ``data/`` and is skipped without it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NEEDS_FASHION = {"04_real_images.ipynb"}


def ensure_kernel() -> str:
    """The name of a kernel that runs this interpreter, installing ipykernel's spec into it if there is none."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], check=True, capture_output=True)
    return "python3"


def test_the_four_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_tour.ipynb", "02_theory.ipynb", "03_sweep.ipynb",
                                           "04_real_images.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    if path.name in NEEDS_FASHION and not any((ROOT / "data" / "fashion-mnist").glob("train-images*")):
        pytest.skip("Fashion-MNIST is not in data/fashion-mnist (see paper_repro/datasets/README.md to fetch it)")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("COLLAPSE_RUNS_OUT", str(tmp_path / "runs"))  # a small pair trained by 04 stays out of results/
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name=ensure_kernel(), timeout=600,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "every notebook draws at least one figure"
