r"""Data-parallel training across GPUs and nodes (``torchrun``) with easy positives chosen in the *global* batch.

Set-up: W processes (ranks), each with a replica of the network (DDP). Step ``s`` has one global P x M batch
of B = P * M images (:class:`paper_repro.batches.StepBatches`); rank r embeds the rows ``r, r + W, r + 2W, ...``
(:func:`rank_slice`, strided so that every rank sees a mix of classes and BatchNorm statistics stay sensible).

Loss on the global batch. Every rank all-gathers the embeddings into the global batch in its original order
(:func:`all_gather_with_grad`) and computes the loss on all B rows, so the sampler picks easy positives (and hard
negatives) among all B samples, not only among the B / W local ones. Every rank therefore computes the *same*
number :math:`L` (the single-process loss of the global batch, bitwise equal up to the all-gather). The gathered
copies of the other ranks' rows are constants; only the rank's own rows stay on its autograd graph, so

.. math::
    \frac{\partial L}{\partial e_i} \text{ on rank } r(i) = \text{the single-process gradient of row } i .

Reduction and scaling. DDP *averages* parameter gradients over ranks: it computes
:math:`\frac1W \sum_r \nabla_\theta^{(r)}`, where :math:`\nabla_\theta^{(r)}` only carries the rows of rank r.
The single-process gradient is the *sum* :math:`\sum_r \nabla_\theta^{(r)}`. Hence each rank back-propagates
:math:`W \cdot L` (as pytorch-metric-learning's ``DistributedLossWrapper`` does), and the averaged gradient is
exactly the single-process one. Parameters of the loss itself (the learned :math:`\beta` of the margin loss) are
not inside DDP: every rank sees the full gradient of :math:`L`, times W after the scaling, so
:func:`backward_global` divides those gradients by W again. The logged loss is :math:`L`, not :math:`W L`.

Random choices in the loss (random positives, distance-weighted negatives) come from the loss's own generator,
seeded identically on every rank and fed identical inputs, so every rank picks the same tuples.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from collapse.losses.base import MetricLoss
from collapse.losses.terms import LossOutput

__all__ = [
    "DistContext",
    "GlobalBatchLoss",
    "all_gather_with_grad",
    "backward_global",
    "barrier",
    "broadcast_object",
    "cleanup",
    "from_env",
    "launched_by_torchrun",
    "rank_slice",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` (1 and 0 without torchrun) and its torch ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment carries the variables torchrun (or any launcher) sets: RANK and WORLD_SIZE."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def from_env(device: str = "cpu") -> DistContext:
    """Join the process group described by RANK / WORLD_SIZE / LOCAL_RANK (and MASTER_ADDR / MASTER_PORT).

    Without those variables this is a single process on ``device``. Backend: NCCL on CUDA, gloo on CPU.
    On CUDA, rank r uses GPU ``LOCAL_RANK`` of its node.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of cpu, cuda; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch.cuda.is_available() is False; use --device cpu")
    if not launched_by_torchrun():
        # An explicit index: generators and tensors then report the same device as the model's outputs.
        dev = torch.device("cuda", torch.cuda.current_device()) if device == "cuda" else torch.device("cpu")
        return DistContext(device=dev)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        kwargs = {"device_id": dev} if device == "cuda" else {}
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo", **kwargs)
    return DistContext(rank=rank, world_size=world, local_rank=local, device=dev)


def cleanup(ctx: DistContext) -> None:
    """Leave the process group (if this process joined one)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(obj: object, ctx: DistContext) -> object:
    """Rank 0's ``obj`` on every rank (used to share an error or a decision made by rank 0)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rank_slice(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rows ``rank, rank + W, rank + 2W, ...`` of the global batch (B must be a multiple of W)."""
    if batch.shape[0] % world_size:
        raise ValueError(
            f"the global batch of {batch.shape[0]} samples must split evenly over {world_size} ranks; "
            "choose batch-classes x samples-per-class as a multiple of the world size"
        )
    return batch[rank::world_size]


def all_gather_with_grad(local: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The global batch ``(B, ...)`` in its original order, from each rank's strided slice ``(B / W, ...)``.

    The other ranks' rows are detached copies; the rank's own rows are ``local`` itself, so gradients flow back
    to it (the usual all-gather-with-gradient trick). Inverse of :func:`rank_slice`.
    """
    if not ctx.enabled:
        return local
    parts = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(parts, local.detach().contiguous())
    parts[ctx.rank] = local
    # stack -> (B/W, W, ...): row j of rank r is global row j * W + r, the inverse of batch[r::W].
    return torch.stack(parts, dim=1).reshape(-1, *local.shape[1:])


class GlobalBatchLoss(nn.Module):
    """Wrap a :class:`~collapse.losses.base.MetricLoss` so that it runs on the all-gathered global batch.

    ``forward(local_embeddings, local_labels)`` returns the loss's :class:`LossOutput` for the global batch (the
    same on every rank). Back-propagate it with :func:`backward_global`, which applies the W scaling explained in
    the module docstring. With one process it is the wrapped loss unchanged.
    """

    def __init__(self, loss: MetricLoss, ctx: DistContext) -> None:
        super().__init__()
        self.loss = loss
        self.ctx = ctx

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        emb = all_gather_with_grad(embeddings, self.ctx)
        lab = all_gather_with_grad(labels, self.ctx)
        return self.loss(emb, lab)


def backward_global(loss_value: torch.Tensor, ctx: DistContext, loss_parameters: Iterable[nn.Parameter] = ()) -> None:
    """Back-propagate the global-batch loss so that, after DDP's averaging, every gradient is the single-process one.

    Back-propagates ``W * loss_value`` (DDP divides the summed parameter gradients by W) and divides the gradients
    of ``loss_parameters`` (not synchronised by DDP, already complete on every rank) by W.
    """
    if not ctx.enabled:
        loss_value.backward()
        return
    (loss_value * ctx.world_size).backward()
    for p in loss_parameters:
        if p.grad is not None:
            p.grad.div_(ctx.world_size)
