"""Strip outputs from notebooks so that git stores only their source.

    python tools/strip_notebooks.py                 # strip every notebooks/*.ipynb in place
    python tools/strip_notebooks.py --check         # exit 1, naming them, if any notebook still has outputs
    python tools/strip_notebooks.py path.ipynb ...  # only these

Stripped: cell outputs, execution counts, per-cell execution metadata (timings) and the widget state; the source,
the cell ids and the kernel specification stay. Writes are atomic (:func:`collapse.io.write_text`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

from collapse.io import write_text

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TRANSIENT_CELL_KEYS = ("execution", "collapsed", "scrolled")


def strip(nb: nbformat.NotebookNode) -> bool:
    """Remove outputs and run metadata from ``nb`` in place; True if anything was removed."""
    changed = False
    for cell in nb.cells:
        for key in TRANSIENT_CELL_KEYS:
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
        if cell.cell_type == "code":
            if cell.get("outputs"):
                cell.outputs = []
                changed = True
            if cell.get("execution_count") is not None:
                cell.execution_count = None
                changed = True
    if "widgets" in nb.metadata:
        del nb.metadata["widgets"]
        changed = True
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/strip_notebooks.py", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", help="notebooks (default: notebooks/*.ipynb)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook has outputs")
    args = p.parse_args(argv)
    paths = [Path(x) for x in args.paths] or sorted(NOTEBOOKS.glob("*.ipynb"))
    dirty = []
    for path in paths:
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as exc:
            print(f"strip_notebooks: error: cannot read {path}: {exc}", file=sys.stderr)
            return 2
        if strip(nb):
            dirty.append(path)
            if not args.check:
                write_text(path, nbformat.writes(nb) + "\n")
    if args.check and dirty:
        print("notebooks with outputs (run python tools/strip_notebooks.py): " + ", ".join(map(str, dirty)),
              file=sys.stderr)
        return 1
    for path in dirty:
        print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
