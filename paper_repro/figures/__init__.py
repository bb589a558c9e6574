"""Every figure of the project, drawn from computed data by one command: ``python -m paper_repro.figures``.

=====  ==================  =====================================================================================
key    module              what it shows
=====  ==================  =====================================================================================
a      pull_arrows         the seed's Figure 1 on a real 2-D simulation: pull of a random vs an easy positive
b      snapshots           embeddings on the circle during training, random vs easy positives, noise 0 and 0.1
c      phase_diagrams      mode separation over noise x batch size M and noise x modes K, per loss and rule
d      collapse_force      the T1 collapse force vs noise: theory curves, exact autograd and Monte Carlo on top
e      real_embeddings     2-D projections of Fashion-MNIST superclass test embeddings, baseline beside EPS
f      retrieval_grid      queries and their nearest test images, frames marking coarse / fine matches
g      training_curves     loss and test metrics over training of the real-image runs
h      real_table          the real-image results table of the full studies (paper_repro_table.md and .json)
=====  ==================  =====================================================================================

Each module has a ``Params`` dataclass (its defaults are the fast CPU version, ``FULL`` the long one) and
``draw(out, params=None, *, full=False, progress=False) -> FigureResult``; :func:`build` runs several and writes
``manifest.json``. Every number a figure draws comes from the records of the result store (``store``, default
``results/store``; :mod:`collapse.runs`), computed there on first use; the figure modules only draw.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from collapse.io import write_json
from paper_repro.figures.common import FigureResult, git_commit, manifest_entry, stable_store

__all__ = ["FIGURES", "FigureResult", "build", "figure_module", "resolve_keys"]

FIGURES: dict[str, str] = {
    "a": "pull_arrows",
    "b": "snapshots",
    "c": "phase_diagrams",
    "d": "collapse_force",
    "e": "real_embeddings",
    "f": "retrieval_grid",
    "g": "training_curves",
    "h": "real_table",
}
MANIFEST = "manifest.json"


def resolve_keys(only: str | Sequence[str] | None) -> list[str]:
    """Figure keys from ``"a,c"`` / ``["a", "phase_diagrams"]`` (keys or module names); None means all."""
    if only is None:
        return list(FIGURES)
    items = [s.strip() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()]
    names = {v: k for k, v in FIGURES.items()}
    keys = []
    for item in items:
        key = item if item in FIGURES else names.get(item)
        if key is None:
            allowed = ", ".join(f"{k} ({v})" for k, v in FIGURES.items())
            raise ValueError(f"unknown figure {item!r}; allowed: {allowed}")
        if key not in keys:
            keys.append(key)
    if not keys:
        raise ValueError("no figure selected; give keys like a,b or names like pull_arrows")
    return keys


def figure_module(key: str) -> ModuleType:
    """The module that draws figure ``key``."""
    return importlib.import_module(f"paper_repro.figures.{FIGURES[resolve_keys([key])[0]]}")


def _with_overrides(module: ModuleType, full: bool, overrides: dict) -> object:
    """The module's parameters (``FULL`` when ``full``) with ``overrides`` applied to its own fields and to the
    fields of a nested ``real`` parameter set; keys neither has are ignored (they belong to other figures)."""
    params = module.Params()
    if full:
        params = replace(params, **module.FULL)
        if hasattr(params, "real"):
            from paper_repro.figures.real_runs import FULL as REAL_FULL

            params = replace(params, real=replace(params.real, **REAL_FULL))
    own = {f.name for f in fields(params)}
    params = replace(params, **{k: v for k, v in overrides.items() if k in own and k != "real"})
    if hasattr(params, "real"):
        real_fields = {f.name for f in fields(params.real)}
        params = replace(params, real=replace(params.real, **{k: v for k, v in overrides.items() if k in real_fields}))
    return params


def build(
    keys: Sequence[str] | None = None,
    out: str | Path = "figures",
    *,
    full: bool = False,
    overrides: dict | None = None,
    params: dict[str, object] | None = None,
    progress: bool = True,
    command: str = "python -m paper_repro.figures",
    on_error: Callable[[str, Exception], None] | None = None,
) -> dict:
    """Draw the figures ``keys`` (default all) into ``out`` and write ``out/manifest.json``.

    ``overrides`` sets parameters by name in every figure that has them (e.g. ``{"seed": 1}``, ``{"runs_root":
    "..."}``); ``params`` maps a key to a complete ``Params`` object of that figure instead. Entries of figures not
    drawn this time are kept from an existing manifest. A figure that fails is passed to ``on_error`` (default:
    raise) and the others are still drawn. Returns the manifest.
    """
    from tqdm.auto import tqdm

    from collapse.runs import check_writable_dir

    keys = resolve_keys(keys)
    out = check_writable_dir(out, what="figures folder")
    commit = git_commit()
    path = out / MANIFEST
    manifest = {"figures": {}}
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
            manifest.setdefault("figures", {})
        except (OSError, ValueError):
            manifest = {"figures": {}}
    for key in tqdm(keys, desc="figures", disable=not progress):
        module = figure_module(key)
        chosen = (params or {}).get(key) or _with_overrides(module, full, overrides or {})
        start = time.perf_counter()
        try:
            result = module.draw(out, chosen, full=full, progress=progress)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(key, exc)
            continue
        seconds = time.perf_counter() - start
        cmd = f"{command} --only {key}" + (" --full" if full else "")
        recorded = {k: stable_store(v) if k == "store" else v for k, v in (overrides or {}).items()}
        cmd += "".join(f" --{k.replace('_', '-')} {v}" for k, v in recorded.items() if v is not None)
        manifest["figures"][key] = manifest_entry(result, out=out, command=cmd, commit=commit, seconds=seconds)
        manifest["figures"] = dict(sorted(manifest["figures"].items()))
        manifest["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
        manifest["git_commit"] = commit
        write_json(path, manifest)  # after every figure, so an interrupted run keeps what it made
    return manifest
