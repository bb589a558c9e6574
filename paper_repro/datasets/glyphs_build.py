"""Build the glyph data set: script -> character -> design images rendered from installed fonts, cleaned, cached.

    python -m paper_repro.datasets.fetch --dataset glyphs [--root data] [--font-dir DIR ...] [--no-install]

Steps (:func:`build_glyphs`):

1. **Fonts.** With the default font folders, the Debian packages of
   :data:`~paper_repro.datasets.glyphs_scripts.DEBIAN_PACKAGES` are installed with ``apt-get`` when some are
   missing and we may (root, ``apt-get`` present, ``install=True``); otherwise one line names the command to run,
   and the set is built from the fonts that are there (the manifest lists the missing packages).
2. **Render** every character of :data:`~paper_repro.datasets.glyphs_scripts.SCRIPTS` in every design (font
   family, :func:`~paper_repro.datasets.glyphs_render.group_designs`) whose cmap has it
   (:func:`~paper_repro.datasets.glyphs_render.render_glyph`).
3. **Clean** (:mod:`paper_repro.datasets.glyphs_filter`): drop placeholders, merge near-duplicate designs per
   character, drop consensus outliers and designs that do not draw a script, then keep characters with at least
   ``min_designs`` designs and scripts with at least ``min_characters`` characters.
4. **Write** ``<root>/glyphs/glyphs-<size>.npz`` (byte-for-byte deterministic: fixed zip timestamps) and
   ``<root>/glyphs/glyphs-<size>.manifest.json`` (its sha256, the build settings, a fingerprint of the font files,
   counts per script and the filter statistics), each atomically.

Building again with the same settings and fonts is a no-op (the manifest matches and the file's sha256 verifies);
a cached file whose sha256 does not match is reported and rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from collapse.io import write_bytes, write_json
from paper_repro.datasets.glyphs_filter import bad_designs, consensus_outliers, near_duplicates, placeholder_mask
from paper_repro.datasets.glyphs_render import (
    MISSING_CODEPOINT,
    find_font_files,
    group_designs,
    load_font,
    read_faces,
    render_glyph,
)
from paper_repro.datasets.glyphs_scripts import DEBIAN_PACKAGES, SCRIPTS, script_characters

__all__ = [
    "BUILD_VERSION",
    "DEFAULT_FONT_DIRS",
    "GLYPHS_DIRNAME",
    "build_glyphs",
    "ensure_packages",
    "glyph_paths",
    "missing_packages",
    "read_manifest",
    "sha256_file",
]

BUILD_VERSION = 1
GLYPHS_DIRNAME = "glyphs"
DEFAULT_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
DEFAULTS = {
    "size": 32,
    "margin": 2,
    "render_size": 64,
    "dup_tau": 0.03,
    "consensus_z": 3.5,
    "consensus_floor": 0.12,
    "bad_design_fraction": 0.5,
    "min_designs": 4,
    "min_characters": 5,
}


def glyph_paths(root: str | Path, size: int = 32) -> tuple[Path, Path]:
    """``(array file, manifest)`` of the glyph set at ``size`` px under ``root``."""
    folder = Path(root) / GLYPHS_DIRNAME
    return folder / f"glyphs-{size}.npz", folder / f"glyphs-{size}.manifest.json"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(path: str | Path) -> dict | None:
    """The manifest as a dict, or ``None`` when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# --- fonts ----------------------------------------------------------------------------------------------------
def missing_packages(packages: Sequence[str] = DEBIAN_PACKAGES) -> list[str] | None:
    """The ``packages`` dpkg does not list as installed, or ``None`` when there is no ``dpkg-query``."""
    if shutil.which("dpkg-query") is None:
        return None
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages], capture_output=True, text=True
    )
    installed = {ln.split()[0] for ln in done.stdout.splitlines() if ln.strip().endswith(" installed")}
    return [p for p in packages if p not in installed]


def ensure_packages(
    packages: Sequence[str] = DEBIAN_PACKAGES, *, install: bool = True, log: Callable[[str], None] = print
) -> list[str]:
    """Install the missing ``packages`` with apt-get when allowed and possible; return those still missing.

    When installing is not possible, one line says what to install.
    """
    missing = missing_packages(packages)
    if missing is None:
        log(f"glyphs: no dpkg here; install the Debian font packages {' '.join(packages)} or pass --font-dir DIR")
        return list(packages)
    if not missing:
        return []
    can = install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None
    if can:
        log(f"glyphs: installing {len(missing)} font package(s) with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:  # stale package lists are the usual cause: update once and retry
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, env=env)
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        missing = missing_packages(packages) or []
        if not missing:
            return []
    log(
        f"glyphs: {len(missing)} font package(s) missing; install them with: sudo apt-get install -y "
        f"--no-install-recommends {' '.join(missing)}"
    )
    return missing


def _fingerprint(files: Sequence[Path]) -> str:
    """sha256 over the sorted (path, size, modification time) of the font files: changes when a font is added,
    removed, replaced or reinstalled. Stat data, not contents, so that checking a built set stays cheap (hashing
    200 MB of fonts took most of a no-op's time); a reinstall without changes only costs a deterministic rebuild."""
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# --- output ---------------------------------------------------------------------------------------------------
def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` whose bytes depend on the arrays only (fixed member timestamps, fixed order)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


# --- rendering and cleaning -----------------------------------------------------------------------------------
def _render_all(designs: dict, settings: dict, log: Callable[[str], None]) -> tuple[list[tuple], dict]:
    """Render every (script, character, design) a cmap claims; drop placeholders. Records and counts."""
    from tqdm.auto import tqdm

    wanted = {s: script_characters(s) for s in SCRIPTS}
    records: list[tuple] = []  # (script, codepoint, design name, image)
    stats = {"claimed": 0, "placeholder": 0, "font_errors": 0}
    kw = {"size": settings["size"], "margin": settings["margin"], "render_size": settings["render_size"]}
    for name, face in tqdm(designs.items(), desc="render glyphs", unit="design", mininterval=2.0):
        todo = {s: [c for c in cps if c in face.cmap] for s, cps in wanted.items()}
        todo = {s: cps for s, cps in todo.items() if cps}
        if not todo:
            continue
        try:
            font = load_font(face, settings["render_size"])
            notdef = None if MISSING_CODEPOINT in face.cmap else render_glyph(font, chr(MISSING_CODEPOINT), **kw)
        except OSError:
            stats["font_errors"] += 1
            continue
        for script, cps in todo.items():
            images = [render_glyph(font, chr(c), **kw) for c in cps]
            bad = placeholder_mask(images, [face.cmap[c] for c in cps], notdef)
            stats["claimed"] += len(cps)
            stats["placeholder"] += int(bad.sum())
            records += [(script, c, name, img) for c, img, b in zip(cps, images, bad) if not b]
    return records, stats


def _clean_script(recs: list[tuple], settings: dict) -> tuple[list[tuple], dict]:
    """Near-duplicate merge, then the two-pass consensus filter, for the records of one script."""
    coverage: dict[str, int] = {}
    for _, _, d, _ in recs:
        coverage[d] = coverage.get(d, 0) + 1
    # The most complete design first, so a family's copy into another font is the one merged away.
    order = sorted(range(len(recs)), key=lambda i: (recs[i][1], -coverage[recs[i][2]], recs[i][2]))
    recs = [recs[i] for i in order]
    by_char: dict[int, list[int]] = {}
    for i, r in enumerate(recs):
        by_char.setdefault(r[1], []).append(i)
    keep = np.ones(len(recs), dtype=bool)
    for idx in by_char.values():
        keep[idx] = ~near_duplicates(np.stack([recs[i][3] for i in idx]), settings["dup_tau"])
    n_dup = int((~keep).sum())

    def flag(alive: np.ndarray) -> np.ndarray:
        out = np.zeros(len(recs), dtype=bool)
        for idx in by_char.values():
            idx = [i for i in idx if alive[i]]
            if idx:
                out[idx] = consensus_outliers(
                    np.stack([recs[i][3] for i in idx]), z=settings["consensus_z"], floor=settings["consensus_floor"]
                )[0]
        return out

    first = flag(keep)
    names = sorted({r[2] for r in recs})
    code = {n: k for k, n in enumerate(names)}
    design_ids = np.array([code[r[2]] for r in recs])
    bad = bad_designs(design_ids[keep], first[keep], fraction=settings["bad_design_fraction"])
    alive = keep & ~np.isin(design_ids, list(bad))
    n_bad_design_glyphs = int((keep & ~alive).sum())
    second = flag(alive)
    alive &= ~second
    stats = {
        "near_duplicate": n_dup,
        "design_not_drawing_script": n_bad_design_glyphs,
        "designs_not_drawing_script": [names[b] for b in sorted(bad)],
        "consensus_outlier": int(second.sum()),
    }
    return [r for r, a in zip(recs, alive) if a], stats


def _render_and_clean(font_files: Sequence[Path], settings: dict, log: Callable[[str], None]) -> tuple[dict, dict]:
    logging.getLogger("fontTools").setLevel(logging.ERROR)  # its warnings about odd but usable tables are noise
    faces = [f for p in font_files for f in read_faces(p)]
    designs = group_designs(faces)
    records, stats = _render_all(designs, settings, log)
    stats.update({"font_files": len(font_files), "faces": len(faces), "designs_total": len(designs)})
    per_script, clean = {}, []
    for script in SCRIPTS:
        recs = [r for r in records if r[0] == script]
        if not recs:
            continue
        kept, st = _clean_script(recs, settings)
        chars: dict[int, int] = {}
        for r in kept:
            chars[r[1]] = chars.get(r[1], 0) + 1
        ok = {c for c, n in chars.items() if n >= settings["min_designs"]}
        st["too_few_designs"] = sum(n for c, n in chars.items() if c not in ok)
        kept = [r for r in kept if r[1] in ok]
        if len(ok) < settings["min_characters"]:
            st["script_dropped_glyphs"] = len(kept)
            kept = []
        st["rendered"] = len(recs)
        st["kept"] = len(kept)
        per_script[script] = st
        clean += kept
    for key in ("near_duplicate", "design_not_drawing_script", "consensus_outlier", "too_few_designs", "kept"):
        stats[key] = sum(st.get(key, 0) for st in per_script.values())
    stats["script_dropped"] = sum(st.get("script_dropped_glyphs", 0) for st in per_script.values())
    stats["per_script"] = per_script
    # Deterministic order: script (table order), code point, design name.
    rank = {s: k for k, s in enumerate(SCRIPTS)}
    clean.sort(key=lambda r: (rank[r[0]], r[1], r[2]))
    scripts = [s for s in SCRIPTS if any(r[0] == s for r in clean)]
    design_names = sorted({r[2] for r in clean})
    sid = {s: k for k, s in enumerate(scripts)}
    did = {d: k for k, d in enumerate(design_names)}
    size = settings["size"]
    arrays = {
        "images": np.stack([r[3] for r in clean]) if clean else np.zeros((0, size, size), np.uint8),
        "script": np.array([sid[r[0]] for r in clean], dtype=np.int16),
        "codepoint": np.array([r[1] for r in clean], dtype=np.int32),
        "design": np.array([did[r[2]] for r in clean], dtype=np.int32),
        "script_names": np.array(scripts, dtype=str),
        "design_names": np.array(design_names, dtype=str),
        "design_fonts": np.array([f"{Path(designs[d].path).name}#{designs[d].index}" for d in design_names], dtype=str),
    }
    return arrays, stats


def _counts(arrays: dict) -> dict:
    out = {}
    for k, s in enumerate(arrays["script_names"].tolist()):
        m = arrays["script"] == k
        per_char = np.unique(arrays["codepoint"][m], return_counts=True)[1]
        out[s] = {
            "characters": int(per_char.size),
            "designs": int(np.unique(arrays["design"][m]).size),
            "images": int(m.sum()),
            "designs_per_character_min_median_max": [
                int(per_char.min()),
                float(np.median(per_char)),
                int(per_char.max()),
            ],
        }
    return out


def build_glyphs(
    root: str | Path = "data",
    *,
    font_dirs: Sequence[str | Path] | None = None,
    install: bool = True,
    force: bool = False,
    log: Callable[[str], None] = print,
    **settings: float,
) -> Path:
    """Build (or verify) the glyph set under ``root``; return the path of its array file.

    ``font_dirs``: folders searched for fonts (default :data:`DEFAULT_FONT_DIRS`, after making sure the Debian
    packages are installed); ``install``: allow ``apt-get install``; ``force``: rebuild even when up to date;
    ``settings``: any of ``DEFAULTS`` (size, margin, render_size, dup_tau, consensus_z, consensus_floor,
    bad_design_fraction, min_designs, min_characters).
    """
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown glyph setting(s) {', '.join(unknown)}; allowed: {', '.join(DEFAULTS)}")
    cfg = {**DEFAULTS, **settings}
    for key in ("size", "margin", "render_size", "min_designs", "min_characters"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < (0 if key == "margin" else 1):
            raise ValueError(f"{key} must be a positive integer, got {cfg[key]!r}")
    for key, lo, hi in (("dup_tau", 0.0, 1.0), ("consensus_floor", 0.0, 1.0), ("bad_design_fraction", 0.0, 1.0),
                        ("consensus_z", 0.0, float("inf"))):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= float(v) <= hi:
            raise ValueError(f"{key} must be a number in [{lo}, {hi}], got {v!r}")
    if not 0 <= cfg["margin"] < cfg["size"] / 2:
        raise ValueError(f"margin must be in [0, size / 2) = [0, {cfg['size'] / 2}), got {cfg['margin']}")
    t0 = time.perf_counter()
    missing: list[str] = []
    if font_dirs is None:
        font_dirs = DEFAULT_FONT_DIRS
        missing = ensure_packages(install=install, log=log)
    font_files = find_font_files(font_dirs)
    if not font_files:
        raise FileNotFoundError(
            f"no .ttf/.otf/.ttc fonts under {', '.join(map(str, font_dirs))}; install the Debian font packages "
            f"(sudo apt-get install -y --no-install-recommends {' '.join(DEBIAN_PACKAGES)}) or pass --font-dir DIR"
        )
    fingerprint = _fingerprint(font_files)
    data_path, manifest_path = glyph_paths(root, cfg["size"])
    old = read_manifest(manifest_path)
    if not force and old is not None and data_path.is_file():
        same = (old.get("version"), old.get("settings"), old.get("fonts", {}).get("fingerprint")) == (
            BUILD_VERSION,
            cfg,
            fingerprint,
        )
        if same:
            got = sha256_file(data_path)
            if got == old.get("sha256"):
                log(f"{data_path}: present and verified (sha256 {got[:12]}...), skipped")
                return data_path
            log(f"{data_path}: checksum mismatch (expected sha256 {old.get('sha256')}, got {got}); rebuilding")
        else:
            log(f"{manifest_path}: built with other settings or fonts; rebuilding")
    log(f"glyphs: rendering from {len(font_files)} font files")
    arrays, stats = _render_and_clean(font_files, cfg, log)
    if arrays["images"].shape[0] == 0:
        raise ValueError(
            f"no script kept {cfg['min_characters']} characters with {cfg['min_designs']} designs from the fonts "
            f"under {', '.join(map(str, font_dirs))}; install more fonts or lower min_designs / min_characters"
        )
    blob = _npz_bytes(arrays)
    write_bytes(data_path, blob)
    manifest = {
        "version": BUILD_VERSION,
        "file": data_path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "settings": cfg,
        "fonts": {
            "dirs": [str(d) for d in font_dirs],
            "files": len(font_files),
            "fingerprint": fingerprint,
            "missing_packages": missing,
        },
        "images": int(arrays["images"].shape[0]),
        "scripts": len(arrays["script_names"]),
        "characters": int(np.unique(np.stack([arrays["script"], arrays["codepoint"]]), axis=1).shape[1]),
        "designs": len(arrays["design_names"]),
        "counts": _counts(arrays),
        "filter": stats,
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(manifest_path, manifest)  # written last: a manifest always describes a complete array file
    log(
        f"wrote {data_path} ({len(blob) / 1e6:.1f} MB): {manifest['images']} images, {manifest['scripts']} scripts, "
        f"{manifest['characters']} characters, {manifest['designs']} designs in {manifest['build_seconds']} s"
    )
    return data_path
