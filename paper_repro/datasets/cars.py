"""Cars196 (Stanford Cars), decoded lazily as RGB, from either official release under ``<root>/cars196/``.

``cars_annos.mat`` release::

    cars_annos.mat   annotations: 1xN struct (relative_im_path "car_ims/000001.jpg", bbox_x1, bbox_y1, bbox_x2,
                     bbox_y2, class (1-based, 1..196), test (0/1)); class_names: 1x196 cell
    car_ims/000001.jpg ...

devkit release::

    devkit/cars_meta.mat                 class_names: 1x196 cell
    devkit/cars_train_annos.mat          annotations: 1xN struct (bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname)
    cars_test_annos_withlabels.mat       the same for the test images (also accepted inside devkit/)
    cars_train/00001.jpg ...   cars_test/00001.jpg ...

``protocol="zero-shot"`` (default): ``split`` selects classes 1-98 ("train") or 99-196 ("test") with all their
images, from both official image sets. ``protocol="official"``: the official image split over all 196 classes.
Boxes are MATLAB pixel coordinates (1-based, inclusive); ``crop_bbox=True`` crops to them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from collapse._validation import check_choice
from paper_repro.datasets.base import Transform
from paper_repro.datasets.files import FileImageDataset
from paper_repro.datasets.layout import resolve_listed
from paper_repro.datasets.splits import CARS_CLASSES, SPLITS, protocol_split

__all__ = ["CARS_DIRNAME", "CARS_LAYOUTS", "PROTOCOLS", "load_cars", "read_mat_struct"]

CARS_DIRNAME = "cars196"
CARS_LAYOUTS = ("auto", "annos", "devkit")
PROTOCOLS = ("zero-shot", "official")
_BOX = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")
_TEST_ANNOS = "cars_test_annos_withlabels.mat"
_EXPECTED = (
    "either cars_annos.mat and car_ims/ (the cars_annos.mat release) or devkit/cars_meta.mat, "
    f"devkit/cars_train_annos.mat, {_TEST_ANNOS}, cars_train/ and cars_test/ (the devkit release)"
)


def _load_mat(path: Path) -> dict:
    try:
        return loadmat(path, squeeze_me=True)
    except Exception as err:  # scipy raises ValueError, TypeError, OSError... for a file that is not a .mat
        raise ValueError(f"cannot read {path}: {type(err).__name__}: {err}") from err


def read_mat_struct(path: Path, key: str, fields: tuple[str, ...]) -> dict[str, list]:
    """The struct array ``key`` of a .mat file as ``{field: [value per element]}``; a one-line error if malformed."""
    mat = _load_mat(path)
    if key not in mat or mat[key].dtype.names is None:
        raise ValueError(f"malformed {path}: expected a struct array '{key}' with fields {', '.join(fields)}")
    arr = np.atleast_1d(mat[key])
    missing = [f for f in fields if f not in arr.dtype.names]
    if missing:
        raise ValueError(f"malformed {path}: '{key}' lacks field(s) {', '.join(missing)}; expected {', '.join(fields)}")
    return {f: list(arr[f]) for f in fields}


def _class_names(path: Path) -> list[str]:
    mat = _load_mat(path)
    if "class_names" not in mat:
        raise ValueError(f"malformed {path}: expected a cell array 'class_names'")
    return [str(c) for c in np.atleast_1d(mat["class_names"])]


def _detect(folder: Path, layout: str) -> tuple[str, Path | None]:
    test = next((p for p in (folder / _TEST_ANNOS, folder / "devkit" / _TEST_ANNOS) if p.is_file()), None)
    has = {
        "annos": (folder / "cars_annos.mat").is_file() and (folder / "car_ims").is_dir(),
        "devkit": test is not None
        and all((folder / p).exists() for p in ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat"))
        and (folder / "cars_train").is_dir()
        and (folder / "cars_test").is_dir(),
    }
    chosen = next((k for k in ("annos", "devkit") if has[k]), None) if layout == "auto" else layout
    if chosen is None or not has[chosen]:
        raise FileNotFoundError(f"Cars196 not found under {folder}: expected {_EXPECTED}")
    return chosen, test


def _cars_folder(root: str | Path) -> Path:
    root = Path(root)
    if not (root / CARS_DIRNAME).exists() and ((root / "cars_annos.mat").exists() or (root / "devkit").is_dir()):
        return root
    return root / CARS_DIRNAME


def load_cars(
    root: str | Path = "data",
    split: str = "train",
    *,
    protocol: str = "zero-shot",
    layout: str = "auto",
    size: int | tuple[int, int] | None = None,
    crop_bbox: bool = False,
    skip_bad: bool = False,
    verify: str = "fast",
    transform: Transform | None = None,
) -> FileImageDataset:
    """Cars196 images (RGB) with labels ``0 .. C-1``; see the module docstring for layouts and protocols.

    ``layout="auto"`` uses the cars_annos.mat release when present, else the devkit release.
    """
    split = check_choice("split", split, SPLITS)
    protocol = check_choice("protocol", protocol, PROTOCOLS)
    layout = check_choice("layout", layout, CARS_LAYOUTS)
    folder = _cars_folder(root)
    layout, test_path = _detect(folder, layout)

    if layout == "annos":
        mat = folder / "cars_annos.mat"
        rec = read_mat_struct(mat, "annotations", ("relative_im_path", *_BOX, "class", "test"))
        paths = [resolve_listed(folder, str(p), mat) for p in rec["relative_im_path"]]
        is_test = np.array([int(t) for t in rec["test"]], dtype=bool)
        names = _class_names(mat)
    else:
        fields = (*_BOX, "class", "fname")
        parts = [
            (folder / "devkit" / "cars_train_annos.mat", folder / "cars_train", False),
            (test_path, folder / "cars_test", True),
        ]
        rec = {f: [] for f in fields}
        paths, is_test_list = [], []
        for mat, images, test in parts:
            r = read_mat_struct(mat, "annotations", fields)
            for f in fields:
                rec[f] += r[f]
            paths += [resolve_listed(images, str(p), mat) for p in r["fname"]]
            is_test_list += [test] * len(r["fname"])
        is_test = np.array(is_test_list, dtype=bool)
        mat = folder / "devkit" / "cars_meta.mat"
        names = _class_names(mat)
    class_ids = np.array([int(c) for c in rec["class"]], dtype=np.int64)
    if class_ids.size and (class_ids.min() < 1 or class_ids.max() > len(names)):
        raise ValueError(
            f"malformed Cars196 annotations under {folder}: class ids must be 1..{len(names)} "
            f"(the class_names of {mat.name}), got {class_ids.min()}..{class_ids.max()}"
        )

    if protocol == "zero-shot" and CARS_CLASSES[split].stop - 1 > len(names):
        raise ValueError(f"malformed {mat}: {len(names)} class_names, the standard split needs 196")
    keep, labels, classes = protocol_split(class_ids, is_test, split, protocol, CARS_CLASSES, len(names),
                                           f"Cars196 under {folder}")
    boxes = None
    if crop_bbox:
        box = np.array([[float(v) for v in rec[k]] for k in _BOX]).T.reshape(-1, 4)
        boxes = np.column_stack([box[:, 0] - 1, box[:, 1] - 1, box[:, 2], box[:, 3]])[keep]
    return FileImageDataset(
        [paths[i] for i in keep],
        labels,
        [names[c - 1] for c in classes],
        name="cars",
        mode="RGB",
        size=size,
        boxes=boxes,
        skip_bad=skip_bad,
        verify=verify,
        transform=transform,
    )
