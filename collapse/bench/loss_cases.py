"""The loss benchmarks: our loss with its sampler against the closest pytorch-metric-learning (PML) composition.

Every case times one training step, forward and backward, on a P x M batch (``M`` samples per class, labels grouped
by class as :class:`~collapse.sampling.PKBatchSampler` emits them) of Gaussian float32 embeddings, and checks on a
float64 copy of the same batch that the two sides compute the same thing:

* ``triplet EPS/semihard``: ``make_loss("triplet", "easy", "semihard")`` vs PML
  ``BatchEasyHardMiner(EASY, SEMIHARD)`` + ``TripletMarginLoss(margin=0.2)``. Checked: the mined (a, p, n) triplets,
  the loss value and the gradient with respect to the embeddings.
* ``margin EPS/distance-weighted``: ``make_loss("margin", "easy", "distance")`` vs PML ``DistanceWeightedMiner`` +
  ``MarginLoss`` (PML has no easy-positive distance-weighted miner; its miner keeps every positive pair, so it is
  timed as it would run). Distance-weighted draws are random, so correctness is checked on *our* selected triplets:
  PML's ``MarginLoss`` given them must give our value and gradient, and the triplets must be valid (the positive is
  the nearest same-label sample, the negative has another label and lies below ``nonzero_loss_cutoff``).
* ``multisimilarity EPS/all``: ``make_loss("multisimilarity", "easy", "all")`` vs PML ``BatchEasyHardMiner(EASY,
  ALL)`` (cosine) + ``MultiSimilarityLoss``. Checked: value and gradient.
* ``contrastive all/all``: ``make_loss("contrastive")`` (every positive and every negative pair, margins 0 and 1)
  vs PML ``ContrastiveLoss()`` without a miner (its default: all pairs). Checked: value and gradient. Every pair
  reads the matrix, so both sides need the ``B x B x d`` product forward and backward; that bounds the ratio.
* ``supcon all/all`` and ``multisimilarity all/all``: ``make_loss("supcon")`` and ``make_loss("multisimilarity")``
  (every positive, every negative) vs PML's ``SupConLoss(temperature=0.1)`` and ``MultiSimilarityLoss`` without a
  miner. Checked: value and gradient.
* ``multisimilarity, PML's MultiSimilarityMiner`` (reference row, timing only): PML's published recipe
  ``MultiSimilarityMiner`` + ``MultiSimilarityLoss``. collapse has no multi-similarity miner (its positive half
  would drop the easy positive), so there is nothing identical to check; the row shows what PML users pay.

``--compile`` wraps our step's forward in ``torch.compile`` (``mode="reduce-overhead"``, i.e. CUDA graphs where
the graph allows, on CUDA); the sampler's data-dependent shapes cause graph breaks, which torch.compile handles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from collapse.bench.checks import Check, combine, compare, same_rows
from collapse.losses import make_loss
from collapse.losses.base import MetricLoss

__all__ = ["LOSS_CASES", "LossCase", "make_batch", "ours_step", "pml_step"]

#: Tolerances of the float64 checks (value and every gradient entry).
RTOL, ATOL = 1e-7, 1e-10


@dataclass(frozen=True)
class LossCase:
    """One row family: how to build each side, and the check (``None`` for timing-only reference rows)."""

    name: str
    ours: Callable[[], MetricLoss]
    pml: Callable[[], tuple[object, torch.nn.Module]]
    check: Callable[[MetricLoss, torch.Tensor, torch.Tensor], Check] | None
    description: str
    #: The check runs PML's miner (so it is skipped where PML is too slow to time).
    check_runs_pml_miner: bool = True


def make_batch(
    batch: int,
    dim: int = 128,
    *,
    per_class: int = 4,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian embeddings ``(batch, dim)`` and labels ``arange(batch) // per_class``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, dim, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    y = (torch.arange(batch) // per_class).to(device)
    return x, y


def ours_step(
    loss: MetricLoss, x: torch.Tensor, y: torch.Tensor, *, compiled: bool = False, backend: str | None = None
):
    """A closure running one forward + backward of our loss on a leaf copy of ``x``; returns the gradient.

    The leaf is copied once, and each call clears its gradient (as ``optimizer.zero_grad()`` does): a training step
    does not copy its embeddings, and a fresh copy per call put its page faults into the timed step of both sides
    (0.18 ms of fault time measured at B = 512, d = 128, against a step of about 3.5 ms for ours and 20 ms for PML).
    """

    def forward(e: torch.Tensor) -> torch.Tensor:
        return loss(e, y).loss

    if compiled:
        forward = compile_forward(forward, x.device, backend)

    leaf = x.detach().clone().requires_grad_()

    def step() -> torch.Tensor:
        leaf.grad = None
        forward(leaf).backward()
        return leaf.grad

    return step


def compile_forward(fn: Callable, device: torch.device, backend: str | None = None) -> Callable:
    """``torch.compile(fn)``; on CUDA in ``reduce-overhead`` mode (CUDA graphs where shapes allow)."""
    kwargs: dict = {"dynamic": False}
    if backend is not None:
        kwargs["backend"] = backend
    elif torch.device(device).type == "cuda":
        kwargs["mode"] = "reduce-overhead"
    return torch.compile(fn, **kwargs)


def pml_step(miner, loss: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    """A closure running PML's miner (``None``: the loss's own all-pairs default) + loss forward and backward on a
    leaf copy of ``x`` made once, as :func:`ours_step` does; returns the gradient."""
    leaf = x.detach().clone().requires_grad_()

    def step() -> torch.Tensor:
        leaf.grad = None
        loss(leaf, y, None if miner is None else miner(leaf, y)).backward()
        return leaf.grad

    return step


def _value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    e = x.detach().clone().requires_grad_()
    value = fn(e)
    value.backward()
    return value.detach(), e.grad


def _pml():
    # Imported lazily: the package is an optional dependency of collapse, required only by the benchmark.
    from pytorch_metric_learning import distances, losses, miners

    return distances, losses, miners


# ------------------------------------------------------------------------------------------------------ cases


def _triplet_pml():
    _, losses, miners = _pml()
    return miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="semihard"), losses.TripletMarginLoss(margin=0.2)


def _triplet_check(ours: MetricLoss, x: torch.Tensor, y: torch.Tensor) -> Check:
    miner, theirs = _triplet_pml()
    e = x.detach().clone().requires_grad_()
    out = ours(e, y)
    out.loss.backward()
    t = out.tuples.triplets
    mined = miner(x, y)
    v_pml, g_pml = _value_and_grad(lambda z: theirs(z, y, miner(z, y)), x)
    return combine(
        "triplet",
        [
            same_rows("triplets", (t.a, t.p, t.n), (mined[0], mined[1], mined[3])),
            compare("value", out.loss, v_pml, rtol=RTOL, atol=ATOL),
            compare("gradient", e.grad, g_pml, rtol=RTOL, atol=ATOL),
        ],
    )


def _margin_pml():
    _, losses, miners = _pml()
    return miners.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4), losses.MarginLoss(margin=0.2, beta=1.2)


def _margin_check(ours: MetricLoss, x: torch.Tensor, y: torch.Tensor) -> Check:
    _, theirs = _margin_pml()
    e = x.detach().clone().requires_grad_()
    out = ours(e, y)
    out.loss.backward()
    t = out.tuples.triplets
    v_pml, g_pml = _value_and_grad(lambda z: theirs(z, y, (t.a, t.p, t.n)), x)
    with torch.no_grad():
        d = ours.distance(x)
        same = (y.unsqueeze(0) == y.unsqueeze(1)).fill_diagonal_(False)
        nearest = d.masked_fill(~same, float("inf")).amin(dim=1)
        cutoff = ours.sampler.negative.nonzero_loss_cutoff
        valid = (
            bool((y[t.p] == y[t.a]).all())
            and bool(torch.equal(d[t.a, t.p], nearest[t.a]))
            and bool((y[t.n] != y[t.a]).all())
            and bool((d[t.a, t.n] < cutoff).all())
            and len(t) > 0
        )
    return combine(
        "margin",
        [
            Check("triplets valid (EPS positive, other-label negative below the cutoff)", valid, f"{len(t)} triplets"),
            compare("value on our triplets", out.loss, v_pml, rtol=RTOL, atol=ATOL),
            compare("gradient on our triplets", e.grad, g_pml, rtol=RTOL, atol=ATOL),
        ],
    )


def _ms_pml():
    distances, losses, miners = _pml()
    miner = miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="all", distance=distances.CosineSimilarity())
    return miner, losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5)


def _ms_check(ours: MetricLoss, x: torch.Tensor, y: torch.Tensor) -> Check:
    miner, theirs = _ms_pml()
    v_ours, g_ours = _value_and_grad(lambda z: ours(z, y).loss, x)
    v_pml, g_pml = _value_and_grad(lambda z: theirs(z, y, miner(z, y)), x)
    return combine(
        "multisimilarity",
        [
            compare("value", v_ours, v_pml, rtol=RTOL, atol=ATOL),
            compare("gradient", g_ours, g_pml, rtol=RTOL, atol=ATOL),
        ],
    )


def _pml_without_miner(build: Callable[[object], torch.nn.Module]) -> Callable[[], tuple[None, torch.nn.Module]]:
    """PML's side of an all-pairs row: no miner (the loss's own default, every pair) and the loss ``build(losses)``."""

    def pml():
        _, losses, _ = _pml()
        return None, build(losses)

    return pml


def _all_pairs_check(name: str, pml: Callable[[], tuple[None, torch.nn.Module]]) -> Callable[..., Check]:
    """The check of an all-pairs row: the same value and gradient as PML's loss on the same batch."""

    def check(ours: MetricLoss, x: torch.Tensor, y: torch.Tensor) -> Check:
        _, theirs = pml()
        v_ours, g_ours = _value_and_grad(lambda z: ours(z, y).loss, x)
        v_pml, g_pml = _value_and_grad(lambda z: theirs(z, y), x)
        return combine(
            name,
            [
                compare("value", v_ours, v_pml, rtol=RTOL, atol=ATOL),
                compare("gradient", g_ours, g_pml, rtol=RTOL, atol=ATOL),
            ],
        )

    return check


_contrastive_pml = _pml_without_miner(lambda losses: losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0))
_supcon_pml = _pml_without_miner(lambda losses: losses.SupConLoss(temperature=0.1))
_ms_all_pml = _pml_without_miner(lambda losses: losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5))


def _ms_miner_pml():
    _, losses, miners = _pml()
    return miners.MultiSimilarityMiner(epsilon=0.1), losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5)


LOSS_CASES: dict[str, LossCase] = {
    c.name: c
    for c in (
        LossCase(
            "triplet EPS/semihard",
            lambda: make_loss("triplet", "easy", "semihard"),
            _triplet_pml,
            _triplet_check,
            "triplet, margin 0.2, easy positive + semi-hard negative (PML BatchEasyHardMiner + TripletMarginLoss)",
        ),
        LossCase(
            "margin EPS/distance-weighted",
            lambda: make_loss("margin", "easy", "distance"),
            _margin_pml,
            _margin_check,
            "margin loss (alpha 0.2, beta 1.2), easy positive + distance-weighted negative "
            "(PML DistanceWeightedMiner, all positive pairs, + MarginLoss)",
            check_runs_pml_miner=False,
        ),
        LossCase(
            "multisimilarity EPS/all",
            lambda: make_loss("multisimilarity", "easy", "all"),
            _ms_pml,
            _ms_check,
            "multi-similarity (2, 50, 0.5), easy positive + all negatives "
            "(PML BatchEasyHardMiner + MultiSimilarityLoss)",
        ),
        LossCase(
            "contrastive all/all",
            lambda: make_loss("contrastive"),
            _contrastive_pml,
            _all_pairs_check("contrastive", _contrastive_pml),
            "contrastive (margins 0 and 1), all positive and all negative pairs (PML ContrastiveLoss, no miner)",
        ),
        LossCase(
            "supcon all/all",
            lambda: make_loss("supcon"),
            _supcon_pml,
            _all_pairs_check("supcon", _supcon_pml),
            "supervised contrastive (temperature 0.1), every positive against every sample (PML SupConLoss)",
        ),
        LossCase(
            "multisimilarity all/all",
            lambda: make_loss("multisimilarity"),
            _ms_all_pml,
            _all_pairs_check("multisimilarity", _ms_all_pml),
            "multi-similarity (2, 50, 0.5), every positive and every negative (PML MultiSimilarityLoss, no miner)",
        ),
        LossCase(
            "multisimilarity vs PML MS miner",
            lambda: make_loss("multisimilarity", "easy", "all"),
            _ms_miner_pml,
            None,
            "reference, timing only: PML's own recipe MultiSimilarityMiner + MultiSimilarityLoss (different selection)",
        ),
    )
}
