"""Real data with hidden modes: merge fine classes into coarse ones and keep the fine label as ground truth.

A coarse class made of several visually distinct fine classes is a class with several modes. Class collapse
shows up as fine-label retrieval inside a coarse class falling to chance.

* :data:`FASHION_SUPERCLASSES`: tops {T-shirt/top, Pullover, Coat, Shirt}, footwear {Sandal, Sneaker, Ankle boot},
  other {Trouser, Dress, Bag}.
* :data:`MNIST_GROUPS` ("shape", the default of "mnist-groups"): round {0, 6, 8, 9} (digits drawn around a
  closed loop), straight {1, 4, 7} (straight strokes), other {2, 3, 5} (open curves). Chosen over parity because
  its groups are visually coherent *and* internally multi-modal, like the paper's sub-classes; parity
  (:data:`MNIST_PARITY`, ``groups="parity"``) is the harder, visually arbitrary alternative.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from numbers import Integral
from pathlib import Path

import numpy as np

from collapse._validation import check_choice
from paper_repro.datasets.base import ImageDataset, Transform
from paper_repro.datasets.mnist import load_mnist
from paper_repro.datasets.splits import SPLITS, zero_shot_subset

__all__ = [
    "FASHION_SUPERCLASSES",
    "MNIST_GROUPINGS",
    "MNIST_GROUPS",
    "MNIST_PARITY",
    "load_fashion_super",
    "load_mnist_groups",
    "merge_classes",
]

FASHION_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "tops": ("T-shirt/top", "Pullover", "Coat", "Shirt"),
    "footwear": ("Sandal", "Sneaker", "Ankle boot"),
    "other": ("Trouser", "Dress", "Bag"),
}
MNIST_GROUPS: dict[str, tuple[int, ...]] = {"round": (0, 6, 8, 9), "straight": (1, 4, 7), "other": (2, 3, 5)}
MNIST_PARITY: dict[str, tuple[int, ...]] = {"even": (0, 2, 4, 6, 8), "odd": (1, 3, 5, 7, 9)}
MNIST_GROUPINGS = {"shape": MNIST_GROUPS, "parity": MNIST_PARITY}


def merge_classes(
    dataset: ImageDataset, groups: Mapping[str, Sequence[int | str]], *, name: str | None = None
) -> ImageDataset:
    """``dataset`` with classes merged: coarse label = position of the group in ``groups``.

    ``groups`` maps a coarse name to its members, given as class ids or class names of ``dataset``; every class
    must be in exactly one group. The old labels and names become ``fine_labels`` / ``fine_names`` (any earlier
    fine labels are replaced). Pixels are shared with ``dataset``, not copied.
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(f"groups must be a non-empty mapping coarse name -> class ids or names, got {groups!r}")
    index = {n: i for i, n in enumerate(dataset.class_names)}
    coarse_of = np.full(dataset.n_classes, -1, dtype=np.int64)
    for g, members in enumerate(groups.values()):
        for m in [members] if isinstance(members, str | Integral) else members:
            if isinstance(m, Integral) and not isinstance(m, bool) and 0 <= int(m) < dataset.n_classes:
                c = int(m)
            elif isinstance(m, str) and m in index:
                c = index[m]
            else:
                raise ValueError(
                    f"unknown class {m!r} in groups; allowed: ids 0..{dataset.n_classes - 1} or names "
                    f"{', '.join(dataset.class_names)}"
                )
            if coarse_of[c] != -1:
                raise ValueError(f"class {dataset.class_names[c]!r} is in more than one group")
            coarse_of[c] = g
    missing = [dataset.class_names[c] for c in np.flatnonzero(coarse_of == -1)]
    if missing:
        raise ValueError(f"every class must be in a group; missing {', '.join(missing)}")
    merged = copy.copy(dataset)
    merged.fine_labels, merged.fine_names = dataset.labels.copy(), list(dataset.class_names)
    merged.labels = coarse_of[dataset.labels]
    merged.class_names = [str(k) for k in groups]
    merged.name = name or f"{dataset.name}-merged"
    return merged


def _load_merged(
    variant: str,
    groups: Mapping[str, Sequence[int | str]],
    name: str,
    root: str | Path,
    split: str,
    zero_shot: bool,
    train_classes: Sequence[int] | None,
    split_on: str,
    transform: Transform | None,
) -> ImageDataset:
    split = check_choice("split", split, SPLITS)
    split_on = check_choice("split_on", split_on, ("label", "fine"))
    if not zero_shot and (train_classes is not None or split_on != "label"):
        raise ValueError("train_classes and split_on need zero_shot=True")
    base = load_mnist(root, "all" if zero_shot else split, variant=variant, transform=transform)
    merged = merge_classes(base, groups, name=name)
    return zero_shot_subset(merged, split, train_classes, on=split_on) if zero_shot else merged


def load_fashion_super(
    root: str | Path = "data",
    split: str = "train",
    *,
    zero_shot: bool = False,
    train_classes: Sequence[int] | None = None,
    split_on: str = "label",
    transform: Transform | None = None,
) -> ImageDataset:
    """Fashion-MNIST with the 3 :data:`FASHION_SUPERCLASSES` as labels and the 10 original classes as fine labels.

    ``split`` is the official image split, unless ``zero_shot=True``: then both files are pooled and split by
    coarse class (``split_on="label"``) or by fine class inside every coarse class (``split_on="fine"``, see
    :func:`paper_repro.datasets.splits.fine_holdout_split`; ``train_classes`` are then fine ids).
    """
    return _load_merged(
        "fashion-mnist", FASHION_SUPERCLASSES, "fashion-mnist-super", root, split, zero_shot, train_classes,
        split_on, transform,
    )  # fmt: skip


def load_mnist_groups(
    root: str | Path = "data",
    split: str = "train",
    *,
    groups: str = "shape",
    zero_shot: bool = False,
    train_classes: Sequence[int] | None = None,
    split_on: str = "label",
    transform: Transform | None = None,
) -> ImageDataset:
    """MNIST with digit groups as labels (``groups``: "shape" = :data:`MNIST_GROUPS` or "parity") and digits as
    fine labels; ``split``, ``zero_shot`` and ``split_on`` as in :func:`load_fashion_super`."""
    groups = check_choice("groups", groups, MNIST_GROUPINGS)
    return _load_merged(
        "mnist", MNIST_GROUPINGS[groups], f"mnist-groups-{groups}" if groups != "shape" else "mnist-groups", root,
        split, zero_shot, train_classes, split_on, transform,
    )  # fmt: skip
