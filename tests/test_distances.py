"""Distances against naive loops and torch.cdist; gradients at ties; batched stacks."""

import math

import numpy as np
import pytest
import torch

from collapse.distances import (
    DISTANCES,
    CosineDistance,
    EuclideanDistance,
    SquaredEuclideanDistance,
    get_distance,
)


def _unit(row):
    norm = math.sqrt(sum(v * v for v in row))
    return [v / norm for v in row]


def naive_distance(name, x, y=None, normalize=True):
    """Pairwise distances by python loops over plain floats."""
    xs = x.tolist()
    ys = xs if y is None else y.tolist()
    if normalize or name == "cosine":
        xs, ys = [_unit(r) for r in xs], [_unit(r) for r in ys]
    out = []
    for u in xs:
        row = []
        for v in ys:
            if name == "cosine":
                row.append(1.0 - sum(a * b for a, b in zip(u, v)))
            else:
                sq = sum((a - b) ** 2 for a, b in zip(u, v))
                row.append(math.sqrt(sq) if name == "euclidean" else sq)
        out.append(row)
    return torch.tensor(out, dtype=torch.float64)


def _make(name, normalize):
    return CosineDistance() if name == "cosine" else DISTANCES[name](normalize=normalize)


CASES = [("euclidean", True), ("euclidean", False), ("sqeuclidean", True), ("sqeuclidean", False), ("cosine", True)]


@pytest.mark.parametrize("name,normalize", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_loop(name, normalize, seed):
    gen = torch.Generator().manual_seed(seed)
    x = 3.0 * torch.randn(7, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    dist = _make(name, normalize)
    got, ref = dist(x), naive_distance(name, x, normalize=normalize)
    off = ~torch.eye(7, dtype=torch.bool)
    torch.testing.assert_close(got[off], ref[off], rtol=1e-10, atol=1e-12)
    # The self-distance is 0 up to the rounding residue of the expansion formula (sqrt of an ulp of |x|^2).
    assert float(got.diagonal().abs().max()) <= 1e-6
    torch.testing.assert_close(dist(x, y), naive_distance(name, x, y, normalize=normalize), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("normalize", [True, False])
def test_euclidean_matches_cdist(normalize):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 9, 6, generator=gen, dtype=torch.float64)
    ref_in = torch.nn.functional.normalize(x, dim=-1) if normalize else x
    ref = torch.cdist(ref_in, ref_in, compute_mode="donot_use_mm_for_euclid_dist")
    torch.testing.assert_close(EuclideanDistance(normalize=normalize)(x), ref, rtol=0, atol=1e-7)
    torch.testing.assert_close(SquaredEuclideanDistance(normalize=normalize)(x), ref**2, rtol=0, atol=1e-12)


def test_sphere_ranges_and_similarity():
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    d = EuclideanDistance()(x)
    assert float(d.min()) >= 0.0 and float(d.max()) <= 2.0 + 1e-12
    torch.testing.assert_close(d, d.transpose(0, 1))
    cos = CosineDistance()
    dc = cos(x)
    xn = x / x.norm(dim=1, keepdim=True)
    torch.testing.assert_close(cos.similarity(dc), xn @ xn.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(EuclideanDistance().similarity(d), -d)
    # On the sphere the three distances are one another's monotone transforms.
    torch.testing.assert_close(SquaredEuclideanDistance()(x), 2.0 * dc, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,normalize", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identical_embeddings_zero_gradient(name, normalize, dtype):
    dist = _make(name, normalize)
    gen = torch.Generator().manual_seed(5)
    for d in (2, 3, 16, 64):
        v = torch.randn(3, d, generator=gen, dtype=dtype)
        x = torch.cat([v, v[:1], v[:1]]).requires_grad_()  # rows 0, 3 and 4 are identical
        D = dist(x)
        scale = 1.0 if normalize else float(v[0].norm())
        # ~0 up to the expansion formula's documented rounding residue (about sqrt of an ulp of |x|^2) ...
        assert float(D[0, 3].detach()) <= (1e-3 if dtype == torch.float32 else 1e-7) * scale
        # ... the gradient of one identical pair is exactly 0 for the Euclidean forms (it is proportional to x - y) ...
        (grad,) = torch.autograd.grad(D[0, 3], x, retain_graph=True)
        if name != "cosine":
            assert bool((grad == 0).all())
        # ... and with several tied pairs sharing a sample, 0 up to the residue's amplification (0.5 / sqrt(residue)
        # times the rounding of the accumulated gradient): tiny and finite, though not bitwise 0.
        (grad,) = torch.autograd.grad(D[0, 3] + D[3, 4], x, retain_graph=True)
        assert torch.isfinite(grad).all()
        atol = 1e-3 if dtype == torch.float32 else 1e-7
        torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=atol)
        # A whole matrix (diagonal included) still has finite gradients.
        (grad,) = torch.autograd.grad(D.sum(), x)
        assert torch.isfinite(grad).all()


def test_gradient_matches_cdist_off_ties():
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.rand(6, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64).fill_diagonal_(0)
    (w * EuclideanDistance()(x1)).sum().backward()
    xn = torch.nn.functional.normalize(x2, dim=-1)
    (w * torch.cdist(xn, xn, compute_mode="donot_use_mm_for_euclid_dist")).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name,normalize", CASES)
def test_batched_equals_per_group(name, normalize):
    x = torch.randn(3, 8, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    y = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    dist = _make(name, normalize)
    stacked, cross = dist(x), dist(x, y)
    assert stacked.shape == (3, 8, 8) and cross.shape == (3, 8, 5)
    off = ~torch.eye(8, dtype=torch.bool)
    for g in range(3):
        # Off the diagonal (the diagonal is a rounding residue that batched matmul may round differently).
        torch.testing.assert_close(stacked[g][off], dist(x[g])[off], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(cross[g], dist(x[g], y[g]), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(cross[g], naive_distance(name, x[g], y[g], normalize), rtol=1e-10, atol=1e-12)


def test_get_distance_and_validation():
    for name, cls in DISTANCES.items():
        assert isinstance(get_distance(name), cls)
    inst = EuclideanDistance(normalize=False)
    assert get_distance(inst) is inst
    with pytest.raises(ValueError, match="distance"):
        get_distance("manhattan")
    with pytest.raises(ValueError, match="shape"):
        EuclideanDistance()(torch.ones(3))
    assert np.isfinite(EuclideanDistance()(torch.zeros(2, 3)).numpy()).all()  # zero vectors do not give NaN


@pytest.mark.parametrize("name,normalize", CASES)
@pytest.mark.parametrize("lead", [(), (3,)])
def test_order_matrix_orders_every_row_as_the_distances(name, normalize, lead):
    x = torch.randn(*lead, 9, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3.0
    dist = _make(name, normalize)
    prepared = dist.prepare(x)
    order, full = dist.order_matrix(prepared), dist(prepared, prepared=True)
    assert order.shape == full.shape and not order.requires_grad
    # The documented formulas: D^2 minus the row's squared norm (Euclidean), D - 1 (cosine).
    if name == "cosine":
        expected = full - 1.0
    else:
        squared = full * full if name == "euclidean" else full
        expected = squared - (prepared * prepared).sum(-1, keepdim=True)
    torch.testing.assert_close(order, expected, rtol=1e-9, atol=1e-9)
    assert torch.equal(order.argsort(-1), full.argsort(-1))  # no ties in random float64 rows
    if normalize:
        assert float(order.abs().max()) <= dist.order_bound
    else:
        assert dist.order_bound is None
    out = torch.full_like(full, float("nan"))
    assert dist.order_matrix(prepared, out=out) is out and torch.equal(out, order)


@pytest.mark.parametrize("name,normalize", CASES)
@pytest.mark.parametrize("radius", [-0.5, 0.0, 0.4, 1.0, 1.7, 30.0])
def test_order_limit_says_which_entries_lie_within_a_radius(name, normalize, radius):
    x = torch.randn(2, 11, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 3.0
    dist = _make(name, normalize)
    prepared = dist.prepare(x)
    order, full = dist.order_matrix(prepared), dist(prepared, prepared=True)
    limit = dist.order_limit(radius, prepared)
    assert limit.shape == (2, 11, 1)
    away = (full - radius).abs() > 1e-9  # no entry within rounding of the radius decides the comparison
    assert torch.equal((order < limit)[away], (full < radius)[away])
    if radius <= 0 and name == "euclidean":
        assert not (order < limit).any()  # a distance is never below a radius <= 0


def test_radius_search_only_where_the_class_that_defines_the_matrix_defines_it():
    assert EuclideanDistance().radius_search == "unit" and CosineDistance().radius_search == "unit"
    assert EuclideanDistance(normalize=False).radius_search == "order"
    assert SquaredEuclideanDistance(normalize=False).radius_search == "order"

    class Manhattan(EuclideanDistance):  # a new formula that inherits Euclidean's search: it would miss pairs
        def _pairwise(self, x, y, out=None):
            return (x.unsqueeze(-2) - y.unsqueeze(-3)).abs().sum(-1)

    assert Manhattan().radius_search is None and Manhattan(normalize=False).radius_search is None


def test_a_distance_without_an_order_matrix_says_so():
    class Manhattan(EuclideanDistance):
        _order_scale = None

    assert not Manhattan().has_order_matrix and EuclideanDistance().has_order_matrix
    with pytest.raises(NotImplementedError, match="no order matrix"):
        Manhattan().order_matrix(torch.ones(2, 3))
    with pytest.raises(NotImplementedError, match="no order matrix"):
        Manhattan().order_limit(1.0, torch.ones(2, 3))
    with pytest.raises(ValueError, match="shape"):
        EuclideanDistance().order_matrix(torch.ones(3))


@pytest.mark.parametrize("name,normalize", CASES)
def test_order_from_similarity_orders_rows_as_the_distances(name, normalize):
    x = torch.randn(2, 9, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    dist = _make(name, normalize)
    prepared = dist.prepare(x)
    order, bound = dist.order_from_similarity(dist.similarity_matrix(prepared).detach())
    assert torch.equal(order.argsort(-1), dist(prepared, prepared=True).argsort(-1))
    if name == "cosine":  # -P: order_matrix's values, bitwise
        assert torch.equal(order, dist.order_matrix(prepared)) and bound == dist.order_bound
    else:
        assert bound == dist.bound
