r"""The negative pairs of the ``all`` x ``all`` rule that lie within a radius, found on the order matrix.

A hinge on the negative pairs, :math:`[m - D_{an}]_+`, is zero for every pair at :math:`D_{an} \ge m`, and in most
batches that is nearly every pair: random embeddings in high dimension sit near :math:`\sqrt 2` apart on the unit
sphere, and trained ones keep other labels beyond the margin. A loss step that computes only the other pairs needs
them listed, which here costs one pass over the matrix (a row minimum) plus work in proportion to the rows that hold
a pair within the radius, instead of a comparison and an index listing over all :math:`B^2` entries.

The search runs on :meth:`~collapse.distances.Distance.order_matrix` with the limits of
:meth:`~collapse.distances.Distance.order_limit` (the same order, one product and no elementwise pass), or between
unit rows on :math:`-\hat x_i^\top \hat x_j` with the limit of :meth:`~collapse.distances.Distance.unit_similarity`
(:attr:`~collapse.distances.Distance.radius_search`), with the anchor's own label blanked through its label segment
(:class:`~collapse.sampling.fused.LabelSegments`).
"""

from __future__ import annotations

import torch

__all__ = ["negatives_within"]


@torch.no_grad()
def negatives_within(
    order: torch.Tensor,
    limit: torch.Tensor,
    members: torch.Tensor,
    has_positive: torch.Tensor,
    max_pairs: float = float("inf"),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(g, a, n)``, in that lexicographic order: every pair with ``n`` of another label than ``a``, ``a`` an anchor
    with a positive (``has_positive``, ``(G, B)``) and ``order[g, a, n] < limit[g, a]``; ``None`` when there are more
    than ``max_pairs``.

    ``order`` is a ``(G, B, B)`` matrix, overwritten (its same-label entries set to ``+inf``); ``limit`` ``(G, B, 1)``;
    ``members`` ``(G, B, M)`` the label members of each anchor (:attr:`LabelSegments.members`, the anchor included).
    """
    order.scatter_(-1, members, float("inf"))
    near = (order.amin(dim=-1) < limit.squeeze(-1)) & has_positive
    g, a = near.nonzero(as_tuple=True)
    if len(g) == 0:
        return g, a, a.clone()
    row, n = (order[g, a] < limit[g, a]).nonzero(as_tuple=True)
    if len(row) > max_pairs:
        return None
    return g[row], a[row], n
