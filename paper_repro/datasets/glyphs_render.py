"""Find font files, group their faces into designs, and render one character as a normalised grey image.

A *design* is one font family: the faces of a family (weights, widths, italics) are drawn by one hand, so they
count as one instance, not many. A family is named by its typographic family name (OpenType name ID 16, else 1)
with weight and width words removed (not "Italic": it names the Old Italic script, and slope lives in the
subfamily name anyway); its representative face is the most regular one (upright, weight
closest to 400, normal width, then the first path).

Rendering (:func:`render_glyph`): draw the character with FreeType (Pillow, basic layout, so no shaping engine
changes the result) at ``render_size`` px on a black canvas with room on every side, crop to the ink bounding box
(pixels > 0), scale the longer side to ``size - 2 * margin`` px keeping the aspect ratio (Lanczos), and paste it
centred into a ``size x size`` canvas: white ink on black, like MNIST. The result is a pure function of the font
file, the character and the three sizes (for a fixed FreeType / Pillow version).

Cropping to the ink removes the size and the baseline position: a lower-case ``o`` becomes an upper-case ``O``.
Such pairs are then indistinguishable characters; the data set keeps them as they are (Omniglot has look-alikes
too), which lowers the ceiling of fine-label retrieval a little.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTCollection, TTFont
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "FONT_SUFFIXES",
    "FontFace",
    "family_key",
    "find_font_files",
    "group_designs",
    "load_font",
    "read_faces",
    "render_glyph",
]

FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
_STYLE_WORDS = re.compile(
    r"\b(thin|hairline|extra ?light|ultra ?light|light|semi ?light|book|regular|normal|medium|semi ?bold|demi ?bold|"
    r"demi|bold|extra ?bold|ultra ?bold|black|heavy|extra ?black|condensed|semi ?condensed|"
    r"extra ?condensed|ultra ?condensed|narrow|expanded|semi ?expanded|extra ?expanded|wide)\b",
    re.IGNORECASE,
)
MISSING_CODEPOINT = 0x10FFFD
"""A private-use code point no font draws: rendering it shows the font's ``.notdef`` (its placeholder box)."""


@dataclass(frozen=True)
class FontFace:
    """One face of a font file: ``path`` and ``index`` (inside a .ttc), names, style and its cmap."""

    path: str
    index: int
    family: str
    subfamily: str
    weight: int
    width: int
    italic: bool
    cmap: dict[int, str]

    @property
    def design(self) -> str:
        return family_key(self.family)


def family_key(family: str) -> str:
    """``family`` without weight / width / slope words, whitespace collapsed: the name of the design."""
    return " ".join(_STYLE_WORDS.sub(" ", family).split()) or family.strip()


def find_font_files(dirs: Iterable[str | Path]) -> list[Path]:
    """Every ``.ttf`` / ``.otf`` / ``.ttc`` file under ``dirs`` (recursively, symlinks resolved, no duplicates),
    sorted by path."""
    seen: dict[Path, None] = {}
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for p in d.rglob("*"):
            if p.suffix.lower() in FONT_SUFFIXES and p.is_file():
                seen.setdefault(p.resolve(), None)
    return sorted(seen)


def _name(font: TTFont, *ids: int) -> str:
    table = font["name"] if "name" in font else None
    for i in ids:
        rec = table.getDebugName(i) if table is not None else None
        if rec:
            return str(rec)
    return ""


def read_faces(path: str | Path) -> list[FontFace]:
    """The faces of ``path`` with their cmaps; a file fontTools cannot read gives ``[]``."""
    path = Path(path)
    try:
        fonts = (
            list(TTCollection(str(path), lazy=True).fonts)
            if path.suffix.lower() == ".ttc"
            else [TTFont(str(path), lazy=True)]
        )
    except Exception:  # noqa: BLE001 - a broken font file is skipped, not fatal
        return []
    faces = []
    for index, font in enumerate(fonts):
        try:
            cmap = font.getBestCmap() or {}
            os2 = font["OS/2"] if "OS/2" in font else None
            family = _name(font, 16, 1) or path.stem
            subfamily = _name(font, 17, 2)
            italic = (
                bool(os2 is not None and os2.fsSelection & 1)
                or "italic" in subfamily.lower()
                or ("oblique" in subfamily.lower())
            )
            faces.append(
                FontFace(
                    path=str(path),
                    index=index,
                    family=family,
                    subfamily=subfamily,
                    weight=int(os2.usWeightClass) if os2 is not None else 400,
                    width=int(os2.usWidthClass) if os2 is not None else 5,
                    italic=italic,
                    cmap=dict(cmap),
                )
            )
        except Exception:  # noqa: BLE001 - a face with a broken table is skipped
            continue
    return faces


def group_designs(faces: Sequence[FontFace]) -> dict[str, FontFace]:
    """One representative face per design (see the module docstring), keyed by design name, sorted by name."""
    groups: dict[str, list[FontFace]] = {}
    for f in faces:
        groups.setdefault(f.design, []).append(f)

    def regularity(f: FontFace) -> tuple:
        return (f.italic, abs(f.weight - 400), abs(f.width - 5), -len(f.cmap), f.path, f.index)

    return {name: min(groups[name], key=regularity) for name in sorted(groups)}


def load_font(face: FontFace, render_size: int) -> ImageFont.FreeTypeFont:
    """The face as a Pillow font at ``render_size`` px with the basic (unshaped) layout."""
    return ImageFont.truetype(face.path, render_size, index=face.index, layout_engine=ImageFont.Layout.BASIC)


def render_glyph(
    font: ImageFont.FreeTypeFont, char: str, *, size: int = 32, margin: int = 2, render_size: int = 64
) -> np.ndarray | None:
    """``char`` drawn with ``font``, cropped to its ink and fitted into ``size x size`` (uint8, ink = 255).

    ``None`` when nothing is drawn (an empty glyph). See the module docstring for the exact steps.
    """
    if not 0 <= margin < size / 2:
        raise ValueError(f"margin must be in [0, size / 2) = [0, {size / 2}), got {margin}")
    pad = render_size
    canvas = Image.new("L", (4 * render_size, 4 * render_size), 0)
    try:
        ImageDraw.Draw(canvas).text((pad, pad), char, fill=255, font=font)
    except (OSError, ValueError):  # FreeType could not draw this glyph
        return None
    box = canvas.getbbox()
    if box is None:
        return None
    ink = canvas.crop(box)
    w, h = ink.size
    inner = size - 2 * margin
    scale = inner / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    ink = ink.resize((nw, nh), Image.Resampling.LANCZOS)
    out = Image.new("L", (size, size), 0)
    out.paste(ink, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(out, dtype=np.uint8).copy()
