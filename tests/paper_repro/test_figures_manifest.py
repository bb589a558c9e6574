"""The manifest and the figures' data record where their records are stored as a stable, relative path (or none):
a temporary or foreign store is not a place anyone can find again, so it is never written down."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import paper_repro.figures as figures
from paper_repro.figures.common import FigureResult, params_dict, stable_store


@dataclass(frozen=True)
class _Params:
    store: str = "results/store"
    seed: int = 0


def _fake_module(tmp_path: Path) -> types.ModuleType:
    def draw(out, params, *, full=False, progress=False):
        png = Path(out) / "c_fake.png"
        png.write_bytes(b"png")
        return FigureResult("c", "fake", png, [], "caption", "source", 0, params=params_dict(params))

    mod = types.ModuleType("fake_figure")
    mod.Params, mod.FULL, mod.draw = _Params, {}, draw
    return mod


@pytest.mark.parametrize(
    "store, recorded",
    [
        ("results/store", "results/store"),  # the default, relative: kept
        ("{cwd}/results/other", "results/other"),  # inside the checkout: made relative
        ("{tmp}/fig_store", None),  # a temporary folder: not recorded
    ],
)
def test_store_is_recorded_relative_or_not_at_all(store, recorded, tmp_path, monkeypatch):
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    store = store.format(cwd=cwd, tmp=tmp_path / "tmp")
    assert stable_store(store) == recorded
    assert params_dict(_Params(store=store))["store"] == recorded
    monkeypatch.setattr(figures, "figure_module", lambda key: _fake_module(tmp_path))
    manifest = figures.build(["c"], cwd / "figs", overrides={"store": store}, progress=False)
    entry = manifest["figures"]["c"]
    assert entry["params"]["store"] == recorded
    saved = json.loads((cwd / "figs" / "manifest.json").read_text())
    assert str(tmp_path / "tmp") not in json.dumps(saved)
    assert entry["command"] == "python -m paper_repro.figures --only c" + (f" --store {recorded}" if recorded else "")
