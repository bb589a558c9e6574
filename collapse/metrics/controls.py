r"""Controls: known transforms of a known embedding, and which instrument measures must move or stay.

A measure is calibrated on controls before it judges. The reference (:func:`reference_embedding`) is an
embedding whose answer is known: C classes of K modes, each class's modes around its class centre and nearer to
each other than to the other classes, mode centroids more than a margin apart, a small isotropic within-mode
spread. Its verdict must be ``modes kept``. Each transform of :data:`TRANSFORMS` changes one thing; :data:`EXPECTED`
states, before anything is computed, what each measure must do:

* ``up`` / ``down``: move by more than ``MOVE`` times the measure's tolerance in that direction;
* ``same``: stay within its tolerance (absolute ``TOL_ABS`` for measures in [0, 1], else relative ``TOL_REL``);
* ``nan``: become undefined (a ratio of unresolved distances);
* ``not shrunk``: stay at or above the resolution (``radius_over_margin`` >= 1/2: no whole-space degeneracy);
* a state name (for ``verdict``), or an integer (for ``merges``).

:func:`run_controls` computes every row, and :func:`controls_markdown` renders the table that
``docs/measures.md`` shows (``python -m collapse.metrics.controls --write docs/measures.md`` replaces the table
between its markers). ``tests/metrics/test_controls.py`` fails if any cell does not hold.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import ortho_group

from collapse._validation import check_int, check_random_state
from collapse.cli import OneLineParser
from collapse.metrics.instrument import instrument_report
from collapse.metrics.verdict import collapse_verdict

__all__ = [
    "EXPECTED",
    "MEASURES",
    "TRANSFORMS",
    "check_cell",
    "controls_markdown",
    "reference_embedding",
    "run_controls",
]

MARGIN = 0.2
TOL_ABS = 0.05
TOL_REL = 0.1
MOVE = 3.0

Embedding = tuple[np.ndarray, np.ndarray, np.ndarray]

#: The measures the verdict and the tables use, with whether they live in [0, 1] (absolute tolerance).
MEASURES: dict[str, bool] = {
    "merges": False,
    "submode_separation_over_margin": False,
    "submode_separation_over_spacing": False,
    "class_spacing_over_margin": False,
    "radius_over_margin": False,
    "class_map_at_r": True,
    "class_nmi": True,
    "submode_nmi": True,
    "fine_precision_at_1": True,
}


def reference_embedding(
    classes: int = 4,
    modes: int = 3,
    samples_per_mode: int = 30,
    dim: int = 8,
    *,
    class_distance: float = 1.0,
    mode_radius: float = 0.35,
    spread: float = 0.02,
    random_state: int | np.random.Generator | None = 0,
) -> Embedding:
    """The control's reference: ``(x, y, modes)`` with modes kept and classes organised.

    Class centres: ``class_distance`` / sqrt(2) times the first ``classes`` unit vectors (pairwise
    ``class_distance`` apart); each class's modes at ``mode_radius`` from its centre in random directions of the
    remaining axes; samples with isotropic Gaussian noise of ``spread`` per coordinate.
    """
    rng = check_random_state(random_state)
    classes, modes = check_int("classes", classes, low=2), check_int("modes", modes, low=2)
    check_int("dim", dim, low=classes + 1)
    centres = np.zeros((classes, dim))
    centres[np.arange(classes), np.arange(classes)] = class_distance / np.sqrt(2)
    xs, ys, ms = [], [], []
    for c in range(classes):
        for k in range(modes):
            direction = np.zeros(dim)
            direction[classes:] = rng.standard_normal(dim - classes)
            direction *= mode_radius / np.linalg.norm(direction)
            xs.append(centres[c] + direction + spread * rng.standard_normal((samples_per_mode, dim)))
            ys.append(np.full(samples_per_mode, c))
            ms.append(np.full(samples_per_mode, k))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ms)


def _group_mean(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    means = {g: x[groups == g].mean(0) for g in np.unique(groups)}
    return np.stack([means[g] for g in groups])


def shrink_classes(e: Embedding, rng: np.random.Generator, factor: float = 0.1) -> Embedding:
    """Each class scaled by ``factor`` about its own centroid."""
    x, y, m = e
    mu = _group_mean(x, y)
    return mu + factor * (x - mu), y, m


def shrink_space(e: Embedding, rng: np.random.Generator, factor: float = 0.05) -> Embedding:
    """The whole embedding scaled by ``factor`` about its mean."""
    x, y, m = e
    return x.mean(0) + factor * (x - x.mean(0)), y, m


def merge_submodes(e: Embedding, rng: np.random.Generator) -> Embedding:
    """Every mode's samples moved so that its centroid is its class centroid; the within-mode spread is kept."""
    x, y, m = e
    fine = y * (m.max() + 1) + m
    return x - _group_mean(x, fine) + _group_mean(x, y), y, m


def merge_two(e: Embedding, rng: np.random.Generator) -> Embedding:
    """In every class, mode 1's samples moved onto mode 0's centroid (spread kept): one merge per class."""
    x, y, m = e
    fine = y * (m.max() + 1) + m
    nu = _group_mean(x, fine)
    x = x.copy()
    for c in np.unique(y):
        one, zero = (y == c) & (m == 1), (y == c) & (m == 0)
        x[one] = x[one] - nu[one] + nu[zero][0]
    return x, y, m


def shuffle_modes(e: Embedding, rng: np.random.Generator) -> Embedding:
    """Mode labels permuted at random within each class (the embedding untouched)."""
    x, y, m = e
    m = m.copy()
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        m[idx] = m[rng.permutation(idx)]
    return x, y, m


def rotate(e: Embedding, rng: np.random.Generator) -> Embedding:
    """A random orthogonal transform of the whole space."""
    x, y, m = e
    return x @ ortho_group.rvs(x.shape[1], random_state=rng), y, m


def add_noise(e: Embedding, rng: np.random.Generator, scale: float = 0.02) -> Embedding:
    """Isotropic Gaussian noise of ``scale`` per coordinate on every sample."""
    x, y, m = e
    return x + scale * rng.standard_normal(x.shape), y, m


TRANSFORMS: dict[str, tuple[str, Callable[[Embedding, np.random.Generator], Embedding]]] = {
    "reference": ("none (modes kept, classes organised)", lambda e, rng: e),
    "shrink_classes": ("shrink each class x0.1 about its centroid", shrink_classes),
    "shrink_space": ("shrink the whole space x0.05", shrink_space),
    "merge_submodes": ("merge the sub-mode means, keep the spread", merge_submodes),
    "merge_two": ("merge 2 modes of every class (mode 1 onto mode 0)", merge_two),
    "shuffle_modes": ("shuffle mode labels within classes", shuffle_modes),
    "rotate": ("rotate (random orthogonal)", rotate),
    "noise": ("add isotropic noise (0.02 per coordinate)", add_noise),
}

_ALL_MERGED = "all"  # every possible merge made
_PARTLY = "partly collapsed (collapsed if K = 2)"
EXPECTED: dict[str, dict[str, object]] = {
    "reference": {"verdict": "modes kept", "merges": 0},
    "shrink_classes": {
        "verdict": "collapsed", "merges": _ALL_MERGED, "submode_separation_over_margin": "down",
        "submode_separation_over_spacing": "down", "class_spacing_over_margin": "same",
        "radius_over_margin": "not shrunk", "class_map_at_r": "same", "class_nmi": "same", "submode_nmi": "down",
        "fine_precision_at_1": "down",
    },
    "shrink_space": {
        "verdict": "degenerate", "merges": _ALL_MERGED, "submode_separation_over_margin": "down",
        "submode_separation_over_spacing": "nan", "class_spacing_over_margin": "down", "radius_over_margin": "down",
        "class_map_at_r": "down", "class_nmi": "down", "submode_nmi": "down", "fine_precision_at_1": "down",
    },
    "merge_submodes": {
        "verdict": "collapsed", "merges": _ALL_MERGED, "submode_separation_over_margin": "down",
        "submode_separation_over_spacing": "down", "class_spacing_over_margin": "same",
        "radius_over_margin": "not shrunk", "class_map_at_r": "same", "class_nmi": "same", "submode_nmi": "down",
        "fine_precision_at_1": "down",
    },
    # One of K(K-1)/2 pair distances goes to 0, so the mean separation drops by only 1/3 (K=3) or 1/6 (K=4):
    # not judged; the merge count is.
    "merge_two": {
        "verdict": _PARTLY, "merges": "classes", "class_map_at_r": "same", "class_nmi": "same",
        "submode_nmi": "down", "fine_precision_at_1": "down",
    },
    "shuffle_modes": {
        "verdict": "collapsed", "merges": _ALL_MERGED, "submode_separation_over_margin": "down",
        "submode_separation_over_spacing": "down", "class_spacing_over_margin": "same", "radius_over_margin": "same",
        "class_map_at_r": "same", "class_nmi": "same", "submode_nmi": "down", "fine_precision_at_1": "down",
    },
    "rotate": {"verdict": "modes kept", "merges": 0} | {k: "same" for k in MEASURES if k != "merges"},
    "noise": {"verdict": "modes kept", "merges": 0} | {k: "same" for k in MEASURES if k != "merges"},
}


def check_cell(expect: object, ref: float, value: float, *, bounded: bool, possible: int, classes: int) -> bool:
    """Whether ``value`` (reference ``ref``) does what ``expect`` says; see the module docstring."""
    if expect == _ALL_MERGED:
        return value == possible
    if expect == "classes":
        return value == classes
    if isinstance(expect, int):
        return value == expect
    if expect == "nan":
        return bool(np.isnan(value))
    if expect == "not shrunk":
        return bool(value >= 0.5)
    if np.isnan(value) or np.isnan(ref):
        return False
    tol = TOL_ABS if bounded else TOL_REL * abs(ref)
    if expect == "same":
        return abs(value - ref) <= tol
    if expect == "down":
        return value < ref - MOVE * tol
    if expect == "up":
        return value > ref + MOVE * tol
    raise ValueError(f"unknown expectation {expect!r}")


def run_controls(random_state: int = 0, **reference_kwargs) -> list[dict]:
    """Every transform applied to the reference; one row per transform with the values, the expectation and
    whether each expected cell holds (``ok``)."""
    base = reference_embedding(random_state=random_state, **reference_kwargs)
    classes = len(np.unique(base[1]))
    modes_of = len(np.unique(base[2]))
    rows, ref = [], None
    for name, (label, fn) in TRANSFORMS.items():
        rng = np.random.default_rng(random_state + 1)
        x, y, m = fn(base, rng)
        rep = instrument_report(x, y, m, margin=MARGIN, random_state=random_state)
        verdict = collapse_verdict(rep)
        ref = rep if ref is None else ref
        expect = EXPECTED[name]
        checks = {}
        for key, exp in expect.items():
            if key == "verdict":
                two = modes_of == 2
                checks[key] = verdict.state == ("collapsed" if two else "partly collapsed") if exp == _PARTLY else (
                    verdict.state == exp
                )
            else:
                checks[key] = check_cell(exp, ref[key], rep[key], bounded=MEASURES.get(key, False),
                                         possible=int(rep["merges_possible"]), classes=classes)
        rows.append({"transform": name, "label": label, "verdict": str(verdict), "report": rep,
                     "expected": expect, "checks": checks, "ok": all(checks.values())})
    return rows


_ARROWS = {"up": "↑", "down": "↓", "same": "=", "nan": "nan", _ALL_MERGED: "all", "classes": "C", "not shrunk": "≥½"}


def controls_markdown(rows: list[dict]) -> str:
    """The controls table: per transform and measure, the expectation, the measured value and whether it held."""
    cols = ["verdict", *MEASURES]
    head = "| transform | " + " | ".join(cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for r in rows:
        cells = []
        for key in cols:
            value = r["verdict"] if key == "verdict" else _fmt(r["report"][key])
            exp = r["expected"].get(key)
            if exp is None:
                cells.append(value)
                continue
            mark = "" if r["checks"][key] else " **FAILS**"
            shown = exp if key == "verdict" else _ARROWS.get(exp, exp)
            cells.append(value if key == "verdict" else f"{shown} {value}{mark}")
            if key == "verdict" and not r["checks"][key]:
                cells[-1] += f" (expected {shown}) **FAILS**"
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return "nan" if np.isnan(v) else f"{v:.3g}"


BEGIN, END = "<!-- controls-table:begin -->", "<!-- controls-table:end -->"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m collapse.metrics.controls", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="seed of the reference embedding and the transforms")
    p.add_argument("--write", default=None, help="a markdown file whose table between the controls markers is replaced")
    args = p.parse_args(argv)
    rows = run_controls(args.seed)
    table = controls_markdown(rows)
    print(table)
    if args.write:
        from collapse.io import write_text

        path = Path(args.write)
        text = path.read_text()
        if BEGIN not in text or END not in text:
            raise SystemExit(f"--write: {path} has no {BEGIN} ... {END} markers")
        head, rest = text.split(BEGIN, 1)
        write_text(path, head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1])
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
