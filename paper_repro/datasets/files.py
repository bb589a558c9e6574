"""Image data sets stored as files and decoded lazily with PIL (CUB-200-2011, Cars196, Omniglot).

Corrupt files
-------------
By default nothing is checked up front: a file that cannot be decoded raises
``ValueError: cannot read image <path>: <reason>`` when it is first touched.

With ``skip_bad=True`` every file is checked **up front**, at construction, and the bad ones are dropped and
recorded in ``n_bad``, ``bad_files`` (paths) and ``bad_reasons`` (path -> reason), with one warning. The check is
``verify="fast"`` (PIL's ``verify()``: unreadable, missing, non-image, truncated PNG and broken JPEG headers; a
few seconds for CUB) or ``verify="full"`` (decode every image: catches truncated JPEG data too, but costs a full
pass over the data). A file that passes the fast check and still fails to decode later raises the error above,
with a hint to use ``verify="full"``; it is never silently replaced, since that would change the labels.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from collapse._validation import check_choice
from paper_repro.datasets.base import ImageDataset, Transform
from paper_repro.datasets.decode import MODES, check_image, check_size, read_image

__all__ = ["VERIFY", "FileImageDataset"]

VERIFY = ("fast", "full")


class FileImageDataset(ImageDataset):
    """Images as file paths, decoded on access; see the module docstring for corrupt files.

    Parameters
    ----------
    paths : one file per image.
    mode : "RGB" (3 channels) or "L" (1 grey channel); every file is converted to it.
    size : resize every image to ``(H, W)`` (an int means square); then ``image_shape`` is known and
        :meth:`get_batch` can stack without a transform.
    boxes : optional ``(N, 4)`` crop boxes ``(left, top, right, bottom)``, 0-based, right/bottom exclusive,
        applied before the resize.
    invert : serve ``255 - v`` (Omniglot: dark strokes on white become light on dark, like MNIST).
    skip_bad, verify : see the module docstring.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: np.ndarray | Sequence[int],
        class_names: Sequence[str],
        *,
        name: str,
        mode: str = "RGB",
        size: int | tuple[int, int] | None = None,
        boxes: np.ndarray | None = None,
        invert: bool = False,
        skip_bad: bool = False,
        verify: str = "fast",
        fine_labels: np.ndarray | Sequence[int] | None = None,
        fine_names: Sequence[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        mode = check_choice("mode", mode, MODES)
        verify = check_choice("verify", verify, VERIFY)
        size = check_size(size)
        super().__init__(
            labels,
            class_names,
            name=name,
            fine_labels=fine_labels,
            fine_names=fine_names,
            image_shape=None if size is None else (MODES[mode], *size),
            transform=transform,
        )
        self.paths = [str(p) for p in paths]
        if len(self.paths) != len(self.labels):
            raise ValueError(f"got {len(self.paths)} paths but {len(self.labels)} labels")
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float64)
            if boxes.shape != (len(self.paths), 4):
                raise ValueError(f"boxes must have shape ({len(self.paths)}, 4), got {boxes.shape}")
        self.boxes = boxes
        self.mode, self.size, self.invert = mode, size, bool(invert)
        self.skip_bad, self.verify = bool(skip_bad), verify
        self.bad_reasons: dict[str, str] = {}
        if self.skip_bad:
            self._drop_bad()

    def _drop_bad(self) -> None:
        full = self.verify == "full"
        reasons = [
            check_image(p, self.mode, full=full)
            for p in tqdm(self.paths, desc=f"checking {self.name} images", leave=False, disable=len(self.paths) < 2000)
        ]
        bad = [i for i, r in enumerate(reasons) if r is not None]
        if not bad:
            return
        self.bad_files = [self.paths[i] for i in bad]
        self.bad_reasons = {self.paths[i]: reasons[i] for i in bad}
        self.n_bad = len(bad)
        keep = np.setdiff1d(np.arange(len(self.paths)), bad)
        self._take(keep)
        self.labels = self.labels[keep]
        if self.fine_labels is not None:
            self.fine_labels = self.fine_labels[keep]
        first = self.bad_files[0]
        warnings.warn(
            f"{self.name}: skipped {self.n_bad} unreadable image(s) (see .bad_files), "
            f"e.g. {first}: {self.bad_reasons[first]}",
            stacklevel=3,
        )

    def _image(self, i: int) -> torch.Tensor:
        box = None if self.boxes is None else tuple(self.boxes[i])
        try:
            x = read_image(self.paths[i], self.mode, size=self.size, box=box, invert=self.invert)
        except ValueError as err:
            if self.skip_bad and self.verify == "fast":
                raise ValueError(f"{err}; it passed the fast check, use verify='full' to skip such files") from err
            raise
        return x.float().div_(255.0)

    def _take(self, idx: np.ndarray) -> None:
        self.paths = [self.paths[int(i)] for i in idx]
        if self.boxes is not None:
            self.boxes = self.boxes[idx]
