"""PKBatchSampler: P distinct classes x M distinct members per run, seeded, with clear errors and warnings."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.sampling import PKBatchSampler


def _labels(counts, G=1, seed=0):
    """``(G, n)`` shuffled labels with ``counts[c]`` samples of class c in every run."""
    rng = np.random.default_rng(seed)
    base = np.repeat(np.arange(len(counts)), counts)
    return torch.tensor(np.stack([rng.permutation(base) for _ in range(G)]))


def _quiet(P, M, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return PKBatchSampler(P, M, **kw)


def _check_pk(idx, labels, P, M, counts, distinct=True):
    G = labels.shape[0]
    assert idx.shape == (G, P * M) and idx.dtype == torch.long
    for g in range(G):
        blocks = labels[g][idx[g]].reshape(P, M)
        # Consecutive blocks of M share one class; the P classes are distinct.
        assert bool((blocks == blocks[:, :1]).all())
        classes = blocks[:, 0].tolist()
        assert len(set(classes)) == P
        if distinct:
            assert len(set(idx[g].tolist())) == P * M  # M distinct members of each class
            assert all(counts[c] >= M for c in classes)  # only classes with enough members


@given(
    counts=st.lists(st.integers(1, 7), min_size=2, max_size=8),
    P=st.integers(1, 4),
    M=st.integers(2, 5),
    G=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_pk_structure(counts, P, M, G, seed):
    labels = _labels(counts, G, seed)
    sampler = _quiet(P, M)
    assert sampler.batch_size == P * M
    gen = torch.Generator().manual_seed(seed)
    if sum(c >= M for c in counts) < P:
        with pytest.raises(ValueError, match=rf"classes_per_batch={P}.*>= {M}"):
            sampler.sample(labels, len(counts), gen)
        return
    idx = sampler.sample(labels, len(counts), gen)
    _check_pk(idx, labels, P, M, counts)


def test_one_dimensional_labels_and_determinism():
    labels = _labels([5, 6, 4, 7, 5])[0]
    sampler = PKBatchSampler(3, 4)
    a = sampler.sample(labels, 5, torch.Generator().manual_seed(0))
    b = sampler.sample(labels, 5, torch.Generator().manual_seed(0))
    c = sampler.sample(labels, 5, torch.Generator().manual_seed(1))
    assert a.shape == (12,)
    assert torch.equal(a, b) and not torch.equal(a, c)
    _check_pk(a.unsqueeze(0), labels.unsqueeze(0), 3, 4, [5, 6, 4, 7, 5])


def test_runs_are_independent():
    labels = _labels([6] * 6, G=8, seed=3)
    idx = PKBatchSampler(2, 3).sample(labels, 6, torch.Generator().manual_seed(0))
    picked = {tuple(sorted(labels[g][idx[g]].unique().tolist())) for g in range(8)}
    assert len(picked) > 1  # not the same classes in every run


def test_class_choice_roughly_uniform_among_eligible():
    counts = [4, 4, 4, 4, 2, 4]  # class 4 is too small for M=3
    labels = _labels(counts, G=3000)
    idx = PKBatchSampler(2, 3).sample(labels, 6, torch.Generator().manual_seed(0))
    chosen = torch.gather(labels, 1, idx)[:, ::3]
    freq = np.bincount(chosen.flatten().numpy(), minlength=6) / 3000
    assert freq[4] == 0
    np.testing.assert_allclose(np.delete(freq, 4), 2 / 5, atol=0.04)


def test_warns_when_m_below_three():
    with pytest.warns(UserWarning, match="samples_per_class=2 < 3"):
        PKBatchSampler(4, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PKBatchSampler(4, 3)
    with pytest.raises(ValueError, match="samples_per_class"):
        PKBatchSampler(4, 1)
    with pytest.raises(ValueError, match="classes_per_batch"):
        PKBatchSampler(0, 3)


def test_too_few_eligible_classes_is_a_clear_error():
    labels = _labels([5, 2, 2, 5], G=2)
    with pytest.raises(ValueError, match=r"classes_per_batch=3 needs 3 classes with >= 4 samples.*only 2"):
        PKBatchSampler(3, 4).sample(labels, 4, torch.Generator().manual_seed(0))


def test_replace_tops_up_small_classes():
    counts = [1, 2, 6]
    labels = _labels(counts, G=4, seed=1)
    idx = PKBatchSampler(3, 4, replace=True).sample(labels, 3, torch.Generator().manual_seed(0))
    _check_pk(idx, labels, 3, 4, counts, distinct=False)
    for g in range(4):
        for c, n in enumerate(counts):
            members = set(torch.nonzero(labels[g] == c).flatten().tolist())
            got = [i for i in idx[g].tolist() if int(labels[g, i]) == c]
            assert len(got) == 4 and set(got) <= members
            # Every member of a small class is used; a big class still gets M distinct members.
            assert set(got) == members if n < 4 else len(set(got)) == 4
    # Without replace the same request is an error.
    with pytest.raises(ValueError, match="classes_per_batch"):
        PKBatchSampler(3, 4).sample(labels, 3, torch.Generator().manual_seed(0))
