"""paper_repro.sidebyside: EPS and the rival losses on real-image features through the run layer (tiny fake
Fashion-MNIST), the proxies' training in train_heads, and the table drawn from stored records."""

from __future__ import annotations

import copy
import shlex

import numpy as np
import pytest
import torch

from collapse.losses import make_loss
from collapse.runs import ResultStore, execute
from paper_repro.multiseed import train_heads
from paper_repro.sidebyside import (
    RERUN_MEASURES,
    RealMethodRun,
    command_of,
    grid,
    main,
    rerun_differences,
    sidebyside_markdown,
)
from tests.paper_repro.test_study import fake_fashion

TINY = dict(n_train=300, n_test=150, pca_dim=8, M=6, seeds=2, lrs=(1e-3, 1e-2), steps=20, window=10,
            null_permutations=2)  # fmt: skip


def test_methods_train_through_the_store_with_lr_from_validation(tmp_path):
    root = fake_fashion(tmp_path / "data")
    runs = grid(["fashion-mnist-super"], ["triplet-eps", "supcon", "softtriple"], [0.0], root=str(root), **TINY)
    store = ResultStore(tmp_path / "store")
    ex = execute(runs, store, progress=False)
    assert ex.ok and ex.computed == 3 and ex.blocks == 1  # one program for the methods of one plan
    results = store.results(runs)
    for res in results:
        by_lr = res["val_coarse_map_at_r_by_lr"]
        assert res["lr"] == max(TINY["lrs"], key=lambda lr: by_lr[f"{lr:g}"])  # validation chooses, never test
        assert [r["seed"] for r in res["per_seed"]] == [0, 1]
        for r in res["per_seed"]:
            assert 0.0 <= r["coarse_map_at_r"] <= 1.0 and 0.0 <= r["test_linear_probe"] <= 1.0
            assert r["verdict"].split(" ")[0] in ("collapsed", "kept", "partly") or r["verdict"].startswith("degen")
    # instrument margins: triplet's margin, SupCon's sqrt(2 tau), SoftTriple's sqrt(2 / lambda)
    assert results[0]["margin"] == pytest.approx(0.2)
    assert results[1]["margin"] == pytest.approx(np.sqrt(2 * 0.1))
    # a rerun computes nothing; the table is drawn from the stored records, each row with its command
    assert execute(runs, store, progress=False).computed == 0
    table = sidebyside_markdown(runs, results)
    for run in runs:
        assert f"`{command_of(run)}`" in table
    assert "| fashion-mnist-super | 0 | softtriple |" in table


def _without_timing(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "block_seconds"}


def test_noise_is_part_of_the_key_and_trains_on_noisy_fit_labels(tmp_path):
    root = fake_fashion(tmp_path / "data")
    runs = grid(["fashion-mnist-super"], ["triplet", "supcon-weps"], [0.0, 0.3], root=str(root), **TINY)
    assert [(r.noise, r.method) for r in runs] == [(0.0, "triplet"), (0.0, "supcon-weps"), (0.3, "triplet"),
                                                   (0.3, "supcon-weps")]  # fmt: skip
    assert len({r.key for r in runs}) == 4
    assert RealMethodRun(noise=np.float64(0.3)).key == RealMethodRun(noise=0.3).key
    store = ResultStore(tmp_path / "store")
    ex = execute(runs, store, progress=False)
    assert ex.ok and ex.computed == 4 and ex.blocks == 2  # one block per noise level
    clean, _, noisy, _ = store.results(runs)
    # Same seeds, same initialisation and batch streams: only the noisy fit labels differ, so the heads differ.
    assert clean["per_seed"][0]["final_train_loss"] != noisy["per_seed"][0]["final_train_loss"]
    assert "--noise 0.3" in command_of(runs[2]) and "--noise 0 " in command_of(runs[0]) + " "
    table = sidebyside_markdown(runs, store.results(runs))
    assert "| fashion-mnist-super | 0.3 | supcon-weps |" in table
    with pytest.raises(ValueError, match="noise"):
        RealMethodRun(noise=1.0)


def test_a_rerun_into_a_fresh_store_reproduces_the_record(tmp_path):
    """The acceptance's "reruns within the stated seed variation": on CPU the rerun is bit for bit the same record
    (everything but the block's wall time)."""
    root = fake_fashion(tmp_path / "data")
    runs = grid(["fashion-mnist-super"], ["triplet-eps", "softtriple"], [0.3], root=str(root), **TINY)
    first, second = ResultStore(tmp_path / "a"), ResultStore(tmp_path / "b")
    assert execute(runs, first, progress=False).computed == 2
    assert execute(runs, second, progress=False).computed == 2
    for a, b in zip(first.results(runs), second.results(runs)):
        assert _without_timing(a) == _without_timing(b)
    rows = rerun_differences(runs, first.results(runs), second.results(runs))
    assert all(r["bitwise"] and r["verdicts_same"] and r["lr_same"] for r in rows)
    assert all(r[k]["max_abs_diff"] == 0.0 for r in rows for k in RERUN_MEASURES)
    # A record that differs is reported as such, with the size of the difference next to the seed std.
    changed = copy.deepcopy(first.results(runs))
    changed[0]["per_seed"][1]["coarse_r1"] += 0.25
    (row, _) = rerun_differences(runs, changed, second.results(runs))
    assert not row["bitwise"] and row["coarse_r1"]["max_abs_diff"] == pytest.approx(0.25)


def test_against_compares_with_another_store_and_needs_its_records(tmp_path, capsys):
    root = fake_fashion(tmp_path / "data")
    args = ["--datasets", "fashion-mnist-super", "--methods", "triplet", "--noise", "0", "--root", str(root),
            "--steps", "20"]  # fmt: skip
    assert main([*args, "--store", str(tmp_path / "b"), "--against", str(tmp_path / "a")]) == 2
    assert "no finished record" in capsys.readouterr().err
    # --from-store computes nothing: a run without a record is a row that says so, with its command.
    assert main([*args, "--store", str(tmp_path / "b"), "--from-store"]) == 0
    out = capsys.readouterr().out
    assert "| fashion-mnist-super | 0 | triplet | not computed (no record in the store) |" in out
    assert not (tmp_path / "b" / "records").exists() or not list((tmp_path / "b" / "records").iterdir())
    # Its command names the store and the data root it was given, so that it computes this very record.
    command = next(c for c in out.split("`") if c.startswith("python -m paper_repro.sidebyside"))
    assert f"--store {tmp_path / 'b'}" in command and f"--root {root}" in command
    assert main([*shlex.split(command)[3:], "--no-progress"]) == 0
    assert len(list((tmp_path / "b" / "records").iterdir())) == 1
    capsys.readouterr()


def test_the_command_names_only_what_differs_from_the_defaults():
    from collapse.runs import DEFAULT_STORE

    run = RealMethodRun(dataset="glyphs", method="triplet", noise=0.1)
    assert command_of(run) == command_of(run, str(DEFAULT_STORE)) == (
        "python -m paper_repro.sidebyside --datasets glyphs --methods triplet --noise 0.1")
    assert command_of(run, "my store").endswith("--noise 0.1 --store 'my store'")


def test_train_heads_trains_the_proxies_of_proxy_losses():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(60, 5)), dtype=torch.float32)
    y = np.repeat(np.arange(3), 20)
    loss = make_loss("softtriple", num_classes=3, embedding_dim=4, random_state=0)
    before = loss.proxies.detach().clone()
    train_heads(x, [y], losses=[loss], lrs=[1e-2], seeds=[0], batch_classes=3, samples_per_class=4, steps=5, dim=4,
                hidden=8, window=5, progress=False)  # fmt: skip
    assert not torch.equal(before, loss.proxies.detach())


def test_bad_method_and_dataset_are_one_line_errors(capsys):
    with pytest.raises(ValueError, match="method"):
        RealMethodRun(method="magic")
    with pytest.raises(ValueError, match="dataset"):
        RealMethodRun(dataset="cub")
    assert main(["--methods", "magic", "--store", "unused-never-created"]) == 2
    err = capsys.readouterr().err.strip()
    assert "method" in err and "\n" not in err
    assert main(["--noise", "0,abc", "--store", "unused-never-created"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--noise" in err and "\n" not in err
