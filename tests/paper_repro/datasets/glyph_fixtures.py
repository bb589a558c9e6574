"""Fonts for the glyph tests, with no network: the TrueType files that ship inside matplotlib (always installed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

MPL_FONTS = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
#: Five Latin/Greek/Cyrillic designs (DejaVu Sans, Serif, Sans Mono, STIXGeneral, plus the Bold face of DejaVu Sans
#: which must merge into DejaVu Sans), and LastResort, whose glyphs are all placeholder boxes.
FIXTURE_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono.ttf",
    "STIXGeneral.ttf",
    "LastResortHE-Regular.ttf",
)
#: Small thresholds so that the four designs are enough for a data set.
FIXTURE_SETTINGS = {"min_designs": 3, "min_characters": 5}


def font_path(name: str) -> Path:
    return MPL_FONTS / name


def copy_fonts(folder: Path, names: tuple[str, ...] = FIXTURE_FONTS) -> Path:
    """Copy the fixture fonts into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copyfile(MPL_FONTS / n, folder / n)
    return folder
