"""The benchmark's correctness checks catch deliberately wrong implementations and pass the real ones."""

import pytest
import torch

from collapse.bench.checks import Check, combine, compare, same_rows
from collapse.bench.eval_cases import EVAL_CASES, make_eval_data
from collapse.bench.loss_cases import LOSS_CASES, make_batch
from collapse.losses import MultiSimilarityLoss, TripletMarginLoss, make_loss
from collapse.sampling import Sampler


@pytest.fixture(scope="module")
def batch():
    x, y = make_batch(48, 8, per_class=4, seed=1, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("name", [n for n, c in LOSS_CASES.items() if c.check is not None])
def test_real_implementations_pass(batch, name):
    case = LOSS_CASES[name]
    check = case.check(case.ours(), *batch)
    assert check.ok, str(check)


WRONG = {
    # easy -> hard positives: other triplets, other value
    "triplet EPS/semihard": lambda: make_loss("triplet", "hard", "semihard"),
    # the right tuples, the wrong margin
    "triplet EPS/semihard ": lambda: TripletMarginLoss(margin=0.3, sampler=Sampler("easy", "semihard")),
    # random positives are not the nearest same-label sample
    "margin EPS/distance-weighted": lambda: make_loss("margin", "random", "distance"),
    # a different beta
    "multisimilarity EPS/all": lambda: MultiSimilarityLoss(beta=40.0, sampler=Sampler("easy", "all")),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_implementations_fail_and_say_why(batch, name):
    check = LOSS_CASES[name.strip()].check(WRONG[name](), *batch)
    assert not check.ok
    assert "FAILED" in check.detail


def test_a_wrong_gradient_is_caught(batch):
    class ScaledGradient(TripletMarginLoss):
        # Same value, gradient scaled by 2 (x -> x + (x - x.detach()) doubles d/dx on the way in).
        def forward(self, embeddings, labels, sampler=None):
            return super().forward(2 * embeddings - embeddings.detach(), labels, sampler)

    check = LOSS_CASES["triplet EPS/semihard"].check(ScaledGradient(sampler=Sampler("easy", "semihard")), *batch)
    assert not check.ok and "gradient: FAILED" in check.detail and "value: FAILED" not in check.detail


def test_eval_checks():
    x, y = make_eval_data(300, per_class=10, seed=0)
    case = EVAL_CASES["retrieval"]
    ours, theirs = case.ours(x, y), case.pml(x, y, torch.device("cpu"))
    assert case.check(ours, theirs).ok
    bad = dict(ours, map_at_r=ours["map_at_r"] + 1e-3)
    check = case.check(bad, theirs)
    assert not check.ok and "map_at_r: FAILED" in check.detail


def test_check_primitives():
    assert compare("v", 1.0, 1.0 + 1e-9, rtol=1e-8, atol=0).ok
    assert not compare("v", 1.0, 1.1, rtol=1e-8, atol=0).ok
    assert not compare("v", torch.zeros(3), torch.zeros(4), rtol=0, atol=0).ok
    assert not compare("v", float("nan"), 1.0, rtol=0, atol=1).ok
    rows = (torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert same_rows("t", rows, (torch.tensor([1, 0]), torch.tensor([3, 2]))).ok
    assert not same_rows("t", rows, (torch.tensor([1, 0]), torch.tensor([2, 3]))).ok
    both = combine("c", [Check("a", True), Check("b", False, "off by one")])
    assert not both.ok and "b: FAILED (off by one)" in both.detail
