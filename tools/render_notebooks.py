"""Execute the notebooks in fresh kernels and write readable HTML copies, plots inline (``make notebooks-html``).

    python tools/render_notebooks.py                         # every notebook -> build/notebooks/<name>.html
    python tools/render_notebooks.py 01_tour 03_sweep        # only these (stem, file name or path of an .ipynb)
    python tools/render_notebooks.py --out docs/notebooks    # elsewhere (must not be notebooks/ itself)

Each notebook runs top to bottom in a new ``python3`` kernel started in ``notebooks/`` (as ``make notebooks``
would); a failing cell stops that notebook with the cell and its traceback, and nothing is written for it. Figures
are embedded in the HTML as base64 PNG, so a page is one self-contained file. ``index.html`` links the pages and
says when and from which commit they were made. The stored notebooks are never modified (they stay without
outputs). A notebook whose data are missing (``04_real_images`` needs Fashion-MNIST) is skipped with the reason.
Exit status: 0 when every requested notebook was rendered or skipped for missing data, 1 when one failed.
"""

from __future__ import annotations

import argparse
import html
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from open_notebooks import KERNEL_NAME, NOTEBOOKS, ROOT, ensure_kernel, missing_data

from collapse.io import write_text

DEFAULT_OUT = ROOT / "build" / "notebooks"


def execute(path: Path, timeout: int) -> nbformat.NotebookNode:
    """The notebook at ``path`` run top to bottom in a fresh kernel (raises ``CellExecutionError`` on a failure)."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=timeout,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def to_html(nb: nbformat.NotebookNode) -> str:
    """One self-contained HTML page (JupyterLab's look, images inline as data URIs)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab", embed_images=True).from_notebook_node(nb)
    return body


def commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def index_page(rows: list[tuple[str, str, str]]) -> str:
    """``rows``: (notebook name, link or empty, note)."""
    def entry(name: str, link: str, note: str) -> str:
        label = f'<a href="{html.escape(link, quote=True)}">{html.escape(name)}</a>' if link else html.escape(name)
        return f"<li>{label} {html.escape(note)}</li>"

    items = "\n".join(entry(*row) for row in rows)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>collapse notebooks</title></head><body>\n"
            f"<h1>collapse: executed notebooks</h1>\n<p>Rendered {stamp} from commit {html.escape(commit())} by "
            f"<code>python tools/render_notebooks.py</code>.</p>\n<ul>\n{items}\n</ul>\n</body></html>\n")


def resolve(names: Sequence[str]) -> list[Path]:
    """Notebooks named by stem or file name in notebooks/, or by the path of any .ipynb file."""
    available = {p.stem: p for p in sorted(NOTEBOOKS.glob("*.ipynb"))}
    if not names:
        return list(available.values())
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        if name.endswith(".ipynb") and Path(name).is_file():
            chosen.append(Path(name).resolve())
        elif stem in available and Path(name).parent == Path("."):
            chosen.append(available[stem])
        else:
            raise SystemExit(f"render_notebooks: error: no notebook {name!r}; choose from {', '.join(available)} "
                             "or give the path of an .ipynb file")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/render_notebooks.py", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="notebooks to render (default: all of notebooks/*.ipynb)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: build/notebooks)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds one cell may run (default: 1800)")
    args = p.parse_args(argv)
    if args.timeout <= 0:
        p.error(f"--timeout must be a positive number of seconds, got {args.timeout}")
    out = args.out.resolve()
    if out == NOTEBOOKS.resolve():
        p.error("--out must not be notebooks/ (the stored notebooks stay without outputs)")
    paths = resolve(args.names)
    ensure_kernel()
    notes, failed = {}, []
    for path in paths:
        if reason := missing_data(path):
            print(f"skipped {path.name}: {reason}", flush=True)
            notes[path.stem] = f"(not rendered: {reason})"
            continue
        print(f"running {path.name} ...", flush=True)
        start = time.perf_counter()
        try:
            nb = execute(path, args.timeout)
        except Exception as exc:  # noqa: BLE001  (report, go on with the other notebooks, exit 1 at the end)
            print(f"render_notebooks: error: {path.name} failed: {exc}", file=sys.stderr, flush=True)
            failed.append(path.stem)
            notes[path.stem] = "(failed to run this time; see the command's output)"
            continue
        seconds = time.perf_counter() - start
        target = write_text(out / f"{path.stem}.html", to_html(nb))
        print(f"wrote {target} (ran in {seconds:.0f} s)", flush=True)
        notes[path.stem] = f"(ran in {seconds:.0f} s)"
    rows = []
    listed = {p.stem: p for p in [*sorted(NOTEBOOKS.glob("*.ipynb")), *paths]}
    for path in listed.values():  # the index lists every notebook, also those rendered earlier
        page = out / f"{path.stem}.html"
        note = notes.get(path.stem, "(rendered by an earlier run)" if page.is_file() else "(not rendered)")
        rows.append((path.stem, page.name if page.is_file() and path.stem not in failed else "", note))
    index = write_text(out / "index.html", index_page(rows))
    print(f"wrote {index}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
