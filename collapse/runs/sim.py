r"""The simulation run kind: one (SimConfig, loss, positive rule, negative rule), its ``seeds`` trained together.

A :class:`SimRun` is one point of any grid (``collapse.simulate``, the phase diagrams, ``collapse.sweep``, the
claims checks, the figures). Its result is the per-seed collapse measures (:func:`collapse.experiment.measure_groups`)
and their seed mean and standard deviation.

Blocks. Runs that differ only in the noise level train as the groups of one tensor program: ``block_noise`` lists
the rates trained together, group :math:`g = iS + s` having rate ``block_noise[i]`` and seed index :math:`s`. The
rates share one seed stream, so a run's numbers depend on its ``block_noise``; it is therefore part of the run's
identity (and key), and a block is always trained whole. With one rate the scalar noise path is used, so
``SimRun(config)`` reproduces :func:`collapse.experiment.run_simulation` exactly (see :mod:`collapse.phase`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collapse._validation import check_choice, check_int, check_real
from collapse.data import LabelNoise
from collapse.experiment import (
    MEASURES,
    SimConfig,
    instrument_margin,
    measure_groups,
    seed_summary,
    train_configuration,
    verdict,
)
from collapse.losses import LOSSES, default_negative
from collapse.runs.spec import Kind, Run, register_kind
from collapse.sampling import NEGATIVE_RULES, POSITIVE_RULES

__all__ = ["SimRun", "measure_sim_block", "sim_row"]


@dataclass(frozen=True)
class SimRun(Run):
    """One simulation configuration: ``config`` (its ``noise`` is this run's rate), the loss and the rules.

    ``negative=None`` is resolved to the loss's published rule, so both spellings are one run. ``trace`` keeps the
    loss history and seed 0's final embeddings; ``snapshot_steps`` keeps seed 0's embeddings at those steps.
    """

    KIND = "sim"
    SCHEMA = 3  # 2: the instrument and its verdict per seed; 3: merges at half the margin or the noise floor

    config: SimConfig = SimConfig()
    loss: str = "triplet"
    positive: str = "random"
    negative: str | None = "hard"
    block_noise: tuple[float, ...] = ()
    measures: str = "full"
    trace: bool = False
    snapshot_steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.config, SimConfig):
            raise TypeError(f"config must be a SimConfig, got {type(self.config).__name__}")
        check_choice("loss", self.loss, LOSSES)
        check_choice("positive", self.positive, POSITIVE_RULES)
        neg = default_negative(self.loss) if self.negative in (None, "default") else self.negative
        check_choice("negative", neg, NEGATIVE_RULES)
        object.__setattr__(self, "negative", neg)
        check_choice("measures", self.measures, MEASURES)
        noise = tuple(float(e) for e in self.block_noise) or (float(self.config.noise),)
        for i, e in enumerate(noise):
            check_real(f"block_noise[{i}]", e, low=0.0, high=1.0, high_inclusive=False)
        if len(set(noise)) != len(noise):
            raise ValueError(f"block_noise must hold distinct rates, got {list(noise)}")
        if float(self.config.noise) not in noise:
            raise ValueError(f"the run's noise {self.config.noise} must be one of block_noise {list(noise)}")
        object.__setattr__(self, "block_noise", noise)
        steps = tuple(check_int("snapshot_steps", s, low=0, high=self.config.steps) for s in self.snapshot_steps)
        object.__setattr__(self, "snapshot_steps", steps)
        object.__setattr__(self, "trace", bool(self.trace))

    def describe(self) -> str:
        c = self.config
        return (f"sim {self.loss}/{self.positive}/{self.negative} noise={c.noise:g} K={c.modes} "
                f"M={c.samples_per_class} seed={c.seed}x{c.seeds} [{self.key}]")

    def with_noise(self, noise: float) -> SimRun:
        """The same run at rate ``noise``: in the same block if ``noise`` is one of its rates, else alone."""
        block = self.block_noise if float(noise) in self.block_noise else ()
        return dataclasses.replace(self, config=dataclasses.replace(self.config, noise=noise), block_noise=block)


def _block_key(run: SimRun) -> str:
    d = run.identity()
    d["config"].pop("noise")
    return json.dumps(d, sort_keys=True)


def _cost(runs: Sequence[SimRun]) -> float:
    c = runs[0].config
    return float(sum(c.modes_per_class) * c.samples_per_class * c.steps * c.seeds * len(runs[0].block_noise))


def measure_sim_block(runs: Sequence[SimRun]) -> list[dict]:
    """Train the block of ``runs`` (same everything but the noise) as one program; one result per run.

    A result holds ``negative`` (resolved), the seed mean and std of every measure (the instrument's included, with
    its per-seed states as the 0/1 keys of :data:`collapse.experiment.STATE_KEYS`), ``seeds_collapsed`` (seeds whose
    state is ``collapsed``),
    ``final_loss`` (mean over the run's seeds of the last logged loss), ``anchors_without_positive`` of the block,
    ``per_seed`` and, if asked, ``loss_steps``/``loss_history`` (the run's seeds), ``embeddings`` (seed 0, final) and
    ``snapshots`` (seed 0, step -> embeddings).
    """
    first = runs[0]
    cfg, eps = first.config, first.block_noise
    S = cfg.seeds
    G = len(eps) * S
    # One rate for all groups keeps run_simulation's own noise path, so a one-level block reproduces it exactly.
    noise = (
        LabelNoise(kind=cfg.noise_model, eps=tuple(e for e in eps for _ in range(S)), resample=cfg.resample)
        if len(eps) > 1
        else LabelNoise(kind=cfg.noise_model, eps=eps[0], resample=cfg.resample)
    )
    train, loss_fn, data = train_configuration(cfg, first.loss, first.positive, first.negative, noise=noise,
                                               n_groups=G, snapshot_steps=first.snapshot_steps)
    margin = instrument_margin(loss_fn)
    emb = train.embeddings.numpy()
    history = train.loss_history.numpy()
    out = []
    for run in runs:
        i = eps.index(float(run.config.noise))
        groups = range(i * S, (i + 1) * S)
        per_seed = measure_groups(emb, data, groups, margin=margin, seed=cfg.seed, measures=run.measures,
                                  losses=history[-1])
        result = {
            "negative": run.negative,
            **seed_summary(per_seed),
            "seeds_collapsed": float(sum(r["state_collapsed"] for r in per_seed)),
            "final_loss": float(history[-1, i * S : (i + 1) * S].mean()),
            "anchors_without_positive": int(train.anchors_without_positive),
            "block_runs": G,
            "per_seed": per_seed,
        }
        if run.trace:
            result["loss_steps"] = list(map(int, train.loss_steps))
            result["loss_history"] = history[:, i * S : (i + 1) * S].tolist()
            result["embeddings"] = emb[i * S].tolist()
        if run.snapshot_steps:
            snaps = {s: train.snapshots.get(s, train.embeddings)[i * S] for s in run.snapshot_steps}
            result["snapshots"] = {str(s): z.numpy().tolist() for s, z in snaps.items()}
        out.append(result)
    return out


def sim_row(run: SimRun, result: dict) -> dict:
    """A flat table row of a finished run: configuration, rules, summary, derived ``verdict`` and
    ``frac_collapsed`` (the one place a simulation's verdict is derived from its record)."""
    c = run.config
    row = {
        "classes": c.classes,
        "modes": c.modes if isinstance(c.modes, int) else list(c.modes),
        "samples_per_class": c.samples_per_class,
        "noise": c.noise,
        "noise_model": c.noise_model,
        "loss": run.loss,
        "positive": run.positive,
        "negative": run.negative,
        "seed": c.seed,
        "seeds": c.seeds,
    }
    skip = {"per_seed", "loss_steps", "loss_history", "embeddings", "snapshots", "negative"}
    row |= {k: v for k, v in result.items() if k not in skip}
    row["frac_collapsed"] = result["seeds_collapsed"] / c.seeds
    row["verdict"] = verdict(result)
    row["key"] = run.key
    return row


def as_array(result: dict, name: str) -> np.ndarray:
    """A stored list-of-lists (embeddings, loss history) as an array."""
    return np.asarray(result[name], dtype=float)


register_kind(Kind("sim", SimRun, measure_sim_block, block_key=_block_key, cost=_cost))
