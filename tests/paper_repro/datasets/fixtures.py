"""Small fake data sets written in the exact official layouts, for the loader tests (no network).

Each writer returns what the test needs to check the loader against (the folder, and the expected per-image
labels in the order the loader should list them). Image pixels are a function of the image's index, so a test can
tell which file a loader served.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

CUB_NAMES = [f"{k:03d}.Bird_{k}" for k in range(1, 201)]
CARS_NAMES = [f"Maker Model {k} 2012" for k in range(1, 197)]


def write_image(path: Path, size: tuple[int, int], value: int, mode: str = "RGB", fmt: str | None = None) -> None:
    """A flat image of ``size = (W, H)`` whose pixels are ``value`` (an RGB triple for colour modes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = {"RGB": (value, 255 - value, value // 2), "L": value, "1": 1 if value else 0, "CMYK": (0, 0, 0, value)}
    Image.new(mode, size, colour[mode]).save(path, format=fmt)


def corrupt(path: Path) -> None:
    """Overwrite ``path`` with bytes no image decoder accepts."""
    path.write_bytes(b"this is not an image" * 10)


# --- CUB-200-2011 -------------------------------------------------------------------------------------------------
def make_cub(root: Path, per_class: dict[int, int] | None = None, *, boxes: bool = True) -> dict:
    """``root/CUB_200_2011`` with all 200 class names and ``per_class[class_id]`` JPEGs (default: classes
    1, 2, 101, 102, 200). Image ``k`` (1-based id) is ``10 + 7k`` wide; every third is greyscale JPEG (converted
    to RGB by the loader); odd ids are official training images."""
    per_class = per_class or {1: 3, 2: 2, 101: 2, 102: 3, 200: 1}
    folder = root / "CUB_200_2011"
    (folder / "images").mkdir(parents=True)
    lines = {"images": [], "labels": [], "split": [], "boxes": []}
    ids, classes, is_train = [], [], []
    k = 0
    for c, n in sorted(per_class.items()):
        for j in range(n):
            k += 1
            rel = f"{CUB_NAMES[c - 1]}/Bird_{c}_{j:04d}_{k}.jpg"
            write_image(folder / "images" / rel, (10 + 7 * k, 12), 40 + k, "L" if k % 3 == 0 else "RGB", "JPEG")
            lines["images"].append(f"{k} {rel}")
            lines["labels"].append(f"{k} {c}")
            lines["split"].append(f"{k} {k % 2}")
            lines["boxes"].append(f"{k} 1.0 2.0 {5 + k}.0 6.0")
            ids.append(k)
            classes.append(c)
            is_train.append(k % 2)
    (folder / "images.txt").write_text("\n".join(lines["images"]) + "\n")
    # the official files list ids in order; shuffle one to check the loader joins by id, not by line
    (folder / "image_class_labels.txt").write_text("\n".join(reversed(lines["labels"])) + "\n")
    (folder / "train_test_split.txt").write_text("\n".join(lines["split"]) + "\n")
    (folder / "classes.txt").write_text("".join(f"{c} {n}\n" for c, n in enumerate(CUB_NAMES, start=1)))
    if boxes:
        (folder / "bounding_boxes.txt").write_text("\n".join(lines["boxes"]) + "\n")
    return {"folder": folder, "ids": np.array(ids), "classes": np.array(classes), "is_train": np.array(is_train)}


# --- Cars196 ------------------------------------------------------------------------------------------------------
_BOX_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")


def _cell(strings: list[str]) -> np.ndarray:
    """A MATLAB 1xN cell array of char rows, as scipy writes ``class_names``."""
    cell = np.empty((1, len(strings)), dtype=object)
    for i, s in enumerate(strings):
        cell[0, i] = np.array([s])
    return cell


def _struct(rows: list[dict], fields: tuple[str, ...]) -> np.ndarray:
    """A MATLAB 1xN struct array with 1x1 uint8/uint16 numbers and char strings, like the official files."""
    arr = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        vals = []
        for f in fields:
            v = row[f]
            if isinstance(v, str):
                vals.append(np.array([v]))
            else:
                vals.append(np.array([[v]], dtype=np.uint16 if f.startswith("bbox") else np.uint8))
        arr[0, i] = tuple(vals)
    return arr


def _car_rows(per_class: dict[int, int], test_every: int) -> list[dict]:
    rows, k = [], 0
    for c, n in sorted(per_class.items()):
        for _ in range(n):
            k += 1
            rows.append({"k": k, "class": c, "test": int(k % test_every == 0), "box": (2, 3, 6 + k, 9)})
    return rows


def make_cars_annos(root: Path, per_class: dict[int, int] | None = None) -> dict:
    """``root/cars196`` in the cars_annos.mat release: car_ims/NNNNNN.jpg + cars_annos.mat (1-based classes)."""
    per_class = per_class or {1: 2, 2: 2, 98: 1, 99: 2, 196: 2}
    folder = root / "cars196"
    rows = _car_rows(per_class, 3)
    recs = []
    for r in rows:
        rel = f"car_ims/{r['k']:06d}.jpg"
        write_image(folder / rel, (20 + r["k"], 15), 30 + 10 * r["k"], "RGB", "JPEG")
        recs.append(
            {"relative_im_path": rel, **dict(zip(_BOX_FIELDS, r["box"])), "class": r["class"], "test": r["test"]}
        )
    fields = ("relative_im_path", *_BOX_FIELDS, "class", "test")
    savemat(folder / "cars_annos.mat", {"annotations": _struct(recs, fields), "class_names": _cell(CARS_NAMES)})
    return {"folder": folder, "rows": rows}


def make_cars_devkit(root: Path, per_class: dict[int, int] | None = None, *, test_in_devkit: bool = False) -> dict:
    """``root/cars196`` in the devkit release: devkit/{cars_meta,cars_train_annos}.mat,
    cars_test_annos_withlabels.mat, cars_train/NNNNN.jpg and cars_test/NNNNN.jpg (file names restart per set)."""
    per_class = per_class or {1: 2, 50: 1, 99: 2, 150: 1, 196: 1}
    folder = root / "cars196"
    (folder / "devkit").mkdir(parents=True)
    rows = _car_rows(per_class, 2)
    fields = (*_BOX_FIELDS, "class", "fname")
    sets = {"train": [], "test": []}
    for r in rows:
        side = "test" if r["test"] else "train"
        r["fname"] = f"{len(sets[side]) + 1:05d}.jpg"
        write_image(folder / f"cars_{side}" / r["fname"], (16, 10 + r["k"]), 20 * r["k"], "RGB", "JPEG")
        sets[side].append({**dict(zip(_BOX_FIELDS, r["box"])), "class": r["class"], "fname": r["fname"]})
    savemat(folder / "devkit" / "cars_meta.mat", {"class_names": _cell(CARS_NAMES)})
    savemat(folder / "devkit" / "cars_train_annos.mat", {"annotations": _struct(sets["train"], fields)})
    test_dir = folder / "devkit" if test_in_devkit else folder
    savemat(test_dir / "cars_test_annos_withlabels.mat", {"annotations": _struct(sets["test"], fields)})
    # the unlabelled test file of the devkit is there too in a real download; the loader must not use it
    no_class = tuple(f for f in fields if f != "class")
    savemat(folder / "devkit" / "cars_test_annos.mat", {"annotations": _struct(sets["test"], no_class)})
    order = [r for r in rows if not r["test"]] + [r for r in rows if r["test"]]
    return {"folder": folder, "rows": order}


# --- Omniglot -----------------------------------------------------------------------------------------------------
OMNIGLOT = {
    "images_background": {"Alpha_B": [2, 3], "Alpha_A": [2]},
    "images_evaluation": {"Gamma": [1, 2], "Delta": [3]},
}
"""split folder -> alphabet -> drawings per character (character01, character02, ...)."""


def make_omniglot(root: Path, size: int = 9) -> Path:
    """``root/omniglot/images_{background,evaluation}/<alphabet>/characterNN/<id>_<drawer>.png`` (binary PNGs:
    black stroke pixels on white, like the real 105x105 drawings)."""
    folder = root / "omniglot"
    for split_dir, alphabets in OMNIGLOT.items():
        for alpha, counts in alphabets.items():
            for ci, n in enumerate(counts, start=1):
                for d in range(1, n + 1):
                    path = folder / split_dir / alpha / f"character{ci:02d}" / f"{ci:04d}_{d:02d}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    img = Image.new("1", (size, size), 1)
                    img.putpixel((d, ci), 0)  # one black stroke pixel
                    img.save(path)
    return folder


# --- IDX ----------------------------------------------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    """IDX bytes written independently of the package's writer (the format spec, by hand), uint8 or int32 only."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[array.dtype]
    head = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


def make_idx_set(folder: Path, n_train: int = 12, n_test: int = 5, *, gz: bool = True, hw: int = 6) -> dict:
    """The four MNIST IDX files in ``folder`` with image ``i`` constant ``i`` and label ``i % 10``."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None], hw, 1).repeat(hw, 2)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr, dims in (("images", images, 3), ("labels", labels, 1)):
            name = f"{part}-{kind}-idx{dims}-ubyte"
            data = idx_bytes(arr)
            path = folder / (name + ".gz" if gz else name)
            path.write_bytes(gzip.compress(data) if gz else data)
            out[name] = (path, arr)
    return out
