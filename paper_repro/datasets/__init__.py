"""Real-image data sets for the reproduction: one entry point, :func:`get_dataset`, over :data:`DATASETS`.

Every loader returns an :class:`ImageDataset` (items ``(float image (C, H, W) in [0, 1], int label)``, plus
``labels``, ``fine_labels``, ``class_names``, ``get_batch`` and ``subset``). ``split`` is the zero-shot *class*
split for CUB, Cars and Omniglot (the field's convention) and the official *image* split for MNIST-style data
unless ``zero_shot=True``. See ``paper_repro/datasets/README.md`` for layouts and the fetch command.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from paper_repro.datasets.base import ImageDataset, Transform, relabel_classes
from paper_repro.datasets.cars import load_cars
from paper_repro.datasets.cub import load_cub
from paper_repro.datasets.digits import load_digits
from paper_repro.datasets.files import FileImageDataset
from paper_repro.datasets.glyphs import load_glyph_case, load_glyphs
from paper_repro.datasets.memory import InMemoryImageDataset
from paper_repro.datasets.mnist import load_mnist
from paper_repro.datasets.omniglot import load_omniglot
from paper_repro.datasets.splits import SPLITS, zero_shot_split, zero_shot_subset
from paper_repro.datasets.superclass import (
    FASHION_SUPERCLASSES,
    MNIST_GROUPS,
    load_fashion_super,
    load_mnist_groups,
    merge_classes,
)

__all__ = [
    "DATASETS",
    "FASHION_SUPERCLASSES",
    "MNIST_GROUPS",
    "DatasetSpec",
    "FileImageDataset",
    "ImageDataset",
    "InMemoryImageDataset",
    "Transform",
    "dataset_options",
    "get_dataset",
    "merge_classes",
    "relabel_classes",
    "zero_shot_split",
    "zero_shot_subset",
]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set: its loader ``loader(root, split, **options)``, options fixed by the name, a summary."""

    loader: Callable[..., ImageDataset]
    summary: str
    fixed: dict = field(default_factory=dict)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(load_mnist, "MNIST digits, 10 classes, 28x28 grey, in memory", {"variant": "mnist"}),
    "fashion-mnist": DatasetSpec(
        load_mnist, "Fashion-MNIST, 10 classes, 28x28 grey, in memory", {"variant": "fashion-mnist"}
    ),
    "fashion-mnist-super": DatasetSpec(
        load_fashion_super, "Fashion-MNIST merged into tops/footwear/other; fine label = original class"
    ),
    "mnist-groups": DatasetSpec(load_mnist_groups, "MNIST merged into digit groups; fine label = digit"),
    "digits": DatasetSpec(load_digits, "scikit-learn digits, 10 classes, 8x8 grey, 1797 images, in memory"),
    "cub": DatasetSpec(load_cub, "CUB-200-2011, 200 bird classes (zero-shot: 1-100 / 101-200), RGB files"),
    "cars": DatasetSpec(load_cars, "Cars196, 196 car models (zero-shot: 1-98 / 99-196), RGB files"),
    "omniglot": DatasetSpec(
        load_omniglot, "Omniglot, alphabets (fine label = character) or characters, grey files; background / evaluation"
    ),
    "glyphs": DatasetSpec(
        load_glyphs, "font glyphs (Omniglot proxy): script (fine label = character), designs as instances; 32x32"
    ),
    "glyph-case": DatasetSpec(load_glyph_case, "font glyphs: 13 Latin letters (fine label = upper/lower case); 32x32"),
}


def dataset_options(name: str) -> dict[str, object]:
    """The options ``get_dataset(name, ...)`` accepts, with their defaults."""
    spec = _spec(name)
    params = inspect.signature(spec.loader).parameters
    return {
        k: p.default
        for k, p in params.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and k not in spec.fixed and k != "skip_bad"
    }


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def get_dataset(
    name: str, root: str | Path = "data", split: str = "train", *, skip_bad: bool = False, **options: object
) -> ImageDataset:
    """Load data set ``name`` (one of :data:`DATASETS`) from ``root`` (default ``data/``).

    ``split``: "train", "test" or "all". ``skip_bad=True`` checks image files up front and drops unreadable ones
    (counted in ``n_bad`` / ``bad_files``); in-memory data sets have no files and ignore it. Other ``options`` are
    the loader's keyword options (:func:`dataset_options` lists them); unknown ones are a one-line ``ValueError``.
    """
    spec = _spec(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if not isinstance(skip_bad, bool):
        raise ValueError(f"skip_bad must be True or False, got {skip_bad!r}")
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in allowed.items())
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; allowed: {listed}")
    for k, v in options.items():
        if isinstance(allowed[k], bool) and not isinstance(v, bool):
            raise ValueError(f"option {k} of dataset {name!r} must be True or False, got {v!r}")
    kwargs = {**spec.fixed, **options}
    if "skip_bad" in inspect.signature(spec.loader).parameters:
        kwargs["skip_bad"] = skip_bad
    return spec.loader(root, split, **kwargs)
