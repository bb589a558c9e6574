"""Rendering, design grouping and the glyph filters, on matplotlib's fonts and generated images."""

from __future__ import annotations

import numpy as np
import pytest

from paper_repro.datasets.glyphs_filter import (
    bad_designs,
    blur,
    consensus_outliers,
    mean_abs_diff,
    near_duplicates,
    placeholder_mask,
)
from paper_repro.datasets.glyphs_render import (
    MISSING_CODEPOINT,
    family_key,
    find_font_files,
    group_designs,
    load_font,
    read_faces,
    render_glyph,
)
from paper_repro.datasets.glyphs_scripts import CASE_LETTERS, SCRIPTS, script_characters

from .glyph_fixtures import MPL_FONTS, font_path

DESIGNS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "STIXGeneral.ttf")


def _render(name: str, char: str, **kw) -> np.ndarray | None:
    return render_glyph(load_font(read_faces(font_path(name))[0], kw.pop("render_size", 64)), char, **kw)


def test_render_is_deterministic_and_fitted():
    a = _render("DejaVuSans.ttf", "A")
    b = _render("DejaVuSans.ttf", "A")
    assert a.dtype == np.uint8 and a.shape == (32, 32)
    np.testing.assert_array_equal(a, b)
    ys, xs = np.nonzero(a)
    # Cropped to the ink and fitted: the longer side spans size - 2 * margin = 28 px, the margin stays empty.
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 == 28
    assert ys.min() >= 2 and xs.min() >= 2 and ys.max() <= 29 and xs.max() <= 29
    c = _render("DejaVuSans.ttf", "A", size=48, margin=4, render_size=96)
    assert c.shape == (48, 48)


def test_render_blank_and_bad_margin():
    assert _render("DejaVuSans.ttf", " ") is None
    with pytest.raises(ValueError, match="margin"):
        _render("DejaVuSans.ttf", "A", size=8, margin=4)


def test_family_key_strips_weight_and_width_but_not_script_names():
    assert family_key("Noto Sans Light") == "Noto Sans"
    assert family_key("DejaVu Sans Condensed") == "DejaVu Sans"
    assert family_key("Noto Serif SemiBold") == "Noto Serif"
    assert family_key("Noto Sans Old Italic") == "Noto Sans Old Italic"


def test_faces_group_into_one_design_per_family():
    files = find_font_files([MPL_FONTS])
    assert font_path("DejaVuSans.ttf").resolve() in files
    faces = [
        f for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf") for f in read_faces(font_path(name))
    ]
    designs = group_designs(faces)
    assert sorted(designs) == ["DejaVu Sans", "DejaVu Serif"]
    assert designs["DejaVu Sans"].path.endswith("DejaVuSans.ttf")  # the regular face represents the family
    assert read_faces(MPL_FONTS / "LICENSE_DEJAVU") == []  # not a font: skipped, not fatal


def test_script_table():
    latin = script_characters("Latin")
    assert len(latin) == 52 and chr(latin[0]) == "A" and chr(latin[-1]) == "z"
    assert all(chr(c).isalpha() for s in SCRIPTS for c in script_characters(s))
    assert set(CASE_LETTERS) <= {chr(c) for c in latin}
    with pytest.raises(ValueError, match="unknown script"):
        script_characters("Klingon")


def test_placeholders_blank_shared_and_notdef():
    face = read_faces(font_path("LastResortHE-Regular.ttf"))[0]
    cps = [c for c in script_characters("Greek") if c in face.cmap]
    font = load_font(face, 64)
    images = [render_glyph(font, chr(c)) for c in cps]
    assert placeholder_mask(images, [face.cmap[c] for c in cps], None).all()  # one box for the whole block

    real = read_faces(font_path("DejaVuSans.ttf"))[0]
    font = load_font(real, 64)
    notdef = render_glyph(font, chr(MISSING_CODEPOINT))
    a, b = render_glyph(font, "A"), render_glyph(font, "B")
    mask = placeholder_mask([a, None, notdef.copy(), b], ["A", "space", "box", "B"], notdef)
    assert mask.tolist() == [False, True, True, False]


def _same_char_designs(char: str) -> np.ndarray:
    return np.stack([_render(name, char) for name in DESIGNS])


def test_consensus_drops_a_wrong_shape_and_a_blank_glyph():
    good = _same_char_designs("A")
    wrong = _render("DejaVuSans.ttf", "\u03a9")  # Omega drawn where an A is claimed
    blank = np.zeros_like(good[0])
    images = np.concatenate([good, good[:2], wrong[None], blank[None]])  # 6 agreeing glyphs, 2 bad
    outlier, d = consensus_outliers(images)
    assert outlier.tolist() == [False] * 6 + [True, True]
    assert d[-2] > d[:6].max()
    assert not consensus_outliers(good)[0].any()  # designs that agree lose nothing
    assert not consensus_outliers(good[:2])[0].any()  # under 3 glyphs there is no consensus


def test_bad_designs_are_those_mostly_flagged():
    designs = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    outlier = np.array([0, 0, 1, 0, 1, 1, 1, 0, 1, 1], dtype=bool)
    assert bad_designs(designs, outlier) == {1}  # design 2 has too few glyphs to judge


def test_near_duplicates_merge_copies_and_keep_distinct_designs():
    a = _render("DejaVuSans.ttf", "g")
    shaky = a.astype(np.int16)
    shaky[a > 0] -= 3  # a copy with slightly different anti-aliasing
    images = np.stack([a, _render("DejaVuSerif.ttf", "g"), shaky.clip(0, 255).astype(np.uint8), a])
    assert near_duplicates(images, tau=0.03).tolist() == [False, False, True, True]
    assert float(mean_abs_diff(images[0], images[1])) > 0.03


def test_blur_keeps_mass_and_shape():
    x = np.zeros((9, 9), np.uint8)
    x[4, 4] = 255
    b = blur(x)
    assert b.shape == (9, 9) and abs(b.sum() - 1.0) < 1e-5 and b[4, 4] < 1.0
