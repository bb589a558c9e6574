"""The labelled image data set that every loader returns.

An :class:`ImageDataset` holds ``N`` images with

* ``labels``: int64 ``(N,)``, class ids ``0 .. C-1`` indexing ``class_names`` (``C = len(class_names)``); these are
  the labels training and evaluation use;
* ``fine_labels``: int64 ``(N,)`` or ``None``, the hidden mode inside a class (the character inside an Omniglot
  alphabet, the original Fashion-MNIST class inside a superclass), indexing ``fine_names``.

Item ``i`` is ``(x, y)`` with ``x`` a float32 ``(C, H, W)`` tensor in ``[0, 1]`` (after the optional ``transform``)
and ``y = int(labels[i])``. Subclasses store the pixels: :class:`~paper_repro.datasets.memory.InMemoryImageDataset`
(one uint8 tensor) and :class:`~paper_repro.datasets.files.FileImageDataset` (paths decoded lazily).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["ImageDataset", "Transform", "as_index_array", "relabel_classes"]

Transform = Callable[[torch.Tensor], torch.Tensor]
"""Maps one float ``(C, H, W)`` image in ``[0, 1]`` to a tensor (augmentation, resizing, normalisation)."""


def as_index_array(indices: object, n: int, name: str = "indices") -> np.ndarray:
    """``indices`` (sequence, numpy array or tensor of ints) as a 1-D int64 array with every entry in ``[0, n)``."""
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    idx = np.asarray(indices)
    if idx.ndim == 0:
        idx = idx.reshape(1)
    if idx.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {idx.shape}")
    if idx.size == 0:
        return idx.astype(np.int64)
    if idx.dtype == bool or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"{name} must be in [0, {n}), got values from {idx.min()} to {idx.max()}")
    return idx.astype(np.int64, copy=False)


def _check_labels(name: str, labels: object, n_names: int, n: int | None) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise ValueError(f"{name} must have shape ({'N' if n is None else n},), got {arr.shape}")
    if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= n_names):
        raise ValueError(f"{name} must be integers in [0, {n_names}) to index the names, got {arr.min()}..{arr.max()}")
    return np.ascontiguousarray(arr, dtype=np.int64)


class ImageDataset(Dataset):
    """Labelled images, see the module docstring. Subclasses implement ``_image(i)`` and ``_take(idx)``.

    Attributes
    ----------
    name : short name, e.g. ``"cub"`` or ``"fashion-mnist-super"``.
    labels, class_names, fine_labels, fine_names : as in the module docstring.
    image_shape : ``(C, H, W)`` when every image has it (in-memory sets; file sets loaded with ``size=``), else None.
    transform : applied to each image by ``__getitem__`` and ``get_batch``.
    n_bad, bad_files : images dropped by ``skip_bad=True`` (always 0 and ``[]`` for in-memory sets).
    """

    def __init__(
        self,
        labels: np.ndarray | Sequence[int],
        class_names: Sequence[str],
        *,
        name: str,
        fine_labels: np.ndarray | Sequence[int] | None = None,
        fine_names: Sequence[str] | None = None,
        image_shape: tuple[int, int, int] | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.name = str(name)
        self.class_names = [str(c) for c in class_names]
        self.labels = _check_labels("labels", labels, len(self.class_names), None)
        if (fine_labels is None) != (fine_names is None):
            raise ValueError("fine_labels and fine_names must be given together")
        self.fine_names = None if fine_names is None else [str(c) for c in fine_names]
        self.fine_labels = (
            None
            if fine_labels is None
            else _check_labels("fine_labels", fine_labels, len(self.fine_names), len(self.labels))
        )
        self.image_shape = None if image_shape is None else tuple(int(s) for s in image_shape)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        self.transform = transform
        self.n_bad = 0
        self.bad_files: list[str] = []

    # --- to implement ------------------------------------------------------------------------------------------
    def _image(self, i: int) -> torch.Tensor:
        """Image ``i`` as float32 ``(C, H, W)`` in ``[0, 1]``, before the transform."""
        raise NotImplementedError

    def _images(self, idx: np.ndarray) -> torch.Tensor:
        """Images ``idx`` as float32 ``(B, C, H, W)``, before the transform. Override where batches are cheaper."""
        return _stack([self._image(int(i)) for i in idx], self.name)

    def _take(self, idx: np.ndarray) -> None:
        """Keep only the stored images ``idx`` (called on a shallow copy by :meth:`subset`)."""
        raise NotImplementedError

    # --- public ------------------------------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {self.name} with {n} images")
        i = int(i) % n
        x = self._image(i)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])

    def get_batch(self, indices: object) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, C, H, W)`` and int64 labels ``(B,)`` for ``indices``.

        Without a transform, in-memory sets index their uint8 tensor once; with one, it is applied image by image.
        """
        idx = as_index_array(indices, len(self))
        if self.transform is None:
            x = self._images(idx)
        else:
            x = _stack([self.transform(self._image(int(i))) for i in idx], self.name)
        return x, torch.from_numpy(self.labels[idx].copy())

    def subset(self, indices: object, *, relabel: bool = False) -> ImageDataset:
        """A data set with images ``indices`` only (storage is sliced, not copied for file sets).

        ``relabel=False`` keeps the class ids and ``class_names`` (some classes may then be absent);
        ``relabel=True`` renumbers the classes present to ``0 .. C'-1`` in increasing old id, names following.
        Fine labels and names are kept as they are.
        """
        idx = as_index_array(indices, len(self))
        new = copy.copy(self)
        new._take(idx)
        new.labels = self.labels[idx].copy()
        new.fine_labels = None if self.fine_labels is None else self.fine_labels[idx].copy()
        new.bad_files = list(self.bad_files)
        if relabel:
            new.labels, new.class_names = relabel_classes(new.labels, self.class_names)
        return new

    def class_counts(self) -> np.ndarray:
        """``(C,)`` number of images of each class."""
        return np.bincount(self.labels, minlength=self.n_classes)

    def __repr__(self) -> str:
        fine = "" if self.fine_names is None else f", {len(self.fine_names)} fine classes"
        shape = "" if self.image_shape is None else f", images {self.image_shape}"
        bad = f", {self.n_bad} bad files skipped" if self.n_bad else ""
        return f"{type(self).__name__}({self.name!r}: {len(self)} images, {self.n_classes} classes{fine}{shape}{bad})"


def relabel_classes(labels: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Renumber the classes present in ``labels`` to ``0 .. C'-1`` (in increasing old id) and keep their names."""
    present, new = np.unique(labels, return_inverse=True)
    return new.astype(np.int64).reshape(-1), [names[int(c)] for c in present]


def _stack(images: list[torch.Tensor], name: str) -> torch.Tensor:
    if not images:
        raise ValueError(f"cannot make a batch of {name}: no indices given")
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) > 1:
        some = ", ".join(str(s) for s in sorted(shapes)[:3])
        raise ValueError(
            f"cannot stack a batch of {name}: images have different shapes ({some}); "
            "load with size=(H, W) or give a transform that resizes"
        )
    return torch.stack(images)
