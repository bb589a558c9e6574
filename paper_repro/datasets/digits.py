"""scikit-learn's handwritten digits (1797 images of 8x8, values 0..16), shipped inside the sklearn wheel.

There is no official split. ``split`` is either a stratified random image split (``test_size``, ``random_state``:
the same seed gives the same split on every machine) or, with ``zero_shot=True``, a split by class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.datasets import load_digits as _sk_load_digits

from collapse._validation import check_choice, check_random_state, check_real
from paper_repro.datasets.base import Transform
from paper_repro.datasets.memory import InMemoryImageDataset
from paper_repro.datasets.splits import SPLITS, zero_shot_subset

__all__ = ["load_digits"]


def load_digits(
    root: object = None,
    split: str = "train",
    *,
    test_size: float = 0.25,
    random_state: int | np.random.Generator | None = 0,
    zero_shot: bool = False,
    train_classes: Sequence[int] | None = None,
    transform: Transform | None = None,
) -> InMemoryImageDataset:
    """Digits as ``(N, 1, 8, 8)`` images ``v / 16`` in [0, 1]; ``root`` is ignored (the data ship with sklearn).

    Image split: in every class, ``round(test_size * n_c)`` images chosen by ``random_state`` go to "test".
    ``zero_shot=True``: all images of ``train_classes`` (default 0-4) train, the other classes test.
    """
    split = check_choice("split", split, SPLITS)
    raw = _sk_load_digits()
    images = torch.from_numpy(raw.images.astype(np.uint8))
    data = InMemoryImageDataset(
        images, raw.target.astype(np.int64), [str(d) for d in range(10)], name="digits", scale=16.0, transform=transform
    )
    if zero_shot:
        return zero_shot_subset(data, split, train_classes)
    if train_classes is not None:
        raise ValueError("train_classes needs zero_shot=True")
    test_size = check_real("test_size", test_size, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    if split == "all":
        return data
    rng = check_random_state(random_state)
    is_test = np.zeros(len(data), dtype=bool)
    for c in range(data.n_classes):
        members = np.flatnonzero(data.labels == c)
        is_test[rng.choice(members, size=int(round(test_size * members.size)), replace=False)] = True
    return data.subset(np.flatnonzero(is_test if split == "test" else ~is_test))
