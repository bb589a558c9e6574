"""C8 from the glyph side by side: the verdict follows the paired numbers, and is labelled a proxy for Omniglot."""

import copy

import pytest

from collapse.claims.ledger import build_ledger, c8_from_glyphs, glyph_evidence
from tests.claims.test_ledger import EVIDENCE


def _result(r1s, maps):
    return {"per_seed": [{"seed": s, "coarse_r1": a, "coarse_map_at_r": b} for s, (a, b) in enumerate(zip(r1s, maps))]}


BASE = _result([0.50, 0.52, 0.51], [0.20, 0.22, 0.21])


def test_clear_improvement_holds_and_is_labelled_a_proxy():
    verdict, text = c8_from_glyphs(BASE, _result([0.60, 0.61, 0.62], [0.30, 0.31, 0.30]))
    assert verdict == "holds"
    assert "PROXY for Omniglot, not Omniglot" in text and "CUB-200-2011 and Cars196: not measured" in text
    assert "R@1 0.510 (random positives) -> 0.610 (EPS)" in text


def test_no_improvement_fails_and_unpinned_improvement_is_conditional():
    assert c8_from_glyphs(BASE, _result([0.40, 0.41, 0.42], [0.10, 0.11, 0.10]))[0] == "fails"
    # R@1 up in every seed, MAP@R up on average but not in every seed: the CI crosses 0
    assert c8_from_glyphs(BASE, _result([0.60, 0.61, 0.62], [0.10, 0.40, 0.26]))[0] == "holds under conditions"
    with pytest.raises(ValueError, match="share at least one seed"):
        c8_from_glyphs(BASE, {"per_seed": [{"seed": 9, "coarse_r1": 0.5, "coarse_map_at_r": 0.2}]})


def test_ledger_uses_the_glyph_evidence_when_present():
    ev = copy.deepcopy(EVIDENCE)
    assert {e.id: e.verdict for e in build_ledger(ev, None)}["C8"] == "not yet measured"
    ev["glyph_sidebyside"] = {"baseline": BASE, "eps": _result([0.40, 0.41, 0.42], [0.10, 0.11, 0.10])}
    (c8,) = [e for e in build_ledger(ev, None) if e.id == "C8"]
    assert c8.verdict == "fails" and "proxy for Omniglot" in c8.checked_by


def test_glyph_evidence_is_none_for_an_empty_store(tmp_path):
    from collapse.runs import ResultStore

    assert glyph_evidence(ResultStore(tmp_path / "store")) is None
