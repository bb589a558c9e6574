r"""Population versions of the positive and negative rules: who is chosen, in expectation over the batch.

For an anchor point :math:`i = (m, y)` (see :mod:`collapse.theory.model`) a rule gives a distribution over the
candidate points. With the label-conditional mode law :math:`r(\cdot \mid y)`:

* **random / all positives** choose a same-label point :math:`j` with probability :math:`r(m_j \mid y)`, whatever
  the batch size (a random batch-mate of label :math:`y` has this law; averaging over all of them has the same
  expectation).
* **easy positive, infinite batch**: a mode-mate of the anchor with label :math:`y` is always present at distance
  0, so the positive is the anchor's own point.
* **easy positive, P x M batch** (exact): the anchor sees :math:`M-1` other samples of its label, i.i.d. from
  :math:`r(\cdot \mid y)`. Order the candidate points by distance to the anchor,
  :math:`D_{i j_1} \le D_{i j_2} \le \dots`, with cumulative mass :math:`F_k = \sum_{l \le k} r(j_l \mid y)`.
  The nearest batch-mate is :math:`j_k` with probability

  .. math:: P_M(j_k) = (1 - F_{k-1})^{M-1} - (1 - F_k)^{M-1}.

  In particular a mode-mate is present with probability :math:`1 - (1 - r(m \mid y))^{M-1}`.
* **hard positive**: the same with the order reversed (farthest first).
* **all / random negatives** choose a point :math:`k` of another label :math:`y'` with probability
  :math:`r(m_k \mid y') / (C' - 1)`: the batch holds equally many samples of each of its labels.
* **semi-hard / hard negatives, infinite batch**: the nearest negative point farther than the positive
  (semi-hard, the pytorch-metric-learning definition used by :mod:`collapse.sampling.negatives`), or the nearest
  negative point (hard). Their finite-batch laws have no closed form here; :func:`collapse.theory.monte_carlo_loss`
  estimates them.

Distances between points are mode distances, with :math:`D(m, m) = 0` exactly. Selections run without gradient,
as the samplers do.
"""

from __future__ import annotations

import torch

__all__ = ["nearest_of_m_law", "negative_weights", "positive_weights"]


def nearest_of_m_law(dist: torch.Tensor, mass: torch.Tensor, draws: int, *, farthest: bool = False) -> torch.Tensor:
    r"""Law of the nearest (or farthest) of ``draws`` i.i.d. candidates.

    ``dist`` (..., n) holds the distance from an anchor to each candidate, ``mass`` (..., n) the chance that one
    draw is that candidate (zero for non-candidates; rows summing to 1). Returns (..., n): the probability that
    candidate :math:`k` is the selected one, :math:`(1 - F_{k-1})^{M} - (1 - F_k)^{M}` in distance order, with ties
    broken by index as the samplers do.
    """
    key = -dist if farthest else dist
    # A stable sort keeps equal distances in index order, the samplers' lowest-index tie-break.
    order = torch.sort(key, dim=-1, stable=True).indices
    m_sorted = torch.gather(mass, -1, order)
    F = m_sorted.cumsum(-1).clamp(max=1.0)
    F_prev = F - m_sorted
    law_sorted = (1 - F_prev).clamp_min(0) ** draws - (1 - F).clamp_min(0) ** draws
    law_sorted = torch.where(m_sorted > 0, law_sorted, torch.zeros_like(law_sorted))
    return torch.zeros_like(mass).scatter(-1, order, law_sorted)


def positive_weights(
    rule: str,
    dist: torch.Tensor,
    same_label: torch.Tensor,
    mass: torch.Tensor,
    same_point: torch.Tensor,
    samples_per_class: int | None,
) -> torch.Tensor:
    """(G, n, n) probability that anchor point i takes point j as its positive (rows sum to 1)."""
    G = dist.shape[0]
    cand = same_label.unsqueeze(0).expand(G, -1, -1)
    q = torch.where(cand, mass.expand_as(dist), torch.zeros_like(dist))
    if rule in ("random", "all"):
        return q
    if rule not in ("easy", "hard"):
        raise ValueError(f"positive rule must be one of all, random, easy, hard, got {rule!r}")
    if samples_per_class is None:
        if rule == "easy":
            return same_point.to(dist.dtype).unsqueeze(0).expand(G, -1, -1).clone()
        # Infinite batch: the farthest same-label point that occurs (lowest index on ties).
        far = torch.where(cand, dist, torch.full_like(dist, -1.0))
        idx = far.argmax(-1, keepdim=True)
        return torch.zeros_like(dist).scatter(-1, idx, 1.0)
    return nearest_of_m_law(dist, q, samples_per_class - 1, farthest=rule == "hard")


def negative_weights(
    rule: str, dist: torch.Tensor, other_label: torch.Tensor, mass_other: torch.Tensor
) -> torch.Tensor:
    """(G, n, n) probability that anchor point i draws point k as a negative, for rules that do not depend on the
    positive (``all``, ``random``). ``mass_other[k] = r(m_k | y_k) / (C' - 1)``."""
    if rule not in ("all", "random"):
        raise ValueError(f"negative rule {rule!r} depends on the positive; use semihard_choice/hard_choice")
    q = torch.where(other_label, mass_other.expand_as(other_label), torch.zeros_like(mass_other).expand_as(other_label))
    return q.to(dist.dtype).unsqueeze(0).expand_as(dist)
