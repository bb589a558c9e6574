"""One simulation, end to end, as a reusable function.

    make_multimode -> LabelNoise -> embedding model -> Sampler(positive, negative) -> loss -> Adam -> metrics

:func:`run_simulation` trains ``seeds`` independent runs of one (loss, positive rule) configuration in one
batched tensor program and returns their collapse measures. The CLI (``python -m collapse.simulate``), the
theory checks, the notebooks and the sweeps all call it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from collapse._validation import check_choice, check_int, check_real
from collapse.data import LAYOUTS, NOISE_MODELS, LabelNoise, MultiModeData, make_multimode
from collapse.losses import LOSSES, MetricLoss, make_loss
from collapse.metrics import collapse_report, collapse_verdict, instrument_report, mode_separation
from collapse.optimize import MODELS, OPTIMIZERS, SCHEDULES, TrainResult, make_model, train_embeddings
from collapse.sampling import NEGATIVE_RULES, POSITIVE_RULES, PKBatchSampler

__all__ = [
    "COLLAPSE_THRESHOLD",
    "MAX_ENTRIES",
    "MEASURES",
    "SimConfig",
    "STATE_KEYS",
    "VERDICT_RULE",
    "SimResult",
    "instrument_margin",
    "make_data",
    "measure_groups",
    "run_simulation",
    "seed_summary",
    "train_configuration",
    "verdict",
    "with_overrides",
]

#: The old fixed threshold on the mean distance between the mode centroids of a class (unit sphere). It judges
#: nothing any more: simulations use the instrument (:func:`verdict`), the theory's minimisers half the loss's
#: margin (:func:`collapse.theory.minimize.collapse_resolution`). Kept as the reference of old result files.
COLLAPSE_THRESHOLD = 0.1
#: How a simulation's seeds are judged, as the result files of phase diagrams and sweeps record it.
VERDICT_RULE = "collapse.metrics.collapse_verdict per seed (docs/measures.md)"
#: ``"separation"``: :func:`collapse.metrics.mode_separation` and the instrument without its k-means measures
#: (enough for the verdict); ``"full"``: every measure of :func:`collapse.metrics.collapse_report` and of
#: :func:`collapse.metrics.instrument_report` (the instrument's keys win where both define one).
MEASURES = ("separation", "full")

#: Per-seed 0/1 keys of the instrument's verdict (:func:`collapse.metrics.collapse_verdict`); their seed means are
#: the fractions of seeds in each state.
STATE_KEYS = {
    "collapsed": "state_collapsed",
    "partly collapsed": "state_partly",
    "modes kept": "state_kept",
    "degenerate (whole space shrunk)": "state_shrunk",
    "degenerate (no class structure)": "state_no_classes",
}


#: Most tensor entries a simulation may hold (all seeds' embeddings of every point, data and batch matrices):
#: 2**31 float32 entries are 8 GiB. A larger configuration is refused up front with a one-line error instead of
#: failing in the allocator (or overflowing an index) after the run has started.
MAX_ENTRIES = 1 << 31


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines a simulation besides the loss and the sampler."""

    classes: int = 4
    modes: int | tuple[int, ...] = 3
    dim: int = 8
    input_dim: int = 2
    layout: str = "random"
    samples_per_mode: int = 20
    spread: float = 0.5
    separation: float = 4.0
    noise: float = 0.1
    noise_model: str = "symmetric"
    resample: str = "once"
    model: str = "tied"
    steps: int = 500
    classes_per_batch: int | None = None
    samples_per_class: int = 12
    lr: float = 0.05
    optimizer: str = "adam"
    schedule: str = "cosine"
    seed: int = 0
    seeds: int = 3
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_int("classes", self.classes, low=2)
        modes = (self.modes,) if isinstance(self.modes, int) else tuple(self.modes)
        for k in modes:
            check_int("modes", k, low=1)
        if len(modes) not in (1, self.classes):
            raise ValueError(f"modes must be one count or one per class ({self.classes}), got {len(modes)}")
        check_int("dim", self.dim, low=1)
        check_int("input_dim", self.input_dim, low=1)
        check_choice("layout", self.layout, LAYOUTS)
        check_int("samples_per_mode", self.samples_per_mode, low=1)
        check_real("spread", self.spread, low=0.0)
        check_real("separation", self.separation, low=0.0, low_inclusive=False)
        check_real("noise", self.noise, low=0.0, high=1.0, high_inclusive=False)
        check_choice("noise_model", self.noise_model, NOISE_MODELS)
        check_choice("resample", self.resample, ("once", "step"))
        check_choice("model", self.model, MODELS)
        check_int("steps", self.steps, low=1)
        if self.classes_per_batch is not None:
            check_int("classes_per_batch", self.classes_per_batch, low=1, high=self.classes)
        check_int("samples_per_class", self.samples_per_class, low=2)
        check_real("lr", self.lr, low=0.0, low_inclusive=False)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("seed", self.seed, low=0)
        check_int("seeds", self.seeds, low=1)
        check_int("data_seed", self.data_seed, low=0)
        # Sizes as python integers (no tuple of `classes` entries is built, so a huge count cannot overflow here).
        total_modes = self.modes * self.classes if isinstance(self.modes, int) else sum(self.modes)
        points = total_modes * self.samples_per_mode
        batch = self.P * self.samples_per_class
        entries = self.seeds * (points * max(self.dim, self.input_dim) + batch * batch) + points * self.input_dim
        if entries > MAX_ENTRIES:
            raise ValueError(
                f"configuration too large: classes={self.classes}, modes={self.modes}, "
                f"samples_per_mode={self.samples_per_mode}, dim={self.dim}, seeds={self.seeds} need about "
                f"{float(entries):.2g} tensor entries; at most {float(MAX_ENTRIES):.2g} are allowed"
            )

    @property
    def modes_per_class(self) -> tuple[int, ...]:
        return (self.modes,) * self.classes if isinstance(self.modes, int) else tuple(self.modes)

    @property
    def P(self) -> int:
        return self.classes if self.classes_per_batch is None else self.classes_per_batch

    def label_noise(self) -> LabelNoise:
        return LabelNoise(kind=self.noise_model, eps=self.noise, resample=self.resample)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["modes"] = list(self.modes_per_class)
        return d


@dataclass
class SimResult:
    """Per-seed collapse measures of one configuration, their summary, and the trained embeddings."""

    loss: str
    positive: str
    negative: str
    config: SimConfig
    per_seed: list[dict[str, float]]
    summary: dict[str, float]
    verdict: str
    train: TrainResult = field(repr=False)
    data: MultiModeData = field(repr=False)

    def row(self) -> dict:
        """A flat, JSON-ready row: configuration, mean and std of each measure, and the verdict."""
        out = {"loss": self.loss, "positive": self.positive, "negative": self.negative, "verdict": self.verdict}
        out.update({k: v for k, v in self.summary.items()})
        out["seconds"] = self.train.seconds
        out["anchors_without_positive"] = self.train.anchors_without_positive
        return out


def make_data(config: SimConfig) -> MultiModeData:
    """The data set of a configuration (its own seed, so every loss sees the same points)."""
    return make_multimode(
        config.classes,
        config.modes_per_class,
        config.input_dim,
        samples_per_mode=config.samples_per_mode,
        spread=config.spread,
        separation=config.separation,
        layout=config.layout if config.input_dim >= 2 or config.layout in ("random", "line") else "random",
        random_state=config.data_seed,
    )


def instrument_margin(loss_fn: MetricLoss) -> float:
    r"""The margin the collapse instrument judges a loss's embedding against (its resolution is half of it).

    Triplet and margin loss: their margin :math:`\alpha`. Contrastive: ``neg_margin - pos_margin``, the gap it puts
    between positives and negatives. NCA: :math:`\sqrt{2\tau}`, the distance on the unit sphere whose cosine
    similarity differs by one temperature (one unit of logit). Multi-similarity: :math:`\sqrt{2/\beta}`, the same
    for its negative scale :math:`\beta`. SupCon and L_spread: :math:`\sqrt{2\tau}` as NCA. SoftTriple and sub-centre
    ArcFace, whose ``margin`` is not a distance: :math:`\sqrt{2/s}` at their logit scale s (SoftTriple's
    :math:`\lambda`, ArcFace's s), as multi-similarity.
    """
    from collapse.losses import SoftTripleLoss, SubCenterArcFaceLoss

    if isinstance(loss_fn, SoftTripleLoss):
        return float(np.sqrt(2.0 / loss_fn.la))
    if isinstance(loss_fn, SubCenterArcFaceLoss):
        return float(np.sqrt(2.0 / loss_fn.scale))
    if hasattr(loss_fn, "margin"):
        return float(loss_fn.margin)
    if hasattr(loss_fn, "neg_margin"):
        return float(loss_fn.neg_margin - loss_fn.pos_margin)
    if hasattr(loss_fn, "temperature"):
        return float(np.sqrt(2.0 * loss_fn.temperature))
    if hasattr(loss_fn, "beta"):
        return float(np.sqrt(2.0 / float(loss_fn.beta)))
    raise ValueError(f"loss_fn must be one of the losses in collapse.losses, got {type(loss_fn).__name__}")


def verdict(summary: dict[str, float]) -> str:
    """The verdict of a configuration from its seed summary: the state most seeds are in (the instrument's
    :func:`collapse.metrics.collapse_verdict` per seed, :data:`STATE_KEYS`); ties go to the earlier state of
    :data:`STATE_KEYS`. A partial collapse quotes the mean number of merges of the seeds."""
    fractions = {state: float(summary.get(key, float("nan"))) for state, key in STATE_KEYS.items()}
    if not any(np.isfinite(v) for v in fractions.values()):
        raise ValueError("summary must hold the instrument's state_* fractions (measure_groups output)")
    best = max(fractions, key=lambda k: (fractions[k] if np.isfinite(fractions[k]) else -1.0))
    if best == "partly collapsed":
        return f"partly collapsed ({summary['merges']:.3g} of {summary['merges_possible']:.3g} merges)"
    return best


def seed_summary(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean and standard deviation over seeds of every measure (``key`` and ``key_std``), ignoring NaN."""
    summary: dict[str, float] = {}
    for key in per_seed[0]:
        vals = np.array([r[key] for r in per_seed], dtype=float)
        summary[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        summary[f"{key}_std"] = float(np.nanstd(vals)) if np.isfinite(vals).any() else float("nan")
    return summary


def measure_groups(
    embeddings: np.ndarray,
    data: MultiModeData,
    groups: range | list[int],
    *,
    margin: float,
    seed: int,
    measures: str = "full",
    losses: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """The collapse measures of the trained groups ``groups`` of ``embeddings`` (G, n, d): the one per-seed
    measurement of every simulation (``run_simulation``, the phase diagrams, the sweeps).

    ``margin`` is the loss's :func:`instrument_margin`; ``losses`` (G,) the final loss of every group (for
    ``loss_over_margin``). ``measures="full"``: :func:`collapse.metrics.collapse_report` and
    :func:`collapse.metrics.instrument_report` (k-means seeded with ``seed + g``); ``"separation"``:
    :func:`collapse.metrics.mode_separation` and the instrument without k-means. Both add the verdict as the 0/1
    keys of :data:`STATE_KEYS` and ``merges``.
    """
    check_choice("measures", measures, MEASURES)
    margin = check_real("margin", margin, low=0.0, low_inclusive=False)
    full = measures == "full"
    out = []
    for g in groups:
        emb = embeddings[g]
        if full:
            rep = collapse_report(emb, data.y, data.modes, margin=margin, random_state=seed + g)
        else:
            rep = mode_separation(emb, data.y, data.modes, margin)
        loss = None if losses is None else float(losses[g])
        inst = instrument_report(emb, data.y, data.modes, margin=margin, loss=loss, kmeans=full, random_state=seed + g)
        v = collapse_verdict(inst)
        state = v.state if v.state != "degenerate" else str(v)  # the two kinds of degeneracy are two states here
        rep |= inst | {key: float(state == name) for name, key in STATE_KEYS.items()}
        out.append({k: float(v) for k, v in rep.items()})
    return out


def train_configuration(
    config: SimConfig,
    loss: str = "triplet",
    positive: str = "random",
    negative: str | None = None,
    *,
    data: MultiModeData | None = None,
    noise: LabelNoise | None = None,
    n_groups: int | None = None,
    snapshot_steps: tuple[int, ...] = (),
    progress: bool = False,
    loss_kwargs: dict | None = None,
) -> tuple[TrainResult, MetricLoss, MultiModeData]:
    """Train ``n_groups`` runs of one configuration in one batched program; the training half of
    :func:`run_simulation`, without the measures.

    ``noise`` defaults to ``config.label_noise()`` and ``n_groups`` to ``config.seeds``. Passing a
    :class:`LabelNoise` with one rate per group trains several noise levels at once (see
    :mod:`collapse.phase`): all randomness comes from one generator seeded with ``config.seed``, and every draw
    has a shape that does not depend on the labels (for the positive and negative rules whose number of tuples
    is fixed, such as random/easy positives with hard negatives on P x M batches), so group g of a run with
    rates ``(eps_0, ..., eps_{G-1})`` is bitwise the group g of a run where every group has rate ``eps_g`` > 0.
    """
    check_choice("loss", loss, LOSSES)
    check_choice("positive", positive, POSITIVE_RULES)
    if negative is not None:
        check_choice("negative", negative, NEGATIVE_RULES)
    data = make_data(config) if data is None else data
    noise = config.label_noise() if noise is None else noise
    G = config.seeds if n_groups is None else check_int("n_groups", n_groups, low=1)
    gen = torch.Generator().manual_seed(config.seed)
    loss_fn = make_loss(
        loss,
        positive,
        negative,
        num_classes=data.n_classes,
        num_groups=G,
        embedding_dim=config.dim,
        random_state=gen,
        **(loss_kwargs or {}),
    )
    model = make_model(
        config.model,
        X=torch.as_tensor(data.X),
        modes=torch.as_tensor(data.modes),
        n_modes=data.n_modes,
        dim=config.dim,
        n_groups=G,
        generator=gen,
    )
    train = train_embeddings(
        model,
        loss_fn,
        modes=torch.as_tensor(data.modes),
        mode_class=torch.as_tensor(data.mode_class),
        n_classes=data.n_classes,
        n_groups=G,
        noise=noise,
        batch_sampler=PKBatchSampler(config.P, config.samples_per_class),
        steps=config.steps,
        lr=config.lr,
        optimizer=config.optimizer,
        schedule=config.schedule,
        generator=gen,
        snapshot_steps=snapshot_steps,
        progress=progress,
    )
    return train, loss_fn, data


def run_simulation(
    config: SimConfig,
    loss: str = "triplet",
    positive: str = "random",
    negative: str | None = None,
    *,
    data: MultiModeData | None = None,
    snapshot_steps: tuple[int, ...] = (),
    progress: bool = False,
    loss_kwargs: dict | None = None,
) -> SimResult:
    """Train ``config.seeds`` runs of ``loss`` with ``Sampler(positive, negative)`` and measure collapse.

    ``negative=None`` keeps the loss's published negative rule: easy positive sampling changes the positive only.
    """
    train, loss_fn, data = train_configuration(
        config,
        loss,
        positive,
        negative,
        data=data,
        snapshot_steps=snapshot_steps,
        progress=progress,
        loss_kwargs=loss_kwargs,
    )
    G = config.seeds
    per_seed = measure_groups(train.embeddings.numpy(), data, range(G), margin=instrument_margin(loss_fn),
                              seed=config.seed, losses=train.loss_history[-1].numpy())
    summary = seed_summary(per_seed)
    summary["final_loss"] = float(train.loss_history[-1].mean())
    summary["seeds_collapsed"] = float(sum(r["state_collapsed"] for r in per_seed))
    neg = negative if negative is not None else loss_fn.sampler.negative.name
    return SimResult(
        loss=loss,
        positive=positive,
        negative=neg,
        config=config,
        per_seed=per_seed,
        summary=summary,
        verdict=verdict(summary),
        train=train,
        data=data,
    )


def with_overrides(config: SimConfig, **overrides) -> SimConfig:
    """A copy of ``config`` with some fields replaced (validated again)."""
    return replace(config, **overrides)

