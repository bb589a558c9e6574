"""Building the glyph set (manifest, no-op rebuild, corrupt cache), its loaders, splits and the fetch command.

Built once per module from the fonts inside matplotlib (no network, no apt-get).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from paper_repro.datasets import dataset_options, get_dataset
from paper_repro.datasets.fetch import main as fetch_main
from paper_repro.datasets.glyphs import held_out_designs, held_out_scripts, load_glyph_arrays
from paper_repro.datasets.glyphs_build import build_glyphs, ensure_packages, glyph_paths, sha256_file
from paper_repro.datasets.glyphs_scripts import CASE_LETTERS

from .glyph_fixtures import FIXTURE_SETTINGS, copy_fonts


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("glyphs")
    fonts = copy_fonts(base / "fonts")
    logs: list[str] = []
    path = build_glyphs(base / "data", font_dirs=[fonts], log=logs.append, **FIXTURE_SETTINGS)
    return {"root": base / "data", "fonts": fonts, "path": path, "logs": logs}


def _manifest(built) -> dict:
    return json.loads(glyph_paths(built["root"])[1].read_text())


def test_build_writes_a_checksummed_manifest(built):
    m = _manifest(built)
    assert m["sha256"] == sha256_file(built["path"]) and m["bytes"] == built["path"].stat().st_size
    assert {"Latin", "Greek", "Cyrillic"} <= set(m["counts"])
    # DejaVu Sans Bold merges into DejaVu Sans; LastResort draws only placeholders and contributes nothing.
    assert m["designs"] == 4 and m["counts"]["Latin"]["designs"] == 4
    assert m["filter"]["placeholder"] > 0 and m["filter"]["designs_total"] == 5
    assert 48 <= m["counts"]["Latin"]["characters"] <= 52  # a letter may lose designs to the filters
    a = load_glyph_arrays(built["root"])
    assert a["images"].shape == (m["images"], 32, 32) and a["images"].dtype == np.uint8
    assert sorted(a["design_names"].tolist()) == ["DejaVu Sans", "DejaVu Sans Mono", "DejaVu Serif", "STIXGeneral"]


def test_second_build_is_a_no_op_and_corruption_is_rebuilt(built, tmp_path):
    path, logs = built["path"], []
    before = (path.stat().st_mtime_ns, sha256_file(path))
    build_glyphs(built["root"], font_dirs=[built["fonts"]], log=logs.append, **FIXTURE_SETTINGS)
    assert "skipped" in logs[-1] and (path.stat().st_mtime_ns, sha256_file(path)) == before

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        load_glyph_arrays(built["root"])
    logs.clear()
    build_glyphs(built["root"], font_dirs=[built["fonts"]], log=logs.append, **FIXTURE_SETTINGS)
    assert any("checksum mismatch" in line for line in logs)
    assert sha256_file(path) == before[1]  # the rebuild is byte-for-byte the same file


@pytest.mark.slow
def test_other_settings_rebuild_and_bad_settings_fail(built, tmp_path):
    logs: list[str] = []
    root = tmp_path / "data"
    build_glyphs(root, font_dirs=[built["fonts"]], log=logs.append, **FIXTURE_SETTINGS)
    build_glyphs(root, font_dirs=[built["fonts"]], log=logs.append, min_designs=4, min_characters=5)
    assert any("other settings" in line for line in logs)
    with pytest.raises(ValueError, match="unknown glyph setting"):
        build_glyphs(root, font_dirs=[built["fonts"]], colour="red")
    with pytest.raises(ValueError, match="margin"):
        build_glyphs(root, font_dirs=[built["fonts"]], size=8, margin=4)
    with pytest.raises(ValueError, match="dup_tau"):
        build_glyphs(root, font_dirs=[built["fonts"]], dup_tau=-0.1)
    with pytest.raises(FileNotFoundError, match="no .ttf"):
        build_glyphs(root, font_dirs=[tmp_path / "empty"])


def test_missing_set_names_the_build_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch --dataset glyphs"):
        get_dataset("glyphs", tmp_path)


def test_without_root_one_line_names_what_to_install(monkeypatch):
    monkeypatch.setattr("paper_repro.datasets.glyphs_build.missing_packages", lambda packages: ["fonts-x", "fonts-y"])
    logs: list[str] = []
    assert ensure_packages(["fonts-x", "fonts-y"], install=False, log=logs.append) == ["fonts-x", "fonts-y"]
    assert len(logs) == 1 and "apt-get install -y --no-install-recommends fonts-x fonts-y" in logs[0]


@pytest.mark.slow
def test_fetch_command_builds_glyphs_then_skips(built, tmp_path, capsys):
    argv = ["--dataset", "glyphs", "--root", str(tmp_path), "--font-dir", str(built["fonts"])]
    assert fetch_main(argv) == 0
    assert "wrote" in capsys.readouterr().out and glyph_paths(tmp_path)[1].is_file()
    assert fetch_main(argv) == 0
    assert "skipped" in capsys.readouterr().out
    assert fetch_main([*argv, "--force"]) == 0
    assert "wrote" in capsys.readouterr().out


def test_loader_labels_are_script_and_character(built):
    ds = get_dataset("glyphs", built["root"], "all")
    a = load_glyph_arrays(built["root"])
    assert ds.class_names == a["script_names"].tolist() and len(ds) == len(a["images"])
    for i in (0, len(ds) // 2, len(ds) - 1):
        script = ds.class_names[ds.labels[i]]
        name = ds.fine_names[ds.fine_labels[i]]
        assert name.startswith(script + "/") and f"/U+{int(a['codepoint'][i]):04X}" in name
    x, y = ds[0]
    assert x.shape == (1, 32, 32) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and y == int(ds.labels[0])
    chars = get_dataset("glyphs", built["root"], "all", label="character")
    assert chars.fine_labels is None and chars.n_classes == len(ds.fine_names)
    assert {"protocol", "label", "test_fraction", "split_seed", "size"} <= set(dataset_options("glyphs"))


def test_script_split_holds_out_whole_scripts(built):
    train = get_dataset("glyphs", built["root"], "train", test_fraction=0.4)
    test = get_dataset("glyphs", built["root"], "test", test_fraction=0.4)
    assert not set(train.class_names) & set(test.class_names)
    assert len(train) + len(test) == len(get_dataset("glyphs", built["root"], "all"))
    assert sorted(test.labels.tolist())[0] == 0 and test.labels.max() == test.n_classes - 1  # relabelled
    again = get_dataset("glyphs", built["root"], "test", test_fraction=0.4)
    np.testing.assert_array_equal(test.fine_labels, again.fine_labels)  # fixed for a seed


def test_design_split_holds_out_designs_of_seen_characters(built):
    a = load_glyph_arrays(built["root"])
    test = held_out_designs(a["script"], a["design"], 0.25, 0)
    pairs = lambda m: set(zip(a["script"][m].tolist(), a["design"][m].tolist()))  # noqa: E731
    assert not pairs(test) & pairs(~test)
    for s in np.unique(a["script"]):  # every script keeps designs on both sides
        assert test[a["script"] == s].any() and (~test[a["script"] == s]).any()
    train = get_dataset("glyphs", built["root"], "train", protocol="designs")
    held = get_dataset("glyphs", built["root"], "test", protocol="designs")
    assert train.class_names == held.class_names  # same script labels on both sides
    assert set(held.fine_labels.tolist()) <= set(train.fine_labels.tolist())  # seen characters, new designs
    other = held_out_designs(a["script"], a["design"], 0.25, 1)
    assert held_out_designs(a["script"], a["design"], 0.25, 0).tolist() == test.tolist()
    assert other.sum() > 0


def test_held_out_scripts_is_seeded():
    assert held_out_scripts(29, 0.4, 0).tolist() == held_out_scripts(29, 0.4, 0).tolist()
    assert len(held_out_scripts(29, 0.4, 0)) == 12
    assert any(held_out_scripts(29, 0.4, s).tolist() != held_out_scripts(29, 0.4, 0).tolist() for s in (1, 2, 3))
    with pytest.raises(ValueError, match="at least 2"):
        held_out_scripts(1, 0.4, 0)


def test_case_set_letters_and_cases(built):
    ds = get_dataset("glyph-case", built["root"], "all")
    assert ds.class_names == list(CASE_LETTERS) and len(ds.fine_names) == 26
    a = load_glyph_arrays(built["root"])
    latin = a["script"] == a["script_names"].tolist().index("Latin")
    wanted = {ord(c) for c in CASE_LETTERS} | {ord(c.lower()) for c in CASE_LETTERS}
    assert len(ds) == int((latin & np.isin(a["codepoint"], list(wanted))).sum())
    assert (ds.fine_labels // 2 == ds.labels).all()
    assert ds.fine_names[1] == "a (lower)" and ds.fine_names[0] == "A (upper)"
    train = get_dataset("glyph-case", built["root"], "train")
    test = get_dataset("glyph-case", built["root"], "test")
    assert len(train) + len(test) == len(ds) and len(test) > 0
    letters = get_dataset("glyph-case", built["root"], "test", protocol="letters")
    seen = get_dataset("glyph-case", built["root"], "train", protocol="letters")
    assert not set(letters.class_names) & set(seen.class_names)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"protocol": "alphabet"}, "protocol"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"split_seed": -1}, "split_seed"),
        ({"label": "font"}, "label"),
    ],
)
def test_bad_options_are_one_line_errors(built, options, match):
    with pytest.raises(ValueError, match=match):
        get_dataset("glyphs", built["root"], "train", **options)
