"""Decoding image files with PIL, and the checks that find corrupt ones.

Every file goes through the same steps, so colour handling is consistent: ``convert(mode)`` ("RGB" turns grey,
CMYK and palette images into 3 channels; "L" turns binary and colour images into 1 grey channel), then the optional
crop box, then the optional resize (bilinear). Pixels come back as uint8 ``(C, H, W)``; the float conversion to
``[0, 1]`` happens in the data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["MODES", "check_image", "check_size", "read_image"]

MODES = {"RGB": 3, "L": 1}
"""PIL mode -> number of channels."""


def check_size(size: object) -> tuple[int, int] | None:
    """``None``, an int ``s`` (meaning ``(s, s)``) or ``(H, W)`` as ``(H, W)``; a one-line error otherwise."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else size
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in pair)
    ):
        raise ValueError(f"size must be None, a positive int or a pair (H, W) of positive ints, got {size!r}")
    return int(pair[0]), int(pair[1])


def read_image(
    path: str | Path,
    mode: str,
    *,
    size: tuple[int, int] | None = None,
    box: tuple[float, float, float, float] | None = None,
    invert: bool = False,
) -> torch.Tensor:
    """Decode ``path`` to a uint8 ``(C, H, W)`` tensor; raise ``ValueError: cannot read image <path>: <reason>``.

    ``box`` is ``(left, top, right, bottom)`` in 0-based pixel coordinates (right/bottom exclusive), applied before
    the resize to ``size = (H, W)``. ``invert`` maps ``v -> 255 - v`` (e.g. dark strokes on white to light on dark).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if box is not None:
                im = im.crop(tuple(box))
            if size is not None:
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.array(im, dtype=np.uint8)
    # PIL signals broken files with many types (OSError, SyntaxError, struct.error, zlib.error, DecompressionBomb);
    # all of them mean "this file is unusable", and the message must name it.
    except Exception as err:
        raise ValueError(f"cannot read image {path}: {_reason(err)}") from err
    if invert:
        arr = 255 - arr
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def check_image(path: str | Path, mode: str = "RGB", *, full: bool = False) -> str | None:
    """``None`` if ``path`` looks readable, else the reason.

    ``full=False`` is PIL's cheap ``verify()`` (header, and for PNG every chunk checksum, so truncation is caught;
    for JPEG only the header is checked). ``full=True`` decodes the whole image, which catches everything.
    """
    if full:
        try:
            read_image(path, mode)
        except ValueError as err:
            return _reason(err.__cause__ or err)
        return None
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as err:
        return _reason(err)
    return None


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
