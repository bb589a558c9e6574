"""paper_repro.figures: every figure on a tiny configuration writes a PNG and its data, the manifest is complete, and
the numbers drawn are the right ones (force split, pair coefficients, retrieval matches) against naive oracles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from collapse.theory import ModeModel, population_loss
from collapse.theory.anchor_forces import anchor_forces
from collapse.theory.force import collapse_force, eps_force
from collapse.theory.force_measure import layered_configuration, pair_coefficients
from collapse.theory.population import build_loss
from paper_repro.figures import FIGURES, build, figure_module, resolve_keys
from paper_repro.figures.__main__ import main
from paper_repro.figures.real_runs import RealParams, find_pairs, get_runs
from paper_repro.figures.retrieval_grid import match_kinds

from .real_fixture import tiny_real

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> RealParams:
    """A tiny MNIST-layout data set (image i is the constant i, label i % 10) and the settings of a 4-step pair."""
    return tiny_real(tmp_path_factory.mktemp("figdata"))


def tiny_params(real: RealParams) -> dict:
    mods = {k: figure_module(k) for k in FIGURES}
    store = real.store
    return {
        "a": mods["a"].Params(classes=2, modes=2, samples_per_mode=6, steps=12, moments=(4, 12), store=store),
        "b": mods["b"].Params(classes=2, modes=2, steps=10, snapshots=(0, 10), seeds=1, store=store),
        "c": mods["c"].Params(losses=("triplet",), eps_grid=(0.0, 0.2), m_grid=(3, 4), k_grid=(2, 3), seeds=1,
                              steps=8, n_jobs=1, store=store),
        "d": mods["d"].Params(classes=3, modes=2, eps_points=(0.0, 0.3), m_points=(2, 4), n_batches=8, replicates=2,
                              store=store),
        "e": mods["e"].Params(real=real, max_points=50),
        "f": mods["f"].Params(real=real, queries_per_class=1, k=3),
        "g": mods["g"].Params(real=real),
    }


@pytest.mark.slow
def test_every_figure_writes_png_data_and_manifest(tmp_path, real):
    out = tmp_path / "figs"
    drawn = [k for k in FIGURES if k != "h"]  # h is a table, tested below
    manifest = build(drawn, out, params=tiny_params(real), progress=False)
    assert set(manifest["figures"]) == set(drawn)
    for key, entry in manifest["figures"].items():
        for field in ("key", "name", "file", "data", "caption", "command", "source", "seed", "git_commit", "params"):
            assert field in entry, (key, field)
        assert entry["key"] == key and entry["name"] == FIGURES[key]
        assert entry["caption"] and entry["source"] and entry["command"].endswith(f"--only {key}")
        png = out / entry["file"]
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
        assert entry["data"], key
        for name in entry["data"]:
            data = out / name
            assert data.stat().st_size > 0
            if data.suffix == ".json":
                json.loads(data.read_text())
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["figures"].keys() == manifest["figures"].keys()
    # The real-image figures trained the pair once and then reused it.
    assert "small pair trained" in manifest["figures"]["g"]["source"]
    assert len(list(Path(real.train_root).iterdir())) == 2


@pytest.mark.slow
def test_rebuilding_one_figure_keeps_the_others(tmp_path, real):
    out = tmp_path / "figs"
    params = tiny_params(real)
    build(["b", "d"], out, params=params, progress=False)
    first = json.loads((out / "manifest.json").read_text())["figures"]
    build(["d"], out, params=params, progress=False)
    second = json.loads((out / "manifest.json").read_text())["figures"]
    assert second["b"] == first["b"] and set(second) == {"b", "d"}


def test_finished_pairs_are_found_and_preferred(real):
    trained, where = get_runs(real)
    assert {k: len(v) for k, v in trained.items()} == {"random": 1, "easy": 1}
    pairs = find_pairs(real.train_root, real.dataset, real.loss)
    assert len(pairs) == 1 and pairs[0]["random"][0].config.positive == "random"
    assert not find_pairs(real.train_root, real.dataset, real.loss, min_history=5)  # 2 evaluations each
    found, where = get_runs(RealParams(**{**real.__dict__, "runs_root": real.train_root}))
    assert where.startswith("finished runs") and found["easy"][0].path == trained["easy"][0].path


def test_anchor_force_split_matches_a_naive_triplet_loop():
    gen = torch.Generator().manual_seed(3)
    emb = torch.randn(14, 2, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2, 0, 1])
    anchor, margin = 4, 0.6
    for rule in ("random", "easy"):
        f = anchor_forces(emb, labels, anchor, rule, margin=margin, seed=1)
        p = f["positive"]
        assert labels[p] == labels[anchor] and p != anchor
        if rule == "easy":  # the nearest same-class sample on the circle
            unit = torch.nn.functional.normalize(emb, dim=1)
            mates = [j for j in range(14) if labels[j] == labels[anchor] and j != anchor]
            assert p == min((float((unit[anchor] - unit[j]).norm()), j) for j in mates)[1]

        def naive(detach_neg: bool, detach_pos: bool, p: int = p) -> np.ndarray:
            z = emb.clone().requires_grad_(True)
            u = torch.nn.functional.normalize(z, dim=1)
            terms = []
            for n in range(14):
                if labels[n] == labels[anchor]:
                    continue
                dap, dan = (u[anchor] - u[p]).norm(), (u[anchor] - u[n]).norm()
                dap = dap.detach() if detach_pos else dap
                dan = dan.detach() if detach_neg else dan
                terms.append(torch.relu(dap - dan + margin))
            (g,) = torch.autograd.grad(torch.stack(terms).mean(), z)
            return -g[anchor].numpy()

        np.testing.assert_allclose(f["pull"], naive(True, False), atol=1e-12)
        np.testing.assert_allclose(f["push"], naive(False, True), atol=1e-12)


@pytest.mark.parametrize("positive", ["random", "easy"])
def test_pair_coefficients_recover_the_closed_form_force(positive):
    model = ModeModel.symmetric(3, 2, 0.2)
    Z = layered_configuration(model)
    loss = build_loss("triplet", positive, "all", margin=10.0)
    Zl = Z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(population_loss(Zl, model, loss, positive, "all").loss, Zl)
    c = pair_coefficients(Z, grad, loss.distance).numpy()
    kappa = collapse_force(model) if positive == "random" else eps_force(model)
    off = ~np.eye(model.n_modes, dtype=bool)
    # Each unordered distance enters twice (D[m, m'] and D[m', m]); kappa is symmetric.
    np.testing.assert_allclose(c[off], (kappa + kappa.T)[off], atol=1e-10)


def test_layered_configuration_puts_siblings_nearest():
    model = ModeModel.symmetric(4, 3, 0.1)
    Z = layered_configuration(model, 0.6)
    D = torch.cdist(Z, Z).numpy()
    assert np.allclose(np.linalg.norm(Z.numpy(), axis=1), 1.0)
    sib = model.same_class_pairs()
    other = model.mode_class[:, None] != model.mode_class[None, :]
    assert D[sib].max() < D[other].min()


def test_match_kinds_against_a_loop():
    rng = np.random.default_rng(0)
    coarse, fine = rng.integers(0, 3, 40), rng.integers(0, 7, 40)
    q, nb = np.arange(5), rng.integers(0, 40, (5, 4))
    kinds = match_kinds(q, nb, coarse, fine)
    for i in range(5):
        for j in range(4):
            n = nb[i, j]
            want = ("fine" if fine[n] == fine[q[i]] else "coarse") if coarse[n] == coarse[q[i]] else "wrong"
            assert kinds[i, j] == want


def test_keys_and_cli_errors(capsys):
    assert resolve_keys("a, phase_diagrams,a") == ["a", "c"]
    assert resolve_keys(None) == list(FIGURES)
    with pytest.raises(ValueError, match="unknown figure 'z'; allowed: a"):
        resolve_keys("z")
    with pytest.raises(SystemExit) as exc:
        main(["--only", "z"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "unknown figure 'z'" in err
    with pytest.raises(SystemExit):
        main(["--seed", "-1"])
    assert main(["--list"]) == 0
    assert "g  training_curves" in capsys.readouterr().out


def test_bad_parameters_are_one_line_errors(tmp_path):
    a, c = figure_module("a"), figure_module("e")
    with pytest.raises(ValueError, match="moments must lie in"):
        a.draw(tmp_path, a.Params(steps=10, moments=(5, 20)))
    with pytest.raises(ValueError, match="method must be one of pca, tsne"):
        c.draw(tmp_path, c.Params(method="umap"))
    with pytest.raises(TypeError, match="params must be a Params"):
        a.draw(tmp_path, c.Params())


def test_the_real_table_is_gathered_only_by_the_figures_command(tmp_path):
    from paper_repro.experiments import QUICK, write_tables

    h = figure_module("h")
    with pytest.raises(ValueError, match="no full-study table under"):
        h.draw(tmp_path / "figs", h.Params(runs_root=str(tmp_path / "runs")))
    row = {"study": "collapse", "dataset": "mnist-groups", "loss": "triplet", "negative": "semihard",
           "positive": "random", "label_noise": 0.0, "seed": 0, "seconds": 1.0, "recall_at_1": 0.9,
           "fine_recall_at_1_within_coarse": 0.5, "fine_chance": 0.3, "nmi": 0.5, "map_at_r": 0.6, "submode_nmi": 0.2}
    (tmp_path / "runs").mkdir()
    write_tables([row], QUICK, tmp_path / "runs", "cmd", 0, in_figure=True, keys=["k1"])
    result = h.draw(tmp_path / "figs", h.Params(runs_root=str(tmp_path / "runs")))
    assert result.png.name == "paper_repro_table.md" and "0.500" in result.png.read_text()
    assert json.loads((tmp_path / "figs" / "paper_repro_table.json").read_text())["studies"][0]["study"] == "collapse"


def test_the_figures_folder_is_checked_before_any_compute(tmp_path, capsys):
    (tmp_path / "FILE").write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "FILE" / "figs"), "--only", "d"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "FILE is a file" in err[0]
