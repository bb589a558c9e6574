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


def _takes_rules(name: str) -> bool:
    """Proxy-based losses (SoftTriple, ...) compare samples with class proxies and refuse sampling rules."""
    try:
        make_loss(name, "easy", "hard", num_classes=2, embedding_dim=4)
    except ValueError:
        return False
    return True


TUPLE_LOSSES = [name for name in LOSSES if _takes_rules(name)]
COMBOS = list(itertools.product(TUPLE_LOSSES, POSITIVE_RULES, NEGATIVE_RULES))
COMBOS += [(name, None, None) for name in LOSSES if name not in TUPLE_LOSSES]


@pytest.mark.parametrize("shape", [(0, 8), (3, 0, 8)], ids=["B=0", "G=3,B=0"])
def test_every_combination_returns_a_connected_zero(shape):
    failures = []
    for name, positive, negative in COMBOS:
        groups = shape[0] if len(shape) == 3 else 1
        loss = make_loss(name, positive, negative, num_classes=2, num_groups=groups, embedding_dim=shape[-1])
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
            and all(len(t) == 0 for t in out.terms.values())
            and len(out.tuples.positive_pairs) == 0
            and len(out.tuples.negative_pairs) == 0
            and (name not in TUPLE_LOSSES or len(out.tuples.triplets) == 0)
            and emb.grad is not None
            and emb.grad.shape == emb.shape
        )
        if not ok:
            failures.append((name, positive, negative))
    assert failures == [], failures
    # Every sampling loss x 4 positive x 5 negative rules (the original 7 losses give 140), and every proxy loss.
    assert len(TUPLE_LOSSES) >= 7 and len(COMBOS) == len(TUPLE_LOSSES) * 20 + len(LOSSES) - len(TUPLE_LOSSES)


@pytest.mark.parametrize("positive, negative", list(itertools.product(POSITIVE_RULES, NEGATIVE_RULES)))
def test_sampler_on_empty_matrix(positive, negative):
    tuples = Sampler(positive, negative)(torch.zeros(0, 0), torch.zeros(0, dtype=torch.long), dim=4)
    assert (tuples.n_groups, tuples.batch_size) == (1, 0)
    assert tuples.anchors_without_positive == tuples.anchors_without_negative == 0
    assert len(tuples.triplets) == 0 and tuples.negative_mask().shape == (1, 0, 0)
    assert tuples.per_positive_negatives == Sampler(positive, negative).negative.per_pair
