r"""The real-image class-collapse study (protocol: ``docs/real_images.md``), end-of-training regime on a CPU.

An MLP head (:class:`paper_repro.multiseed.MLPHead`) is trained on *fixed* image features of Fashion-MNIST
superclasses (coarse labels trained, fine labels hidden) until its training loss stops moving, many runs in one
tensor program (:func:`paper_repro.multiseed.train_heads`):

* features: ``pca`` (PCA of the pixels), ``untrained-cnn`` (global-pooled features of a randomly initialised
  :class:`~paper_repro.models.SmallCNN`), ``coarse-cnn`` (the same network trained on the coarse labels of the fit
  split with the triplet loss, random positives, all negatives, then frozen);
* grid: label noise x batch size M (P = 3 classes per batch) x positive rule (random, easy) x negative rule (all,
  random) x loss (triplet, contrastive) x seeds x learning rates;
* learning rate: per (features, M, noise, loss, positive, negative) cell, the grid value with the best mean
  *validation* coarse MAP@R (a split carved from the training images; the test images are never used to choose);
* controls: contrastive loss (collapses by its form), fine-label-trained heads (upper bound), the features
  themselves without a head (floors: PCA of raw pixels, untrained network);
* measures of every chosen run, on train (fit split) and test: coarse MAP@R and R@1; the sub-class probes of
  :func:`collapse.metrics.subclass_probes`; the collapse instrument (:func:`collapse.metrics.instrument_report`,
  :func:`collapse.metrics.collapse_verdict`) with the loss's margin;
* comparisons: easy minus random positives, paired by seed, mean and 95 % t-interval, *gated*: only where the two
  rules' mean test coarse MAP@R differ by at most ``gate_tol``; gated-out comparisons are listed with the reason.

``python -m paper_repro.study --quick`` (at most 10 minutes on 2 cores) and ``python -m paper_repro.study`` (the
full grid) write ``runs.csv``, ``curves.csv``, ``comparisons.csv``, ``summary.json`` and ``table.md`` under
``--out``; ``--figures DIR`` copies the table and a curves figure there.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from collapse._validation import check_fields, check_int, check_real
from collapse.cli import OneLineParser, parse_list
from collapse.experiment import instrument_margin
from collapse.io import write_csv, write_json, write_text
from collapse.losses import make_loss
from collapse.metrics import map_at_r, retrieval_metrics, subclass_probes
from collapse.runs import DEFAULT_STORE, STORE_MARKER, Kind, ResultStore, check_writable_dir, execute, register_kind
from collapse.runs import Run as StoredRun
from collapse.runs.spec import plain

__all__ = ["FULL", "QUICK", "StudyBlock", "StudyPlan", "judge_embeddings", "main", "plan_blocks", "run_study",
           "study_loss"]

LOSS_MARGIN = {"triplet": ("margin", 0.2), "contrastive": ("neg_margin", 1.0)}


def study_loss(name: str, positive: str | None, negative: str | None, *, seed: int, num_classes: int, dim: int):
    """Any loss of :mod:`collapse.losses` (the rivals included) for a head of output ``dim`` on ``num_classes``
    labels: triplet and contrastive with the study's margins (:data:`LOSS_MARGIN`), the others with their published
    defaults; proxy losses get their own trained proxies. Its instrument margin is
    :func:`collapse.experiment.instrument_margin` of the returned loss."""
    kwargs = dict([LOSS_MARGIN[name]]) if name in LOSS_MARGIN else {}
    return make_loss(name, positive, negative, num_classes=num_classes, embedding_dim=dim, random_state=seed,
                     **kwargs)  # fmt: skip


@dataclass(frozen=True)
class StudyPlan:
    """Everything the study depends on (saved with its results)."""

    dataset: str = "fashion-mnist-super"
    root: str = "data"
    dataset_options: tuple[tuple[str, object], ...] = ()  # loader options, e.g. (("protocol", "designs"),)
    n_train: int = 6000
    n_test: int = 3000
    val_fraction: float = 0.2
    features: tuple[str, ...] = ("pca", "untrained-cnn", "coarse-cnn")
    pca_dim: int = 64
    cnn_steps: int = 600
    noises: tuple[float, ...] = (0.0, 0.1, 0.3)
    Ms: tuple[int, ...] = (8, 12, 18, 32)
    add_critical_M: bool = True
    positives: tuple[str, ...] = ("random", "easy")
    negatives: tuple[str, ...] = ("all", "random")
    losses: tuple[str, ...] = ("triplet", "contrastive")
    seeds: int = 3
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    steps: int = 4000
    window: int = 250
    converge_tol: float = 0.02
    gate_tol: float = 0.05
    dim: int = 64
    hidden: int = 256
    upper_bound: bool = True
    null_permutations: int = 30

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StudyPlan:
        """The plan of :meth:`to_dict` read back from JSON (lists become tuples again; unknown keys are an error)."""
        check_fields(cls, data, "study plan")

        def frozen(v):
            return tuple(frozen(x) for x in v) if isinstance(v, list) else v

        return cls(**{k: frozen(v) for k, v in data.items()})


FULL = StudyPlan()
QUICK = StudyPlan(n_train=2000, n_test=1000, cnn_steps=150, noises=(0.0, 0.3), Ms=(18,), add_critical_M=False,
                  negatives=("all",), lrs=(1e-3, 3e-3), steps=1200, window=100, null_permutations=5)  # fmt: skip


# --- data and features --------------------------------------------------------------------------------------------
def _split_data(plan: StudyPlan):
    from paper_repro.builders import load_split, stratified_subset
    from paper_repro.config import TrainConfig

    cfg = TrainConfig(out="unused", dataset=plan.dataset, root=plan.root, dataset_options=dict(plan.dataset_options))
    train = load_split(cfg, "train")
    train = train.subset(stratified_subset(train.fine_labels, plan.n_train, 0))
    rng = np.random.default_rng(0)
    val = np.zeros(len(train), dtype=bool)
    for k in np.unique(train.fine_labels):
        rows = np.flatnonzero(train.fine_labels == k)
        val[rng.choice(rows, size=max(1, int(round(plan.val_fraction * rows.size))), replace=False)] = True
    test = load_split(cfg, "test")
    test = test.subset(stratified_subset(test.fine_labels, plan.n_test, 0))
    return cfg, train.subset(np.flatnonzero(~val)), train.subset(np.flatnonzero(val)), test


def _pixels(ds, cfg) -> torch.Tensor:
    from paper_repro.builders import eval_transform_for

    x, _ = ds.get_batch(np.arange(len(ds)))
    return eval_transform_for(cfg, ds)(x)


def _standardise(parts: list[np.ndarray]) -> list[np.ndarray]:
    mu, sd = parts[0].mean(0), parts[0].std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return [((p - mu) / sd).astype(np.float32) for p in parts]


def build_features(plan: StudyPlan, cfg, fit, val, test, *, progress: bool = True) -> dict[str, list[np.ndarray]]:
    """``{name: [fit, val, test]}`` standardised with the fit split's statistics."""
    from sklearn.decomposition import PCA

    from paper_repro.builders import build_model
    from paper_repro.multiseed import train_grouped

    pix = [_pixels(d, cfg) for d in (fit, val, test)]
    out: dict[str, list[np.ndarray]] = {}
    if "pca" in plan.features:
        flat = [p.flatten(1).numpy() for p in pix]
        pca = PCA(plan.pca_dim, random_state=0).fit(flat[0])
        out["pca"] = _standardise([pca.transform(f) for f in flat])

    def backbone_features(model) -> list[np.ndarray]:
        model.eval()
        with torch.no_grad():
            return _standardise([torch.cat([model.backbone(p[i : i + 512]) for i in range(0, len(p), 512)]).numpy()
                                 for p in pix])  # fmt: skip

    if "untrained-cnn" in plan.features:
        torch.manual_seed(0)
        out["untrained-cnn"] = backbone_features(build_model(cfg, fit))
    if "coarse-cnn" in plan.features:
        from paper_repro.config import TrainConfig

        c = TrainConfig(out="unused", dataset=plan.dataset, root=plan.root, loss="triplet", positive="random",
                        negative="all", batch_classes=3, samples_per_class=18, steps=plan.cnn_steps,
                        eval_every=plan.cnn_steps, augment=False, seed=0)  # fmt: skip
        res = train_grouped([c], train_data=fit, test_data=test, evaluate=False, progress=progress)
        out["coarse-cnn"] = backbone_features(res["models"][0])
    return out


# --- measures -----------------------------------------------------------------------------------------------------
def _instrument():
    """The collapse instrument of ``collapse.metrics`` (issue #11), or None where this checkout predates it."""
    try:
        from collapse.metrics import collapse_verdict, instrument_report
    except ImportError:
        return None
    return instrument_report, collapse_verdict


def judge_embeddings(
    train_emb: np.ndarray,
    train_y: np.ndarray,
    train_m: np.ndarray,
    test_emb: np.ndarray,
    test_y: np.ndarray,
    test_m: np.ndarray,
    *,
    margin: float,
    loss: float | None = None,
    null_permutations: int = 30,
    random_state: int = 0,
) -> dict:
    """Every measure of the study for one embedding (clean coarse labels ``y``, fine labels ``m``), flat dict.

    Keys ``coarse_map_at_r`` / ``coarse_r1`` (test), ``{train,test}_{probe key}`` (:data:`PROBE_KEYS`), and, with
    the instrument, ``instrument_{key}`` on the test split and ``verdict`` / ``verdict_reason``.
    """
    out: dict = {}
    rm = retrieval_metrics(test_emb, test_y, ks=(1,), nmi=False)
    out["coarse_map_at_r"], out["coarse_r1"] = rm["map_at_r"], rm["recall_at_1"]
    out["train_coarse_map_at_r"] = map_at_r(train_emb, train_y)
    probes = subclass_probes(train_emb, train_y, train_m, test_emb, test_y, test_m, max_fit=2000,
                             random_state=random_state)  # fmt: skip
    for split, row in probes.items():
        out |= {f"{split}_{k}": v for k, v in row.items()}
    inst = _instrument()
    if inst is None:
        out["verdict"], out["verdict_reason"] = "n/a", "collapse.metrics.instrument_report is not in this checkout"
        return out
    report, verdict = inst
    rep = report(test_emb, test_y, test_m, margin=margin, loss=loss, null_permutations=null_permutations,
                 random_state=random_state)  # fmt: skip
    out |= {f"instrument_{k}": v for k, v in rep.items()}
    v = verdict(rep)
    out["verdict"], out["verdict_reason"] = v.short, v.reason
    return out


def converged(curve: Sequence[dict], tol: float) -> bool:
    """The stated criterion: the last window's mean training loss differs from the previous window's by at most
    ``tol`` relative (or 1e-4 absolute, for losses near zero)."""
    if len(curve) < 2:
        return False
    a, b = curve[-2]["train_loss"], curve[-1]["train_loss"]
    return abs(b - a) <= max(tol * abs(a), 1e-4)


def t_interval(diffs: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95 % Student-t interval of paired differences."""
    from scipy.stats import t

    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2:
        return float(d.mean()) if d.size else float("nan"), float("nan"), float("nan")
    half = float(t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


# --- the study ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    features: str
    M: int
    noise: float
    loss: str
    positive: str
    negative: str
    seed: int
    lr: float
    labels: str = "coarse"  # "fine": the fine-label-trained upper bound

    @property
    def cell(self) -> tuple:
        return (self.features, self.M, self.noise, self.loss, self.positive, self.negative, self.labels)


RUN_FIELDS = ("features", "M", "noise", "loss", "positive", "negative", "seed", "lr", "labels")


def critical_M(noise: float, classes: int, modes: int) -> int | None:
    """T4's smallest batch size M at which easy positives' net sibling force stops pulling (collapse.theory)."""
    from collapse.theory.t4_finite_batch import critical_batch

    return critical_batch(noise, classes, modes) if noise > 0 else None


def plan_runs(plan: StudyPlan, features: str, M: int) -> list[Run]:
    runs = [Run(features, M, eps, loss, pos, neg, s, lr)
            for eps in plan.noises for loss in plan.losses for pos in plan.positives for neg in plan.negatives
            for s in range(plan.seeds) for lr in plan.lrs]  # fmt: skip
    if plan.upper_bound:
        runs += [Run(features, M, 0.0, "triplet", "random", "all", s, lr, labels="fine")
                 for s in range(plan.seeds) for lr in plan.lrs]  # fmt: skip
    return runs


def _command(prefix: str, r: Run) -> str:
    """The command that reruns the cell of run ``r`` (the study's own command, filtered to that cell)."""
    return f"{prefix} --features {r.features} --M {r.M} --noise {r.noise:g}"


#: Plan fields that say where the data lies or how results are read, not what a block computes.
PLACE_FIELDS = ("root", "gate_tol", "add_critical_M")


@dataclass(frozen=True)
class StudyBlock(StoredRun):
    """One (features, M) block of the study: every head of :func:`plan_runs` for it, trained in one tensor program
    and judged (kind ``real-study-block``).

    ``plan`` is the study's plan narrowed to this block (``features = (name,)``, ``Ms = (M,)``); its key ignores
    :data:`PLACE_FIELDS`. ``floor`` adds the judgement of the features without a head (one block per feature set
    carries it), ``controls`` the synthetic collapses of the reference head (the study's first block).
    """

    KIND = "real-study-block"
    SCHEMA = 2  # 2: the instrument's merge rule with the sampling noise floor (collapse.metrics.instrument)

    plan: StudyPlan = field(default_factory=StudyPlan)
    floor: bool = False
    controls: bool = False
    progress: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.plan, StudyPlan):
            raise TypeError(f"plan must be a StudyPlan, got {type(self.plan).__name__}")
        if len(self.plan.features) != 1 or len(self.plan.Ms) != 1:
            raise ValueError(f"a study block has one feature set and one M, got features {self.plan.features} and "
                             f"Ms {self.plan.Ms}")  # fmt: skip

    def identity(self) -> dict:
        plan = {k: v for k, v in self.plan.to_dict().items() if k not in PLACE_FIELDS}
        return plain({"plan": plan, "floor": self.floor, "controls": self.controls})

    def describe(self) -> str:
        return f"study block {self.plan.features[0]} M={self.plan.Ms[0]} [{self.key}]"


def plan_blocks(plan: StudyPlan, Ms: Sequence[int], *, progress: bool = False) -> list[StudyBlock]:
    """The study's blocks, in reading order: features x M; the first of each feature set judges its floor, the very
    first the controls."""
    blocks = []
    for i, name in enumerate(plan.features):
        for j, M in enumerate(Ms):
            narrow = replace(plan, features=(name,), Ms=(int(M),), add_critical_M=False)
            blocks.append(StudyBlock(narrow, floor=j == 0, controls=i == 0 and j == 0, progress=progress))
    return blocks


def stored_superset(block: StudyBlock, store: ResultStore) -> StudyBlock:
    """``block``, or the same block with more judging (``floor`` and/or ``controls`` also set) where only that one has
    a finished record in ``store``.

    Which block carries the floor and the controls depends on the plan (the first M of each feature set, the very
    first block), so a narrowed study (``--features untrained-cnn``) stores its first block with them while the
    whole study asks for it without. The heads, their training and their judgement do not depend on either flag
    (both are computed after them, from their own inputs), so the superset record holds every row the block asks
    for; :func:`_only_asked` drops the rest.
    """
    if store.done(block):
        return block
    for floor, controls in ((True, block.controls), (block.floor, True), (True, True)):
        other = replace(block, floor=floor, controls=controls)
        if other != block and store.done(other):
            return other
    return block


def _only_asked(result: dict, block: StudyBlock) -> dict:
    """A block's stored result without the floor and controls the block did not ask for (see
    :func:`stored_superset`)."""
    return result | {"floor": result["floor"] if block.floor else None,
                     "controls": result["controls"] if block.controls else []}  # fmt: skip


@lru_cache(maxsize=2)
def _block_data(plan: StudyPlan):
    """Splits and the one feature set of ``plan`` (cached: the blocks of one feature set share it in a process)."""
    t0 = time.perf_counter()
    cfg, fit, val, test = _split_data(plan)
    feats = build_features(plan, cfg, fit, val, test, progress=False)
    return cfg, fit, val, test, feats[plan.features[0]], time.perf_counter() - t0


def measure_study_blocks(blocks: Sequence[StudyBlock]) -> list[dict]:
    """The measurement of kind ``real-study-block``: one result per block (each block is its own program)."""
    return [_measure_block(b) for b in blocks]


def _measure_block(block: StudyBlock) -> dict:
    from collapse._malloc import retain_freed_memory
    from paper_repro.label_noise import noisy_labels
    from paper_repro.multiseed import train_heads

    retain_freed_memory()  # a long training loop in this process: keep freed pages (collapse/_malloc.py)
    t0, c0 = time.perf_counter(), time.process_time()
    plan = block.plan
    name, M = plan.features[0], plan.Ms[0]
    data_plan = StudyPlan(dataset=plan.dataset, root=plan.root, dataset_options=plan.dataset_options,
                          n_train=plan.n_train, n_test=plan.n_test, val_fraction=plan.val_fraction, features=(name,),
                          pca_dim=plan.pca_dim, cnn_steps=plan.cnn_steps)  # fmt: skip
    _cfg, fit, val, test, (ff, fv, ft), t_features = _block_data(data_plan)
    classes = int(np.unique(fit.labels).size)
    out: dict = {"features": name, "M": M, "seconds_features": t_features, "floor": None, "controls": []}
    if block.floor:
        j = judge_embeddings(ff, fit.labels, fit.fine_labels, ft, test.labels, test.fine_labels,
                             margin=LOSS_MARGIN["triplet"][1], null_permutations=plan.null_permutations)  # fmt: skip
        out["floor"] = {"features": name, "kind": "features, no head (floor)"} | j
    runs = plan_runs(plan, name, M)
    labels, losses = [], []
    for r in runs:
        base = fit.fine_labels if r.labels == "fine" else fit.labels
        labels.append(noisy_labels(base, fit.fine_labels, r.noise, seed=r.seed) if r.noise else base)
        losses.append(study_loss(r.loss, r.positive, r.negative, seed=r.seed, dim=plan.dim,
                                 num_classes=int(np.max(labels[-1])) + 1))  # fmt: skip
    fv_t = torch.as_tensor(fv)

    def on_window(step, net):
        with torch.no_grad():
            emb = net(fv_t).numpy()
        return [{"val_coarse_map_at_r": map_at_r(e, val.labels)} for e in emb]

    res = train_heads(torch.as_tensor(ff), labels, losses=losses, lrs=[r.lr for r in runs],
                      seeds=[r.seed for r in runs], batch_classes=classes, samples_per_class=M, steps=plan.steps,
                      dim=plan.dim, hidden=plan.hidden, window=plan.window, on_window=on_window,
                      progress=block.progress)  # fmt: skip
    out["seconds_heads"] = res["seconds"]
    out["curves"] = [asdict(r) | c for r, curve in zip(runs, res["curves"]) for c in curve]
    # Learning rate per cell: best mean validation coarse MAP@R over seeds at the last window.
    best: dict[tuple, tuple[float, float]] = {}
    for lr in plan.lrs:
        for cell in {r.cell for r in runs}:
            vals = [c[-1]["val_coarse_map_at_r"] for r, c in zip(runs, res["curves"]) if r.cell == cell and r.lr == lr]
            if cell not in best or np.mean(vals) > best[cell][1]:
                best[cell] = (lr, float(np.mean(vals)))
    net = res["net"]
    with torch.no_grad():
        e_fit, e_test = net(torch.as_tensor(ff)).numpy(), net(torch.as_tensor(ft)).numpy()
    rows, reference = [], None
    for g, (r, curve) in enumerate(zip(runs, res["curves"])):
        if r.lr != best[r.cell][0]:
            continue
        if reference is None and (r.noise, r.loss, r.positive, r.labels) == (0.0, "triplet", "easy", "coarse"):
            reference = {"run": asdict(r), "fit": (e_fit[g], fit.labels, fit.fine_labels),
                         "test": (e_test[g], test.labels, test.fine_labels)}  # fmt: skip
        j = judge_embeddings(e_fit[g], fit.labels, fit.fine_labels, e_test[g], test.labels, test.fine_labels,
                             margin=instrument_margin(losses[g]), loss=curve[-1]["train_loss"],
                             null_permutations=plan.null_permutations, random_state=r.seed)  # fmt: skip
        rows.append(asdict(r) | {"val_coarse_map_at_r": curve[-1]["val_coarse_map_at_r"],
                                 "final_train_loss": curve[-1]["train_loss"],
                                 "converged": converged(curve, plan.converge_tol)} | j)  # fmt: skip
    out["rows"] = rows
    if block.controls and reference is not None:
        out["controls"] = embedding_controls(reference, plan)
    out["seconds"], out["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
    return out


def _block_cost(blocks: Sequence[StudyBlock]) -> float:
    """Heads x steps x batch, plus the CNN's training for ``coarse-cnn`` (bigger blocks start first)."""
    total = 0.0
    for b in blocks:
        p = b.plan
        total += len(plan_runs(p, p.features[0], p.Ms[0])) * p.steps * 3 * p.Ms[0]
        total += 2000 * p.cnn_steps * 54 if p.features[0] == "coarse-cnn" else 0
    return total


register_kind(Kind(StudyBlock.KIND, StudyBlock, measure_study_blocks, cost=_block_cost))


def run_study(
    plan: StudyPlan,
    out: str | Path,
    *,
    quick: bool = False,
    progress: bool = True,
    command: str | None = None,
    store: str | Path | ResultStore | None = None,
    backend: str = "inline",
    workers: int | None = None,
    from_store: bool = False,
) -> dict:
    """Run ``plan`` through the run layer and write its files under ``out`` (see the module docstring); return the
    summary.

    Each (features, M) block is a :class:`StudyBlock` computed by :func:`collapse.runs.execute` into ``store``
    (default :data:`collapse.runs.DEFAULT_STORE`): a block whose record is there is not recomputed, so an
    interrupted study resumes where it stopped, and every file here is built from the stored records only.
    ``command`` is the command line that ran the study without its cell filters (each cell's rerun command is it
    plus ``--features F --M M --noise E``); by default ``python -m paper_repro.study [--quick]``.

    ``from_store=True`` computes nothing: the files are built from the blocks that ``store`` already holds, and the
    others are listed in ``summary["blocks_missing"]`` (a study computed over several sessions shows how far it got;
    ``ValueError`` if the store holds none of them).
    """
    prefix = command or f"python -m paper_repro.study{' --quick' if quick else ''}"
    out = check_writable_dir(Path(out), what="--out")
    store = store if isinstance(store, ResultStore) else ResultStore(store or DEFAULT_STORE)
    if not from_store:
        store.prepare()
    elif not store.exists:
        raise ValueError(f"--from-store: {store.root} is not a result store (no {STORE_MARKER}); name the store that "
                         "holds the study's records")
    t0 = time.perf_counter()
    _cfg, fit, val, test = _split_data(plan)
    classes = int(np.unique(fit.labels).size)
    modes = int(round(np.mean([np.unique(fit.fine_labels[fit.labels == c]).size for c in np.unique(fit.labels)])))
    Ms = list(plan.Ms)
    mstar = {eps: critical_M(eps, classes, modes) for eps in plan.noises}
    if plan.add_critical_M:
        Ms += [m for m in sorted({v for v in mstar.values() if v is not None}) if m not in Ms]
    wanted = plan_blocks(plan, Ms, progress=progress)
    blocks = [stored_superset(b, store) for b in wanted]
    if from_store:
        stored = [store.result(b) for b in blocks]  # None where the block has no finished record
        if all(res is None for res in stored):
            raise ValueError(f"--from-store: {store.root} holds none of this study's {len(blocks)} blocks (run without "
                             "--from-store to compute them)")
        computed = 0
    else:
        ex = execute(blocks, store, backend=backend, workers=workers, progress=progress, desc="study blocks")
        if not ex.ok:
            raise RuntimeError(f"{ex.failed} of {len(blocks)} study blocks failed (rerun to retry them): "
                               f"{ex.errors[0]}")
        stored, computed = store.results(blocks), ex.computed
    missing = [f"{b.plan.features[0]} M={b.plan.Ms[0]}" for b, res in zip(blocks, stored) if res is None]
    blocks = [b for b, res in zip(blocks, stored) if res is not None]
    # Everything below reads the stored records only; a block served by a superset record keeps only what it asked.
    results = [_only_asked(res, w) for res, w in zip(stored, wanted) if res is not None]
    from_records = len(results) - computed
    rows = [r | {"command": _command(prefix, Run(**{k: r[k] for k in RUN_FIELDS}))} for b in results for r in b["rows"]]
    curves_rows = [c for b in results for c in b["curves"]]
    floors = [b["floor"] for b in results if b["floor"] is not None]
    controls = [c for b in results for c in b["controls"]]
    comparisons = compare(rows, plan.gate_tol, prefix)
    seconds = time.perf_counter() - t0
    summary = {"plan": plan.to_dict(), "quick": quick, "command": prefix, "classes": classes, "modes_per_class": modes,
               "critical_M": {str(k): v for k, v in mstar.items()}, "Ms": Ms, "seconds": seconds,
               "seconds_blocks": {f"{b['features']} M={b['M']}": b["seconds"] for b in results},
               "cpu_seconds_blocks": {f"{b['features']} M={b['M']}": b.get("cpu_seconds") for b in results},
               "seconds_features": {b["features"]: b["seconds_features"] for b in results},
               "blocks_computed": computed, "blocks_from_store": from_records, "blocks_missing": missing,
               "store": str(store.root),
               "block_keys": [b.key for b in blocks], "n_fit": len(fit), "n_val": len(val), "n_test": len(test),
               "threads": torch.get_num_threads(), "backend": backend, "floors": floors, "comparisons": comparisons,
               "controls": controls}  # fmt: skip
    write_csv(out / "runs.csv", rows)
    write_csv(out / "curves.csv", curves_rows)
    write_csv(out / "comparisons.csv", comparisons)
    write_csv(out / "controls.csv", controls)
    write_json(out / "summary.json", summary | {"runs": rows})
    write_text(out / "table.md", study_markdown(summary, rows))
    return summary | {"runs": rows}


#: Synthetic collapse of a real embedding (collapse.metrics.controls), and what the protocol expects of it.
CONTROL_EXPECT = {
    "merge_submodes": "probe and NCM near majority, eta2 < 0.05, verdict collapsed",
    "shrink_classes": "probes unchanged (scale-free), instrument verdict collapsed (spread below the margin)",
}


def embedding_controls(reference: dict, plan: StudyPlan) -> list[dict]:
    """Judge the reference embedding and its synthetic collapses (the instrument's transforms), fit and test alike."""
    from collapse.metrics.controls import merge_submodes, shrink_classes

    rng = np.random.default_rng(0)
    base = judge_embeddings(*reference["fit"], *reference["test"], margin=LOSS_MARGIN["triplet"][1],
                            null_permutations=plan.null_permutations)  # fmt: skip
    out = [{"control": "reference", "expect": "modes kept (a trained clean head)", "held": None} | base]
    n_fit = reference["fit"][0].shape[0]
    joint = tuple(np.concatenate([a, b]) for a, b in zip(reference["fit"], reference["test"]))
    for name, fn in (("merge_submodes", merge_submodes), ("shrink_classes", shrink_classes)):
        # One transform of fit and test together, so both move about the same class centroids.
        x, y, m = fn(joint, rng)
        j = judge_embeddings(x[:n_fit], y[:n_fit], m[:n_fit], x[n_fit:], y[n_fit:], m[n_fit:],
                             margin=LOSS_MARGIN["triplet"][1], null_permutations=plan.null_permutations)  # fmt: skip
        if name == "merge_submodes":
            held = (j["test_eta2"] < 0.05 and j["test_ncm"] <= j["test_majority"] + 0.1
                    and j["verdict"] in ("collapsed", "n/a"))  # fmt: skip
        else:
            held = (abs(j["test_linear_probe"] - base["test_linear_probe"]) <= 0.02
                    and j["verdict"] in ("collapsed", "n/a"))  # fmt: skip
        out.append({"control": name, "expect": CONTROL_EXPECT[name], "held": bool(held)} | j)
    return out


PAIRED = ("test_linear_probe", "test_ncm", "test_eta2", "test_kmeans_nmi", "test_fine_r1", "coarse_map_at_r")


def compare(rows: list[dict], gate_tol: float, prefix: str = "python -m paper_repro.study") -> list[dict]:
    """Easy minus random positives per cell, paired by seed, gated on test coarse MAP@R (module docstring)."""
    out = []
    cells = {(r["features"], r["M"], r["noise"], r["loss"], r["negative"]) for r in rows if r["labels"] == "coarse"}
    for f, M, eps, loss, neg in sorted(cells):
        key = (f, M, eps, loss, neg)

        def pick(pos: str, key=key) -> dict:
            want = (*key, pos, "coarse")
            fields = ("features", "M", "noise", "loss", "negative", "positive", "labels")
            return {r["seed"]: r for r in rows if tuple(r[k] for k in fields) == want}

        easy, rand = pick("easy"), pick("random")
        seeds = sorted(set(easy) & set(rand))
        if not seeds:
            continue
        gap = float(np.mean([easy[s]["coarse_map_at_r"] for s in seeds]) -
                    np.mean([rand[s]["coarse_map_at_r"] for s in seeds]))  # fmt: skip
        passed = abs(gap) <= gate_tol
        row = {"features": f, "M": M, "noise": eps, "loss": loss, "negative": neg, "seeds": len(seeds),
               "coarse_gap": gap, "gate": "pass" if passed else f"gated out: coarse MAP@R gap {abs(gap):.3f} > "
               f"{gate_tol:g}", "verdict_random": "; ".join(rand[s].get("verdict", "n/a") for s in seeds),
               "verdict_easy": "; ".join(easy[s].get("verdict", "n/a") for s in seeds),
               "command": _command(prefix, Run(f, M, eps, loss, "easy", neg, 0, 0.0))}  # fmt: skip
        for k in PAIRED:
            mean, lo, hi = t_interval([easy[s][k] - rand[s][k] for s in seeds])
            row |= {f"d_{k}": mean, f"d_{k}_lo": lo, f"d_{k}_hi": hi,
                    f"random_{k}": float(np.mean([rand[s][k] for s in seeds])),
                    f"easy_{k}": float(np.mean([easy[s][k] for s in seeds]))}  # fmt: skip
        out.append(row)
    return out


def _f(v) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def study_markdown(summary: dict, rows: list[dict]) -> str:
    """The README table: one line per comparison (gate, paired differences with CIs, verdicts, command), floors
    and upper bounds below."""
    lines = [
        f"Fashion-MNIST superclasses ({summary['classes']} coarse classes, about {summary['modes_per_class']} fine "
        f"labels each), MLP head on fixed features; {summary['n_fit']} fit / {summary['n_val']} validation / "
        f"{summary['n_test']} test images; {summary['plan']['seeds']} seeds; {summary['plan']['steps']} steps; "
        f"T4 critical M: {summary['critical_M']}; this command {summary['seconds'] / 60:.1f} min wall-clock "
        f"({summary.get('blocks_computed', '?')} blocks computed, {summary.get('blocks_from_store', 0)} read from the "
        f"store; backend {summary.get('backend', 'inline')}, one thread per block; shared machine); the blocks took "
        f"{_block_cpu_hours(summary)} CPU-hours when computed (their records).",
    ]
    if summary.get("blocks_missing"):
        lines += ["", f"**Partial: {len(summary['blocks_missing'])} of the plan's blocks are not computed yet** "
                  f"({', '.join(summary['blocks_missing'])}); every count below covers the computed blocks only."]
    lines += [
        "",
        "| features | M | noise | loss | neg | gate | test probe random -> easy (d, 95% CI) | "
        "test eta2 random -> easy (d) | coarse MAP@R random / easy | verdict random | verdict easy | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in summary["comparisons"]:
        lines.append(
            f"| {c['features']} | {c['M']} | {c['noise']:g} | {c['loss']} | {c['negative']} | {c['gate']} | "
            f"{_f(c['random_test_linear_probe'])} -> {_f(c['easy_test_linear_probe'])} "
            f"({_f(c['d_test_linear_probe'])}, [{_f(c['d_test_linear_probe_lo'])}, "
            f"{_f(c['d_test_linear_probe_hi'])}]) | "
            f"{_f(c['random_test_eta2'])} -> {_f(c['easy_test_eta2'])} ({_f(c['d_test_eta2'])}) | "
            f"{_f(c['random_coarse_map_at_r'])} / {_f(c['easy_coarse_map_at_r'])} | {c['verdict_random']} | "
            f"{c['verdict_easy']} | `{c['command']}` |"
        )
    lines += ["", "Floors (features without a head) and upper bounds (heads trained on fine labels):", "",
              "| kind | features | test probe | test NCM | test eta2 | coarse MAP@R | verdict |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for f in summary["floors"]:
        lines.append(f"| floor | {f['features']} | {_f(f['test_linear_probe'])} | {_f(f['test_ncm'])} | "
                     f"{_f(f['test_eta2'])} | {_f(f['coarse_map_at_r'])} | {f['verdict']} |")  # fmt: skip
    for r in rows:
        if r["labels"] == "fine":
            lines.append(f"| upper bound (fine labels, seed {r['seed']}, M {r['M']}) | {r['features']} | "
                         f"{_f(r['test_linear_probe'])} | {_f(r['test_ncm'])} | {_f(r['test_eta2'])} | "
                         f"{_f(r['coarse_map_at_r'])} | {r['verdict']} |")  # fmt: skip
    if summary.get("controls"):
        lines += ["", "Controls on a real embedding (a clean easy-positive triplet head, transformed):", "",
                  "| control | expected | held | test probe | test NCM / majority | test eta2 | verdict |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in summary["controls"]:
            lines.append(f"| {c['control']} | {c['expect']} | {c['held']} | {_f(c['test_linear_probe'])} | "
                         f"{_f(c['test_ncm'])} / {_f(c['test_majority'])} | {_f(c['test_eta2'])} | "
                         f"{c['verdict']} |")  # fmt: skip
    unconverged = [r for r in rows if not r["converged"]]
    lines += ["", f"Runs not converged by the stated criterion: {len(unconverged)} of {len(rows)}."]
    return "\n".join(lines) + "\n"


def write_figures(out: Path, figures: Path, name: str) -> list[Path]:
    """Copy the study's files from ``out`` to ``figures/real_study_<name>*`` and draw its curves there
    (``real_study_<name>_curves.png``: training loss and validation coarse MAP@R, one column per feature set and
    loss, one line per noise level and positive rule, averaged over seeds, M and negative rules at the chosen
    learning rates)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = check_writable_dir(figures, what="--figures")
    stem = f"real_study_{name}"
    written = []
    for src, dst in (("table.md", f"{stem}.md"), ("summary.json", f"{stem}.json"), ("runs.csv", f"{stem}_runs.csv"),
                     ("curves.csv", f"{stem}_curves.csv"), ("comparisons.csv", f"{stem}_comparisons.csv"),
                     ("controls.csv", f"{stem}_controls.csv")):  # fmt: skip
        written.append(write_text(figures / dst, (out / src).read_text()))
    chosen = {tuple(r[k] for k in RUN_FIELDS) for r in csv.DictReader((out / "runs.csv").open())}
    # One curve per (features, loss, labels, noise, positive rule): the mean over seeds, M and negative rules of the
    # runs at their chosen learning rate (one line per M would be a hundred lines per panel in the full plan).
    curves: dict[tuple, dict[int, list[tuple[float, float]]]] = {}
    for c in csv.DictReader((out / "curves.csv").open()):
        if tuple(c[k] for k in RUN_FIELDS) not in chosen:
            continue
        key = (c["features"], c["loss"], c["labels"], c["noise"], c["positive"])
        curves.setdefault(key, {}).setdefault(int(c["step"]), []).append(
            (float(c["train_loss"]), float(c["val_coarse_map_at_r"])))
    panels = sorted({key[:2] for key in curves})
    noises = sorted({key[3] for key in curves}, key=float)
    colours = dict(zip(noises, ("#0072B2", "#E69F00", "#D55E00", "#009E73", "#CC79A7", "#56B4E9")))
    n = max(1, len(panels))
    fig, axes = plt.subplots(2, n, figsize=(3.4 * n, 6.2), squeeze=False, sharex=True)
    for j, (f, loss) in enumerate(panels):
        for key, by_step in sorted(curves.items()):
            if key[:2] != (f, loss):
                continue
            steps = sorted(by_step)
            fine = key[2] == "fine"
            label = "fine labels (upper bound)" if fine else f"noise {key[3]}, {key[4]} positives"
            style = {"color": "k" if fine else colours.get(key[3], "0.5"), "ls": "--" if key[4] == "easy" else "-"}
            for i in (0, 1):
                axes[i][j].plot(steps, [np.mean([v[i] for v in by_step[s]]) for s in steps], label=label, lw=1.2,
                                **style)  # fmt: skip
        axes[0][j].set_title(f"{f}, {loss}: training loss", fontsize=9)
        axes[1][j].set_title(f"{f}, {loss}: val. coarse MAP@R", fontsize=9)
        axes[1][j].set_xlabel("step")
    labels: dict[str, object] = {}
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(label, handle)
    if labels:
        fig.legend(labels.values(), labels.keys(), loc="lower center", ncol=min(len(labels), n + 1), fontsize=7,
                   frameon=False)  # fmt: skip
    fig.suptitle("mean over seeds, M and negative rules; each run at its chosen learning rate", fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 0.96))
    png = figures / f"{stem}_curves.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return [*written, png]


def _block_cpu_hours(summary: dict) -> str:
    cpu = [v for v in (summary.get("cpu_seconds_blocks") or {}).values() if v is not None]
    return f"{sum(cpu) / 3600:.2f}" if cpu else "?"


def figure_name(
    quick: bool,
    features: Sequence[str] | None = None,
    Ms: Sequence[int] | None = None,
    noises: Sequence[float] | None = None,
    steps: int | None = None,
) -> str:
    """``quick`` or ``full``, plus the filters that narrow the plan (``full_pca``, ``quick_M12-18_noise0``, ...), so
    that a partial study never writes over the files of the whole one. Each filter is the parsed flag, ``None``
    where it was not given."""
    parts = ["quick" if quick else "full"]
    if features is not None and set(features) != set(FULL.features):
        parts.append("-".join(features))
    if Ms is not None:
        parts.append("M" + "-".join(str(m) for m in Ms))
    if noises is not None:
        parts.append("noise" + "-".join(f"{e:g}" for e in noises))
    if steps is not None:
        parts.append(f"steps{steps}")
    return "_".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m paper_repro.study", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the quick plan (<= 10 min on 2 cores)")
    p.add_argument("--out", default=None, help="results folder (default results/study/quick or results/study/full)")
    p.add_argument("--root", default="data", help="folder holding fashion-mnist")
    p.add_argument("--features", default=None, help="comma-separated subset of pca, untrained-cnn, coarse-cnn")
    p.add_argument("--M", default=None, help="comma-separated batch sizes M (replaces the plan's)")
    p.add_argument("--noise", default=None, help="comma-separated label-noise rates (replaces the plan's)")
    p.add_argument("--steps", type=int, default=None, help="training steps of every head")
    p.add_argument("--store", default=DEFAULT_STORE, help="result store: one record per (features, M) block; a "
                   "finished block is read, not recomputed (resume)")
    p.add_argument("--backend", default="processes", help="where blocks run: inline, processes (one block per worker, "
                   "one thread each) or dask")
    p.add_argument("--workers", type=int, default=None, help="worker processes of --backend processes (default 2)")
    p.add_argument("--figures", default=None, help="also write the table, CSVs, summary and a curves figure to this "
                   "folder as real_study_<quick|full>*")
    p.add_argument("--from-store", action="store_true", help="compute nothing: the files from the blocks already "
                   "in --store, the others listed as not computed (a study run over several sessions)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = p.parse_args(argv)
    plan = replace(QUICK if args.quick else FULL, root=args.root)
    try:
        if args.features:
            plan = replace(plan, features=tuple(parse_list("--features", args.features, FULL.features, all_word=None)))
        if args.M is not None:
            Ms = parse_list("--M", args.M, convert=int, what="integers")
            plan = replace(plan, Ms=tuple(check_int("--M", m, low=2) for m in Ms), add_critical_M=False)
        if args.noise is not None:
            noises = parse_list("--noise", args.noise, convert=float, what="numbers")
            plan = replace(plan, noises=tuple(check_real("--noise", e, low=0.0, high=1.0, high_inclusive=False)
                                              for e in noises))  # fmt: skip
        if args.steps is not None:
            plan = replace(plan, steps=check_int("--steps", args.steps, low=1))
        if args.workers is not None:
            check_int("--workers", args.workers, low=1)
        out = Path(args.out or f"results/study/{'quick' if args.quick else 'full'}")
        prefix = "python -m paper_repro.study" + (" --quick" if args.quick else "")
        prefix += f" --steps {args.steps}" if args.steps is not None else ""
        prefix += f" --out {args.out}" if args.out else ""
        # A cell's rerun command reads the same data and, with the store, the stored block instead of recomputing it.
        prefix += f" --root {args.root}" if args.root != p.get_default("root") else ""
        prefix += f" --store {args.store}" if args.store else ""
        if args.figures:
            check_writable_dir(Path(args.figures), what="--figures")  # before any compute
        summary = run_study(plan, out, quick=args.quick, progress=not args.no_progress, command=prefix,
                            store=args.store, backend=args.backend, workers=args.workers,
                            from_store=args.from_store)  # fmt: skip
        if args.figures:
            name = figure_name(args.quick, plan.features if args.features else None,
                               plan.Ms if args.M is not None else None,
                               plan.noises if args.noise is not None else None, args.steps)  # fmt: skip
            write_figures(out, Path(args.figures), name)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"python -m paper_repro.study: error: {exc}", file=sys.stderr)
        return 2
    print((out / "table.md").read_text())
    print(f"{len(summary['runs'])} runs in {summary['seconds'] / 60:.1f} min ({summary['blocks_computed']} blocks "
          f"computed, {summary['blocks_from_store']} read from {summary['store']}) -> {out}")
    if summary["blocks_missing"]:
        print(f"not computed yet ({len(summary['blocks_missing'])} blocks): {', '.join(summary['blocks_missing'])}; "
              "rerun without --from-store to compute them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
