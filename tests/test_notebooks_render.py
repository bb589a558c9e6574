"""``tools/render_notebooks.py`` (``make notebooks-html``): executed HTML copies with the figures inline.

Checked on small notebooks written here (the real ones are executed by ``test_notebooks_server.py``): one that
draws must give a self-contained page with its PNG embedded and an index linking it, and leave the notebook file
as it was; one with a failing cell must give exit status 1, the cell's error, and no page.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "render_notebooks.py"

DRAW = """import matplotlib.pyplot as plt
%matplotlib inline
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([0, 1, 2], [0, 1, 4])
print("drawn", 6 * 7)"""


def write_notebook(path: Path, *cells) -> Path:
    nb = new_notebook(cells=list(cells), metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                  "language": "python"}})
    nbformat.write(nb, path)
    return path


def render(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_render_embeds_the_figure_and_indexes_the_page(tmp_path):
    nb = write_notebook(tmp_path / "tiny_plot.ipynb", new_markdown_cell("# A tiny plot"), new_code_cell(DRAW))
    stored = nb.read_bytes()
    out = tmp_path / "html"
    done = render(str(nb), "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = (out / "tiny_plot.html").read_text()
    assert "A tiny plot" in page and "drawn 42" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=\s]+)"', page)
    assert images, "the figure is not embedded as a PNG data URI"
    assert base64.b64decode(images[0]).startswith(b"\x89PNG")
    assert 'href="tiny_plot.html"' in (out / "index.html").read_text()
    assert nb.read_bytes() == stored, "rendering modified the notebook"


@pytest.mark.slow
def test_a_failing_cell_fails_the_render_and_writes_no_page(tmp_path):
    nb = write_notebook(tmp_path / "broken.ipynb", new_code_cell("x = 1"), new_code_cell("1 / 0"))
    out = tmp_path / "html"
    done = render(str(nb), "--out", str(out))
    assert done.returncode == 1
    assert "broken.ipynb failed" in done.stderr and "ZeroDivisionError" in done.stderr
    assert not (out / "broken.html").exists()


def test_unknown_notebook_is_a_one_line_error(tmp_path):
    done = render("no_such_notebook", "--out", str(tmp_path))
    assert done.returncode != 0
    assert "no notebook 'no_such_notebook'" in done.stderr and "01_tour" in done.stderr
    assert not any(tmp_path.iterdir())
