"""Chunked exact k-NN against a naive double loop, including duplicates and tie-breaking."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.metrics import iter_knn, knn
from tests.conftest import scaled_settings

# The package re-exports the function ``knn`` under the submodule's name, so fetch the module itself.
knn_module = importlib.import_module("collapse.metrics.knn")


def naive_knn(query, reference, k, exclude_self, distance="euclidean"):
    """Sort every reference point by (distance, index) with a plain python loop, in float64."""
    q = np.asarray(query, dtype=np.float64)
    r = q if reference is None else np.asarray(reference, dtype=np.float64)
    out_d, out_i = [], []
    for i, a in enumerate(q):
        cands = []
        for j, b in enumerate(r):
            if exclude_self and reference is None and i == j:
                continue
            if distance == "euclidean":
                dist = math.sqrt(sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True)))
            else:
                na, nb = max(np.linalg.norm(a), 1e-12), max(np.linalg.norm(b), 1e-12)
                dist = 0.0 if np.array_equal(a, b) else min(max(1.0 - float(a @ b) / (na * nb), 0.0), 2.0)
            cands.append((dist, j))
        cands.sort()
        out_d.append([c[0] for c in cands[:k]])
        out_i.append([c[1] for c in cands[:k]])
    return np.array(out_d), np.array(out_i)


def with_duplicates(rng, x, n_dup):
    """Overwrite ``n_dup`` random rows with copies of other rows (exact ties at distance 0)."""
    x = x.copy()
    for _ in range(n_dup):
        src, dst = rng.integers(len(x), size=2)
        x[dst] = x[src]
    return x


@scaled_settings(25)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 30),
    dim=st.integers(1, 4),
    data=st.data(),
)
def test_self_search_matches_naive_loop(seed, n, dim, data):
    rng = np.random.default_rng(seed)
    x = with_duplicates(rng, rng.standard_normal((n, dim)), data.draw(st.integers(0, n)))
    k = data.draw(st.integers(1, n - 1))
    chunk = data.draw(st.integers(1, n))
    distance = data.draw(st.sampled_from(["euclidean", "cosine"]))
    d, i = knn(x, k=k, chunk_size=chunk, distance=distance)
    d_ref, i_ref = naive_knn(x, None, k, True, distance)
    assert d.shape == (n, k) and i.dtype == torch.long and d.dtype == torch.float64
    np.testing.assert_array_equal(i.numpy(), i_ref)
    np.testing.assert_allclose(d.numpy(), d_ref, rtol=1e-9, atol=1e-9)


@scaled_settings(15)
@given(seed=st.integers(0, 2**31 - 1), nq=st.integers(1, 12), nr=st.integers(1, 20), data=st.data())
def test_query_reference_search_matches_naive_loop(seed, nq, nr, data):
    rng = np.random.default_rng(seed)
    r = with_duplicates(rng, rng.standard_normal((nr, 3)), data.draw(st.integers(0, nr)))
    q = rng.standard_normal((nq, 3))
    # Some queries coincide with reference points: they must come back at distance exactly 0.
    q[: nq // 2] = r[rng.integers(nr, size=nq // 2)]
    k = data.draw(st.integers(1, nr))
    d, i = knn(q, r, k, chunk_size=data.draw(st.integers(1, nq)))
    d_ref, i_ref = naive_knn(q, r, k, False)
    np.testing.assert_array_equal(i.numpy(), i_ref)
    np.testing.assert_allclose(d.numpy(), d_ref, rtol=1e-9, atol=1e-9)
    assert (d[: nq // 2, 0] == 0).all()


@scaled_settings(20)
@given(seed=st.integers(0, 2**31 - 1), log_n=st.integers(1, 5), data=st.data())
def test_geometric_ties_go_to_the_lower_index(seed, log_n, data):
    # Small integer coordinates and a power-of-two N keep the arithmetic exact, so tied distances are
    # bitwise equal and the order among them must be by index.
    n = 2**log_n
    x = np.random.default_rng(seed).integers(-2, 3, size=(n, 2)).astype(np.float64)
    k = data.draw(st.integers(1, n - 1))
    d, i = knn(x, k=k, chunk_size=data.draw(st.integers(1, n)))
    d_ref, i_ref = naive_knn(x, None, k, True)
    np.testing.assert_array_equal(i.numpy(), i_ref)
    np.testing.assert_allclose(d.numpy(), d_ref, rtol=1e-12, atol=0)


@scaled_settings(10)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 40))
def test_float32_distances_are_the_k_smallest(seed, n):
    # float32 rounding may swap near-ties, so check values rather than indices.
    rng = np.random.default_rng(seed)
    x = with_duplicates(rng, rng.standard_normal((n, 5)).astype(np.float32), n // 3)
    k = min(4, n - 1)
    d, i = knn(torch.from_numpy(x), k=k, chunk_size=7)
    assert d.dtype == torch.float32
    d_ref, _ = naive_knn(x, None, k, True)
    np.testing.assert_allclose(d.numpy(), d_ref, rtol=1e-5, atol=1e-3)
    true = np.linalg.norm(x[:, None, :].astype(np.float64) - x[i.numpy()].astype(np.float64), axis=-1)
    np.testing.assert_allclose(d.numpy(), true, rtol=1e-5, atol=1e-3)
    assert (i.numpy() != np.arange(n)[:, None]).all()


def test_self_excluded_by_index_even_with_duplicates():
    # Five copies of one point: every copy must see the four others, never itself, in index order.
    x = np.zeros((7, 2))
    x[5] = [1.0, 0.0]
    x[6] = [0.0, 3.0]
    d, i = knn(x, k=4, chunk_size=2)
    for row in range(5):
        assert i[row].tolist() == [j for j in range(5) if j != row]
        assert (d[row] == 0).all()
    d, i = knn(x, k=1)
    assert i[:5, 0].tolist() == [1, 0, 0, 0, 0]


def test_exclude_self_false_and_explicit_reference_keep_the_self_match():
    x = np.array([[0.0], [0.0], [5.0]])
    _, i = knn(x, k=2, exclude_self=False)
    assert i.tolist() == [[0, 1], [0, 1], [2, 0]]
    # With an explicit reference there is no "self": the copy at index 0 comes first for both copies.
    _, i = knn(x, x, k=2)
    assert i.tolist() == [[0, 1], [0, 1], [2, 0]]


def test_chunks_are_bounded_and_iter_knn_agrees(monkeypatch):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((53, 4)))
    shapes = []
    original = knn_module._Engine.block

    def spy(self, start, stop, **kwargs):
        out = original(self, start, stop, **kwargs)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(knn_module._Engine, "block", spy)
    d, i = knn(x, k=5, chunk_size=8)
    assert max(s[0] for s in shapes) == 8 and all(s[1] == 53 for s in shapes)
    pieces = list(iter_knn(x, k=5, chunk_size=8))
    assert [(a, b) for a, b, _, _ in pieces] == [(s, min(s + 8, 53)) for s in range(0, 53, 8)]
    assert torch.equal(torch.cat([p[3] for p in pieces]), i)
    d_full, i_full = knn(x, k=5, chunk_size=4096)
    assert torch.equal(i_full, i) and torch.allclose(d_full, d)


def test_translation_far_from_origin_is_harmless():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    _, i0 = knn(x, k=3)
    _, i1 = knn(x + np.float32(1e4), k=3)
    assert (i0 == i1).float().mean() > 0.95


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"query": np.zeros((4, 2)), "k": 0}, "k must be"),
        ({"query": np.zeros((4, 2)), "k": 4}, r"k must be an integer in \[1, 3\]"),
        ({"query": np.zeros((4, 2)), "reference": np.zeros((3, 2)), "k": 4}, r"k must be an integer in \[1, 3\]"),
        ({"query": np.zeros((1, 2)), "k": 1}, "at least 2 samples"),
        ({"query": np.array([[0.0, np.nan], [1.0, 1.0]]), "k": 1}, "query must be finite"),
        ({"query": np.zeros((3, 2)), "reference": np.array([[np.inf, 0.0]]), "k": 1}, "reference must be finite"),
        ({"query": np.zeros(4), "k": 1}, r"query must have shape \(N, d\)"),
        ({"query": np.zeros((4, 2)), "reference": np.zeros((4, 3)), "k": 1}, "same dimension"),
        ({"query": np.zeros((4, 2)), "k": 1, "distance": "manhattan"}, "distance must be one of"),
        ({"query": np.zeros((4, 2)), "k": 1, "chunk_size": 0}, "chunk_size must be"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        knn(**kwargs)


def test_non_integer_k_is_a_type_error():
    with pytest.raises(TypeError, match="k must be an integer"):
        knn(np.zeros((4, 2)), k=1.5)
