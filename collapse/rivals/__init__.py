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
``spread``                L_spread (Chen et al. 2022), alpha 0.5, tau 0.5
``softtriple``            SoftTriple (Qian et al. 2019), K = 10 centres per class, trained proxies
``subcenter-arcface``     sub-centre ArcFace (Deng et al. 2020), K = 3 sub-centres, trained proxies
``nca``                   NCA, random positive, hard negative (reference)
``contrastive``           contrastive loss, random positive, hard negative (reference)
========================  ===========================================================================

A :class:`RivalRun` is one method on one :class:`~collapse.experiment.SimConfig`; the runs of one method and
configuration that differ only in the noise level train as the groups of one tensor program (as
:class:`~collapse.runs.SimRun` does), through the one executor and store of :mod:`collapse.runs`. Each seed's
final embedding is judged by the collapse instrument (:func:`collapse.metrics.instrument_report`,
:func:`collapse.metrics.collapse_verdict`) at the method's margin (:func:`collapse.experiment.instrument_margin`).
``python -m collapse.rivals`` runs the grid and writes the table.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from collapse._validation import check_choice, check_real
from collapse.data import LabelNoise
from collapse.experiment import SimConfig, instrument_margin, seed_summary, train_configuration
from collapse.metrics import collapse_verdict, instrument_report, mode_separation
from collapse.runs.spec import Kind, Run, register_kind

__all__ = ["METHODS", "Method", "RivalRun", "measure_rival_block", "method_cell", "method_verdict"]


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
    "spread": Method("spread", "all", "all", "L_spread, alpha 0.5 (Chen et al. 2022)", "rival"),
    "softtriple": Method("softtriple", "all", "all", "SoftTriple, K=10 centres/class (Qian et al. 2019)", "rival"),
    "subcenter-arcface": Method("subcenter-arcface", "all", "all", "sub-centre ArcFace, K=3 (Deng et al. 2020)",
                                "rival"),  # fmt: skip
    "nca": Method("nca", "random", "hard", "NCA, random positive, hard negative", "reference"),
    "contrastive": Method("contrastive", "random", "hard", "contrastive, random positive, hard negative", "reference"),
}


@dataclass(frozen=True)
class RivalRun(Run):
    """One method on one configuration (``config.noise`` is this run's rate; ``block_noise`` the rates trained
    together, which couple the numbers and so belong to the run's identity). ``loss``/``positive``/``negative``
    are filled from :data:`METHODS`, so that a key always names the rules it was computed with."""

    KIND = "rival"
    SCHEMA = 1

    config: SimConfig = SimConfig()
    method: str = "triplet"
    block_noise: tuple[float, ...] = ()
    loss: str = ""
    positive: str = ""
    negative: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.config, SimConfig):
            raise TypeError(f"config must be a SimConfig, got {type(self.config).__name__}")
        m = METHODS[check_choice("method", self.method, METHODS)]
        for name in ("loss", "positive", "negative"):
            value, expected = getattr(self, name), getattr(m, name)
            if value and value != expected:
                raise ValueError(f"{name} of method {self.method!r} is {expected!r}, got {value!r}")
            object.__setattr__(self, name, expected)
        noise = tuple(float(e) for e in self.block_noise) or (float(self.config.noise),)
        for i, e in enumerate(noise):
            check_real(f"block_noise[{i}]", e, low=0.0, high=1.0, high_inclusive=False)
        if len(set(noise)) != len(noise):
            raise ValueError(f"block_noise must hold distinct rates, got {list(noise)}")
        if float(self.config.noise) not in noise:
            raise ValueError(f"the run's noise {self.config.noise} must be one of block_noise {list(noise)}")
        object.__setattr__(self, "block_noise", noise)

    def describe(self) -> str:
        c = self.config
        return f"rival {self.method} model={c.model} noise={c.noise:g} seed={c.seed}x{c.seeds} [{self.key}]"


def _block_key(run: RivalRun) -> str:
    d = run.identity()
    d["config"].pop("noise")
    return json.dumps(d, sort_keys=True)


def _cost(runs: Sequence[RivalRun]) -> float:
    c = runs[0].config
    return float(sum(c.modes_per_class) * c.samples_per_class * c.steps * c.seeds * len(runs[0].block_noise))


def measure_rival_block(runs: Sequence[RivalRun]) -> list[dict]:
    """Train the block (one method and configuration, its noise levels as groups) and judge every seed's final
    embedding with the collapse instrument. A result holds ``per_seed`` (the instrument report, the verdict state,
    its short form and reason, and the mean intra-class mode distance of the theory's verdict), the seed mean and
    std of every numeric measure, ``states`` (verdict counts), ``margin`` and ``final_loss``."""
    first = runs[0]
    cfg, eps = first.config, first.block_noise
    S = cfg.seeds
    G = len(eps) * S
    noise = (
        LabelNoise(kind=cfg.noise_model, eps=tuple(e for e in eps for _ in range(S)), resample=cfg.resample)
        if len(eps) > 1
        else LabelNoise(kind=cfg.noise_model, eps=eps[0], resample=cfg.resample)
    )
    train, loss_fn, data = train_configuration(cfg, first.loss, first.positive, first.negative, noise=noise,
                                               n_groups=G)  # fmt: skip
    margin = instrument_margin(loss_fn)
    emb = train.embeddings.numpy()
    last = train.loss_history.numpy()[-1]
    out = []
    for run in runs:
        i = eps.index(float(run.config.noise))
        per_seed = []
        for g in range(i * S, (i + 1) * S):
            rep = instrument_report(emb[g], data.y, data.modes, margin=margin, loss=float(last[g]),
                                    random_state=cfg.seed + g)  # fmt: skip
            v = collapse_verdict(rep)
            sep = mode_separation(emb[g], data.y, data.modes)["mode_separation"]
            per_seed.append({**{k: float(x) for k, x in rep.items()}, "mode_separation": float(sep),
                             "state": v.state, "short": v.short, "reason": v.reason})  # fmt: skip
        numeric = [{k: x for k, x in r.items() if isinstance(x, float)} for r in per_seed]
        out.append({
            **seed_summary(numeric),
            "states": dict(Counter(r["state"] for r in per_seed)),
            "margin": margin,
            "final_loss": float(last[i * S : (i + 1) * S].mean()),
            "anchors_without_positive": int(train.anchors_without_positive),
            "per_seed": per_seed,
        })  # fmt: skip
    return out


def method_cell(result: dict) -> str:
    """A table cell: the verdict of each seed (most common first) and the mean ± std over seeds of the sub-mode
    separation over the margin."""
    shorts = Counter(r["short"] for r in result["per_seed"])
    n = len(result["per_seed"])
    states = ", ".join(f"{s} {c}/{n}" for s, c in shorts.most_common())
    sd = result.get("submode_separation_over_margin_std", float("nan"))
    return f"{states}; sep/α {result['submode_separation_over_margin']:.2f} ± {sd:.2f}"


def _outcome(seed: dict) -> str:
    short = seed["short"]
    return "partly" if short.startswith("partly") else short.removeprefix("degen:")


def method_verdict(cells: Sequence[tuple[float, dict]]) -> str:
    """One verdict for a method from its ``(noise, result)`` cells (every model): the commonest per-seed outcome
    without noise and with noise (``kept``, ``partly``, ``collapsed``, ``shrunk`` or ``no classes``), with counts."""
    parts = []
    for name, sel in (("ε=0", lambda e: e == 0), ("ε>0", lambda e: e > 0)):
        seeds = [_outcome(r) for e, res in cells if sel(e) for r in res["per_seed"]]
        if seeds:
            top = Counter(seeds).most_common()
            parts.append(f"{name}: " + ", ".join(f"{s} {c}/{len(seeds)}" for s, c in top[:2]))
    return "; ".join(parts)


def grid_runs(config: SimConfig, methods: Sequence[str], models: Sequence[str],
              noise: Sequence[float]) -> list[RivalRun]:  # fmt: skip
    """Every (method, model, noise) of the grid; the noise levels of one (method, model) form one block."""
    block = tuple(float(e) for e in noise)
    return [
        RivalRun(dataclasses.replace(config, model=model, noise=e), method, block_noise=block)
        for method in methods
        for model in models
        for e in block
    ]


register_kind(Kind("rival", RivalRun, measure_rival_block, block_key=_block_key, cost=_cost))
