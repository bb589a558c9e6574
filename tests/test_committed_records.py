"""figures/store: the result store committed with the repository holds whole, finished records, and the committed
files that cite it say what those records say (C8 of the ledger; the full study where the data is here)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from collapse.claims.ledger import c8_from_glyphs, glyph_evidence
from collapse.runs import ResultStore
from collapse.runs.store import STORE_MARKER

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "figures" / "store"
DATA = ROOT / "data"


def test_every_committed_record_is_whole_and_finished():
    assert (STORE / STORE_MARKER).is_file()
    files = sorted((STORE / "records").glob("*.json"))
    records = list(ResultStore(STORE).records())
    # records() skips files that do not parse or whose key is not their name: none may be skipped.
    assert [r.key for r in records] == [p.stem for p in files]
    assert all(r.ok for r in records), [r.key for r in records if not r.ok]
    assert not [p for p in STORE.rglob("*") if p.is_file() and p.suffix != ".json" and p.name != STORE_MARKER]


def test_the_ledger_c8_row_is_what_the_committed_glyph_records_say():
    evidence = glyph_evidence(ResultStore(STORE))
    assert evidence is not None, "C8's glyph records are missing from figures/store"
    command = "python -m paper_repro.sidebyside --datasets glyphs --methods triplet,triplet-eps --noise 0"
    verdict, text = c8_from_glyphs(evidence["baseline"], evidence["eps"], command=command)
    row = next(c for c in json.loads((ROOT / "figures" / "claims.json").read_text())["claims"] if c["id"] == "C8")
    assert (row["verdict"], row["evidence"]) == (verdict, text)


def _studies_from_this_store() -> list[Path]:
    out = []
    for path in sorted((ROOT / "figures").glob("real_study_full*.json")):
        if Path(json.loads(path.read_text()).get("store", "")).resolve() == STORE.resolve():
            out.append(path)
    return out


@pytest.mark.skipif(not (DATA / "fashion-mnist").is_dir(), reason="needs Fashion-MNIST under data/ (fetch it)")
@pytest.mark.parametrize("path", _studies_from_this_store(), ids=lambda p: p.stem)
def test_a_committed_full_study_is_rebuilt_from_the_committed_records(path, tmp_path):
    from paper_repro.study import StudyPlan, run_study

    summary = json.loads(path.read_text())
    plan = replace(StudyPlan.from_dict(summary["plan"]), root=str(DATA))
    again = run_study(plan, tmp_path, progress=False, command=summary["command"], store=STORE, from_store=True)
    assert again["blocks_computed"] == 0 and again["blocks_missing"] == summary.get("blocks_missing", [])
    for key in ("runs", "comparisons", "controls", "floors"):
        # As JSON text: NaN entries compare equal there, and the file holds what write_json wrote.
        assert json.dumps(again[key]) == json.dumps(summary[key]), key


def test_the_readme_sidebyside_table_is_what_the_committed_records_say():
    """The README's real-image side-by-side table is printed from figures/store (its default plan: every data set,
    method and noise level), so a fresh clone reprints it with ``--store figures/store --from-store``."""
    from paper_repro.sidebyside import DATASETS, MARKERS, NOISES, REAL_METHODS, grid, sidebyside_markdown

    runs = grid(list(DATASETS), list(REAL_METHODS), list(NOISES))
    text = sidebyside_markdown(runs, ResultStore(STORE).results(runs), "figures/store")
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(MARKERS[0]) + len(MARKERS[0]), readme.index(MARKERS[1])
    assert readme[start:end] == "\n" + text
