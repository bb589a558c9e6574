"""MNIST / Fashion-MNIST loaders on fake IDX files, and sklearn's digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paper_repro.datasets import get_dataset
from paper_repro.datasets.mnist import FASHION_CLASSES

from .fixtures import idx_bytes, make_idx_set


@pytest.mark.parametrize("gz", [True, False])
def test_official_split_from_idx_files(tmp_path, gz):
    make_idx_set(tmp_path / "mnist", n_train=12, n_test=5, gz=gz)
    train = get_dataset("mnist", root=tmp_path, split="train")
    test = get_dataset("mnist", root=tmp_path, split="test")
    assert len(train) == 12 and len(test) == 5 and train.image_shape == (1, 6, 6)
    assert train.labels.tolist() == [i % 10 for i in range(12)] and train.class_names == [str(d) for d in range(10)]
    x, y = train.get_batch([11, 3])
    assert torch.allclose(x[:, 0, 0, 0], torch.tensor([11 / 255, 3 / 255])) and y.tolist() == [1, 3]
    assert len(get_dataset("mnist", root=tmp_path, split="all")) == 17


def test_fashion_variant_and_zero_shot(tmp_path):
    make_idx_set(tmp_path / "fashion-mnist", n_train=20, n_test=10)
    ds = get_dataset("fashion-mnist", root=tmp_path)
    assert ds.class_names == FASHION_CLASSES and ds.name == "fashion-mnist"
    zs_train = get_dataset("fashion-mnist", root=tmp_path, split="train", zero_shot=True)
    zs_test = get_dataset("fashion-mnist", root=tmp_path, split="test", zero_shot=True)
    assert len(zs_train) + len(zs_test) == 30  # both files pooled
    assert zs_train.class_names == FASHION_CLASSES[:5] and zs_test.class_names == FASHION_CLASSES[5:]
    assert sorted(set(zs_test.labels.tolist())) == [0, 1, 2, 3, 4]  # relabelled 5..9 -> 0..4
    # image i is constant i, label i % 10: the test side holds exactly the images with label >= 5
    values = sorted((zs_test.get_batch(np.arange(len(zs_test)))[0][:, 0, 0, 0] * 255).round().long().tolist())
    assert values == sorted([i for i in range(20) if i % 10 >= 5] + [i for i in range(10) if i >= 5])
    custom = get_dataset("fashion-mnist", root=tmp_path, split="train", zero_shot=True, train_classes=[1, 7])
    assert custom.class_names == ["Trouser", "Sneaker"]


def test_missing_files_say_how_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        get_dataset("mnist", root=tmp_path)
    msg = str(info.value)
    assert f"MNIST not found under {tmp_path / 'mnist'}: expected train-images-idx3-ubyte" in msg
    assert f"python -m paper_repro.datasets.fetch --dataset mnist --root {tmp_path}" in msg
    make_idx_set(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert len(get_dataset("mnist", root=tmp_path, split="train")) == 12  # only the needed part is read
    with pytest.raises(FileNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        get_dataset("mnist", root=tmp_path, split="test")


def test_inconsistent_files_are_rejected(tmp_path):
    files = make_idx_set(tmp_path / "mnist", gz=False)
    files["train-labels-idx1-ubyte"][0].write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte must hold 12 labels to match"):
        get_dataset("mnist", root=tmp_path)
    files["train-labels-idx1-ubyte"][0].write_bytes(idx_bytes(np.full(12, 10, dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"has label 10; MNIST labels are 0..9"):
        get_dataset("mnist", root=tmp_path)
    files["train-images-idx3-ubyte"][0].write_bytes(b"\x00\x00\x08\x05")
    with pytest.raises(ValueError, match="cannot read IDX file"):
        get_dataset("mnist", root=tmp_path)


def test_digits_image_split_is_seeded_stratified_and_disjoint():
    train = get_dataset("digits", split="train")
    test = get_dataset("digits", split="test")
    assert len(train) + len(test) == 1797 and train.image_shape == (1, 8, 8)
    assert abs(len(test) - 0.25 * 1797) < 10
    counts = np.bincount(test.labels) / np.bincount(np.concatenate([train.labels, test.labels]))
    assert np.all(np.abs(counts - 0.25) < 0.02)
    xa, _ = train.get_batch(np.arange(len(train)))
    xb, _ = test.get_batch(np.arange(len(test)))
    assert float(xa.max()) == 1.0 and float(xa.min()) == 0.0
    seen = {tuple(v) for v in xa.flatten(1).tolist()}
    assert sum(tuple(v) in seen for v in xb.flatten(1).tolist()) < 5  # (sklearn has a few duplicate digits)
    again = get_dataset("digits", split="test")
    assert torch.equal(again.get_batch(np.arange(len(again)))[0], xb)
    other = get_dataset("digits", split="test", random_state=1)
    assert not torch.equal(other.get_batch(np.arange(len(other)))[0], xb)


def test_digits_class_split_and_bad_options():
    test = get_dataset("digits", split="test", zero_shot=True)
    assert test.class_names == ["5", "6", "7", "8", "9"] and len(test) == 1797 - len(
        get_dataset("digits", split="train", zero_shot=True)
    )
    with pytest.raises(ValueError, match=r"test_size must be in \(0, 1\), got 1.5"):
        get_dataset("digits", test_size=1.5)
    with pytest.raises(ValueError, match="train_classes needs zero_shot=True"):
        get_dataset("digits", train_classes=[1, 2])
