"""Minibatch training of G independent runs at once.

One step, for every run g in parallel:

    observed labels (drawn once, or redrawn every step) -> P x M batch -> embeddings -> loss -> Adam

Everything random comes from one ``torch.Generator``, so a run is reproducible from its seed and its
number of groups.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from collapse._validation import check_choice, check_int, check_real
from collapse.data import LabelNoise
from collapse.losses.base import MetricLoss
from collapse.sampling.batch import PKBatchSampler

__all__ = ["OPTIMIZERS", "SCHEDULES", "TrainResult", "embed_all", "train_embeddings"]

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "constant")


@dataclass
class TrainResult:
    """Final embeddings of every sample ``(G, n, d)`` (on the sphere when the loss's distance normalises),
    the observed labels ``(G, n)`` of the last step, the loss per logged step ``(T, G)`` and snapshots."""

    embeddings: torch.Tensor
    labels: torch.Tensor
    loss_steps: list[int]
    loss_history: torch.Tensor
    anchors_without_positive: int
    seconds: float
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)


@torch.no_grad()
def embed_all(model: nn.Module, n_samples: int, n_groups: int, normalize: bool) -> torch.Tensor:
    """Embeddings of every sample for every run, ``(G, n, d)``."""
    device = next(model.parameters()).device
    idx = torch.arange(n_samples, device=device).expand(n_groups, -1)
    emb = model(idx)
    return torch.nn.functional.normalize(emb, dim=-1) if normalize else emb


def train_embeddings(
    model: nn.Module,
    loss: MetricLoss,
    *,
    modes: torch.Tensor,
    mode_class: torch.Tensor,
    n_classes: int,
    n_groups: int,
    noise: LabelNoise,
    batch_sampler: PKBatchSampler,
    steps: int,
    lr: float = 0.05,
    optimizer: str = "adam",
    schedule: str = "cosine",
    generator: torch.Generator,
    log_every: int = 10,
    snapshot_steps: Sequence[int] = (),
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` (and any learnable loss parameters) for ``steps`` steps with Adam, or SGD with momentum 0.9.

    SGD follows the expected gradient: a small systematic force (such as the collapse force of label noise) adds
    up over steps, whereas Adam divides it by the batch-to-batch spread of the gradient and can stall on it.

    ``noise`` may carry one rate per group (``LabelNoise(eps=(eps_0, ..., eps_{G-1}))``), so that runs at different
    noise levels but of the same shapes train in one program; run g then draws its labels with rate ``eps_g``.

    Raises ``FloatingPointError`` naming the step if an embedding becomes NaN or infinite.
    """
    steps = check_int("steps", steps, low=1)
    if noise.n_groups is not None and noise.n_groups != n_groups:
        raise ValueError(f"noise has {noise.n_groups} per-group rates but n_groups={n_groups}; give one rate per group")
    lr = check_real("lr", lr, low=0.0, low_inclusive=False)
    modes = torch.as_tensor(modes, dtype=torch.long)
    mode_class = torch.as_tensor(mode_class, dtype=torch.long)
    n_samples = int(modes.numel())
    all_modes = modes.expand(n_groups, -1)
    normalize = loss.distance.normalize
    params = list(model.parameters()) + list(loss.parameters())
    optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr, momentum=0.9)
    check_choice("schedule", schedule, SCHEDULES)
    # Cosine decay to 0 removes the step-size jitter at the end: without it, distances below about lr stay noise.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda s: 0.5 * (1 + math.cos(math.pi * s / steps))) if schedule == "cosine" else (lambda s: 1.0)
    )
    labels = noise.draw(all_modes, mode_class, n_classes, generator)
    snapshots: dict[int, torch.Tensor] = {}
    if 0 in snapshot_steps:
        snapshots[0] = embed_all(model, n_samples, n_groups, normalize)
    logged_steps: list[int] = []
    logged: list[torch.Tensor] = []
    without_positive = 0
    start = time.perf_counter()
    for step in tqdm(range(1, steps + 1), disable=not progress, desc="training", leave=False):
        if noise.resample == "step" and step > 1:
            labels = noise.draw(all_modes, mode_class, n_classes, generator)
        idx = batch_sampler.sample(labels, n_classes, generator)
        emb = model(idx)
        if not bool(torch.isfinite(emb).all()):
            raise FloatingPointError(f"embeddings became NaN or infinite at step {step}; lower the learning rate")
        out = loss(emb, torch.gather(labels, 1, idx))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        sched.step()
        without_positive += out.tuples.anchors_without_positive
        if step % log_every == 0 or step == steps:
            logged_steps.append(step)
            logged.append(out.per_group.detach())
        if step in snapshot_steps:
            snapshots[step] = embed_all(model, n_samples, n_groups, normalize)
    seconds = time.perf_counter() - start
    return TrainResult(
        embeddings=embed_all(model, n_samples, n_groups, normalize),
        labels=labels,
        loss_steps=logged_steps,
        loss_history=torch.stack(logged),
        anchors_without_positive=without_positive,
        seconds=seconds,
        snapshots=snapshots,
    )
