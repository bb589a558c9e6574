"""Correctness checks run next to the timings: our result against pytorch-metric-learning's on the same input.

A :class:`Check` holds one verdict; :func:`compare` builds it from two numbers or tensors under
``|ours - theirs| <= atol + rtol * |theirs|`` (elementwise, as ``torch.isclose``), and :func:`same_rows` from two
sets of index tuples. :func:`combine` joins several (a case passes only if every part passes) and names the parts
that failed, so the command can say what went wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["Check", "combine", "compare", "same_rows"]


@dataclass(frozen=True)
class Check:
    """``ok``: the part passed; ``name``: what was compared; ``detail``: the largest error or the mismatch."""

    name: str
    ok: bool
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {'ok' if self.ok else 'FAILED'}" + (f" ({self.detail})" if self.detail else "")


def compare(name: str, ours: object, theirs: object, *, rtol: float, atol: float) -> Check:
    """Elementwise closeness of two numbers/tensors of the same shape (a shape mismatch fails)."""
    a = torch.as_tensor(ours).detach().to("cpu", torch.float64)
    b = torch.as_tensor(theirs).detach().to("cpu", torch.float64)
    if a.shape != b.shape:
        return Check(name, False, f"shape {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.numel() == 0:
        return Check(name, True, "empty")
    if not bool(torch.isfinite(a).all()) or not bool(torch.isfinite(b).all()):
        same = bool(torch.equal(a.nan_to_num(), b.nan_to_num()))
        return Check(name, same, "non-finite values")
    err = (a - b).abs()
    ok = bool((err <= atol + rtol * b.abs()).all())
    rel = float((err / b.abs().clamp_min(atol if atol > 0 else 1e-300)).max())
    return Check(name, ok, f"max abs err {float(err.max()):.2e}, max rel err {rel:.2e}")


def same_rows(name: str, ours: Sequence[torch.Tensor], theirs: Sequence[torch.Tensor]) -> Check:
    """Whether two lists of equal-length index columns hold the same set of rows (order ignored)."""
    a = _rows(ours)
    b = _rows(theirs)
    if a == b:
        return Check(name, True, f"{len(a)} tuples")
    return Check(name, False, f"{len(a - b)} only ours, {len(b - a)} only theirs, of {len(a)} vs {len(b)}")


def combine(name: str, parts: Iterable[Check]) -> Check:
    parts = list(parts)
    failed = [p for p in parts if not p.ok]
    if failed:
        return Check(name, False, "; ".join(str(p) for p in failed))
    return Check(name, True, "; ".join(str(p) for p in parts))


def _rows(cols: Sequence[torch.Tensor]) -> set[tuple[int, ...]]:
    return set(zip(*[c.detach().cpu().tolist() for c in cols]))
