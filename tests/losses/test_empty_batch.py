"""An empty batch is a zero loss, connected to the graph, with no terms, for every loss x positive x negative rule."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from collapse.losses import LOSSES, make_loss
from collapse.sampling import Sampler
from collapse.sampling.negatives import NEGATIVE_RULES
from collapse.sampling.positives import POSITIVE_RULES

COMBOS = list(itertools.product(LOSSES, POSITIVE_RULES, NEGATIVE_RULES))


@pytest.mark.parametrize("shape", [(0, 8), (3, 0, 8)], ids=["B=0", "G=3,B=0"])
def test_every_combination_returns_a_connected_zero(shape):
    failures = []
    for name, positive, negative in COMBOS:
        groups = shape[0] if len(shape) == 3 else 1
        loss = make_loss(name, positive, negative, num_classes=2, num_groups=groups)
        emb = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        labels = torch.zeros(shape[:-1], dtype=torch.long)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an empty batch is not an anomaly worth a warning
            out = loss(emb, labels)
        out.loss.backward()
        ok = (
            out.loss.item() == 0.0
            and out.loss.requires_grad
            and out.per_group.shape == (groups,)
            and out.terms == {}
            and len(out.tuples.positive_pairs) == 0
            and len(out.tuples.negative_pairs) == 0
            and len(out.tuples.triplets) == 0
            and emb.grad is not None
            and emb.grad.shape == emb.shape
        )
        if not ok:
            failures.append((name, positive, negative))
    assert failures == [], failures
    assert len(COMBOS) == 140  # 7 losses x 4 positive x 5 negative rules: none skipped


@pytest.mark.parametrize("positive, negative", list(itertools.product(POSITIVE_RULES, NEGATIVE_RULES)))
def test_sampler_on_empty_matrix(positive, negative):
    tuples = Sampler(positive, negative)(torch.zeros(0, 0), torch.zeros(0, dtype=torch.long), dim=4)
    assert (tuples.n_groups, tuples.batch_size) == (1, 0)
    assert tuples.anchors_without_positive == tuples.anchors_without_negative == 0
    assert len(tuples.triplets) == 0 and tuples.negative_mask().shape == (1, 0, 0)
    assert tuples.per_positive_negatives == Sampler(positive, negative).negative.per_pair
