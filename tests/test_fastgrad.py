"""Closed-form backward passes (collapse._fastgrad) against autograd's: gradcheck, and the forward values."""

import pytest
import torch
import torch.nn.functional as F

from collapse._fastgrad import log1p_sum_exp, pair_distance, unit_rows


def test_unit_rows_forward_is_f_normalize_bitwise_and_gradcheck():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 5, generator=gen, dtype=torch.float64)
    x[0, 2] = 0.0  # a zero row: the norm is clamped at eps and the gradient is g / eps
    assert torch.equal(unit_rows(x), F.normalize(x, dim=-1))
    x32 = x.float()
    assert torch.equal(unit_rows(x32), F.normalize(x32, dim=-1))
    torch.autograd.gradcheck(lambda t: unit_rows(t), (x[1:].clone().requires_grad_(),))
    # Against autograd through F.normalize, zero row included.
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    (unit_rows(a) * w).sum().backward()
    (F.normalize(b, dim=-1) * w).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def _reference(x, i, j, kind):
    u, v = x[i], x[j]
    if kind == "cosine":
        return 1.0 - (u * v).sum(-1)
    sq = ((u - v) ** 2).sum(-1)
    return sq if kind == "sqeuclidean" else torch.linalg.vector_norm(u - v, dim=-1)


@pytest.mark.parametrize("kind", ["euclidean", "sqeuclidean", "cosine"])
def test_pair_distance_values_and_gradcheck(kind):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    i = torch.tensor([0, 1, 2, 2, 8, 5, 0])  # repeated rows accumulate their gradients
    j = torch.tensor([3, 4, 5, 1, 0, 6, 7])
    torch.testing.assert_close(pair_distance(x, i, j, kind), _reference(x, i, j, kind), rtol=1e-12, atol=1e-12)
    torch.autograd.gradcheck(lambda t: pair_distance(t, i, j, kind), (x.clone().requires_grad_(),))


def test_pair_distance_has_zero_gradient_at_tied_rows():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    d = pair_distance(x, torch.tensor([0, 0]), torch.tensor([1, 2]), "euclidean")
    assert d[0] == 0
    d[0].backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    with pytest.raises(ValueError, match="kind must be one of"):
        pair_distance(x, torch.tensor([0]), torch.tensor([1]), "manhattan")


@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (50.0, 0.5), (-2.0, 0.5)])
def test_log1p_sum_exp_matches_logsumexp_and_gradcheck(scale, shift):
    gen = torch.Generator().manual_seed(2)
    s = torch.rand(6, 8, generator=gen, dtype=torch.float64) * 2 - 1
    mask = torch.rand(6, 8, generator=gen) > 0.4
    mask[2] = False  # an empty row: log(1 + 0) = 0
    x = (scale * (s - shift)).masked_fill(~mask, float("-inf"))
    ref = torch.logsumexp(torch.cat([torch.zeros(6, 1, dtype=s.dtype), x], dim=1), dim=1)
    out = log1p_sum_exp(s, mask, scale, shift)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert out[2] == 0
    torch.autograd.gradcheck(lambda t: log1p_sum_exp(t, mask, scale, shift), (s.clone().requires_grad_(),))
