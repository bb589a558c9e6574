"""The fused selection on CPU batches large enough to take the paths small tests never reach: several row chunks
in :func:`collapse.sampling.fused.fused_negatives` and batches above 512. Fused against the generic rules and
against naive loops, float32 and float64, with exact ties (integer distances) and without (float embeddings), and
the same tuples whatever the chunk size."""

from __future__ import annotations

import pytest
import torch

import collapse.sampling.fused as fused
from collapse.losses import TripletMarginLoss
from collapse.sampling import Sampler
from tests.sampling import as_lists, naive_tuples
from tests.sampling.test_fused import _generic

#: Above 512, and above the 363 rows at which float64 rows of this length fill a 1 MiB chunk (so the default CPU
#: chunk size splits one group into 3 chunks in float64 and 2 in float32).
BATCH = 600
GROUPS = 2
DTYPES = [torch.float32, torch.float64]


def tied_batch(dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """L1 distances between points of a 6 x 6 integer grid: integers 0..10, exact in both dtypes, so nearly every
    row has ties (between candidates, and at the semi-hard threshold D_an == D_ap)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 6, (GROUPS, BATCH, 2), generator=gen).to(dtype)
    D = (x.unsqueeze(2) - x.unsqueeze(1)).abs().sum(-1)
    labels = torch.randint(0, 40, (GROUPS, BATCH), generator=gen)
    return D, labels


def float_batch(dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances of unit vectors (what a loss hands the sampler), computed by broadcasting so the matrix
    is exactly symmetric."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(GROUPS, BATCH, 8, generator=gen, dtype=torch.float64), dim=-1)
    D = (x.unsqueeze(2) - x.unsqueeze(1)).pow(2).sum(-1).sqrt().to(dtype)
    labels = torch.randint(0, 30, (GROUPS, BATCH), generator=gen)
    return D, labels


BATCHES = {"tied": tied_batch, "float": float_batch}


def _keys(*cols: torch.Tensor) -> torch.Tensor:
    """Each row of index columns as one sorted int64 key (vectorised; python lists of 10^5 triplets are slow)."""
    key = torch.zeros_like(cols[0])
    for c in cols:
        key = key * (GROUPS * BATCH) + c
    return key.sort().values


def _same_tuples(a, b) -> None:
    """The same positive pairs, negative pairs, triplets (when stored) and counts, compared as tensors."""
    x, y = a.positive_pairs, b.positive_pairs
    assert torch.equal(_keys(x.g, x.a, x.b), _keys(y.g, y.a, y.b))
    assert a.per_positive_negatives == b.per_positive_negatives
    if a.per_positive_negatives:  # the negative pairs are the triplets' halves
        x, y = a.triplets, b.triplets
        assert torch.equal(_keys(x.g, x.a, x.p, x.n), _keys(y.g, y.a, y.p, y.n))
    else:  # every negative of an anchor with a positive: the mask is the whole story
        assert torch.equal(a.negative_mask(), b.negative_mask())
    assert (a.anchors_without_positive, a.anchors_without_negative) == (
        b.anchors_without_positive,
        b.anchors_without_negative,
    )


def n_chunks(D: torch.Tensor) -> int:
    """How many row chunks fused_negatives splits ``D`` into (mirrors its step computation)."""
    rows, batch = D.shape[0] * D.shape[-1], D.shape[-1]
    step = min(rows, max(1, fused.CHUNK_BYTES["cpu"] // (batch * D.element_size())))
    return -(-rows // step)


def test_the_default_chunk_size_splits_these_batches():
    # If CHUNK_BYTES grows, the tests below still force chunks (monkeypatched), but say so here.
    for dtype in DTYPES:
        D, _ = tied_batch(dtype)
        assert n_chunks(D[:1]) >= 2 and n_chunks(D) >= 3


@pytest.mark.parametrize("kind", sorted(BATCHES))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("negative", ["hard", "semihard", pytest.param("all", marks=pytest.mark.slow)])
@pytest.mark.parametrize("positive", ["easy", "hard"])
def test_fused_equals_generic_past_512_in_several_chunks(positive, negative, dtype, kind):
    D, labels = BATCHES[kind](dtype)
    generic = _generic(positive, negative)(D, labels, dim=2, warn=False)
    _same_tuples(Sampler(positive, negative)(D, labels, dim=2, warn=False), generic)
    # The loss hands its scratch matrix over with overwrite=True: the rows are then the work buffer.
    _same_tuples(Sampler(positive, negative)(D.clone(), labels, dim=2, warn=False, overwrite=True), generic)
    assert len(generic.positive_pairs) > BATCH  # both groups, nearly every anchor has a positive


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("negative", ["hard", "semihard"])
@pytest.mark.parametrize("positive", ["easy", "hard"])
def test_fused_equals_naive_loop_past_512(positive, negative, dtype):
    D, labels = tied_batch(dtype, seed=1)
    out = Sampler(positive, negative)(D, labels, dim=2, warn=False)
    for g in range(GROUPS):
        _, _, trip, missing, lacking = naive_tuples(positive, negative, D[g].tolist(), labels[g].tolist())
        assert as_lists(out.triplets, g) == trip
    # Some anchors of the tied semi-hard case find no negative strictly farther than their positive.
    assert len(out.triplets) > BATCH


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("kind", sorted(BATCHES))
@pytest.mark.parametrize("rule", ["hard", "semihard"])
def test_chunk_size_does_not_change_the_result(monkeypatch, rule, kind, dtype):
    D, labels = BATCHES[kind](dtype, seed=2)
    row_bytes = BATCH * D.element_size()
    results = []
    for rows_per_chunk in (1, 7, 363, BATCH + 1, GROUPS * BATCH):
        monkeypatch.setitem(fused.CHUNK_BYTES, "cpu", rows_per_chunk * row_bytes)
        segments = fused.LabelSegments(labels)
        p_index, has_pos, _ = fused.fused_positives(D, segments, "easy", None)
        d_ap = D.gather(-1, p_index.unsqueeze(-1)).squeeze(-1)
        results.append(fused.fused_negatives(D, segments, rule, d_ap))
    first_index, first_valid = results[0]
    for index, valid in results[1:]:
        assert torch.equal(valid, first_valid) and torch.equal(index, first_index)
    assert 0 < int(first_valid.sum()) <= GROUPS * BATCH


@pytest.mark.slow
def test_triplet_loss_is_the_same_through_the_fused_and_the_generic_path():
    D, labels = float_batch(torch.float64)
    gen = torch.Generator().manual_seed(3)
    x = torch.nn.functional.normalize(torch.randn(GROUPS, BATCH, 8, generator=gen, dtype=torch.float64), dim=-1)
    for positive in ("easy", "hard"):
        fused_loss = TripletMarginLoss(margin=0.2, sampler=Sampler(positive, "semihard"))
        generic_loss = TripletMarginLoss(margin=0.2, sampler=_generic(positive, "semihard"))
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_a, out_b = fused_loss(a, labels), generic_loss(b, labels)
        out_a.loss.backward()
        out_b.loss.backward()
        _same_tuples(out_a.tuples, out_b.tuples)
        torch.testing.assert_close(out_a.per_group, out_b.per_group, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)
