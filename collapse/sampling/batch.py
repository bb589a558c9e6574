"""P x M batches: P classes per batch, M samples per class, for G independent runs at once."""

from __future__ import annotations

import warnings

import torch

from collapse._validation import check_int

__all__ = ["PKBatchSampler"]


class PKBatchSampler:
    """Draw batches of ``P`` observed classes x ``M`` samples each.

    ``sample(labels, generator)`` takes observed labels ``(G, n)`` (or ``(n,)``) and returns sample indices
    ``(G, P*M)``: for each run, P distinct classes uniformly among those with at least M samples, then M distinct
    samples of each class. With ``replace=True`` a class smaller than M is allowed and topped up by drawing with
    replacement (duplicates then appear in the batch); with ``replace=False`` (default) such a class is never
    chosen, and too few eligible classes is an error.

    With ``M < 3`` an anchor has at most one same-class partner in the batch, so the easy positive *is* the
    random positive; the constructor warns.
    """

    def __init__(self, classes_per_batch: int, samples_per_class: int, *, replace: bool = False) -> None:
        self.P = check_int("classes_per_batch", classes_per_batch, low=1)
        self.M = check_int("samples_per_class", samples_per_class, low=2)
        self.replace = bool(replace)
        if self.M < 3:
            warnings.warn(
                f"samples_per_class={self.M} < 3: every anchor has at most one positive, "
                "so easy positive sampling equals random positive sampling",
                UserWarning,
                stacklevel=2,
            )

    @property
    def batch_size(self) -> int:
        return self.P * self.M

    def sample(self, labels: torch.Tensor, n_classes: int, generator: torch.Generator) -> torch.Tensor:
        squeeze = labels.dim() == 1
        labels = labels.reshape(-1, labels.shape[-1]) if not squeeze else labels.unsqueeze(0)
        G, n = labels.shape
        dev = labels.device
        counts = torch.zeros(G, n_classes, dtype=torch.long, device=dev).scatter_add_(
            1, labels, torch.ones_like(labels)
        )
        eligible = counts >= (1 if self.replace else self.M)
        short = eligible.sum(1) < self.P
        if bool(short.any()):
            g = int(short.nonzero()[0])
            raise ValueError(
                f"classes_per_batch={self.P} needs {self.P} classes with >= {self.M} samples, but run {g} has only "
                f"{int(eligible[g].sum())} (counts per class: {counts[g].tolist()})"
            )
        keys = torch.rand(G, n_classes, generator=generator, device=dev).masked_fill(~eligible, -1.0)
        classes = keys.topk(self.P, dim=1).indices  # (G, P)
        member = labels.unsqueeze(1) == classes.unsqueeze(2)  # (G, P, n)
        keys = torch.rand(G, self.P, n, generator=generator, device=dev).masked_fill(~member, -1.0)
        top = keys.topk(self.M, dim=2)
        idx = top.indices
        missing = top.values < 0
        if bool(missing.any()):
            # Only reachable with replace=True: top up small classes by drawing members with replacement.
            probs = member.reshape(G * self.P, n).float()
            extra = torch.multinomial(probs, self.M, replacement=True, generator=generator).reshape(G, self.P, self.M)
            idx = torch.where(missing, extra, idx)
        out = idx.reshape(G, self.P * self.M)
        return out[0] if squeeze else out

    def __repr__(self) -> str:
        return f"PKBatchSampler(P={self.P}, M={self.M}, replace={self.replace})"
