"""CUB-200-2011 loader on a fake archive in the official layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paper_repro.datasets import get_dataset

from .fixtures import CUB_NAMES, corrupt, make_cub


@pytest.fixture
def cub(tmp_path):
    return make_cub(tmp_path)


def _check_pixels(ds, ids):
    """Image k is (10 + 7k) wide and has red value 40 + k (JPEG is lossy, hence the tolerance)."""
    for i, k in enumerate(ids):
        x, _ = ds[i]
        assert x.shape[0] == 3 and x.shape[2] == 10 + 7 * k and 0 <= x.min() and x.max() <= 1
        assert abs(float(x[0].mean()) * 255 - (40 + k)) < 3


def test_zero_shot_class_split(cub, tmp_path):
    train = get_dataset("cub", root=tmp_path, split="train")
    test = get_dataset("cub", root=tmp_path, split="test")
    classes = cub["classes"]
    assert len(train) == int((classes <= 100).sum()) == 5 and len(test) == 6
    assert train.labels.tolist() == [0, 0, 0, 1, 1]  # classes 1 and 2
    assert test.labels.tolist() == [0, 0, 1, 1, 1, 99]  # classes 101, 102, 200
    assert train.class_names == CUB_NAMES[:100] and test.class_names == CUB_NAMES[100:]
    assert train.fine_labels is None and train.name == "cub"
    _check_pixels(train, cub["ids"][classes <= 100])
    _check_pixels(test, cub["ids"][classes > 100])
    assert len(get_dataset("cub", root=tmp_path, split="all")) == 11


def test_grey_jpeg_is_served_as_rgb(cub, tmp_path):
    ds = get_dataset("cub", root=tmp_path)
    x, _ = ds[2]  # image id 3 is a greyscale JPEG
    assert x.shape[0] == 3 and torch.allclose(x[0], x[1]) and torch.allclose(x[1], x[2])


def test_official_image_split(cub, tmp_path):
    train = get_dataset("cub", root=tmp_path, split="train", protocol="official")
    test = get_dataset("cub", root=tmp_path, split="test", protocol="official")
    is_train = cub["is_train"] == 1
    assert train.labels.tolist() == (cub["classes"][is_train] - 1).tolist()
    assert test.labels.tolist() == (cub["classes"][~is_train] - 1).tolist()
    assert train.n_classes == 200


def test_size_and_bounding_box_crop(cub, tmp_path):
    ds = get_dataset("cub", root=tmp_path, size=(8, 16))
    x, y = ds.get_batch(range(len(ds)))
    assert x.shape == (5, 3, 8, 16) and ds.image_shape == (3, 8, 16) and y.tolist() == [0, 0, 0, 1, 1]
    crop = get_dataset("cub", root=tmp_path, crop_bbox=True)
    for i, k in enumerate(cub["ids"][:5]):  # box "k 1 2 (5+k) 6" is x=1, y=2, w=5+k, h=6
        assert tuple(crop[i][0].shape) == (3, 6, 5 + k)


def test_corrupt_image_named_then_skipped(cub, tmp_path):
    bad = sorted((cub["folder"] / "images" / CUB_NAMES[1]).glob("*.jpg"))[0]
    corrupt(bad)
    ds = get_dataset("cub", root=tmp_path)
    with pytest.raises(ValueError, match=rf"cannot read image {bad}: "):
        ds[3]
    with pytest.warns(UserWarning, match="skipped 1"):
        ok = get_dataset("cub", root=tmp_path, skip_bad=True)
    assert ok.n_bad == 1 and ok.bad_files == [str(bad)] and ok.labels.tolist() == [0, 0, 0, 1]
    assert all(ok[i][0].shape[0] == 3 for i in range(len(ok)))  # every remaining file decodes


def test_missing_archive_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        get_dataset("cub", root=tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"CUB-200-2011 not found under {tmp_path / 'CUB_200_2011'}: expected images.txt, ")
    assert "train_test_split.txt and images/ (the official archive, extracted)" in msg


def test_incomplete_or_malformed_archive(cub, tmp_path):
    folder = cub["folder"]
    (folder / "classes.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing classes.txt$"):
        get_dataset("cub", root=tmp_path)
    (folder / "classes.txt").write_text("".join(f"{c} {n}\n" for c, n in enumerate(CUB_NAMES[:150], start=1)))
    with pytest.raises(ValueError, match=r"image_class_labels.txt: class ids \[200\] not in classes.txt"):
        get_dataset("cub", root=tmp_path, split="test")
    (folder / "classes.txt").write_text("".join(f"{c} {n}\n" for c, n in enumerate(CUB_NAMES, start=1)))
    (folder / "train_test_split.txt").write_text("1 1\n2\n")
    with pytest.raises(
        ValueError, match=r"malformed .*train_test_split.txt line 2: expected '<image_id> <is_training>'"
    ):
        get_dataset("cub", root=tmp_path)
    (folder / "train_test_split.txt").write_text("1 1\n")
    with pytest.raises(ValueError, match=r"train_test_split.txt: its image ids must match images.txt"):
        get_dataset("cub", root=tmp_path)
    (folder / "bounding_boxes.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing bounding_boxes.txt"):
        get_dataset("cub", root=tmp_path, crop_bbox=True)


def test_root_may_be_the_archive_folder_itself(cub):
    ds = get_dataset("cub", root=cub["folder"], split="test")
    assert len(ds) == 6 and np.bincount(ds.labels).tolist()[:2] == [2, 3]
