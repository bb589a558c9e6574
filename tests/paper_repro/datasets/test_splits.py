"""Zero-shot class splits: standard ranges, the generic split and the fine-class hold-out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paper_repro.datasets.splits import (
    CARS_CLASSES,
    CUB_CLASSES,
    class_range_split,
    fine_holdout_split,
    zero_shot_split,
)


def test_standard_ranges():
    assert (CUB_CLASSES["train"].start, CUB_CLASSES["train"].stop, CUB_CLASSES["test"].stop) == (1, 101, 201)
    assert (CARS_CLASSES["train"].stop - 1, CARS_CLASSES["test"].start, CARS_CLASSES["test"].stop - 1) == (98, 99, 196)
    keep, labels = class_range_split(np.array([5, 150, 101, 100, 200]), CUB_CLASSES["test"], "x")
    assert keep.tolist() == [1, 2, 4] and labels.tolist() == [49, 0, 99]
    with pytest.raises(ValueError, match="x has no images of classes 99-196"):
        class_range_split(np.array([1, 2]), CARS_CLASSES["test"], "x")


@given(st.lists(st.integers(0, 6), min_size=2, max_size=40), st.data())
def test_zero_shot_split_properties(labels, data):
    labels = np.array(labels)
    present = np.unique(labels)
    if present.size < 2:
        with pytest.raises(ValueError, match="at least 2 classes"):
            zero_shot_split(labels)
        return
    n = data.draw(st.integers(1, present.size - 1))
    train, test = zero_shot_split(labels, n)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    assert set(labels[train]) == set(present[:n].tolist()) and set(labels[test]) == set(present[n:].tolist())
    t2, _ = zero_shot_split(labels, train_classes=present[n:].tolist())
    assert np.array_equal(np.sort(t2), np.sort(test))


def test_zero_shot_split_errors():
    labels = np.array([0, 0, 1, 2, 3])
    assert [labels[i].tolist() for i in zero_shot_split(labels)] == [[0, 0, 1], [2, 3]]
    with pytest.raises(ValueError, match=r"n_train_classes must be an integer in \[1, 3\], got 4"):
        zero_shot_split(labels, 4)
    with pytest.raises(ValueError, match=r"train_classes must be a non-empty proper subset .* got \[7\]"):
        zero_shot_split(labels, train_classes=[7])
    with pytest.raises(ValueError, match="not both"):
        zero_shot_split(labels, 1, train_classes=[0])


def test_fine_holdout_keeps_every_coarse_class_on_both_sides():
    fine = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 2)
    coarse = np.array([0, 2, 0, 2, 0, 1, 0, 1, 2, 1] * 2)  # Fashion-MNIST superclasses
    train, test = fine_holdout_split(coarse, fine)
    assert sorted(set(fine[train])) == [0, 1, 2, 3, 5, 7] and sorted(set(fine[test])) == [4, 6, 8, 9]
    assert set(coarse[train]) == set(coarse[test]) == {0, 1, 2}
    with pytest.raises(ValueError, match="fine class 0 appears in coarse classes 0 and 1"):
        fine_holdout_split(np.array([0, 1]), np.array([0, 0]))
