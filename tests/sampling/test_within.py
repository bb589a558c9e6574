"""negatives_within lists exactly the rule's negative pairs below the row limits (a naive-loop oracle)."""

import pytest
import torch

from collapse.sampling.fused import LabelSegments
from collapse.sampling.within import negatives_within


def _naive(order, limit, labels):
    found = []
    n_groups, batch, _ = order.shape
    for g in range(n_groups):
        for a in range(batch):
            if not any(labels[g, p] == labels[g, a] for p in range(batch) if p != a):
                continue  # no positive: the rule lists no negative of this anchor
            for n in range(batch):
                if labels[g, n] != labels[g, a] and order[g, a, n] < limit[g, a, 0]:
                    found.append((g, a, n))
    return found


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_groups", [1, 3])
def test_negatives_within_equals_the_naive_loop(seed, n_groups):
    gen = torch.Generator().manual_seed(seed)
    batch = int(torch.randint(1, 14, (1,), generator=gen))
    order = torch.randn(n_groups, batch, batch, generator=gen, dtype=torch.float64)
    limit = torch.randn(n_groups, batch, 1, generator=gen, dtype=torch.float64) - 1.0
    labels = torch.randint(0, 4, (n_groups, batch), generator=gen)
    segments = LabelSegments(labels)
    expected = _naive(order, limit, labels)
    g, a, n = negatives_within(order.clone(), limit, segments.members, segments.count > 1)
    assert list(zip(g.tolist(), a.tolist(), n.tolist())) == expected


def test_too_many_pairs_give_none_and_none_found_gives_empty_indices():
    labels = torch.tensor([[0, 0, 1, 1]])
    segments = LabelSegments(labels)
    order = torch.zeros(1, 4, 4)
    everything = torch.ones(1, 4, 1)
    assert len(negatives_within(order.clone(), everything, segments.members, segments.count > 1)[0]) == 8
    assert negatives_within(order.clone(), everything, segments.members, segments.count > 1, max_pairs=7) is None
    g, a, n = negatives_within(order.clone(), -everything, segments.members, segments.count > 1)
    assert len(g) == len(a) == len(n) == 0 and g.dtype == n.dtype == torch.long
