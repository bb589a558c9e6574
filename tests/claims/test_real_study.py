"""collapse.claims.real_study: C3, C6, C7, C9 verdicts follow the study summary they are given."""

from __future__ import annotations

import pytest

from collapse.claims.real_study import CONDITIONAL, FAILS, HOLDS, STUDY_JUDGES, UNMEASURED


def comparison(d: float, gate: str = "pass", verdicts: str = "collapsed; collapsed; kept") -> dict:
    row = {"features": "pca", "M": 18, "noise": 0.3, "loss": "triplet", "negative": "all", "seeds": 3,
           "gate": gate, "verdict_random": verdicts, "verdict_easy": "kept; kept; kept"}  # fmt: skip
    for k in ("test_linear_probe", "test_fine_r1"):
        row |= {f"d_{k}": d, f"d_{k}_lo": d - 0.01, f"d_{k}_hi": d + 0.01}
    return row


def run(pos: str, verdict: str, probe: float, train_probe: float) -> dict:
    return {"labels": "coarse", "positive": pos, "verdict": verdict, "test_linear_probe": probe,
            "train_linear_probe": train_probe, "test_fine_r1": probe, "coarse_map_at_r": 0.8}  # fmt: skip


def test_verdicts_follow_the_numbers():
    runs = [run("random", "collapsed", 0.4, 0.6), run("easy", "kept", 0.7, 0.72)]
    good = {"quick": True, "comparisons": [comparison(0.2)], "runs": runs}
    assert STUDY_JUDGES["C7"](good)[0] == HOLDS
    assert STUDY_JUDGES["C9"](good)[0] == HOLDS
    assert STUDY_JUDGES["C3"](good)[0] == CONDITIONAL
    assert STUDY_JUDGES["C6"](good)[0] == CONDITIONAL
    bad = {"quick": True, "comparisons": [comparison(-0.2, verdicts="kept; kept; kept")],
           "runs": [run("random", "kept", 0.7, 0.7), run("easy", "kept", 0.7, 0.9)]}  # fmt: skip
    assert STUDY_JUDGES["C7"](bad)[0] == FAILS
    assert STUDY_JUDGES["C9"](bad)[0] == FAILS
    assert STUDY_JUDGES["C3"](bad)[0] == UNMEASURED
    assert STUDY_JUDGES["C6"](bad)[0] == FAILS


def test_gated_out_comparisons_do_not_count():
    summary = {"quick": True, "comparisons": [comparison(0.2, gate="gated out: gap 0.2 > 0.05")], "runs": []}
    for claim in ("C7", "C9", "C6"):
        verdict, text = STUDY_JUDGES[claim](summary)
        assert verdict == UNMEASURED and "0/1 comparisons pass" in text


def test_a_partial_study_says_which_blocks_it_lacks():
    runs = [run("random", "collapsed", 0.4, 0.6), run("easy", "kept", 0.7, 0.72)]
    summary = {"quick": False, "comparisons": [comparison(0.2)], "runs": runs,
               "blocks_missing": ["pca M=8", "pca M=10"]}  # fmt: skip
    for claim in ("C3", "C6", "C7", "C9"):
        text = STUDY_JUDGES[claim](summary)[1]
        assert "full mode, partial: 2 blocks not computed (pca M=8, pca M=10), 1/1 comparisons pass" in text
    whole = STUDY_JUDGES["C7"](summary | {"blocks_missing": []})[1]
    assert "partial" not in whole


def _part(features: str, Ms: list[int], d: float, missing: list[str] | None = None) -> dict:
    runs = [run("random", "collapsed", 0.4, 0.6) | {"features": features, "M": m} for m in Ms]
    runs += [run("easy", "kept", 0.7, 0.72) | {"features": features, "M": m} for m in Ms]
    comps = [comparison(d) | {"features": features, "M": m} for m in Ms]
    plan = {"features": [features], "Ms": Ms, "steps": 4000, "root": f"/somewhere/{features}"}
    return {"quick": False, "plan": plan, "runs": runs, "comparisons": comps, "blocks_missing": missing or []}


def test_summaries_of_disjoint_blocks_are_judged_as_one_study():
    from collapse.claims.real_study import combine

    a, b = _part("pca", [8, 12], 0.2), _part("coarse-cnn", [8], -0.2, missing=["coarse-cnn M=12", "pca M=12"])
    both = combine([a, b], ["a.json", "b.json"])
    assert len(both["runs"]) == 6 and len(both["comparisons"]) == 3
    assert both["blocks_missing"] == ["coarse-cnn M=12"]  # pca M=12 is held by a
    verdict, text = STUDY_JUDGES["C9"](both)
    assert "EPS better in 2, worse in 1 of 3" in text and verdict == CONDITIONAL
    assert "2 summaries of its parts combined" in text and "partial: 1 blocks not computed (coarse-cnn M=12)" in text
    assert combine([a]) is a
    with pytest.raises(ValueError, match="both hold block pca M=8"):
        combine([a, _part("pca", [8], 0.1)], ["a.json", "c.json"])
    other = _part("coarse-cnn", [8], 0.1)
    other["plan"]["steps"] = 1200
    with pytest.raises(ValueError, match=r"c.json is not part of the same study as a.json \(differs in steps\)"):
        combine([a, other], ["a.json", "c.json"])
    with pytest.raises(ValueError, match="differs in quick"):
        combine([a, _part("untrained-cnn", [8], 0.1) | {"quick": True}], ["a.json", "c.json"])


def test_the_judge_cli_takes_several_summaries(tmp_path, capsys):
    import json

    from collapse.claims.real_study import main

    paths = []
    parts = {"a": _part("pca", [8], 0.2), "b": _part("coarse-cnn", [8], 0.2), "c": _part("pca", [8], 0)}
    for name, part in parts.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(part))
    assert main([str(paths[0]), str(paths[1]), "--out", str(tmp_path / "t.md")]) == 0
    assert "EPS better in 2, worse in 0 of 2" in (tmp_path / "t.md").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([str(paths[0]), str(paths[2])])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "both hold block pca M=8" in err[0]


@pytest.mark.parametrize(("content", "said"), [(None, "cannot be read"), ("{not json", "is not JSON"),
                                               ('{"runs": []}', "is not a summary")])  # fmt: skip
def test_the_judge_cli_refuses_a_bad_summary_in_one_line(tmp_path, capsys, content, said):
    from collapse.claims.real_study import main

    path = tmp_path / "summary.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as stop:
        main([str(path), "--out", str(tmp_path / "t.md")])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and f"summary {path} {said}" in err[0]
    assert not (tmp_path / "t.md").exists()
