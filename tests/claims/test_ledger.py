"""The ledger's verdict logic on constructed evidence (the real evidence is produced by python -m collapse.claims)."""

import copy

import pytest

from collapse.claims.__main__ import main
from collapse.claims.ledger import CLAIMS, build_ledger, markdown


def _sim(loss, positive, noise, sep, negative="hard"):
    collapsed = sep < 0.1
    instrument = {
        "merges": 8.0 if collapsed else 0.0,
        "merges_possible": 8.0,
        "submode_separation_over_margin": sep / 0.2,
        "radius_over_margin": 3.0,
        "class_map_at_r": 0.9,
        "class_map_at_r_null": 0.4,
        "class_nmi": 0.9,
        "state_collapsed": float(collapsed),
        "state_partly": 0.0,
        "state_kept": float(not collapsed),
        "state_shrunk": 0.0,
        "state_no_classes": 0.0,
    }
    return instrument | {
        "loss": loss,
        "positive": positive,
        "negative": negative,
        "noise": noise,
        "model": "tied",
        "verdict": "collapsed" if sep < 0.1 else "modes kept",
        "mode_separation": sep,
        "seeds_collapsed": 0.0,
        "fine_precision_at_1": 0.5,
        "fine_chance": 0.33,
        "submode_nmi": 0.5,
        "intra_inter_ratio": 0.1,
    }


def _check(name, holds=True, evidence=None):
    return {
        "name": name,
        "statement": f"{name} statement",
        "holds": holds,
        "evidence": evidence or {},
        "conditions": "c",
    }


EVIDENCE = {
    "T0": _check(
        "T0",
        evidence={
            "zero_loss_values": {"a": 0.0},
            "mode_separation_of_construction": {"triplet": 0.9, "margin": 0.7},
            "contrastive": {"eps=0.0": {"fraction_collapsed": 1.0}},
        },
    ),
    "T1": _check("T1", evidence={"max_abs_error_closed_form_vs_autograd": 1e-16}),
    "T2": _check(
        "T2",
        evidence={
            "fraction_collapsed_d>=8": 1.0,
            "configs_in_regime": 4,
            "fraction_collapsed_d<=4": 0.8,
            "fraction_collapsed_overall": 0.9,
        },
    ),
    "T3": _check("T3", evidence={"max_sibling_gradient": 0.0}),
    "T4": _check("T4", evidence={"critical_M": 12, "critical_M_by_K": {2: 8}, "spearman_pull_vs_separation": -0.8}),
    "T5": _check(
        "T5",
        evidence={"rows": [{"loss": "margin-learned", "positive": "random", "eps": 0.1, "fraction_collapsed": 0.75}]},
    ),
    "sim_noise": {
        "rows": [
            _sim("triplet", "random", 0.1, 0.02),
            _sim("triplet", "easy", 0.1, 0.9),
            _sim("contrastive", "random", 0.1, 0.03),
            _sim("contrastive", "easy", 0.1, 1.3),
            _sim("triplet", "random", 0.0, 0.6),
            _sim("contrastive", "random", 0.0, 0.0),
        ]
    },
    "sim_samplers": {"rows": [_sim("triplet", "easy", 0.1, 0.8, "semihard")]},
    "sim_retrieval": {
        "rows": [
            {**_sim("triplet", "random", 0.1, 0.02), "fine_precision_at_1": 0.4},
            {**_sim("triplet", "easy", 0.1, 0.9), "fine_precision_at_1": 0.9},
        ]
    },
}


def verdicts(ev, real=None):
    return {e.id: e.verdict for e in build_ledger(ev, real)}


def test_every_claim_gets_a_verdict_with_evidence():
    entries = build_ledger(EVIDENCE, None)
    assert [e.id for e in entries] == [c.id for c in CLAIMS]
    assert all(e.evidence for e in entries)
    v = verdicts(EVIDENCE)
    assert v["C1"] == "holds" and v["C2"] == "holds" and v["C10"] == "holds"
    assert v["C7"] == "not yet measured" and v["C8"] == "not yet measured"
    assert "| C1 |" in markdown(entries, {"T0": EVIDENCE["T0"]}, "# t")


def test_verdicts_follow_the_evidence():
    ev = copy.deepcopy(EVIDENCE)
    ev["T2"]["holds"] = False
    assert verdicts(ev)["C2"] == "fails"
    ev = copy.deepcopy(EVIDENCE)
    ev["sim_noise"]["rows"][4] = _sim("triplet", "random", 0.0, 0.01)
    assert verdicts(ev)["C1"] == "fails"
    ev = copy.deepcopy(EVIDENCE)
    ev["sim_retrieval"]["rows"][0]["fine_precision_at_1"] = 0.95
    assert verdicts(ev)["C3"] == "fails"


def _real(random_fine, easy_fine, random_nmi=0.1, easy_nmi=0.3):
    row = {
        "study": "collapse",
        "dataset": "fashion-mnist-super",
        "loss": "triplet",
        "negative": "semihard",
        "fine_recall_at_1_within_coarse_std": 0.01,
        "fine_chance_mean": 0.3,
    }
    raw = {
        "study": "collapse",
        "dataset": "fashion-mnist-super",
        "loss": "(raw pixels)",
        "positive": "-",
        "fine_recall_at_1_within_coarse_mean": 0.8,
    }
    return {
        "source": "x",
        "summary": [
            raw,
            {
                **row,
                "positive": "random",
                "fine_recall_at_1_within_coarse_mean": random_fine,
                "submode_nmi_mean": random_nmi,
            },
            {**row, "positive": "easy", "fine_recall_at_1_within_coarse_mean": easy_fine, "submode_nmi_mean": easy_nmi},
        ],
    }


def test_real_image_claims_use_paper_repro_results():
    assert verdicts(EVIDENCE, _real(0.6, 0.8))["C9"] == "holds"
    assert verdicts(EVIDENCE, _real(0.8, 0.6))["C9"] == "fails"
    # Random positives lost (0.8 - 0.4) / (0.8 - 0.3) = 80% of the fine structure: collapse; EPS more diverse.
    assert verdicts(EVIDENCE, _real(0.4, 0.75))["C7"] == "holds"
    assert verdicts(EVIDENCE, _real(0.78, 0.75))["C7"] == "holds under conditions"
    assert verdicts(EVIDENCE, _real(0.78, 0.75, 0.3, 0.1))["C7"] == "fails"


def test_cli_rejects_bad_workers(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--workers", "0"])
    assert exc.value.code == 2
    assert "--workers must be >= 1" in capsys.readouterr().err


def test_unwritable_outputs_are_refused_before_any_check(tmp_path, capsys):
    """Reproduction 4 of issue 10: --out FILE/claims.md, FILE a file, failed with a traceback after minutes."""
    (tmp_path / "FILE").write_text("x")
    for flag in ("--out", "--json"):
        with pytest.raises(SystemExit) as exc:
            main([flag, str(tmp_path / "FILE" / "claims.md"), "--store", str(tmp_path / "store")])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "FILE is a file" in err[0]
    assert not (tmp_path / "store" / "records").exists() or not any((tmp_path / "store" / "records").iterdir())


@pytest.mark.parametrize(
    ("content", "said"),
    [(None, "cannot be read"), ("{not json", "is not JSON"), ('{"runs": []}', "is not a summary")],
)
def test_a_bad_study_summary_is_refused_before_any_check(tmp_path, capsys, content, said):
    path = tmp_path / "summary.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["--study", str(path), "--store", str(tmp_path / "store"), "--out", str(tmp_path / "c.md"),
              "--json", str(tmp_path / "c.json")])  # fmt: skip
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--study" in err[0] and said in err[0]
    assert not (tmp_path / "store" / "records").exists() or not any((tmp_path / "store" / "records").iterdir())


def test_study_parts_that_overlap_are_refused_before_any_check(tmp_path, capsys):
    import json

    part = {"quick": False, "plan": {"steps": 10}, "comparisons": [], "runs": [{"features": "pca", "M": 8}]}
    for name in ("a", "b"):
        (tmp_path / f"{name}.json").write_text(json.dumps(part))
    for study, said in ((f"{tmp_path / 'a.json'},{tmp_path / 'b.json'}", "both hold block pca M=8"),
                        (",", "names no file")):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main(["--study", study, "--store", str(tmp_path / "store"), "--out", str(tmp_path / "c.md"),
                  "--json", str(tmp_path / "c.json")])  # fmt: skip
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0]
    assert not (tmp_path / "store" / "records").exists() or not any((tmp_path / "store" / "records").iterdir())


def test_the_ledger_header_names_the_command_that_regenerates_it():
    from collapse.claims.__main__ import command_line

    assert command_line([]) == "python -m collapse.claims"
    assert command_line(["--study", "a b.json", "--workers", "3", "--quiet", "--store", "s"]) == (
        "python -m collapse.claims --study 'a b.json' --store s"
    )


def test_the_ledger_reads_the_real_table_it_is_given_not_the_working_directory(tmp_path, monkeypatch):
    from collapse.claims.evidence import DEFAULT_REAL_TABLE, paper_repro_results

    monkeypatch.chdir(tmp_path)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "paper_repro_table.json").write_text('{"summary": [], "planted": true}')
    got = paper_repro_results()
    assert got is None or "planted" not in got  # a table in the working directory is never picked up
    assert DEFAULT_REAL_TABLE.is_absolute()
    assert paper_repro_results(tmp_path / "figures" / "paper_repro_table.json")["planted"] is True
    assert paper_repro_results(None) is None
