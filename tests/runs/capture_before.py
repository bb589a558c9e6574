"""Capture the numbers the code gave BEFORE the run layer (commit acaaab2), on small configurations.

Run once, from the repository root, on the old code: ``python tests/runs/capture_before.py``; it wrote
``tests/runs/before_numbers.json``, which tests/runs/test_same_numbers.py compares the new code against. Kept for the
record: after the refactor some of the functions it calls no longer exist under these names.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

torch.set_num_threads(1)

from collapse.experiment import SimConfig, run_simulation  # noqa: E402
from collapse.phase import phase_diagram  # noqa: E402

SMALL = SimConfig(steps=30, seeds=2)
KEYS = ("mode_separation", "mode_separation_ratio", "intra_inter_ratio", "cdnv", "modes_recovered",
        "seeds_collapsed", "final_loss", "fine_precision_at_1", "submode_nmi")


def simulate() -> list[dict]:
    rows = []
    for loss in ("triplet", "margin", "nca"):
        for pos in ("random", "easy"):
            r = run_simulation(SMALL, loss, pos, "hard")
            rows.append({"loss": loss, "positive": pos, "negative": r.negative, "verdict": r.verdict,
                         **{k: r.summary[k] for k in KEYS}, "per_seed": r.per_seed})
    return rows


def phase() -> list[dict]:
    rows = phase_diagram("M", ("triplet", "margin"), ("random", "easy"), (0.0, 0.2), (3, 6), seeds=2,
                         base=SimConfig(steps=30), n_jobs=1, progress=False)
    return [{k: r[k] for k in ("axis", "samples_per_class", "noise", "loss", "positive", "mode_separation",
                               "seeds_collapsed", "final_loss")} | {"per_seed": r["per_seed"]} for r in rows]


def sweep() -> list[dict]:
    from collapse.sweep import _point_dict, expand_grid, run_block

    points = expand_grid({"noise": [0.0, 0.1], "modes": [2, 3], "steps": [30], "seeds": [2],
                          "loss": ["triplet"], "positive": ["random", "easy"]})
    blocks: dict = {}
    for p in points:
        blocks.setdefault(p.block_key(), []).append(p)
    out = []
    for block in blocks.values():
        for rec in run_block([_point_dict(p) for p in block], "full"):
            out.append({"row": {k: rec["row"][k] for k in ("modes", "noise", "loss", "positive", "mode_separation",
                                                           "submode_nmi", "final_loss")},
                        "per_seed": rec["per_seed"], "block_noise": rec["block_noise"]})
    return out


def claims() -> dict:
    from collapse.claims import evidence

    rows = [evidence._sim(SMALL, loss, pos, neg) for loss, pos, neg in
            (("triplet", "random", "hard"), ("triplet", "easy", "hard"), ("margin-learned", "easy", None))]
    from collapse.theory import checks_registry

    return {"sim_rows": rows, "T1": checks_registry.CHECKS["T1"]().to_dict()}


def figures() -> dict:
    import tempfile

    from paper_repro.figures import collapse_force, pull_arrows, snapshots
    from paper_repro.figures import phase_diagrams as pd

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        collapse_force.draw(tmp, collapse_force.Params(eps_points=(0.0, 0.2), m_points=(2, 6), n_batches=8,
                                                       replicates=2))
        out["collapse_force"] = json.loads((tmp / "d_collapse_force.json").read_text())["measured"]
        pull_arrows.draw(tmp, pull_arrows.Params(samples_per_mode=8, steps=40, moments=(5, 40)))
        j = json.loads((tmp / "a_pull_arrows.json").read_text())
        out["pull_arrows"] = {"anchor": j["anchor"], "rows": j["rows"],
                              "mode_separation_final": j["mode_separation_final"]}
        snapshots.draw(tmp, snapshots.Params(steps=30, snapshots=(0, 10, 30), seeds=2))
        out["snapshots"] = json.loads((tmp / "b_snapshots.json").read_text())["summary"]
        pd.draw(tmp, pd.Params(losses=("triplet",), eps_grid=(0.0, 0.2), m_grid=(3, 6), k_grid=(2, 3), seeds=2,
                               steps=30, n_jobs=1))
        rows = json.loads((tmp / "c_phase_diagrams.json").read_text())["rows"]
        out["phase_diagrams"] = [{k: r[k] for k in ("axis", "samples_per_class", "modes", "noise", "loss", "positive",
                                                    "mode_separation")} for r in rows]
    return out


if __name__ == "__main__":
    result = {"commit": "acaaab2", "simulate": simulate(), "phase": phase(), "sweep": sweep(), "claims": claims(),
              "figures": figures()}
    path = Path(__file__).with_name("before_numbers.json")
    path.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", path)
