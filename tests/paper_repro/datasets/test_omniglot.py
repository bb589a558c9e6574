"""Omniglot loader on fake background/evaluation folders in the official layout."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from paper_repro.datasets import get_dataset

from .fixtures import OMNIGLOT, corrupt, make_omniglot


def test_alphabet_labels_with_character_as_fine_label(tmp_path):
    make_omniglot(tmp_path)
    train = get_dataset("omniglot", root=tmp_path, split="train")
    assert train.class_names == ["Alpha_A", "Alpha_B"]  # sorted, not in creation order
    assert train.fine_names == ["Alpha_A/character01", "Alpha_B/character01", "Alpha_B/character02"]
    assert train.labels.tolist() == [0, 0, 1, 1, 1, 1, 1]
    assert train.fine_labels.tolist() == [0, 0, 1, 1, 2, 2, 2]
    # every fine label lies inside one class
    assert all(len(set(train.labels[train.fine_labels == f])) == 1 for f in range(3))
    test = get_dataset("omniglot", root=tmp_path, split="test")
    assert test.class_names == ["Delta", "Gamma"] and test.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(get_dataset("omniglot", root=tmp_path, split="all").class_names) == 4


def test_character_labels(tmp_path):
    make_omniglot(tmp_path)
    ds = get_dataset("omniglot", root=tmp_path, split="test", label="character")
    assert ds.class_names == ["Delta/character01", "Gamma/character01", "Gamma/character02"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 2, 2] and ds.fine_labels is None


def test_pixels_grey_binary_and_inverted(tmp_path):
    make_omniglot(tmp_path, size=9)
    ds = get_dataset("omniglot", root=tmp_path, split="train")
    x, _ = ds[1]  # Alpha_A/character01/0001_02.png: black pixel at (row 1, col 2)
    assert x.shape == (1, 9, 9) and ds.image_shape is None
    expected = torch.ones(1, 9, 9)
    expected[0, 1, 2] = 0
    assert torch.equal(x, expected)
    inv = get_dataset("omniglot", root=tmp_path, split="train", invert=True, size=4)
    xb, _ = inv.get_batch(np.arange(len(inv)))
    assert xb.shape == (7, 1, 4, 4) and inv.image_shape == (1, 4, 4) and float(xb.max()) > 0 and float(xb.min()) == 0


def test_python_subfolder_and_missing_split(tmp_path):
    folder = make_omniglot(tmp_path)
    (folder / "python").mkdir()
    shutil.move(folder / "images_evaluation", folder / "python" / "images_evaluation")
    assert len(get_dataset("omniglot", root=tmp_path, split="test")) == 6
    shutil.rmtree(folder / "images_background")
    with pytest.raises(FileNotFoundError, match=r"Omniglot not found under .*omniglot: expected images_background/"):
        get_dataset("omniglot", root=tmp_path, split="train")
    with pytest.raises(FileNotFoundError, match="missing images_background/"):
        get_dataset("omniglot", root=tmp_path, split="all")
    with pytest.raises(ValueError, match="label must be one of alphabet, character; got 'stroke'"):
        get_dataset("omniglot", root=tmp_path, split="test", label="stroke")


def test_corrupt_png_named_and_skipped(tmp_path):
    folder = make_omniglot(tmp_path)
    bad = folder / "images_evaluation" / "Gamma" / "character02" / "0002_01.png"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) - 30])  # cut into the image data: the fast PNG check must see it
    ds = get_dataset("omniglot", root=tmp_path, split="test")
    with pytest.raises(ValueError, match=f"cannot read image {bad}"):
        [ds[i] for i in range(len(ds))]
    with pytest.warns(UserWarning, match="skipped 1"):
        ok = get_dataset("omniglot", root=tmp_path, split="test", skip_bad=True)
    assert ok.bad_files == [str(bad)] and len(ok) == 5 and ok.fine_labels.tolist() == [0, 0, 0, 1, 2]
    corrupt(folder / "images_evaluation" / "Delta" / "character01" / "0001_01.png")
    with pytest.warns(UserWarning, match="skipped 2"):
        assert get_dataset("omniglot", root=tmp_path, split="test", skip_bad=True).n_bad == 2


def test_fixture_counts_match_layout_description():
    assert sum(sum(c) for c in OMNIGLOT["images_background"].values()) == 7
