"""Open the notebooks in JupyterLab with the project's kernel (what ``make notebooks`` runs).

    python tools/open_notebooks.py                   # JupyterLab on notebooks/, opens a browser if there is one
    python tools/open_notebooks.py --no-browser      # any further arguments go to `jupyter lab`
    python tools/open_notebooks.py --port 8890 --no-browser

First the project's kernel specification is written into this interpreter's prefix (the virtual environment, never
the user's home): kernel ``python3``, the name the notebooks ask for, running *this* interpreter. Then JupyterLab is
started serving ``notebooks/``; it prints the URL (with its token) to open. Ctrl-C stops it.

The test suite starts the server with :func:`lab_command` too, so what it checks is what ``make notebooks`` runs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from collapse.io import write_json

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL_NAME = "python3"  # the name stored in every notebook's metadata, so they open without asking for a kernel
KERNEL_DISPLAY_NAME = "Python 3 (collapse)"
FASHION_DIR = ROOT / "data" / "fashion-mnist"
NEEDS_FASHION = frozenset({"04_real_images.ipynb"})


def kernel_spec() -> dict:
    """The project's kernel specification: ipykernel on this interpreter."""
    return {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL_DISPLAY_NAME,
        "language": "python",
        "metadata": {"debugger": True},
    }


def ensure_kernel(prefix: str | Path | None = None) -> Path:
    """Write the project's kernel spec under ``<prefix>/share/jupyter/kernels/python3`` unless it is already there.

    ``prefix`` defaults to ``sys.prefix`` (the virtual environment); Jupyter prefers it to the user's own kernels
    when it runs inside an environment. Returns the kernel's folder.
    """
    folder = Path(prefix or sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec = kernel_spec()
    path = folder / "kernel.json"
    try:
        if json.loads(path.read_text()) == spec:
            return folder
    except (OSError, ValueError):
        pass
    write_json(path, spec)
    return folder


def missing_data(notebook: str | Path) -> str | None:
    """Why ``notebook`` cannot run on this machine (its data are missing), or None when it can."""
    if Path(notebook).name in NEEDS_FASHION and not any(FASHION_DIR.glob("train-images*")):
        return (f"Fashion-MNIST is not in {FASHION_DIR.relative_to(ROOT)} "
                "(python -m paper_repro.datasets.fetch --dataset fashion-mnist fetches it, about 10 s)")
    return None


def lab_command(*args: str, python: str | None = None) -> list[str]:
    """The ``jupyter lab`` command line serving ``notebooks/``; ``args`` are appended (port, token, ...).

    As root (containers, CI) Jupyter refuses to start without ``--allow-root``; it is added there.
    """
    root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in args else []
    return [python or sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={NOTEBOOKS}", *root, *args]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        print("open_notebooks: error: JupyterLab is not installed in this environment; run `make install` "
              "(or pip install -r requirements.txt)", file=sys.stderr)
        return 2
    folder = ensure_kernel()
    print(f"kernel {KERNEL_NAME!r} ({KERNEL_DISPLAY_NAME}) -> {folder}", flush=True)
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        if reason := missing_data(nb):
            print(f"note: {nb.name} needs data: {reason}", flush=True)
    cmd = lab_command(*args)
    os.execv(cmd[0], cmd)  # JupyterLab replaces this process, so Ctrl-C and exit codes are its own
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
