"""What every figure shares: the look (Okabe-Ito colours, font sizes), atomic PNG writes, provenance.

Every figure module exposes ``draw(out, params=None, *, full=False, progress=False) -> FigureResult``: it computes
its data from the project's own code, writes ``<key>_<name>.png`` and the data behind it (CSV and/or JSON) into
``out``, and returns where they are with a caption and the data source. :func:`manifest_entry` turns that into one
entry of ``figures/manifest.json``.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from collapse.io import atomic_path  # noqa: E402
from collapse.plotting import MARKERS, class_palette  # noqa: E402
from collapse.runs import stable_path  # noqa: E402

__all__ = [
    "BLACK",
    "BLUE",
    "GREEN",
    "MARKERS",
    "ORANGE",
    "PINK",
    "POSITIVE_COLOURS",
    "POSITIVE_NAMES",
    "SKY",
    "VERMILLION",
    "FigureResult",
    "class_palette",
    "figure_style",
    "git_commit",
    "local_modes",
    "manifest_entry",
    "params_dict",
    "plt",
    "resolve_params",
    "save_figure",
    "shades",
    "stable_store",
]

# Okabe-Ito (Wong 2011), the same order as collapse.plotting.class_palette.
BLUE, ORANGE, GREEN, VERMILLION, PINK, SKY, YELLOW, BLACK = class_palette(8)
#: Random positives (the baseline) and easy positives (EPS) get the same colour in every figure.
POSITIVE_COLOURS = {"random": VERMILLION, "easy": BLUE, "all": ORANGE, "hard": PINK}
POSITIVE_NAMES = {"random": "random positive", "easy": "easy positive (EPS)", "all": "all positives",
                  "hard": "hard positive"}

#: Width of a full-width figure in inches; panels are sized from it so that fonts read the same everywhere.
WIDTH = 11.0
DPI = 130

_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
}


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """The shared matplotlib settings (fonts, spines, resolution), scoped to a ``with`` block."""
    with plt.rc_context(_STYLE):
        yield


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG atomically (temporary file in the same folder, then ``os.replace``) and close it."""
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def shades(colour: str, n: int) -> list[tuple[float, float, float]]:
    """``n`` shades of ``colour``, from darker to lighter (mixed with black, then with white), for sub-classes."""
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    if n == 1:
        return [tuple(rgb)]
    out = []
    for t in np.linspace(-0.45, 0.55, n):
        mixed = rgb * (1 + t) if t < 0 else rgb + (1 - rgb) * t
        out.append(tuple(np.clip(mixed, 0, 1)))
    return out


def local_modes(mode_class: np.ndarray) -> np.ndarray:
    """Index of each mode inside its class (0, 1, ... per class), for the marker of a mode."""
    mode_class = np.asarray(mode_class)
    out = np.zeros_like(mode_class)
    for c in np.unique(mode_class):
        idx = np.flatnonzero(mode_class == c)
        out[idx] = np.arange(len(idx))
    return out


@dataclass
class FigureResult:
    """One written figure: its key (a-g), name, PNG, data files, caption and where its data came from."""

    key: str
    name: str
    png: Path
    data: list[Path]
    caption: str
    source: str
    seed: int
    params: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def resolve_params(cls: type, params: object | None, full: bool, full_overrides: dict) -> object:
    """``params`` if given, else the class defaults, with ``full_overrides`` applied when ``full``."""
    if params is None:
        params = cls()
        if full:
            params = replace(params, **full_overrides)
    if not isinstance(params, cls):
        raise TypeError(f"params must be a {cls.__name__}, got {type(params).__name__}")
    return params


def git_commit(repo: str | Path | None = None) -> str | None:
    """``HEAD``'s hash, with ``+dirty`` when tracked files differ from it; None outside a git checkout."""
    cwd = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def manifest_entry(result: FigureResult, *, out: Path, command: str, commit: str | None, seconds: float) -> dict:
    """The manifest's record of one figure: file names relative to ``out`` so the folder can move."""

    def rel(p: Path) -> str:
        try:
            return str(Path(p).resolve().relative_to(Path(out).resolve()))
        except ValueError:
            return str(p)

    return {
        "key": result.key,
        "name": result.name,
        "file": rel(result.png),
        "data": [rel(p) for p in result.data],
        "caption": result.caption,
        "command": command,
        "source": result.source,
        "seed": result.seed,
        "git_commit": commit,
        "seconds": round(seconds, 2),
        "params": _plain(result.params),
        **({"extra": _plain(result.extra)} if result.extra else {}),
    }


def params_dict(params: object) -> dict:
    """A dataclass of parameters as a JSON-ready dict; its result ``store`` as :func:`stable_store` records it."""
    out = _plain(asdict(params))
    if "store" in out:
        out["store"] = stable_store(out["store"])
    return out


def stable_store(store: str | Path | None) -> str | None:
    """The result store as the manifest records it (:func:`collapse.runs.stable_path`): relative to the checkout, or
    None outside it (the records are keyed by their runs, so the figure's command recomputes them in the default
    store)."""
    return stable_path(store)
