"""Images of different native sizes (real CUB / Cars photographs) train and evaluate: transform before batching."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from paper_repro.batches import transformed_batch
from paper_repro.datasets import get_dataset
from paper_repro.train import main
from paper_repro.transforms import eval_transform
from tests.paper_repro.datasets.fixtures import make_cub


@pytest.fixture()
def cub_root(tmp_path):
    # Image k is (10 + 7k) px wide and 12 px high: every image of the fixture has its own size.
    make_cub(tmp_path, {1: 4, 2: 4, 3: 3, 101: 3, 102: 3})
    return tmp_path


def test_mixed_size_images_cannot_be_stacked_raw_but_batch_after_the_transform(cub_root):
    ds = get_dataset("cub", root=cub_root, split="train")
    assert ds.image_shape is None
    with pytest.raises(ValueError, match="cannot stack"):
        ds.get_batch(np.arange(3))
    x, y = transformed_batch(ds, np.arange(3), eval_transform("imagenet-like", 16))
    assert x.shape == (3, 3, 16, 16) and y.tolist() == ds.labels[:3].tolist()
    one = eval_transform("imagenet-like", 16)(ds.get_batch(np.array([1]))[0][0])
    assert torch.equal(x[1], one)


def test_a_transform_that_keeps_sizes_apart_is_a_one_line_error(cub_root):
    ds = get_dataset("cub", root=cub_root, split="train")
    with pytest.raises(ValueError, match="still differ in shape") as info:
        transformed_batch(ds, np.arange(3), lambda img: img)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("size", [32, 64])
def test_cli_trains_cub_of_mixed_sizes(cub_root, tmp_path, size, capsys):
    out = tmp_path / f"run{size}"
    args = ["--dataset", "cub", "--root", str(cub_root), "--image-size", str(size), "--steps", "2",
            "--eval-every", "2", "--batch-classes", "2", "--samples-per-class", "3", "--dim", "8",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert final["step"] == 2 and 0.0 <= final["recall_at_1"] <= 1.0
