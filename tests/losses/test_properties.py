"""Hypothesis properties of every loss x sampler: non-negative, finite gradients (duplicates included), invariant to
permuting the batch and to rotating the embeddings; degenerate batches and invalid inputs."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.losses import LOSSES, make_loss

# Proxy losses compare samples with learned centres (no sampler, not rotation-invariant): test_rival_properties.py.
LOSS_NAMES = [name for name, (cls, _) in LOSSES.items() if not getattr(cls, "uses_proxies", False)]
POSITIVES = ["all", "random", "easy", "hard"]
NEGATIVES = ["all", "random", "hard", "semihard", "distance"]
DET_POSITIVES = ["all", "easy", "hard"]
DET_NEGATIVES = ["all", "hard", "semihard"]
N_CLASSES = 4


@st.composite
def batches(draw, duplicates=True):
    """``(emb, labels)``: 2-4 classes of 2-4 members (labels < N_CLASSES), gaussian float64 embeddings, and with
    ``duplicates`` some rows overwritten by exact copies of others (of the same or another label)."""
    sizes = draw(st.lists(st.integers(2, 4), min_size=2, max_size=N_CLASSES))
    dim = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    emb = rng.standard_normal((labels.size, dim))
    if duplicates:
        for _ in range(draw(st.integers(0, 3))):
            i, j = draw(st.integers(0, labels.size - 1)), draw(st.integers(0, labels.size - 1))
            emb[j] = emb[i]
    return torch.tensor(emb), torch.tensor(labels)


def _loss(name, positive, negative, seed=0, num_classes=N_CLASSES):
    return make_loss(name, positive, negative, num_classes=num_classes, random_state=seed)


def _value_and_grad(loss, emb, labels):
    x = emb.clone().requires_grad_()
    out = loss(x, labels)
    out.loss.backward()
    return out, x.grad


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("positive", POSITIVES)
@given(data=batches(), negative=st.sampled_from(NEGATIVES), float32=st.booleans())
def test_non_negative_with_finite_gradients(name, positive, data, negative, float32):
    emb, labels = data
    if float32:
        emb = emb.float()
    loss = _loss(name, positive, negative)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # DW may find no negative in a tiny batch
        out, grad = _value_and_grad(loss, emb, labels)
    assert out.loss.dtype == emb.dtype
    assert torch.isfinite(out.loss) and float(out.loss.detach()) >= 0
    assert bool((out.per_group >= 0).all())
    for terms in out.terms.values():
        assert bool((terms.losses >= 0).all()) and bool(torch.isfinite(terms.losses).all())
    assert grad is not None and bool(torch.isfinite(grad).all())
    for p in loss.parameters():
        assert p.grad is None or bool(torch.isfinite(p.grad).all())


@pytest.mark.parametrize("name", LOSS_NAMES)
@given(
    data=batches(duplicates=False),
    positive=st.sampled_from(DET_POSITIVES),
    negative=st.sampled_from(DET_NEGATIVES),
    perm_seed=st.integers(0, 2**31 - 1),
)
def test_invariant_to_batch_permutation(name, data, positive, negative, perm_seed):
    emb, labels = data
    perm = torch.from_numpy(np.random.default_rng(perm_seed).permutation(len(labels)))
    out, grad = _value_and_grad(_loss(name, positive, negative), emb, labels)
    out_p, grad_p = _value_and_grad(_loss(name, positive, negative), emb[perm], labels[perm])
    torch.testing.assert_close(out_p.loss, out.loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_p, grad[perm], rtol=1e-8, atol=1e-10)
    assert len(out_p.tuples.triplets) == len(out.tuples.triplets)


@pytest.mark.parametrize("name", LOSS_NAMES)
@given(
    data=batches(duplicates=False),
    positive=st.sampled_from(POSITIVES),
    negative=st.sampled_from(NEGATIVES),
    rot_seed=st.integers(0, 2**31 - 1),
)
def test_invariant_to_rotation(name, data, positive, negative, rot_seed):
    emb, labels = data
    dim = emb.shape[1]
    q, r = np.linalg.qr(np.random.default_rng(rot_seed).standard_normal((dim, dim)))
    Q = torch.tensor(q * np.sign(np.diag(r)))
    # Random rules draw the same keys from equally seeded samplers, so even they must agree.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = _loss(name, positive, negative, seed=5)(emb, labels)
        out_r = _loss(name, positive, negative, seed=5)(emb @ Q, labels)
    torch.testing.assert_close(out_r.loss, out.loss, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("positive,negative", [("easy", "semihard"), ("all", "all"), ("random", "distance")])
def test_no_valid_positive_gives_exact_zero_and_warns(name, positive, negative):
    B = 7
    emb = torch.randn(B, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    labels = torch.arange(B)  # every label distinct
    with pytest.warns(RuntimeWarning, match=rf"\b{B} anchors"):
        out = _loss(name, positive, negative, num_classes=B)(emb, labels)
    assert float(out.loss.detach()) == 0.0 and out.tuples.anchors_without_positive == B
    out.loss.backward()
    assert emb.grad is not None and bool((emb.grad == 0).all())


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_embeddings_raise(name, bad):
    emb = torch.randn(6, 3, dtype=torch.float64)
    emb[2, 1] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        _loss(name, "easy", "all")(emb, torch.tensor([0, 0, 1, 1, 2, 2]))


def test_invalid_inputs_raise():
    loss = make_loss("triplet")
    emb = torch.randn(4, 3)
    with pytest.raises(TypeError, match="integers"):
        loss(emb, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="labels must have shape"):
        loss(emb, torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="shape"):
        loss(torch.randn(2, 2, 4, 3), torch.zeros(2, 2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="floating-point"):
        loss(torch.ones(4, 3, dtype=torch.long), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="loss"):
        make_loss("arcface")
