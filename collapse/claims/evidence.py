"""The measurements behind the claims ledger: the theory checks T0-T5 and a few simulations.

Each job is a top-level function of no arguments returning a JSON-ready dict, so the ledger can run them in
parallel worker processes.
"""

from __future__ import annotations

import json
from pathlib import Path

from collapse.experiment import SimConfig, run_simulation

__all__ = ["JOBS", "paper_repro_results", "run_job"]

SIM_LOSSES = ("triplet", "contrastive", "margin", "multisimilarity", "nca")


def _sim(config: SimConfig, loss: str, positive: str, negative: str | None) -> dict:
    r = run_simulation(config, loss, positive, negative)
    keys = (
        "mode_separation",
        "seeds_collapsed",
        "fine_precision_at_1",
        "fine_chance",
        "submode_nmi",
        "intra_inter_ratio",
    )
    return {
        "loss": loss,
        "positive": positive,
        "negative": r.negative,
        "noise": config.noise,
        "model": config.model,
        "verdict": r.verdict,
        **{k: r.summary[k] for k in keys},
    }


def sim_noise() -> dict:
    """Every loss x {random, easy} at noise 0.1 (simulate's defaults), and triplet/contrastive at noise 0."""
    rows = [_sim(SimConfig(), loss, pos, "hard") for loss in SIM_LOSSES for pos in ("random", "easy")]
    rows += [
        _sim(SimConfig(noise=0.0), loss, pos, "hard")
        for loss in ("triplet", "contrastive")
        for pos in ("random", "easy")
    ]
    return {"rows": rows}


def sim_samplers() -> dict:
    """EPS with other negative rules (triplet) and a learnable-beta margin loss, at noise 0.1."""
    rows = [
        _sim(SimConfig(), "triplet", pos, neg) for neg in ("semihard", "distance", "all") for pos in ("random", "easy")
    ]
    rows += [_sim(SimConfig(), "margin-learned", pos, None) for pos in ("random", "easy")]
    return {"rows": rows}


def sim_retrieval() -> dict:
    """Fine-label retrieval when modes collapse or not: per-sample embeddings from an MLP of the 2-D inputs."""
    cfg = SimConfig(model="mlp", steps=800)
    return {"rows": [_sim(cfg, "triplet", pos, "hard") for pos in ("random", "easy")]}


def _theory(name: str):
    def job() -> dict:
        from collapse.theory import checks_registry

        return checks_registry.CHECKS[name]().to_dict()

    job.__name__ = f"theory_{name}"
    return job


JOBS = {name: _theory(name) for name in ("T0", "T1", "T2", "T3", "T4", "T5")}
JOBS |= {"sim_noise": sim_noise, "sim_samplers": sim_samplers, "sim_retrieval": sim_retrieval}


def run_job(name: str) -> tuple[str, dict]:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        return name, JOBS[name]()


def paper_repro_results(
    paths=("figures/paper_repro_table.json", "results/paper_repro/collapse_table.json"),
) -> dict | None:
    """The real-image results table written by ``python -m paper_repro.experiments collapse``, if it exists."""
    for p in paths:
        path = Path(p)
        if path.is_file():
            data = json.loads(path.read_text())
            data["source"] = str(path)
            return data
    return None
