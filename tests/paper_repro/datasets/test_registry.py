"""get_dataset: the registry, option checking, and (when fetched) the real MNIST / Fashion-MNIST files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paper_repro.datasets import DATASETS, dataset_options, get_dataset
from paper_repro.datasets.fetch import CHECKSUMS, verify_checksum

REQUIRED = {"mnist", "fashion-mnist", "digits", "cub", "cars", "omniglot", "fashion-mnist-super", "mnist-groups"}
DATA = Path(__file__).resolve().parents[3] / "data"


def test_registry_names_and_options():
    assert REQUIRED <= set(DATASETS)
    assert dataset_options("omniglot")["label"] == "alphabet"
    assert "variant" not in dataset_options("fashion-mnist")  # fixed by the name
    assert "skip_bad" not in dataset_options("cub")  # a named argument of get_dataset itself


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: get_dataset("cifar10"), r"unknown dataset 'cifar10'; allowed: mnist, fashion-mnist, "),
        (lambda: get_dataset("digits", colour=True), r"unknown option\(s\) colour for dataset 'digits'; allowed: "),
        (lambda: get_dataset("digits", split="val"), "split must be one of train, test, all; got 'val'"),
        (lambda: get_dataset("digits", zero_shot="yes"), "option zero_shot of dataset 'digits' must be True or False"),
        (lambda: get_dataset("digits", skip_bad=1), "skip_bad must be True or False, got 1"),
        (lambda: get_dataset("cub", protocol="few-shot"), "protocol must be one of zero-shot, official; got"),
    ],
)
def test_bad_calls_are_one_line_value_errors(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_in_memory_sets_accept_skip_bad():
    ds = get_dataset("digits", skip_bad=True)
    assert ds.n_bad == 0 and ds.bad_files == []


@pytest.mark.skipif(
    not all((DATA / d / f"{b}.gz").is_file() for d in CHECKSUMS for b in CHECKSUMS[d]),
    reason="real MNIST / Fashion-MNIST not fetched (python -m paper_repro.datasets.fetch)",
)
def test_real_mnist_and_fashion_super_load_completely():
    for d, sums in CHECKSUMS.items():
        for b, md5 in sums.items():
            verify_checksum(DATA / d / f"{b}.gz", md5)
    for name in ("mnist", "fashion-mnist-super"):
        train, test = get_dataset(name, root=DATA), get_dataset(name, root=DATA, split="test")
        assert (len(train), len(test)) == (60000, 10000) and train.image_shape == (1, 28, 28)
    assert np.bincount(test.labels).tolist() == [4000, 3000, 3000]
    assert np.bincount(test.fine_labels).tolist() == [1000] * 10
