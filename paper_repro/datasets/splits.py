"""Train/test splits: the standard zero-shot class splits, and a generic one for MNIST-style data.

Deep-metric-learning benchmarks test on classes never seen in training:

* CUB-200-2011: classes 1-100 train, 101-200 test (official 1-based ids, ``classes.txt``);
* Cars196: classes 1-98 train, 99-196 test;
* Omniglot: the ``images_background`` alphabets train, ``images_evaluation`` test.

Each side is relabelled ``0 .. C-1`` by ``label = official_id - first_id``. For MNIST-style data with an official
*image* split, :func:`zero_shot_split` splits by class instead (by default the first half of the class ids train,
e.g. digits 0-4), and ``on="fine"`` holds out fine classes inside every coarse class (unseen *modes* at test time).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from collapse._validation import check_choice
from paper_repro.datasets.base import ImageDataset

__all__ = [
    "CARS_CLASSES",
    "CUB_CLASSES",
    "OMNIGLOT_FOLDERS",
    "SPLITS",
    "class_range_split",
    "protocol_split",
    "fine_holdout_split",
    "zero_shot_split",
    "zero_shot_subset",
]

SPLITS = ("train", "test", "all")
CUB_CLASSES = {"train": range(1, 101), "test": range(101, 201), "all": range(1, 201)}
CARS_CLASSES = {"train": range(1, 99), "test": range(99, 197), "all": range(1, 197)}
OMNIGLOT_FOLDERS = {
    "train": ("images_background",),
    "test": ("images_evaluation",),
    "all": ("images_background", "images_evaluation"),
}


def class_range_split(class_ids: np.ndarray, classes: range, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Images whose official 1-based class id lies in ``classes``: ``(indices, labels = id - classes.start)``."""
    class_ids = np.asarray(class_ids, dtype=np.int64)
    keep = np.flatnonzero((class_ids >= classes.start) & (class_ids < classes.stop))
    if keep.size == 0:
        raise ValueError(f"{what} has no images of classes {classes.start}-{classes.stop - 1}")
    return keep, class_ids[keep] - classes.start


def protocol_split(
    class_ids: np.ndarray,
    is_test: np.ndarray,
    split: str,
    protocol: str,
    zero_shot_classes: dict[str, range],
    n_classes: int,
    what: str,
) -> tuple[np.ndarray, np.ndarray, range]:
    """The images of ``split`` under ``protocol``, for data sets with 1-based class ids and an official image split
    (CUB-200-2011, Cars196): ``(indices, labels 0 .. C-1, official class ids of the labels)``.

    ``"zero-shot"``: the classes ``zero_shot_classes[split]`` with all their images (:func:`class_range_split`);
    ``"official"``: the official image split (``is_test``) over all ``n_classes`` classes.
    """
    if protocol == "zero-shot":
        classes = zero_shot_classes[split]
        keep, labels = class_range_split(class_ids, classes, what)
        return keep, labels, classes
    is_test = np.asarray(is_test, dtype=bool)
    side = {"train": ~is_test, "test": is_test, "all": np.ones_like(is_test)}[split]
    keep = np.flatnonzero(side)
    return keep, np.asarray(class_ids)[keep] - 1, range(1, n_classes + 1)


def zero_shot_split(
    labels: np.ndarray | Sequence[int],
    n_train_classes: int | None = None,
    *,
    train_classes: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` splitting by class: no class has images on both sides.

    The train classes are ``train_classes`` if given, else the ``n_train_classes`` smallest class ids present
    (default: half of them, rounded down). At least one class must remain for testing.
    """
    labels = np.asarray(labels)
    present = np.unique(labels)
    if present.size < 2:
        raise ValueError(f"a zero-shot split needs at least 2 classes, got {present.size}")
    if train_classes is not None and n_train_classes is not None:
        raise ValueError("give n_train_classes or train_classes, not both")
    if train_classes is None:
        n = present.size // 2 if n_train_classes is None else n_train_classes
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n < present.size:
            raise ValueError(f"n_train_classes must be an integer in [1, {present.size - 1}], got {n!r}")
        chosen = present[: int(n)]
    else:
        chosen = np.unique(np.asarray(list(train_classes), dtype=np.int64))
        unknown = np.setdiff1d(chosen, present)
        if unknown.size or chosen.size == 0 or chosen.size == present.size:
            raise ValueError(
                f"train_classes must be a non-empty proper subset of the classes present "
                f"({present.min()}..{present.max()}), got {list(map(int, train_classes))}"
            )
    is_train = np.isin(labels, chosen)
    return np.flatnonzero(is_train), np.flatnonzero(~is_train)


def fine_holdout_split(
    labels: np.ndarray, fine_labels: np.ndarray, train_fine: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` splitting by *fine* class while every coarse class keeps its label.

    Default: inside each coarse class, the first ``ceil(k / 2)`` of its ``k`` fine ids (in increasing order)
    train and the rest test, so e.g. Fashion-MNIST tops train on T-shirt and Pullover and test on Coat and Shirt.
    """
    labels, fine_labels = np.asarray(labels), np.asarray(fine_labels)
    coarse_of: dict[int, int] = {}
    for f, c in zip(fine_labels.tolist(), labels.tolist()):
        if coarse_of.setdefault(f, c) != c:
            raise ValueError(f"fine class {f} appears in coarse classes {coarse_of[f]} and {c}; cannot hold it out")
    if train_fine is None:
        chosen = []
        for c in np.unique(labels):
            fines = sorted(f for f, cc in coarse_of.items() if cc == c)
            chosen += fines[: (len(fines) + 1) // 2]
    else:
        chosen = [int(f) for f in train_fine]
        unknown = sorted(set(chosen) - set(coarse_of))
        if unknown or not chosen or len(set(chosen)) == len(coarse_of):
            raise ValueError(
                f"train_classes (fine ids) must be a non-empty proper subset of {sorted(coarse_of)}, got {chosen}"
            )
    is_train = np.isin(fine_labels, chosen)
    return np.flatnonzero(is_train), np.flatnonzero(~is_train)


def zero_shot_subset(
    dataset: ImageDataset, split: str, train_classes: Sequence[int] | None = None, *, on: str = "label"
) -> ImageDataset:
    """The ``split`` side ("train", "test" or "all") of a zero-shot split of ``dataset``.

    ``on="label"``: :func:`zero_shot_split` on the class labels; the side kept is relabelled ``0 .. C'-1``.
    ``on="fine"``: :func:`fine_holdout_split` on the fine labels (``train_classes`` are then fine ids); the
    coarse labels are kept as they are.
    """
    split = check_choice("split", split, SPLITS)
    on = check_choice("on", on, ("label", "fine"))
    if on == "fine":
        if dataset.fine_labels is None:
            raise ValueError(f"{dataset.name} has no fine labels; use on='label'")
        train, test = fine_holdout_split(dataset.labels, dataset.fine_labels, train_classes)
    else:
        train, test = zero_shot_split(dataset.labels, train_classes=train_classes)
    if split == "all":
        return dataset
    return dataset.subset(train if split == "train" else test, relabel=on == "label")
