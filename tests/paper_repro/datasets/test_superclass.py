"""Merging fine classes into coarse ones: coarse labels map correctly and fine labels survive."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from paper_repro.datasets import FASHION_SUPERCLASSES, MNIST_GROUPS, InMemoryImageDataset, get_dataset, merge_classes
from paper_repro.datasets.mnist import FASHION_CLASSES

from .fixtures import make_idx_set


def _toy(labels, names):
    n = len(labels)
    return InMemoryImageDataset(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), labels, names, name="toy")


def test_groupings_are_partitions():
    assert sorted(n for g in FASHION_SUPERCLASSES.values() for n in g) == sorted(FASHION_CLASSES)
    assert sorted(d for g in MNIST_GROUPS.values() for d in g) == list(range(10))


def test_fashion_superclasses_from_idx(tmp_path):
    make_idx_set(tmp_path / "fashion-mnist", n_train=30, n_test=10)
    ds = get_dataset("fashion-mnist-super", root=tmp_path)
    assert ds.class_names == ["tops", "footwear", "other"] and ds.fine_names == FASHION_CLASSES
    assert ds.fine_labels.tolist() == [i % 10 for i in range(30)]  # the original class survives
    for lab, fine in zip(ds.labels, ds.fine_labels):
        assert FASHION_CLASSES[fine] in FASHION_SUPERCLASSES[ds.class_names[lab]]
    assert ds.labels[:10].tolist() == [0, 2, 0, 2, 0, 1, 0, 1, 2, 1]
    assert (
        ds.name == "fashion-mnist-super" and len(get_dataset("fashion-mnist-super", root=tmp_path, split="test")) == 10
    )


def test_mnist_groups_and_zero_shot_on_fine_labels(tmp_path):
    make_idx_set(tmp_path / "mnist", n_train=20, n_test=10)
    ds = get_dataset("mnist-groups", root=tmp_path)
    assert ds.class_names == ["round", "straight", "other"]
    assert [ds.labels[d] for d in range(10)] == [0, 1, 2, 2, 1, 2, 0, 1, 0, 0]
    parity = get_dataset("mnist-groups", root=tmp_path, groups="parity")
    assert parity.labels[:10].tolist() == [0, 1] * 5 and parity.fine_labels[:10].tolist() == list(range(10))
    test = get_dataset("mnist-groups", root=tmp_path, split="test", zero_shot=True, split_on="fine")
    train = get_dataset("mnist-groups", root=tmp_path, split="train", zero_shot=True, split_on="fine")
    assert sorted(set(test.fine_labels.tolist())) == [5, 7, 8, 9]  # round 0,6|8,9; straight 1,4|7; other 2,3|5
    assert sorted(set(train.fine_labels.tolist())) == [0, 1, 2, 3, 4, 6]
    assert set(test.labels.tolist()) == set(train.labels.tolist()) == {0, 1, 2}  # coarse labels kept
    assert len(train) + len(test) == 30
    coarse = get_dataset("mnist-groups", root=tmp_path, split="test", zero_shot=True)
    assert coarse.class_names == ["straight", "other"] and coarse.labels.max() == 1
    with pytest.raises(ValueError, match="train_classes and split_on need zero_shot=True"):
        get_dataset("mnist-groups", root=tmp_path, split_on="fine")


def test_merge_by_names_or_ids_shares_pixels():
    base = _toy([0, 1, 2, 3, 1], ["a", "b", "c", "d"])
    merged = merge_classes(base, {"x": ["a", 3], "y": ("b", "c")}, name="m")
    assert merged.labels.tolist() == [0, 1, 1, 0, 1] and merged.class_names == ["x", "y"]
    assert merged.fine_labels.tolist() == [0, 1, 2, 3, 1] and merged.fine_names == ["a", "b", "c", "d"]
    assert merged.images is base.images and base.labels.tolist() == [0, 1, 2, 3, 1] and base.fine_labels is None
    sub = merged.subset([1, 3])
    assert sub.labels.tolist() == [1, 0] and sub.fine_labels.tolist() == [1, 3]


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"x": ["a", "b"], "y": ["c"]}, "every class must be in a group; missing d"),
        ({"x": ["a", "b"], "y": ["b", "c", "d"]}, "class 'b' is in more than one group"),
        ({"x": ["a", "b", "zz"], "y": ["c", "d"]}, r"unknown class 'zz' in groups; allowed: ids 0..3 or names a, b"),
        ({"x": [0, 1, 4], "y": [2, 3]}, "unknown class 4"),
        ({}, "groups must be a non-empty mapping"),
    ],
)
def test_merge_errors(groups, message):
    with pytest.raises(ValueError, match=message):
        merge_classes(_toy([0, 1, 2, 3], ["a", "b", "c", "d"]), groups)


@given(st.lists(st.integers(0, 7), min_size=1, max_size=30), st.lists(st.integers(0, 2), min_size=8, max_size=8))
def test_merge_property(labels, assignment):
    groups = {f"g{g}": [c for c in range(8) if assignment[c] == g] for g in sorted(set(assignment))}
    merged = merge_classes(_toy(labels, [f"c{c}" for c in range(8)]), groups)
    order = list(groups)
    for lab, fine in zip(merged.labels, merged.fine_labels):
        assert fine in groups[order[lab]]
    np.testing.assert_array_equal(merged.fine_labels, labels)
