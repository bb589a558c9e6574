"""CUB-200-2011 from the official archive (``CUB_200_2011.tgz``, extracted), decoded lazily as RGB.

Layout under ``<root>/CUB_200_2011/``::

    images.txt               <image_id> <class_dir>/<file>.jpg
    image_class_labels.txt   <image_id> <class_id>          (1-based, 1..200)
    classes.txt              <class_id> <class_name>        (e.g. "1 001.Black_footed_Albatross")
    train_test_split.txt     <image_id> <is_training_image>
    bounding_boxes.txt       <image_id> <x> <y> <width> <height>   (optional; needed for crop_bbox=True)
    images/<class_dir>/<file>.jpg

``protocol="zero-shot"`` (default, the metric-learning convention): ``split`` selects classes 1-100 ("train") or
101-200 ("test") with all their images. ``protocol="official"``: the image split of ``train_test_split.txt``
over all 200 classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from collapse._validation import check_choice
from paper_repro.datasets.base import Transform
from paper_repro.datasets.files import FileImageDataset
from paper_repro.datasets.layout import dataset_folder, read_table, require_layout, resolve_listed
from paper_repro.datasets.splits import CUB_CLASSES, SPLITS, protocol_split

__all__ = ["CUB_DIRNAME", "CUB_FILES", "PROTOCOLS", "load_cub"]

CUB_DIRNAME = "CUB_200_2011"
CUB_FILES = ("images.txt", "image_class_labels.txt", "classes.txt", "train_test_split.txt", "images/")
PROTOCOLS = ("zero-shot", "official")
_EXPECTED = (
    "images.txt, image_class_labels.txt, classes.txt, train_test_split.txt and images/ (the official archive, "
    "extracted)"
)


def _by_id(folder: Path, name: str, fields: str, types: tuple, ids: list[int]) -> list[tuple]:
    """Rows of ``name`` reordered to follow ``ids`` (the order of images.txt); every id must appear exactly once."""
    rows = read_table(folder / name, fields, types)
    table = {r[0]: r[1:] for r in rows}
    if len(table) != len(rows) or set(table) != set(ids):
        odd = sorted(set(table) ^ set(ids))[:3]
        raise ValueError(
            f"malformed {folder / name}: its image ids must match images.txt one to one "
            f"({len(rows)} rows for {len(ids)} images; e.g. id(s) {odd} differ or repeat)"
        )
    return [table[i] for i in ids]


def load_cub(
    root: str | Path = "data",
    split: str = "train",
    *,
    protocol: str = "zero-shot",
    size: int | tuple[int, int] | None = None,
    crop_bbox: bool = False,
    skip_bad: bool = False,
    verify: str = "fast",
    transform: Transform | None = None,
) -> FileImageDataset:
    """CUB-200-2011 images (RGB) with labels ``0 .. C-1``; see the module docstring for layout and protocols.

    ``crop_bbox=True`` crops every image to its box from ``bounding_boxes.txt`` before the optional resize.
    """
    split = check_choice("split", split, SPLITS)
    protocol = check_choice("protocol", protocol, PROTOCOLS)
    folder = dataset_folder(root, CUB_DIRNAME, ["images.txt", "classes.txt"])
    require_layout(folder, CUB_FILES + (("bounding_boxes.txt",) if crop_bbox else ()), "CUB-200-2011", _EXPECTED)

    images = read_table(folder / "images.txt", "<image_id> <image_name>", (int, str))
    ids = [r[0] for r in images]
    if len(set(ids)) != len(ids):
        raise ValueError(f"malformed {folder / 'images.txt'}: repeated image ids")
    class_ids = np.array(
        [r[0] for r in _by_id(folder, "image_class_labels.txt", "<image_id> <class_id>", (int, int), ids)]
    )
    is_train = np.array(
        [r[0] for r in _by_id(folder, "train_test_split.txt", "<image_id> <is_training>", (int, int), ids)]
    )
    names = dict(read_table(folder / "classes.txt", "<class_id> <class_name>", (int, str)))
    unknown = sorted(set(class_ids.tolist()) - set(names))
    if unknown:
        raise ValueError(f"malformed {folder / 'image_class_labels.txt'}: class ids {unknown[:5]} not in classes.txt")

    keep, labels, classes = protocol_split(class_ids, is_train == 0, split, protocol, CUB_CLASSES, max(names),
                                           f"CUB-200-2011 under {folder}")
    missing = [c for c in classes if c not in names]
    if missing:
        raise ValueError(
            f"malformed {folder / 'classes.txt'}: class ids {missing[:5]} are missing; "
            f"expected ids {classes.start}..{classes.stop - 1}"
        )

    boxes = None
    if crop_bbox:
        xywh = np.array(
            _by_id(
                folder,
                "bounding_boxes.txt",
                "<image_id> <x> <y> <width> <height>",
                (int, float, float, float, float),
                ids,
            )
        )
        boxes = np.column_stack([xywh[:, 0], xywh[:, 1], xywh[:, 0] + xywh[:, 2], xywh[:, 1] + xywh[:, 3]])[keep]
    return FileImageDataset(
        [resolve_listed(folder / "images", images[i][1], folder / "images.txt") for i in keep],
        labels,
        [names[c] for c in classes],
        name="cub",
        mode="RGB",
        size=size,
        boxes=boxes,
        skip_bad=skip_bad,
        verify=verify,
        transform=transform,
    )
