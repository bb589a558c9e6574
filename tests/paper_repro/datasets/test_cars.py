"""Cars196 loader on fake data in both official layouts (cars_annos.mat and the devkit)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from paper_repro.datasets import get_dataset
from paper_repro.datasets.cars import read_mat_struct

from .fixtures import CARS_NAMES, corrupt, make_cars_annos, make_cars_devkit


def _expected(rows, classes, first):
    return [r["class"] - first for r in rows if r["class"] in classes]


def test_annos_layout_zero_shot(tmp_path):
    rows = make_cars_annos(tmp_path)["rows"]
    train = get_dataset("cars", root=tmp_path, split="train")
    test = get_dataset("cars", root=tmp_path, split="test")
    assert train.labels.tolist() == _expected(rows, range(1, 99), 1) == [0, 0, 1, 1, 97]
    assert test.labels.tolist() == _expected(rows, range(99, 197), 99) == [0, 0, 97, 97]
    assert train.class_names == CARS_NAMES[:98] and test.class_names == CARS_NAMES[98:]
    ks = [r["k"] for r in rows if r["class"] >= 99]
    for i, k in enumerate(ks):  # image k is (20 + k) wide with red value 30 + 10k
        x, _ = test[i]
        assert x.shape == (3, 15, 20 + k) and abs(float(x[0].mean()) * 255 - (30 + 10 * k)) < 3


def test_annos_layout_official_split_and_boxes(tmp_path):
    rows = make_cars_annos(tmp_path)["rows"]
    test = get_dataset("cars", root=tmp_path, split="test", protocol="official")
    assert test.labels.tolist() == [r["class"] - 1 for r in rows if r["test"]] and test.n_classes == 196
    crop = get_dataset("cars", root=tmp_path, split="all", protocol="official", crop_bbox=True)
    for i, r in enumerate(rows):  # MATLAB box (2, 3, 6+k, 9) -> pixels x 1..6+k, y 2..9
        assert tuple(crop[i][0].shape) == (3, 7, 5 + r["k"])


@pytest.mark.parametrize("test_in_devkit", [False, True])
def test_devkit_layout(tmp_path, test_in_devkit):
    rows = make_cars_devkit(tmp_path, test_in_devkit=test_in_devkit)["rows"]
    train = get_dataset("cars", root=tmp_path, split="train")
    test = get_dataset("cars", root=tmp_path, split="test")
    assert train.labels.tolist() == _expected(rows, range(1, 99), 1)
    assert test.labels.tolist() == _expected(rows, range(99, 197), 99)
    assert sorted(train.labels.tolist() + [98 + c for c in test.labels.tolist()]) == sorted(
        r["class"] - 1 for r in rows
    )
    sizes = [10 + r["k"] for r in rows if r["class"] < 99]
    assert [train[i][0].shape[1] for i in range(len(train))] == sizes  # the right file for each annotation
    official = get_dataset("cars", root=tmp_path, split="train", protocol="official")
    assert all("cars_train" in p for p in official.paths)
    assert official.labels.tolist() == [r["class"] - 1 for r in rows if not r["test"]]


def test_layout_choice_and_missing_data(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Cars196 not found under .*cars196: expected either cars_annos.mat"):
        get_dataset("cars", root=tmp_path)
    make_cars_devkit(tmp_path)
    with pytest.raises(FileNotFoundError, match="devkit/cars_meta.mat"):
        get_dataset("cars", root=tmp_path, layout="annos")
    assert len(get_dataset("cars", root=tmp_path, layout="devkit", split="all")) == 7
    with pytest.raises(ValueError, match="layout must be one of auto, annos, devkit; got 'zip'"):
        get_dataset("cars", root=tmp_path, layout="zip")


def test_malformed_mat_files(tmp_path):
    folder = make_cars_annos(tmp_path)["folder"]
    mat = folder / "cars_annos.mat"
    rec = read_mat_struct(mat, "annotations", ("relative_im_path", "class"))
    assert [int(c) for c in rec["class"]] == [1, 1, 2, 2, 98, 99, 99, 196, 196]
    savemat(mat, {"annotations": np.zeros((1, 2), dtype=[("relative_im_path", object), ("test", object)])})
    with pytest.raises(ValueError, match=r"malformed .*cars_annos.mat: 'annotations' lacks field\(s\) bbox_x1"):
        get_dataset("cars", root=tmp_path)
    mat.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"cannot read .*cars_annos.mat"):
        get_dataset("cars", root=tmp_path)


def test_class_ids_out_of_range_are_rejected(tmp_path):
    folder = make_cars_annos(tmp_path, {1: 1, 99: 1})["folder"]
    cell = np.empty((1, 50), dtype=object)
    cell[0, :] = [np.array([n]) for n in CARS_NAMES[:50]]
    raw = loadmat(folder / "cars_annos.mat")
    savemat(folder / "cars_annos.mat", {"annotations": raw["annotations"], "class_names": cell})
    with pytest.raises(ValueError, match=r"class ids must be 1..50 .*got 1..99"):
        get_dataset("cars", root=tmp_path)


def test_corrupt_car_image_is_skipped(tmp_path):
    folder = make_cars_annos(tmp_path)["folder"]
    corrupt(folder / "car_ims" / "000002.jpg")
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = get_dataset("cars", root=tmp_path, skip_bad=True)
    assert ds.n_bad == 1 and ds.bad_files[0].endswith("car_ims/000002.jpg") and ds.labels.tolist() == [0, 1, 1, 97]
