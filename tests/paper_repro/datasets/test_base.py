"""ImageDataset behaviour shared by all loaders: items, batches, transforms, subsets, corrupt files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from paper_repro.datasets import FileImageDataset, InMemoryImageDataset
from paper_repro.datasets.decode import read_image

from .fixtures import corrupt, write_image


def _toy(n=7, transform=None):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).repeat(1, 2, 3, 3) * 10
    return InMemoryImageDataset(images, np.arange(n) % 3, ["a", "b", "c"], name="toy", transform=transform)


def test_in_memory_items_and_batches_agree():
    ds = _toy()
    assert len(ds) == 7 and ds.image_shape == (2, 3, 3) and ds.n_classes == 3
    x, y = ds[4]
    assert x.dtype == torch.float32 and x.shape == (2, 3, 3) and y == 1 and isinstance(y, int)
    assert torch.allclose(x, torch.full_like(x, 40 / 255))
    xb, yb = ds.get_batch([4, 0, 6])
    assert xb.shape == (3, 2, 3, 3) and yb.dtype == torch.int64
    assert torch.equal(xb[0], x) and yb.tolist() == [1, 0, 0]
    assert ds[-1][1] == ds[6][1]
    with pytest.raises(IndexError, match="index 7 is out of range for toy with 7 images"):
        ds[7]


def test_transform_is_applied_in_items_and_batches():
    ds = _toy(transform=lambda x: 1 - x[:1])
    x, _ = ds[2]
    assert x.shape == (1, 3, 3) and torch.allclose(x, torch.full_like(x, 1 - 20 / 255))
    xb, _ = ds.get_batch(np.array([2, 3]))
    assert torch.equal(xb[0], x)


def test_dataloader_collates_items():
    xb, yb = next(iter(DataLoader(_toy(), batch_size=4)))
    assert xb.shape == (4, 2, 3, 3) and yb.tolist() == [0, 1, 2, 0]


def test_subset_keeps_or_renumbers_classes():
    ds = _toy()
    sub = ds.subset([1, 2, 4, 5])  # classes 1, 2, 1, 2
    assert sub.labels.tolist() == [1, 2, 1, 2] and sub.class_names == ["a", "b", "c"]
    assert torch.equal(sub[2][0], ds[4][0])
    re = ds.subset(torch.tensor([1, 2, 4, 5]), relabel=True)
    assert re.labels.tolist() == [0, 1, 0, 1] and re.class_names == ["b", "c"]
    assert len(ds) == 7 and ds.labels.tolist() == [0, 1, 2, 0, 1, 2, 0]  # the original is untouched


@pytest.mark.parametrize(
    ("indices", "error", "message"),
    [
        ([0, 7], ValueError, r"indices must be in \[0, 7\), got values from 0 to 7"),
        ([-1], ValueError, r"indices must be in \[0, 7\)"),
        ([[0, 1]], ValueError, "one-dimensional"),
        ([0.5], TypeError, "must be integers"),
    ],
)
def test_bad_indices_are_one_line_errors(indices, error, message):
    with pytest.raises(error, match=message):
        _toy().get_batch(indices)


def test_bad_construction_is_rejected():
    img = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 2\)"):
        InMemoryImageDataset(img, [0, 1, 2], ["a", "b"], name="x")
    with pytest.raises(ValueError, match="got 3 images but 2 labels"):
        InMemoryImageDataset(img, [0, 1], ["a", "b"], name="x")
    with pytest.raises(ValueError, match="uint8 tensor"):
        InMemoryImageDataset(img.float(), [0, 1, 1], ["a", "b"], name="x")
    with pytest.raises(ValueError, match="fine_labels and fine_names must be given together"):
        InMemoryImageDataset(img, [0, 1, 1], ["a", "b"], name="x", fine_labels=[0, 0, 0])


def _files(tmp_path, n=4):
    paths = []
    for i in range(n):
        p = tmp_path / f"img{i}.png"
        write_image(p, (4 + i, 3), 50 * i, "RGB" if i % 2 else "L")
        paths.append(p)
    return paths


def test_file_dataset_converts_modes_and_resizes(tmp_path):
    paths = _files(tmp_path)
    rgb = FileImageDataset(paths, [0, 1, 0, 1], ["a", "b"], name="f", mode="RGB")
    assert rgb.image_shape is None
    x, _ = rgb[0]  # a grey file served as 3 equal channels
    assert x.shape == (3, 3, 4) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    grey = FileImageDataset(paths, [0, 1, 0, 1], ["a", "b"], name="f", mode="L", size=(5, 6))
    assert grey.image_shape == (1, 5, 6)
    xb, yb = grey.get_batch([0, 1, 2, 3])
    assert xb.shape == (4, 1, 5, 6) and 0 <= xb.min() and xb.max() <= 1 and yb.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match=r"different shapes .*load with size=\(H, W\) or give a transform"):
        rgb.get_batch([0, 1])
    with pytest.raises(ValueError, match="size must be None, a positive int or a pair"):
        FileImageDataset(paths, [0, 1, 0, 1], ["a", "b"], name="f", size=(0, 3))
    with pytest.raises(ValueError, match="mode must be one of RGB, L"):
        FileImageDataset(paths, [0, 1, 0, 1], ["a", "b"], name="f", mode="CMYK")


def test_read_image_crop_box_and_cmyk(tmp_path):
    p = tmp_path / "c.jpg"
    write_image(p, (10, 8), 200, "CMYK", "JPEG")
    x = read_image(p, "RGB", box=(1, 2, 7, 5))
    assert x.shape == (3, 3, 6) and x.dtype == torch.uint8
    assert read_image(p, "L", size=(4, 4), invert=True).shape == (1, 4, 4)


def test_corrupt_file_is_named_on_touch(tmp_path):
    paths = _files(tmp_path)
    corrupt(paths[2])
    ds = FileImageDataset(paths, [0, 1, 0, 1], ["a", "b"], name="f")
    assert ds.n_bad == 0 and len(ds) == 4  # nothing is checked up front without skip_bad
    ds[1]
    with pytest.raises(ValueError, match=rf"^cannot read image {paths[2]}: UnidentifiedImageError"):
        ds[2]
    missing = FileImageDataset([tmp_path / "nope.png"], [0], ["a"], name="f")
    with pytest.raises(ValueError, match=r"cannot read image .*nope.png: FileNotFoundError"):
        missing[0]


def test_skip_bad_drops_and_counts_up_front(tmp_path):
    paths = _files(tmp_path, 5)
    corrupt(paths[1])
    paths[3].unlink()
    with pytest.warns(UserWarning, match=r"f: skipped 2 unreadable image\(s\)"):
        ds = FileImageDataset(paths, [0, 1, 2, 1, 0], ["a", "b", "c"], name="f", skip_bad=True)
    assert ds.n_bad == 2 and ds.bad_files == [str(paths[1]), str(paths[3])]
    assert "UnidentifiedImageError" in ds.bad_reasons[str(paths[1])]
    assert len(ds) == 3 and ds.labels.tolist() == [0, 2, 0] and ds.paths == [str(paths[i]) for i in (0, 2, 4)]
    assert [ds[i][0].shape[-1] for i in range(3)] == [4, 6, 8]  # the right files remain, in order
    assert ds.subset([1]).bad_files == ds.bad_files


def _truncated_jpeg(path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, format="JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_jpeg_fast_check_versus_full_check(tmp_path):
    paths = _files(tmp_path, 2)
    paths.append(tmp_path / "trunc.jpg")
    _truncated_jpeg(paths[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fast check must not flag it, so no warning
        fast = FileImageDataset(paths, [0, 1, 0], ["a", "b"], name="f", skip_bad=True)
    assert fast.n_bad == 0
    with pytest.raises(ValueError, match=r"cannot read image .*trunc.jpg: .*use verify='full'"):
        fast[2]
    with pytest.warns(UserWarning, match="skipped 1"):
        full = FileImageDataset(paths, [0, 1, 0], ["a", "b"], name="f", skip_bad=True, verify="full")
    assert full.bad_files == [str(paths[-1])] and len(full) == 2
