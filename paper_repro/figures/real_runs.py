"""The real-image runs behind figures (e), (f) and (g): finished ``paper_repro`` runs if there are any, otherwise
two small ones trained here.

A *pair* is a random-positive run (the baseline) and an easy-positive run (EPS) whose configurations differ in
nothing but where and how fast they ran (:data:`PLACE_FIELDS`). Finished runs
(``metrics.json`` with ``finished: true`` next to ``checkpoint.pt``) under ``runs_root`` are used first, for
example those of ``python -m paper_repro.experiments collapse``; among several configurations, the one with pairs for
the most seeds wins, then the one with the most training steps; figures of one run pair show seed ``seed`` if it
is there. Without one, :func:`get_runs` trains a pair of :class:`~paper_repro.train_run.TrainRun` s under
``train_root`` through the run layer's executor (records in ``store``; resumable; a finished pair is reused as is).

:func:`run_embeddings` reads a run's test embeddings from the result store: the record of its
:class:`~paper_repro.embed_run.EmbedRun` (kind ``paper-repro-embed``), which embeds the test split with the final
checkpoint exactly as ``python -m paper_repro.evaluate`` does, computed on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collapse.runs import ResultStore
from paper_repro.config import TrainConfig
from paper_repro.embed_run import EmbeddedTest, embedded_test

__all__ = ["FULL", "RealParams", "Run", "find_pairs", "get_runs", "real_store", "run_embeddings", "small_config"]

POSITIVES = ("random", "easy")
#: Fields that say where or how fast a run ran, not what it computed; two runs of a pair may differ in them.
PLACE_FIELDS = ("out", "root", "device", "workers", "eval_batch_size", "checkpoint_every")


@dataclass(frozen=True)
class RealParams:
    """Which real-image runs to show, and the small pair to train when none is found."""

    dataset: str = "fashion-mnist-super"
    loss: str = "triplet"
    negative: str | None = "semihard"
    steps: int = 200
    eval_every: int = 25
    train_samples: int | None = 6000
    eval_samples: int | None = 1000
    batch_classes: int = 3
    samples_per_class: int = 12
    dim: int = 64
    lr: float = 1e-3
    seed: int = 0
    data_root: str = "data"
    #: Finished runs are searched for here (recursively); "" searches nowhere.
    runs_root: str = "results/paper_repro"
    #: Small runs are trained here when no finished pair is found.
    train_root: str = "results/figures/runs"
    #: The result store of the small runs (None: ``<train_root>/store``, next to the runs it records).
    store: str | None = None


#: ``--full``: a longer pair on the whole training split (used only when no finished pair exists).
FULL = {"steps": 2000, "eval_every": 250, "train_samples": None, "eval_samples": 5000}


@dataclass
class Run:
    """One finished run: its folder, configuration, saved metrics, and whether it was found or trained here."""

    path: Path
    config: TrainConfig
    metrics: dict
    origin: str = "found"
    extra: dict = field(default_factory=dict)

    @property
    def positive(self) -> str:
        return self.config.positive

    @property
    def history(self) -> list[dict]:
        return list(self.metrics.get("history", []))


def _load(metrics_path: Path) -> Run | None:
    try:
        saved = json.loads(metrics_path.read_text())
        cfg = TrainConfig.from_dict(saved["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not a run folder of this version, or a half-written one: not ours to judge here
    if not saved.get("finished") or not (metrics_path.parent / "checkpoint.pt").is_file():
        return None
    return Run(metrics_path.parent, cfg, saved)


def _pair_key(cfg: TrainConfig, *, ignore_seed: bool = False) -> str:
    d = {k: v for k, v in cfg.to_dict().items() if k not in PLACE_FIELDS and k != "positive"}
    if ignore_seed:
        d.pop("seed")
    return json.dumps(d, sort_keys=True, default=str)


def find_pairs(root: str | Path, dataset: str, loss: str, *, min_history: int = 1) -> list[dict[str, list[Run]]]:
    """Finished random/easy pairs of ``dataset`` and ``loss`` under ``root``, grouped over seeds; only runs with at
    least ``min_history`` evaluations count (training curves need several).

    Returns one dict ``{"random": [runs by seed], "easy": [runs by seed]}`` per configuration (seed aside), with
    only the seeds that have both runs, best first (most seeds, then most steps).
    """
    root = Path(root)
    if not str(root) or not root.is_dir():
        return []
    runs = [r for p in sorted(root.rglob("metrics.json")) if (r := _load(p)) is not None]
    runs = [r for r in runs if r.config.dataset == dataset and r.config.loss == loss and r.positive in POSITIVES
            and len(r.history) >= min_history]
    groups: dict[str, dict[str, dict[int, Run]]] = {}
    for r in runs:
        g = groups.setdefault(_pair_key(r.config, ignore_seed=True), {p: {} for p in POSITIVES})
        g[r.positive].setdefault(r.config.seed, r)
    out = []
    for g in groups.values():
        seeds = sorted(set(g["random"]) & set(g["easy"]))
        if seeds:
            out.append({p: [g[p][s] for s in seeds] for p in POSITIVES})
    out.sort(key=lambda g: (-len(g["random"]), -g["random"][0].config.steps))
    return out


def small_config(positive: str, p: RealParams) -> TrainConfig:
    """The configuration of the small run trained when no finished pair exists (its folder name hashes it)."""
    cfg = TrainConfig(out="-", dataset=p.dataset, root=p.data_root, loss=p.loss, positive=positive,
                      negative=p.negative, steps=p.steps, eval_every=p.eval_every, train_samples=p.train_samples,
                      eval_samples=p.eval_samples, batch_classes=p.batch_classes,
                      samples_per_class=p.samples_per_class, dim=p.dim, lr=p.lr, seed=p.seed)
    digest = hashlib.sha1(_pair_key(cfg).encode()).hexdigest()[:8]
    neg = p.negative or "default"
    out = Path(p.train_root) / f"{p.dataset}-{p.loss}-{neg}-{positive}-seed{p.seed}-{digest}"
    return TrainConfig.from_dict({**cfg.to_dict(), "out": str(out)})


def get_runs(
    p: RealParams, *, progress: bool = False, all_seeds: bool = False, min_history: int = 1
) -> tuple[dict[str, list[Run]], str]:
    """The pair to show (``{"random": [...], "easy": [...]}``, one run each unless ``all_seeds``) and a sentence
    saying where it came from. Found runs need ``min_history`` evaluations; the small pair is trained (both runs at
    once, one process per core) only when no finished pair qualifies."""
    pairs = find_pairs(p.runs_root, p.dataset, p.loss, min_history=min_history) if p.runs_root else []
    if pairs:
        best = pairs[0]
        seeds = [r.config.seed for r in best["random"]]
        i = seeds.index(p.seed) if p.seed in seeds else 0
        chosen = best if all_seeds else {k: [v[i]] for k, v in best.items()}
        where = f"finished runs under {p.runs_root}: " + ", ".join(str(r.path) for v in chosen.values() for r in v)
        return chosen, where
    from collapse.runs import execute
    from paper_repro.train_run import TrainRun, record_finished

    configs = {positive: small_config(positive, p) for positive in POSITIVES}
    todo = [TrainRun(configs[k]) for k in POSITIVES]
    store = real_store(p)
    record_finished(todo, store)
    workers = min(len(todo), os.cpu_count() or 1)
    ex = execute(todo, store, backend="processes" if workers > 1 else "inline", workers=workers,
                 progress=progress, desc="figure runs")
    if not ex.ok:
        raise RuntimeError(f"training the small pair failed: {ex.errors[0]}")
    runs = {}
    for k, run in zip(POSITIVES, todo):
        rec = store.result(run)
        runs[k] = Run(Path(rec["path"]), configs[k], {**rec, "finished": True}, origin="trained")
    where = (f"no finished {p.dataset}/{p.loss} pair with {min_history}+ evaluations under "
             f"{p.runs_root or '(none)'}; small pair trained by paper_repro.train.train ({p.steps} steps) in "
             + ", ".join(str(r.path) for r in runs.values()))
    return {k: [r] for k, r in runs.items()}, where


def real_store(p: RealParams) -> ResultStore:
    """The result store of the real-image runs and their test embeddings (``store``, else ``<train_root>/store``)."""
    return ResultStore(p.store if p.store is not None else Path(p.train_root) / "store").prepare()


def run_embeddings(run: Run, p: RealParams, *, progress: bool = False) -> tuple[np.ndarray, EmbeddedTest]:
    """``(embeddings (N, d) float32, embedded test split)`` of ``run``'s final checkpoint, read from the record of
    its :class:`~paper_repro.embed_run.EmbedRun` in :func:`real_store` (computed there on first use, as
    ``paper_repro.evaluate`` embeds: the run's own ``eval_samples`` subset). ``p.data_root`` replaces the run's data
    folder if that is missing."""
    test = embedded_test(run.path, run.config, real_store(p), data_root=p.data_root, progress=progress)
    return test.embeddings, test
