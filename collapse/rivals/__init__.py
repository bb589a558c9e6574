r"""Ways to prevent class collapse, side by side: EPS and its rivals under one budget, judged by one instrument.

Each **method** is a (loss, positive rule, negative rule) of :mod:`collapse.losses` with its published
hyper-parameters (nothing is tuned here):

========================  ===========================================================================
``triplet``               triplet loss, random positive, hard negative (the collapsing baseline)
``triplet-eps``           triplet loss, easy positive (EPS), hard negative
``triplet-semihard``      triplet loss, random positive, semi-hard negative (FaceNet's rule)
``triplet-eps-semihard``  triplet loss, easy positive, semi-hard negative
``ephn``                  easy positive + hard negative in NCA form (Xuan et al. 2020)
``supcon``                SupCon (Khosla et al. 2020), all positives, all negatives, tau 0.1
``supcon-eps``            SupCon with the nearest same-label sample as the only positive
``supcon-weps``           SupCon with weighted EPS: every positive, weighted by softmax(-D/0.1) over the anchor's
                          positives (the nearest weighs most; :mod:`collapse.losses.positive_weights`)
``spread``                L_spread (Chen et al. 2022), alpha 0.5, tau 0.5
``softtriple``            SoftTriple (Qian et al. 2019), K = 10 centres per class, trained proxies
``subcenter-arcface``     sub-centre ArcFace (Deng et al. 2020), K = 3 sub-centres, trained proxies
``nca``                   NCA, random positive, hard negative (reference)
``contrastive``           contrastive loss, random positive, hard negative (reference)
========================  ===========================================================================

A method on one :class:`~collapse.experiment.SimConfig` is a plain :class:`~collapse.runs.SimRun` (the simulation
run kind: the noise levels of one method and configuration train as the groups of one tensor program), so the
rivals share the one executor, store and per-seed measurement (:func:`collapse.experiment.measure_groups`) of every
simulation: each seed's final embedding is judged by the collapse instrument
(:func:`collapse.metrics.instrument_report`, :func:`collapse.metrics.collapse_verdict`) at the loss's margin
(:func:`collapse.experiment.instrument_margin`). ``python -m collapse.rivals`` runs the grid and writes the table.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from collapse.experiment import STATE_KEYS, SimConfig
from collapse.runs import SimRun

__all__ = ["METHODS", "Method", "grid_runs", "method_cell", "method_of", "method_verdict", "seed_outcome"]


@dataclass(frozen=True)
class Method:
    """A way to train an embedding: the loss and its rules, with a one-line description and its role."""

    loss: str
    positive: str
    negative: str
    label: str
    role: str  # "baseline", "EPS", "rival" or "reference"


METHODS: dict[str, Method] = {
    "triplet": Method("triplet", "random", "hard", "triplet, random positive, hard negative", "baseline"),
    "triplet-eps": Method("triplet", "easy", "hard", "triplet, easy positive (EPS), hard negative", "EPS"),
    "triplet-semihard": Method("triplet", "random", "semihard", "triplet, random positive, semi-hard negative",
                               "baseline"),  # fmt: skip
    "triplet-eps-semihard": Method("triplet", "easy", "semihard", "triplet, easy positive, semi-hard negative", "EPS"),
    "ephn": Method("nca", "easy", "hard", "EPHN: easy positive + hard negative, NCA form (Xuan et al. 2020)", "EPS"),
    "supcon": Method("supcon", "all", "all", "SupCon, all positives (Khosla et al. 2020)", "rival"),
    "supcon-eps": Method("supcon", "easy", "all", "SupCon + EPS: nearest positive only", "EPS"),
    "supcon-weps": Method("supcon-weighted", "all", "all", "SupCon + weighted EPS: positives weighted by "
                          "softmax(-d/0.1)", "EPS"),  # fmt: skip
    "spread": Method("spread", "all", "all", "L_spread, alpha 0.5 (Chen et al. 2022)", "rival"),
    "softtriple": Method("softtriple", "all", "all", "SoftTriple, K=10 centres/class (Qian et al. 2019)", "rival"),
    "subcenter-arcface": Method("subcenter-arcface", "all", "all", "sub-centre ArcFace, K=3 (Deng et al. 2020)",
                                "rival"),  # fmt: skip
    "nca": Method("nca", "random", "hard", "NCA, random positive, hard negative", "reference"),
    "contrastive": Method("contrastive", "random", "hard", "contrastive, random positive, hard negative", "reference"),
}


#: Short names of the instrument's states, for table cells.
_SHORT = {"collapsed": "collapsed", "partly collapsed": "partly", "modes kept": "kept",
          "degenerate (whole space shrunk)": "shrunk", "degenerate (no class structure)": "no classes"}  # fmt: skip


def seed_outcome(seed: dict) -> str:
    """The verdict of one seed of a :class:`~collapse.runs.SimRun` record, short (``kept``, ``partly``, ...)."""
    for state, key in STATE_KEYS.items():
        if seed.get(key) == 1.0:
            return _SHORT[state]
    raise ValueError("seed must be a per-seed record of measure_groups (with the instrument's state keys)")


def method_of(run: SimRun) -> str:
    """The name in :data:`METHODS` of a run's (loss, positive, negative)."""
    for name, m in METHODS.items():
        if (m.loss, m.positive, m.negative) == (run.loss, run.positive, run.negative):
            return name
    raise ValueError(f"run {run.describe()} is not one of the methods")


def method_cell(result: dict) -> str:
    """A table cell: the verdict of each seed (most common first) and the mean ± std over seeds of the sub-mode
    separation over the margin."""
    shorts = Counter(
        f"partly {r['merges']:.0f}/{r['merges_possible']:.0f}" if seed_outcome(r) == "partly" else seed_outcome(r)
        for r in result["per_seed"]
    )
    n = len(result["per_seed"])
    states = ", ".join(f"{s} {c}/{n}" for s, c in shorts.most_common())
    sd = result.get("submode_separation_over_margin_std", float("nan"))
    return f"{states}; sep/α {result['submode_separation_over_margin']:.2f} ± {sd:.2f}"


def method_verdict(cells: Sequence[tuple[float, dict]]) -> str:
    """One verdict for a method from its ``(noise, result)`` cells (every model): the commonest per-seed outcome
    without noise and with noise (``kept``, ``partly``, ``collapsed``, ``shrunk`` or ``no classes``), with counts."""
    parts = []
    for name, sel in (("ε=0", lambda e: e == 0), ("ε>0", lambda e: e > 0)):
        seeds = [seed_outcome(r) for e, res in cells if sel(e) for r in res["per_seed"]]
        if seeds:
            top = Counter(seeds).most_common()
            parts.append(f"{name}: " + ", ".join(f"{s} {c}/{len(seeds)}" for s, c in top[:2]))
    return "; ".join(parts)


def grid_runs(config: SimConfig, methods: Sequence[str], models: Sequence[str],
              noise: Sequence[float]) -> list[SimRun]:  # fmt: skip
    """Every (method, model, noise) of the grid as :class:`~collapse.runs.SimRun` s with the full measures; the noise
    levels of one (method, model) form one block."""
    block = tuple(float(e) for e in noise)
    return [
        SimRun(dataclasses.replace(config, model=model, noise=e), METHODS[method].loss, METHODS[method].positive,
               METHODS[method].negative, block_noise=block, measures="full")  # fmt: skip
        for method in methods
        for model in models
        for e in block
    ]
