"""Omniglot from the official ``images_background.zip`` / ``images_evaluation.zip``, decoded lazily as grey.

Layout under ``<root>/omniglot/`` (``<root>/omniglot/python/`` is accepted too, as in the GitHub repository)::

    images_background/<alphabet>/character<NN>/<drawing>.png     30 alphabets, 964 characters (the "train" split)
    images_evaluation/<alphabet>/character<NN>/<drawing>.png     20 alphabets, 659 characters (the "test" split)

``label="alphabet"`` (default): the class is the alphabet and the fine label is the character, the hidden mode a
collapsed embedding loses. ``label="character"``: the class is the character (no fine label).
The drawings are black strokes on white (105x105, binary); ``invert=True`` serves white on black like MNIST.
Alphabets and characters are numbered in sorted order (``images_background`` first when ``split="all"``).
"""

from __future__ import annotations

import re
from pathlib import Path

from collapse._validation import check_choice
from paper_repro.datasets.base import Transform
from paper_repro.datasets.files import FileImageDataset
from paper_repro.datasets.splits import OMNIGLOT_FOLDERS, SPLITS

__all__ = ["LABELS", "OMNIGLOT_DIRNAME", "load_omniglot"]

OMNIGLOT_DIRNAME = "omniglot"
LABELS = ("alphabet", "character")
_EXPECTED = (
    "images_background/ and images_evaluation/, each <alphabet>/character<NN>/*.png (the official "
    "images_background.zip and images_evaluation.zip, extracted)"
)


def _natural(p: Path) -> list:
    """Sort key that puts character2 before character10 even without zero padding."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _split_dir(folder: Path, name: str) -> Path:
    for cand in (folder / name, folder / "python" / name):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"Omniglot not found under {folder}: expected {_EXPECTED}; missing {name}/")


def _omniglot_folder(root: str | Path) -> Path:
    root = Path(root)
    if not (root / OMNIGLOT_DIRNAME).exists() and any((root / n).is_dir() for n in OMNIGLOT_FOLDERS["all"]):
        return root
    return root / OMNIGLOT_DIRNAME


def load_omniglot(
    root: str | Path = "data",
    split: str = "train",
    *,
    label: str = "alphabet",
    size: int | tuple[int, int] | None = None,
    invert: bool = False,
    skip_bad: bool = False,
    verify: str = "fast",
    transform: Transform | None = None,
) -> FileImageDataset:
    """Omniglot drawings (1 grey channel) with alphabet or character labels; see the module docstring."""
    split = check_choice("split", split, SPLITS)
    label = check_choice("label", label, LABELS)
    folder = _omniglot_folder(root)
    paths, alphabet_ids, char_ids, alphabets, characters = [], [], [], [], []
    for name in OMNIGLOT_FOLDERS[split]:
        base = _split_dir(folder, name)
        n_before = len(paths)
        for alpha_dir in sorted((d for d in base.iterdir() if d.is_dir()), key=_natural):
            chars = [(d, sorted(d.glob("*.png"), key=_natural)) for d in sorted(alpha_dir.iterdir(), key=_natural)]
            chars = [(d, files) for d, files in chars if d.is_dir() and files]
            if not chars:
                continue  # an alphabet without drawings would be a class without images
            alphabets.append(alpha_dir.name)
            for char_dir, files in chars:
                characters.append(f"{alpha_dir.name}/{char_dir.name}")
                paths += files
                alphabet_ids += [len(alphabets) - 1] * len(files)
                char_ids += [len(characters) - 1] * len(files)
        if len(paths) == n_before:
            raise FileNotFoundError(
                f"Omniglot under {folder} is malformed: no <alphabet>/character<NN>/*.png in {base}"
            )
    if label == "alphabet":
        labels, names, fine, fine_names = alphabet_ids, alphabets, char_ids, characters
    else:
        labels, names, fine, fine_names = char_ids, characters, None, None
    return FileImageDataset(
        paths,
        labels,
        names,
        name="omniglot",
        mode="L",
        size=size,
        invert=invert,
        skip_bad=skip_bad,
        verify=verify,
        fine_labels=fine,
        fine_names=fine_names,
        transform=transform,
    )
