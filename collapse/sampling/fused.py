r"""Fast exact selection for the rules that pick one partner per anchor by distance.

The generic path (:mod:`collapse.sampling.positives`, :mod:`collapse.sampling.negatives`) masks the whole
``(G, B, B)`` matrix once per rule, and boolean masks and masked fills are several times slower per element than
float arithmetic on a CPU. This module computes the *same* selections (same indices, same tie rule: lowest index)
with less work:

* **Positives** (``easy``: nearest, ``hard``: farthest same-label sample). Sorting the labels (stably) makes each
  label a segment of consecutive positions, listed in ascending batch index. The candidates of anchor ``a`` are its
  label's segment, so the rule reads an ``(G, B, M)`` gather of the matrix, ``M`` the largest label count in the
  batch: O(B M) instead of O(B^2) (for a P x M batch, ``M`` is the samples per class).
* **Negatives** (``hard``: :math:`\arg\min_{j: y_j \ne y_a} D_{aj}`; ``semihard``: the same over
  :math:`D_{aj} > D_{ap}`). Rows are processed in cache-sized chunks: copy (or, with ``overwrite``, use the rows
  in place), set the anchor's own label segment to :math:`+\infty` with one scatter, and, for semi-hard, add
  :math:`\Lambda\,[D_{aj} \le D_{ap}]` with a large finite :math:`\Lambda` (the indicator written as floats). That
  term is exactly 0 where :math:`D_{aj} > D_{ap}` (so those values are untouched) and :math:`\Lambda` elsewhere;
  a row whose minimum is above :math:`\Lambda/2` has no semi-hard negative. This needs every matrix entry well
  inside :math:`\pm\Lambda` (:math:`\Lambda` is a quarter of the dtype's largest value), which
  :func:`fused_negatives_apply` checks with one min/max pass; otherwise the sampler takes the generic path.

As in the generic rules, a candidate at distance :math:`+\infty` counts as none, and ``argmin`` returns the first
minimal index, which is the lowest batch index.
"""

from __future__ import annotations

import torch

from collapse._buffers import kept_buffer
from collapse.sampling._select import row_argmin

__all__ = ["LabelSegments", "fused_negatives", "fused_negatives_apply", "fused_positives"]

#: Target size in bytes of one chunk of rows in :func:`fused_negatives`: on a CPU a few cache-sized passes per chunk;
#: on a GPU, where every chunk costs kernel launches and caches do not decide, much larger chunks.
CHUNK_BYTES = {"cpu": 1 << 20}
GPU_CHUNK_BYTES = 1 << 28


class LabelSegments:
    """Same-label members of every anchor, from one stable sort of the labels.

    ``members[g, a, k]`` is the k-th sample (ascending batch index) with anchor ``a``'s label, for
    ``k < count[g, a]``; padding entries repeat the segment's last member (so every entry is a member, and a
    member's first occurrence comes before its repeats). Shape ``(G, B, M)``, ``M = count.max()``.
    """

    def __init__(self, labels: torch.Tensor) -> None:
        n_groups, batch = labels.shape
        labels = labels.contiguous()
        sorted_labels, order = torch.sort(labels, dim=-1, stable=True)
        start = torch.searchsorted(sorted_labels, labels, right=False)
        self.count = torch.searchsorted(sorted_labels, labels, right=True) - start
        width = int(self.count.max()) if labels.numel() else 0
        k = torch.arange(width, device=labels.device)
        # Sorted position of the k-th member, and of the last member past the segment's end (count >= 1).
        pos = torch.minimum(k, (self.count - 1).unsqueeze(-1)).add_(start.unsqueeze(-1))
        self.members = order.gather(-1, pos.reshape(n_groups, -1)).reshape(n_groups, batch, width)


def fused_positives(
    dist: torch.Tensor, segments: LabelSegments, rule: str, exclude_duplicates: float | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(index, valid, value)`` of the easy (``rule="easy"``) or hard positive of every anchor, each ``(G, B)``;
    ``value`` is ``dist`` at the positive (``+inf`` for easy, ``-inf`` for hard, where there is none).

    As in the generic rules, an easy candidate at ``+inf`` counts as none (a hard one at ``-inf``); ``min``/``max``
    return the first extreme, i.e. the lowest batch index, since members are listed in ascending index and padding
    repeats come after the member they repeat.
    """
    easy = rule == "easy"
    none = float("inf") if easy else float("-inf")
    values = dist.gather(-1, segments.members)
    # The anchor itself (and its padding repeats) is no candidate.
    values.masked_fill_(segments.members == torch.arange(dist.shape[-1], device=dist.device).unsqueeze(-1), none)
    if exclude_duplicates is not None:
        values.masked_fill_(~(values > exclude_duplicates), none)  # as the generic rule: NaN is no candidate
    best, k = values.min(dim=-1) if easy else values.max(dim=-1)
    valid = best < none if easy else best > none
    index = segments.members.gather(-1, k.unsqueeze(-1)).squeeze(-1)
    return torch.where(valid, index, 0), valid, best


def _big(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).max / 4


def fused_negatives_apply(dist: torch.Tensor, rule: str, bound: float | None = None) -> bool:
    r"""Whether :func:`fused_negatives` is exact for this matrix: always for ``hard``; for ``semihard`` when every
    entry lies strictly within :math:`\pm\Lambda/4` (no infinity, no NaN), so that penalised entries, at least
    :math:`\Lambda - \Lambda/4`, stay above the validity limit :math:`\Lambda/2` and true ones below it.
    ``bound``: a known bound on the entries' magnitude (e.g. 2 between finite unit rows); it spares the check's
    pass over the matrix."""
    if rule == "hard" or dist.numel() == 0:
        return True
    if bound is not None and bound < _big(dist.dtype) / 4:
        return True
    lo, hi = torch.aminmax(dist)
    bound = _big(dist.dtype) / 4
    return float(hi) < bound and float(lo) > -bound  # False for NaN


def fused_negatives(
    dist: torch.Tensor,
    segments: LabelSegments,
    rule: str,
    d_ap: torch.Tensor | None = None,
    *,
    overwrite: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index, valid)`` of the hard or semi-hard negative of every anchor, each ``(G, B)``.

    ``d_ap`` ``(G, B)`` is each anchor's positive distance (semi-hard only; anchors without a positive may hold any
    value, infinities included: their result is meaningless and the caller drops them). ``overwrite=True`` lets the
    rows of ``dist`` serve as the work buffer (the caller's scratch matrix is then garbage afterwards).
    """
    n_groups, batch = dist.shape[0], dist.shape[-1]
    rows = dist.reshape(-1, batch)
    n_rows = rows.shape[0]
    members = segments.members.reshape(n_rows, -1)
    semihard = rule == "semihard"
    big = _big(dist.dtype)
    limit = big / 2 if semihard else float("inf")
    thresholds = d_ap.reshape(-1, 1) if semihard else None
    chunk_bytes = CHUNK_BYTES.get(dist.device.type, GPU_CHUNK_BYTES)
    step = min(n_rows, max(1, chunk_bytes // max(1, batch * dist.element_size())))
    # One work and one penalty buffer, reused by every chunk and kept between calls.
    work_buf = None if overwrite else kept_buffer("fused-work", (step, batch), dist)
    pen_buf = kept_buffer("fused-penalty", (step, batch), dist) if semihard else None
    index, best = [], []
    for r0 in range(0, n_rows, step):
        r1 = min(r0 + step, n_rows)
        whole = r1 - r0 == n_rows  # one chunk: the tensors themselves, no slices (a few us each)
        work = rows if whole else rows[r0:r1]
        if not overwrite:
            work = (work_buf if whole else work_buf[: r1 - r0]).copy_(work)
        work.scatter_(-1, members if whole else members[r0:r1], float("inf"))
        if semihard:
            # [D <= t] written as 0.0/1.0 floats (a comparison into a float buffer: no boolean tensor, whose
            # passes are several times slower on a CPU) is 0 exactly where D > t (and at inf), so adding big times
            # it leaves semi-hard candidates bitwise unchanged and lifts the rest above limit.
            t, out = (thresholds, pen_buf) if whole else (thresholds[r0:r1], pen_buf[: r1 - r0])
            pen = torch.le(work, t, out=out)
            work.add_(pen, alpha=big)
        idx = row_argmin(work).unsqueeze(-1)
        index.append(idx)
        best.append(work.gather(-1, idx))
    index = torch.cat(index) if len(index) > 1 else index[0]
    valid = (torch.cat(best) if len(best) > 1 else best[0]) < limit
    return torch.where(valid, index, 0).view(n_groups, batch), valid.view(n_groups, batch)
