"""The writing systems of the glyph data set and the characters rendered for each (Unicode code points).

A *script* is the coarse class (Omniglot's alphabet) and a *character* its fine class. Each script lists the
Unicode ranges of its base letters; only code points whose general category is a letter (``L*``) are kept, so
combining vowel signs, digits and punctuation (which fonts draw as marks on a dotted circle, or share across
scripts) are not characters here. Ethiopic and Canadian Syllabics are syllabaries with hundreds of signs; only
their first vowel order (every 8th Ethiopic sign) and the ``A``-series of the syllabics are kept so that no script
dominates by size. Latin is the basic upper- and lower-case alphabet (``A``-``Z``, ``a``-``z``).

``PACKAGES`` is the Debian font package list measured in ``/work/shared/notes/glyph_data.md`` (110 packages, about
62 MB download, 204 MB installed).
"""

from __future__ import annotations

import unicodedata

__all__ = ["CASE_LETTERS", "DEBIAN_PACKAGES", "SCRIPTS", "script_characters"]

# (first, last) inclusive ranges, optionally with a step.
SCRIPTS: dict[str, tuple[tuple[int, ...], ...]] = {
    "Latin": ((0x41, 0x5A), (0x61, 0x7A)),
    "Greek": ((0x391, 0x3A9), (0x3B1, 0x3C9)),
    "Cyrillic": ((0x410, 0x44F),),
    "Armenian": ((0x531, 0x556), (0x561, 0x586)),
    "Hebrew": ((0x5D0, 0x5EA),),
    "Arabic": ((0x621, 0x64A),),
    "Devanagari": ((0x905, 0x939),),
    "Bengali": ((0x985, 0x9B9),),
    "Gurmukhi": ((0xA05, 0xA39),),
    "Gujarati": ((0xA85, 0xAB9),),
    "Oriya": ((0xB05, 0xB39),),
    "Tamil": ((0xB85, 0xBB9),),
    "Telugu": ((0xC05, 0xC39),),
    "Kannada": ((0xC85, 0xCB9),),
    "Malayalam": ((0xD05, 0xD39),),
    "Sinhala": ((0xD85, 0xDC6),),
    "Thai": ((0xE01, 0xE2E),),
    "Lao": ((0xE81, 0xEAE),),
    "Tibetan": ((0xF40, 0xF6C),),
    "Myanmar": ((0x1000, 0x1021),),
    "Georgian": ((0x10D0, 0x10FA),),
    "HangulJamo": ((0x3131, 0x314E),),
    "Ethiopic": ((0x1200, 0x1357, 8),),
    "Cherokee": ((0x13A0, 0x13F4),),
    "CanadianSyllabics": ((0x1401, 0x1438),),
    "Ogham": ((0x1681, 0x169A),),
    "Runic": ((0x16A0, 0x16EA),),
    "Khmer": ((0x1780, 0x17A2),),
    "Mongolian": ((0x1820, 0x1842),),
    "Tifinagh": ((0x2D30, 0x2D65),),
    "Coptic": ((0x2C80, 0x2CB1),),
    "Hiragana": ((0x3041, 0x3096),),
    "Katakana": ((0x30A1, 0x30FA),),
    "Bopomofo": ((0x3105, 0x312C),),
    "Yi": ((0xA000, 0xA03F),),
    "Vai": ((0xA500, 0xA53F),),
    "OldItalic": ((0x10300, 0x1031E),),
    "Gothic": ((0x10330, 0x1034A),),
    "Ugaritic": ((0x10380, 0x1039D),),
    "Deseret": ((0x10400, 0x10427),),
    "Phoenician": ((0x10900, 0x10915),),
}

#: Letters whose upper and lower case look different (mean pixel difference 0.24-0.35 after crop and scale,
#: measured in the notes): the coarse classes of the ``glyph-case`` data set, with the case as the fine class.
CASE_LETTERS = tuple("ABDEFGHKLMNQR")

DEBIAN_PACKAGES = (
    "fonts-noto-core fonts-freefont-ttf fonts-dejavu-core fonts-dejavu-extra fonts-mph-2b-damase fonts-bpg-georgian "
    "fonts-senamirmir-washra fonts-sil-abyssinica fonts-lg-aboriginal culmus fonts-sil-ezra fonts-arabeyes "
    "fonts-kacst fonts-hosny-amiri fonts-sil-scheherazade fonts-sil-lateef fonts-paktype fonts-farsiweb "
    "fonts-tlwg-garuda-ttf fonts-tlwg-kinnari-ttf fonts-tlwg-laksaman-ttf fonts-tlwg-loma-ttf fonts-tlwg-mono-ttf "
    "fonts-tlwg-norasi-ttf fonts-tlwg-purisa-ttf fonts-tlwg-sawasdee-ttf fonts-tlwg-typewriter-ttf "
    "fonts-tlwg-typist-ttf fonts-tlwg-typo-ttf fonts-tlwg-umpush-ttf fonts-tlwg-waree-ttf fonts-arundina "
    "fonts-lohit-deva fonts-lohit-beng-bengali fonts-lohit-guru fonts-lohit-gujr fonts-lohit-taml fonts-lohit-telu "
    "fonts-lohit-knda fonts-lohit-mlym fonts-lohit-orya fonts-deva-extra fonts-beng-extra fonts-gujr-extra "
    "fonts-guru-extra fonts-telu-extra fonts-teluguvijayam fonts-orya-extra fonts-samyak-deva fonts-samyak-taml "
    "fonts-samyak-gujr fonts-samyak-mlym fonts-samyak-orya fonts-sarai fonts-gargi fonts-nakula fonts-sahadeva "
    "fonts-kalapi fonts-sil-annapurna fonts-taml-tamu fonts-taml-tscu fonts-meera-inimai fonts-smc-anjalioldlipi "
    "fonts-smc-chilanka fonts-smc-dyuthi fonts-smc-gayathri fonts-smc-karumbi fonts-smc-keraleeyam "
    "fonts-smc-manjari fonts-smc-meera fonts-smc-rachana fonts-smc-raghumalayalamsans fonts-smc-suruma "
    "fonts-smc-uroob fonts-gubbi fonts-navilu fonts-lklug-sinhala fonts-gemunu-libre fonts-lao fonts-myanmar "
    "fonts-sil-padauk fonts-khmeros fonts-sil-mondulkiri fonts-tibetan-machine fonts-ddc-uchen fonts-gfs-artemisia "
    "fonts-gfs-baskerville fonts-gfs-bodoni-classic fonts-gfs-complutum fonts-gfs-didot fonts-gfs-didot-classic "
    "fonts-gfs-gazis fonts-gfs-neohellenic fonts-gfs-olga fonts-gfs-porson fonts-gfs-solomos fonts-gfs-theokritos "
    "fonts-paratype fonts-misaki fonts-vlgothic fonts-ipafont-gothic fonts-motoya-l-cedar fonts-motoya-l-maruberi "
    "fonts-komatuna fonts-sawarabi-gothic fonts-sawarabi-mincho fonts-aoyagi-kouzan-t fonts-alee fonts-lexi-gulim "
    "fonts-lexi-saebom"
).split()


def script_characters(script: str) -> list[int]:
    """The code points rendered for ``script``: the letters (Unicode category ``L*``) in its ranges, in order."""
    if script not in SCRIPTS:
        raise ValueError(f"unknown script {script!r}; allowed: {', '.join(SCRIPTS)}")
    out = []
    for r in SCRIPTS[script]:
        first, last, step = r[0], r[1], r[2] if len(r) > 2 else 1
        out += [c for c in range(first, last + 1, step) if unicodedata.category(chr(c)).startswith("L")]
    return out
