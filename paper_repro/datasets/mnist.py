"""MNIST and Fashion-MNIST from their four IDX files (raw or .gz), held in memory.

Layout: ``<root>/mnist/`` or ``<root>/fashion-mnist/`` holding ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or with ``.gz``
(``python -m paper_repro.datasets.fetch`` writes them).

``split`` is the official image split (60000 train / 10000 test; "all" concatenates them) unless
``zero_shot=True``: then the images of both files are pooled and split by class (see
:func:`paper_repro.datasets.splits.zero_shot_subset`), the field's convention for unseen-class retrieval.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from collapse._validation import check_choice
from paper_repro.datasets.base import Transform
from paper_repro.datasets.idx import read_idx
from paper_repro.datasets.memory import InMemoryImageDataset
from paper_repro.datasets.splits import SPLITS, zero_shot_subset

__all__ = [
    "CHECKSUMS",
    "FASHION_CLASSES",
    "IDX_FILES",
    "MNIST_CLASSES",
    "OFFICIAL_COUNTS",
    "VARIANTS",
    "load_mnist",
    "mnist_folder",
]

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
"""md5 of the uncompressed IDX files (from /work/shared/notes/environment.md, checked against the fetched data)."""
OFFICIAL_COUNTS = {"train": 60000, "test": 10000}
"""Images per official file. A file of this size claims to be the official one and must have its md5."""
VARIANTS = {"mnist": ("MNIST", MNIST_CLASSES), "fashion-mnist": ("Fashion-MNIST", FASHION_CLASSES)}
"""variant -> (display name, class names); the variant is also the folder name under ``root``."""


def mnist_folder(root: str | Path, variant: str) -> Path:
    """``root/variant``, or ``root`` itself when that folder is absent and ``root`` holds the IDX files."""
    root = Path(root)
    if not (root / variant).exists() and any(_find(root, fs[0]) for fs in IDX_FILES.values()):
        return root
    return root / variant


def _find(folder: Path, base: str) -> Path | None:
    for name in (base, base + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _idx_md5(arr: np.ndarray) -> str:
    """md5 of the uncompressed IDX bytes of a uint8 array as :func:`read_idx` returned it (header + values: the
    file's exact bytes, since read_idx checks that the file holds nothing else), without reading the file again."""
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return hashlib.md5(header + np.ascontiguousarray(arr).tobytes()).hexdigest()


def _check_official(path: Path, arr: np.ndarray, variant: str, base: str, part: str) -> None:
    """A file with the official item count must be the official file: a labels file of the other data set (same
    shape, same value range) would otherwise train silently. Smaller or larger files (subsets, test fixtures) are
    not the official release and are read as they are."""
    if arr.shape[0] != OFFICIAL_COUNTS[part] or arr.dtype != np.uint8:
        return
    expected, got = CHECKSUMS[variant][base], _idx_md5(arr)
    if got != expected:
        others = [v for v, sums in CHECKSUMS.items() if sums.get(base) == got]
        hint = f" (it is the {VARIANTS[others[0]][0]} file)" if others else ""
        raise ValueError(
            f"{path} is not the official {VARIANTS[variant][0]} {base}: md5 {got}, expected {expected}{hint}; "
            f"fetch it again with `python -m paper_repro.datasets.fetch --dataset {variant} --force`"
        )


def _read_part(folder: Path, part: str, variant: str) -> tuple[np.ndarray, np.ndarray]:
    title, names = VARIANTS[variant]
    found = {b: _find(folder, b) for part_files in IDX_FILES.values() for b in part_files}
    missing = [b for b in IDX_FILES[part] if found[b] is None]
    if missing:
        every = ", ".join(b for fs in IDX_FILES.values() for b in fs)
        raise FileNotFoundError(
            f"{title} not found under {folder}: expected {every} (raw or .gz), missing {', '.join(missing)}; "
            f"fetch it with `python -m paper_repro.datasets.fetch --dataset {variant} --root {folder.parent}`"
        )
    img_path, lab_path = (found[b] for b in IDX_FILES[part])
    images, labels = read_idx(img_path), read_idx(lab_path)
    for base, path, arr in zip(IDX_FILES[part], (img_path, lab_path), (images, labels)):
        _check_official(path, arr, variant, base, part)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{img_path} must hold uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{lab_path} must hold {images.shape[0]} labels to match {img_path}, got shape {labels.shape}")
    if labels.size and int(labels.max()) >= len(names):
        raise ValueError(f"{lab_path} has label {int(labels.max())}; {title} labels are 0..{len(names) - 1}")
    return images, labels.astype(np.int64)


def load_mnist(
    root: str | Path = "data",
    split: str = "train",
    *,
    variant: str = "mnist",
    zero_shot: bool = False,
    train_classes: Sequence[int] | None = None,
    transform: Transform | None = None,
) -> InMemoryImageDataset:
    """MNIST (``variant="mnist"``) or Fashion-MNIST (``"fashion-mnist"``) as ``(N, 1, 28, 28)`` images in [0, 1].

    ``zero_shot=True`` pools both files and keeps the classes of ``split`` (train: ``train_classes``, by default
    the first half, digits 0-4; test: the others, relabelled 0..C'-1).
    """
    variant = check_choice("variant", variant, VARIANTS)
    split = check_choice("split", split, SPLITS)
    folder = mnist_folder(root, variant)
    parts = ["train", "test"] if (split == "all" or zero_shot) else [split]
    read = [_read_part(folder, p, variant) for p in parts]
    images = np.concatenate([r[0] for r in read])
    labels = np.concatenate([r[1] for r in read])
    data = InMemoryImageDataset(
        torch.from_numpy(images), labels, VARIANTS[variant][1], name=variant, transform=transform
    )
    if zero_shot:
        return zero_shot_subset(data, split, train_classes)
    if train_classes is not None:
        raise ValueError("train_classes needs zero_shot=True")
    return data
