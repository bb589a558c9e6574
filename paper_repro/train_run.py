"""The real-image training run kind: one :func:`paper_repro.train.train` run as a run of :mod:`collapse.runs`.

A :class:`TrainRun` wraps a :class:`~paper_repro.config.TrainConfig`. Its key hashes what the run computes, not where
or how fast it ran (:data:`PLACE_FIELDS`: output and data folders, device, loader workers, batch sizes of the
evaluation, checkpoint period). Its record holds the final metrics, the evaluation history, the training time and the
run folder (checkpoints and ``metrics.json`` stay there, for the figures that embed test images).

The measurement trains (resuming the run folder if it has a checkpoint). A run folder that already finished this very
configuration is recorded as is, without training: :func:`record_finished` does only that, for ``--table-only``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from collapse.runs import Kind, ResultStore, Run, register_kind
from paper_repro.config import TrainConfig

__all__ = ["PLACE_FIELDS", "ReferenceRun", "TrainRun", "finished_metrics", "measure_reference", "measure_train",
           "record_finished"]

#: Fields that say where or how fast a run ran, not what it computed.
PLACE_FIELDS = ("out", "root", "device", "workers", "eval_batch_size", "checkpoint_every")


@dataclass(frozen=True)
class TrainRun(Run):
    """One real-image training run; ``threads`` (torch threads while it trains) is not part of its identity."""

    KIND = "paper-repro-train"
    SCHEMA = 1

    config: TrainConfig = field(default_factory=lambda: TrainConfig(out="-"))
    threads: int = field(default=1, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(self.config).__name__}")

    def identity(self) -> dict:
        return {k: v for k, v in self.config.to_dict().items() if k not in PLACE_FIELDS}

    def describe(self) -> str:
        c = self.config
        return f"train {c.dataset} {c.loss}/{c.positive}/{c.negative or 'default'} seed {c.seed} -> {c.out}"


def finished_metrics(cfg: TrainConfig) -> dict | None:
    """The saved ``metrics.json`` of ``cfg.out`` if it finished this configuration (same fields but the place), else
    None."""
    path = Path(cfg.out) / "metrics.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(saved, dict) and saved.get("finished") and saved.get("step", 0) >= cfg.steps):
        return None
    stored = saved.get("config")
    if isinstance(stored, dict):
        mine = {k: v for k, v in cfg.to_dict().items() if k not in PLACE_FIELDS}
        if {k: stored.get(k) for k in mine} != json.loads(json.dumps(mine)):
            return None  # another configuration's folder: not this run's result
    return saved


def _result(cfg: TrainConfig, saved: dict) -> dict:
    keep = ("final", "history", "seconds", "step", "negative_used", "train_labels_flipped")
    return {"path": str(cfg.out), **{k: saved[k] for k in keep if k in saved}}


def measure_train(runs: Sequence[TrainRun]) -> list[dict]:
    """Train (or resume, or just read a finished folder of) each run; the record holds its metrics and folder."""
    import torch

    from paper_repro.train import train

    out = []
    for run in runs:
        cfg = run.config
        saved = finished_metrics(cfg)
        if saved is None:
            previous = torch.get_num_threads()
            torch.set_num_threads(run.threads)
            try:
                saved = train(cfg, resume=Path(cfg.out).exists(), progress=False)
            finally:
                torch.set_num_threads(previous)
        out.append(_result(cfg, saved))
    return out


def record_finished(runs: Sequence[TrainRun], store: ResultStore) -> int:
    """Record every run whose folder already finished it (no training); return how many were recorded."""
    n = 0
    for run in runs:
        if store.done(run):
            continue
        saved = finished_metrics(run.config)
        if saved is not None:
            store.put(run, result=_result(run.config, saved), seconds=float(saved.get("seconds", float("nan"))))
            n += 1
    return n


register_kind(Kind("paper-repro-train", TrainRun, measure_train))


@dataclass(frozen=True)
class ReferenceRun(Run):
    """The untrained baselines of a study's test images: raw pixels, and the network of ``config`` at initialisation
    (seeded with 0). Keyed like a :class:`TrainRun` of the same configuration."""

    KIND = "paper-repro-reference"
    SCHEMA = 1

    config: TrainConfig = field(default_factory=lambda: TrainConfig(out="-"))

    def identity(self) -> dict:
        return {k: v for k, v in self.config.to_dict().items() if k not in PLACE_FIELDS}


def measure_reference(runs: Sequence[ReferenceRun]) -> list[dict]:
    """``{"raw pixels": metrics, "untrained network": metrics}`` of each run's test split."""
    import numpy as np
    import torch

    from paper_repro.builders import build_model, eval_transform_for, load_test
    from paper_repro.evaluate import embedding_metrics, evaluate_model

    out = []
    for run in runs:
        cfg = run.config
        test = load_test(cfg)
        tf = eval_transform_for(cfg, test)
        pixels = tf(test.get_batch(np.arange(len(test)))[0]).flatten(1)
        torch.manual_seed(0)
        out.append({
            "raw pixels": embedding_metrics(pixels, test.labels, test.fine_labels),
            "untrained network": evaluate_model(build_model(cfg, test), test, transform=tf),
        })
    return out


register_kind(Kind("paper-repro-reference", ReferenceRun, measure_reference))
