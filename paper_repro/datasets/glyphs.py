"""Glyphs rendered from fonts: an Omniglot-like hierarchy built offline (a proxy for Omniglot, not Omniglot).

Build it first (about 1 min to install the fonts, 1-2 min to render; see ``glyphs_build``)::

    python -m paper_repro.datasets.fetch --dataset glyphs

Two data sets read ``<root>/glyphs/glyphs-<size>.npz`` (its sha256 is checked against the manifest on load):

* ``glyphs`` (:func:`load_glyphs`): class = script (Omniglot's alphabet), fine label = character (the hidden mode),
  instance = font design. ``label="character"`` makes the character the class (no fine label). Splits:

  - ``protocol="scripts"`` (default, Omniglot's zero-shot split): a fixed fraction ``test_fraction`` (default 0.4,
    Omniglot's 20 of 50 alphabets) of the scripts, drawn with ``split_seed``, is held out whole; the test side is
    relabelled ``0..C'-1``.
  - ``protocol="designs"`` (new instances of seen characters): in every script, ``test_fraction`` (default 0.25,
    at least one) of its designs, drawn with ``split_seed`` and the script's index, are held out; every script keeps
    its label on both sides.

* ``glyph-case`` (:func:`load_glyph_case`): class = Latin letter (A B D E F G H K L M N Q R, whose two cases look
  different), fine label = its upper or lower case. ``protocol="designs"`` (default) holds out ``test_fraction``
  (default 0.25) of the fonts, the same for every letter; ``protocol="letters"`` holds out ``test_fraction`` of
  the letters (zero-shot).

Images are ``(1, size, size)`` floats in [0, 1], white ink on black. Fonts vary less than handwriting: train with
the ``glyph`` augmentation of :mod:`paper_repro.transforms` (affine jitter, stroke width, elastic).
"""

from __future__ import annotations

import numpy as np

from collapse._validation import check_choice
from paper_repro.datasets.base import Transform
from paper_repro.datasets.glyphs_build import glyph_paths, read_manifest, sha256_file
from paper_repro.datasets.glyphs_scripts import CASE_LETTERS
from paper_repro.datasets.memory import InMemoryImageDataset
from paper_repro.datasets.splits import SPLITS

__all__ = [
    "BUILD_COMMAND",
    "held_out_designs",
    "held_out_scripts",
    "load_glyph_arrays",
    "load_glyph_case",
    "load_glyphs",
]

BUILD_COMMAND = "python -m paper_repro.datasets.fetch --dataset glyphs"


def load_glyph_arrays(root: str = "data", size: int = 32) -> dict[str, np.ndarray]:
    """The arrays of the built glyph set, after checking the file's sha256 against its manifest."""
    data_path, manifest_path = glyph_paths(root, size)
    manifest = read_manifest(manifest_path)
    if manifest is None or not data_path.is_file():
        raise FileNotFoundError(
            f"glyph set not found: expected {data_path} and {manifest_path}; build it with "
            f"{BUILD_COMMAND} --root {root}"
        )
    got = sha256_file(data_path)
    if got != manifest.get("sha256"):
        raise ValueError(
            f"{data_path} is corrupt (sha256 {got}, manifest says {manifest.get('sha256')}); rebuild "
            f"it with {BUILD_COMMAND} --root {root}"
        )
    with np.load(data_path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _fraction(value: float | None, default: float) -> float:
    f = default if value is None else value
    if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 < float(f) < 1.0:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {value!r}")
    return float(f)


def held_out_scripts(n_scripts: int, test_fraction: float, split_seed: int) -> np.ndarray:
    """Sorted ids of the held-out scripts: ``max(1, round(test_fraction * n))`` of ``n``, drawn with the seed."""
    if n_scripts < 2:
        raise ValueError(f"a split by script needs at least 2 scripts, got {n_scripts}")
    k = min(n_scripts - 1, max(1, round(test_fraction * n_scripts)))
    return np.sort(np.random.default_rng([split_seed, 0]).permutation(n_scripts)[:k])


def held_out_designs(script: np.ndarray, design: np.ndarray, test_fraction: float, split_seed: int) -> np.ndarray:
    """Boolean mask of the images whose (script, design) is held out: per script, ``max(1, round(f * n))`` of its
    ``n`` designs, drawn with ``(split_seed, script id)`` so one script's draw does not depend on the others."""
    test = np.zeros(len(design), dtype=bool)
    for s in np.unique(script):
        mine = script == s
        designs = np.unique(design[mine])
        k = min(len(designs) - 1, max(1, round(test_fraction * len(designs))))
        chosen = np.random.default_rng([split_seed, 1, int(s)]).permutation(designs)[:k]
        test |= mine & np.isin(design, chosen)
    return test


def _check_seed(split_seed: int) -> int:
    if isinstance(split_seed, bool) or not isinstance(split_seed, int | np.integer) or split_seed < 0:
        raise ValueError(f"split_seed must be a non-negative integer, got {split_seed!r}")
    return int(split_seed)


def _split_args(split: str, protocol: str, protocols: tuple[str, ...], split_seed: int) -> tuple[str, str, int]:
    """The validated split, protocol and split seed of a glyph loader."""
    return check_choice("split", split, SPLITS), check_choice("protocol", protocol, protocols), _check_seed(split_seed)


def _side(data: InMemoryImageDataset, split: str, held_out, relabel: bool) -> InMemoryImageDataset:
    """``data`` for ``split``: all of it, or the images where the boolean mask ``held_out()`` is (test) or is not
    (train) set; ``relabel`` renumbers the classes of that side from 0 (zero-shot protocols)."""
    if split == "all":
        return data
    test = held_out()
    return data.subset(np.flatnonzero(test if split == "test" else ~test), relabel=relabel)


def load_glyphs(
    root: str = "data",
    split: str = "train",
    *,
    protocol: str = "scripts",
    label: str = "script",
    test_fraction: float | None = None,
    split_seed: int = 0,
    size: int = 32,
    transform: Transform | None = None,
) -> InMemoryImageDataset:
    """Script -> character -> design glyphs (see the module docstring)."""
    split, protocol, seed = _split_args(split, protocol, ("scripts", "designs"), split_seed)
    label = check_choice("label", label, ("script", "character"))
    a = load_glyph_arrays(root, size)
    scripts = a["script_names"].tolist()
    script, cps = a["script"].astype(np.int64), a["codepoint"].astype(np.int64)
    pairs, char = np.unique(np.stack([script, cps], axis=1), axis=0, return_inverse=True)
    char = char.reshape(-1)
    # ASCII names (no glyph of the script needed to print or plot them); Latin adds the letter itself.
    char_names = [f"{scripts[s]}/U+{c:04X}" + (f" {chr(c)}" if c < 128 else "") for s, c in pairs.tolist()]
    if label == "script":
        labels, names, fine, fine_names = script, scripts, char, char_names
    else:
        labels, names, fine, fine_names = char, char_names, None, None
    data = InMemoryImageDataset(
        a["images"], labels, names, name="glyphs", fine_labels=fine, fine_names=fine_names, transform=transform
    )

    def held_out() -> np.ndarray:
        if protocol == "scripts":
            return np.isin(script, held_out_scripts(len(scripts), _fraction(test_fraction, 0.4), seed))
        return held_out_designs(script, a["design"].astype(np.int64), _fraction(test_fraction, 0.25), seed)

    return _side(data, split, held_out, relabel=protocol == "scripts" or label == "character")


def load_glyph_case(
    root: str = "data",
    split: str = "train",
    *,
    protocol: str = "designs",
    test_fraction: float | None = None,
    split_seed: int = 0,
    size: int = 32,
    transform: Transform | None = None,
) -> InMemoryImageDataset:
    """Latin letter (coarse) -> upper / lower case (fine) -> design (see the module docstring)."""
    split, protocol, seed = _split_args(split, protocol, ("designs", "letters"), split_seed)
    a = load_glyph_arrays(root, size)
    scripts = a["script_names"].tolist()
    if "Latin" not in scripts:
        raise ValueError("the glyph set has no Latin script; rebuild it with more fonts")
    cps = a["codepoint"].astype(np.int64)
    latin = a["script"] == scripts.index("Latin")
    letter = np.full(len(cps), -1)
    case = np.zeros(len(cps), dtype=np.int64)
    for k, ch in enumerate(CASE_LETTERS):
        letter[latin & (cps == ord(ch))] = k
        up_low = latin & (cps == ord(ch.lower()))
        letter[up_low], case[up_low] = k, 1
    keep = np.flatnonzero(letter >= 0)
    letter, case, design = letter[keep], case[keep], a["design"][keep].astype(np.int64)
    fine_names = [f"{ch} (upper)" if c == 0 else f"{ch.lower()} (lower)" for ch in CASE_LETTERS for c in (0, 1)]
    data = InMemoryImageDataset(
        a["images"][keep],
        letter,
        list(CASE_LETTERS),
        name="glyph-case",
        fine_labels=2 * letter + case,
        fine_names=fine_names,
        transform=transform,
    )

    def held_out() -> np.ndarray:
        if protocol == "designs":
            designs = np.unique(design)
            k = max(1, round(_fraction(test_fraction, 0.25) * len(designs)))
            return np.isin(design, np.random.default_rng([seed, 2]).permutation(designs)[:k])
        return np.isin(letter, held_out_scripts(len(CASE_LETTERS), _fraction(test_fraction, 0.25), seed))

    return _side(data, split, held_out, relabel=protocol == "letters")
