"""Closed-form backward passes (collapse._fastgrad) against autograd's: gradcheck, and the forward values."""

import pytest
import torch
import torch.nn.functional as F

from collapse._fastgrad import (
    PAIR_KINDS,
    anchor_distances,
    log1p_sum_exp,
    log_sum_exp,
    pair_distance,
    unit_rows,
    unit_rows_and_norms,
)


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


@pytest.mark.parametrize("scale", [1.0, 10.0, -2.0])
@pytest.mark.parametrize("by_exclude", [False, True])
def test_log_sum_exp_matches_logsumexp_and_gradcheck(scale, by_exclude):
    gen = torch.Generator().manual_seed(4)
    s = torch.rand(6, 8, generator=gen, dtype=torch.float64) * 2 - 1
    if by_exclude:
        exclude = torch.arange(6).unsqueeze(-1)  # each row's own column, as SupCon's denominator drops the anchor
        mask, kw = torch.ones(6, 8, dtype=torch.bool).scatter_(-1, exclude, False), {"exclude": exclude}
    else:
        mask = torch.rand(6, 8, generator=gen) > 0.4
        mask[:, 0] = True  # every row needs a counted entry
        kw = {"mask": mask}
    ref = torch.logsumexp((scale * s).masked_fill(~mask, float("-inf")), dim=1)
    torch.testing.assert_close(log_sum_exp(s, scale, **kw), ref, rtol=1e-12, atol=1e-12)
    torch.autograd.gradcheck(lambda t: log_sum_exp(t, scale, **kw), (s.clone().requires_grad_(),))
    with pytest.raises(ValueError, match="exactly one of mask and exclude"):
        log_sum_exp(s, scale)


@pytest.mark.parametrize("by_exclude", [False, True])
def test_log1p_sum_exp_backward_twice_through_a_retained_graph(by_exclude):
    # The first backward writes its gradient over the saved weights; a second one must rebuild them.
    gen = torch.Generator().manual_seed(3)
    s = (torch.rand(5, 7, generator=gen, dtype=torch.float64) * 2 - 1).requires_grad_()
    pick = torch.tensor([1, 0, 3, 6, 2])
    if by_exclude:
        mask, exclude = None, torch.tensor([[0, 1], [0, 2], [3, 3], [5, 6], [2, 4]])
    else:
        mask, exclude = torch.rand(5, 7, generator=gen) > 0.3, None
    value, picked = log1p_sum_exp(s, mask, 50.0, 0.5, exclude=exclude, pick=pick)
    total = value.sum() + 2.0 * picked.sum()
    (first,) = torch.autograd.grad(total, s, retain_graph=True)
    (second,) = torch.autograd.grad(total, s)
    torch.testing.assert_close(second, first, rtol=0, atol=0)
    x = 50.0 * (s.detach() - 0.5)
    keep = mask if mask is not None else torch.ones_like(x, dtype=torch.bool).scatter_(-1, exclude, False)
    ref_s = s.detach().clone().requires_grad_()
    xr = (50.0 * (ref_s - 0.5)).masked_fill(~keep, float("-inf"))
    ref = torch.logsumexp(torch.cat([torch.zeros(5, 1, dtype=x.dtype), xr], dim=1), dim=1).sum()
    ref = ref + 2.0 * ref_s.gather(-1, pick.unsqueeze(-1)).sum()
    (expected,) = torch.autograd.grad(ref, ref_s)
    torch.testing.assert_close(first, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", PAIR_KINDS)
def test_anchor_distance_is_pair_distance_of_every_row_and_gradcheck(kind):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    x[5] = x[2]  # a zero distance (row 2 against its copy): zero gradient, as pair_distance
    j = torch.tensor([[1, 0, 5, 2, 2, 2], [3, 4, 0, 1, 0, 3]])
    rows = torch.arange(6)
    got = torch.stack(anchor_distances(x, j, kind))
    want = pair_distance(x, rows.repeat(2), j.reshape(-1), kind).reshape(2, 6)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.rand(2, 6, generator=gen, dtype=torch.float64)
    (torch.stack(anchor_distances(xa, j, kind)) * w).sum().backward()
    (pair_distance(xb, rows.repeat(2), j.reshape(-1), kind) * w.reshape(-1)).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-12, atol=1e-12)
    jj = torch.tensor([[1, 0, 4, 2, 3]])
    torch.autograd.gradcheck(lambda t: anchor_distances(t, jj, kind), (x[:5].clone().requires_grad_(),))
    with pytest.raises(ValueError, match="j must have shape"):
        anchor_distances(x, j[0], kind)
    got = anchor_distances(x, j, kind, shape=(2, 3))
    assert len(got) == 2 and all(g.shape == (2, 3) for g in got)


@pytest.mark.parametrize("kind", PAIR_KINDS)
def test_anchor_distance_backward_twice_through_a_retained_graph(kind):
    # The first backward writes its gradient over the saved differences; a second one must rebuild them.
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64).requires_grad_()
    j = torch.tensor([[1, 0, 5, 2, 2, 2], [3, 4, 0, 1, 0, 3]])
    w = torch.rand(2, 6, generator=gen, dtype=torch.float64)
    total = (torch.stack(anchor_distances(x, j, kind)) * w).sum()
    (first,) = torch.autograd.grad(total, x, retain_graph=True)
    (second,) = torch.autograd.grad(total, x)
    torch.testing.assert_close(second, first, rtol=0, atol=0)
    ref = x.detach().clone().requires_grad_()
    (pair_distance(ref, torch.arange(6).repeat(2), j.reshape(-1), kind) * w.reshape(-1)).sum().backward()
    torch.testing.assert_close(first, ref.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", PAIR_KINDS)
@pytest.mark.parametrize("retain", [False, True])
def test_anchor_distances_of_unit_rows_differentiate_through_the_normalisation(kind, retain):
    """``unit=unit_rows_and_norms(x)``: the distances of ``unit_rows(x)``, and the gradient of ``x`` bitwise the one
    through ``unit_rows`` then ``anchor_distances`` (two nodes); one output unused; a zero row (clamped norm)."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    x[3] = 0.0
    x[5] = 2.0 * x[1]  # the same unit row: a zero distance
    j = torch.tensor([[5, 0, 4, 2, 2, 1, 6], [3, 4, 0, 1, 0, 3, 2]])
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    u, norms = unit_rows_and_norms(xa)
    assert not u.requires_grad and torch.equal(u, unit_rows(x))
    fused = anchor_distances(xa, j, kind, unit=(u, norms))
    plain = anchor_distances(unit_rows(xb), j, kind)
    for f, p in zip(fused, plain):
        assert torch.equal(f, p.detach())
    w = torch.rand(7, generator=gen, dtype=torch.float64)
    (ga,) = torch.autograd.grad((fused[0] * w).sum(), xa, retain_graph=retain)
    (gb,) = torch.autograd.grad((plain[0] * w).sum(), xb, retain_graph=retain)
    assert torch.equal(ga, gb)
    if retain:  # again through the retained graphs: the rebuilt differences give the same gradient
        assert torch.equal(torch.autograd.grad((fused[0] * w).sum(), xa)[0], ga)
    torch.autograd.gradcheck(
        lambda t: anchor_distances(t, j, kind, unit=unit_rows_and_norms(t)),
        (torch.randn(7, 4, generator=gen, dtype=torch.float64).requires_grad_(),),
    )
    with pytest.raises(ValueError, match="unit must be"):
        anchor_distances(xa, j, kind, unit=(u, norms.reshape(-1)))


@pytest.mark.parametrize("plus_one", [True, False])
def test_pick_of_several_columns_per_row_joins_the_dense_gradient(plus_one):
    gen = torch.Generator().manual_seed(5)
    s = (torch.rand(2, 5, 7, generator=gen, dtype=torch.float64) * 2 - 1).requires_grad_()
    pick = torch.tensor([[0, 1, 1], [2, 3, 3], [4, 4, 4], [5, 6, 0], [1, 2, 3]]).expand(2, 5, 3)  # repeats allowed
    exclude = torch.arange(5).view(1, 5, 1).expand(2, 5, 1)
    w = torch.rand(2, 5, 3, generator=gen, dtype=torch.float64)
    if plus_one:
        value, picked = log1p_sum_exp(s, None, 3.0, 0.5, exclude=exclude, pick=pick)
    else:
        value, picked = log_sum_exp(s, 3.0, exclude=exclude, pick=pick)
    assert torch.equal(picked, s.gather(-1, pick))
    (value.sum() + (w * picked).sum()).backward()
    t = s.detach().clone().requires_grad_()
    x = (3.0 * (t - (0.5 if plus_one else 0.0))).scatter(-1, exclude, float("-inf"))
    if plus_one:
        x = torch.cat([torch.zeros(2, 5, 1, dtype=t.dtype), x], dim=-1)
    (torch.logsumexp(x, dim=-1).sum() + (w * t.gather(-1, pick)).sum()).backward()
    torch.testing.assert_close(s.grad, t.grad, rtol=1e-12, atol=1e-12)
