"""The measurements behind the claims ledger: the theory checks T0-T5 and a few simulations, as runs.

Every piece of evidence is a run of the run layer: a :class:`TheoryCheckRun` (kind ``theory-check``, one per
proposition) or a :class:`~collapse.runs.SimRun`. :func:`evidence_runs` lists them per ledger job,
:func:`gather_evidence` reads their records from the store. The real-image results come from the table of
``python -m paper_repro.experiments`` given by path (:func:`paper_repro_results`), never from the working
directory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from collapse.experiment import SimConfig
from collapse.runs import Kind, ResultStore, Run, SimRun, register_kind, sim_row

__all__ = [
    "DEFAULT_REAL_TABLE",
    "JOBS",
    "THEORY",
    "TheoryCheckRun",
    "evidence_runs",
    "gather_evidence",
    "paper_repro_results",
    "sim_evidence_row",
]

SIM_LOSSES = ("triplet", "contrastive", "margin", "multisimilarity", "nca")
THEORY = ("T0", "T1", "T2", "T3", "T4", "T5")
#: Longest first, so that two workers finish together (the cost of a theory check, in this order).
ORDER = ("T5", "T2", "T0", "T3", "T4", "T1")
SIM_KEYS = ("mode_separation", "seeds_collapsed", "fine_precision_at_1", "fine_chance", "submode_nmi",
            "intra_inter_ratio", "merges", "merges_possible", "submode_separation_over_margin", "radius_over_margin",
            "class_map_at_r", "class_map_at_r_null", "class_nmi", "state_collapsed", "state_partly", "state_kept",
            "state_shrunk", "state_no_classes")
#: The committed real-image table, found next to the package (not in the working directory).
DEFAULT_REAL_TABLE = Path(__file__).resolve().parents[2] / "figures" / "paper_repro_table.json"


@dataclass(frozen=True)
class TheoryCheckRun(Run):
    """The numerical check of one proposition (:data:`collapse.theory.checks_registry.CHECKS`)."""

    KIND = "theory-check"
    SCHEMA = 2  # 2: the minimisers judge collapse at half the loss's margin, not at the fixed distance 0.1

    name: str = "T1"

    def __post_init__(self) -> None:
        if self.name not in THEORY:
            raise ValueError(f"name must be one of {', '.join(THEORY)}; got {self.name!r}")


def measure_theory_checks(runs: Sequence[TheoryCheckRun]) -> list[dict]:
    from collapse.theory import checks_registry

    return [checks_registry.CHECKS[r.name]().to_dict() for r in runs]


register_kind(Kind("theory-check", TheoryCheckRun, measure_theory_checks,
                   cost=lambda runs: 1000.0 * (len(ORDER) - ORDER.index(runs[0].name))))


def _sims(config: SimConfig, pairs: Sequence[tuple[str, str, str | None]]) -> list[SimRun]:
    return [SimRun(config, loss, pos, neg) for loss, pos, neg in pairs]


def sim_noise_runs() -> list[SimRun]:
    """Every loss x {random, easy} at noise 0.1 (simulate's defaults), and triplet/contrastive at noise 0."""
    runs = _sims(SimConfig(), [(loss, pos, "hard") for loss in SIM_LOSSES for pos in ("random", "easy")])
    return runs + _sims(SimConfig(noise=0.0), [(loss, pos, "hard") for loss in ("triplet", "contrastive")
                                                for pos in ("random", "easy")])


def sim_samplers_runs() -> list[SimRun]:
    """EPS with other negative rules (triplet) and a learnable-beta margin loss, at noise 0.1."""
    runs = _sims(SimConfig(), [("triplet", pos, neg) for neg in ("semihard", "distance", "all")
                               for pos in ("random", "easy")])
    return runs + _sims(SimConfig(), [("margin-learned", pos, None) for pos in ("random", "easy")])


def sim_retrieval_runs() -> list[SimRun]:
    """Fine-label retrieval when modes collapse or not: per-sample embeddings from an MLP of the 2-D inputs."""
    return _sims(SimConfig(model="mlp", steps=800), [("triplet", pos, "hard") for pos in ("random", "easy")])


#: Ledger job -> the runs behind it.
JOBS = {name: (lambda n=name: [TheoryCheckRun(n)]) for name in THEORY}
JOBS |= {"sim_noise": sim_noise_runs, "sim_samplers": sim_samplers_runs, "sim_retrieval": sim_retrieval_runs}


def evidence_runs() -> dict[str, list[Run]]:
    """The runs of every ledger job."""
    return {name: make() for name, make in JOBS.items()}


def sim_evidence_row(run: SimRun, result: dict) -> dict:
    """What the ledger reads of one simulation: its rules, noise, model, verdict and a few measures."""
    row = sim_row(run, result)
    return {"loss": run.loss, "positive": run.positive, "negative": run.negative, "noise": run.config.noise,
            "model": run.config.model, "verdict": row["verdict"], **{k: row[k] for k in SIM_KEYS}}


def gather_evidence(store: ResultStore, jobs: dict[str, list[Run]] | None = None) -> dict:
    """The evidence dict of the ledger, read from the records of ``jobs`` (default :func:`evidence_runs`)."""
    jobs = evidence_runs() if jobs is None else jobs
    evidence = {}
    for name, runs in jobs.items():
        results = store.results(runs)
        if name in THEORY:
            evidence[name] = results[0]
        else:
            evidence[name] = {"rows": [sim_evidence_row(r, res) for r, res in zip(runs, results)]}
    return evidence


def paper_repro_results(path: str | Path | None = DEFAULT_REAL_TABLE) -> dict | None:
    """The real-image results table written by ``python -m paper_repro.experiments`` at ``path``, if it exists."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    try:  # inside this checkout: name it relative to the repository, as the committed ledger does
        data["source"] = str(path.resolve().relative_to(DEFAULT_REAL_TABLE.parents[1]))
    except ValueError:
        data["source"] = str(path)
    return data
