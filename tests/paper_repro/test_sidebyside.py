"""paper_repro.sidebyside: EPS and the rival losses on real-image features through the run layer (tiny fake
Fashion-MNIST), the proxies' training in train_heads, and the table drawn from stored records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collapse.losses import make_loss
from collapse.runs import ResultStore, execute
from paper_repro.multiseed import train_heads
from paper_repro.sidebyside import RealMethodRun, command_of, grid, main, sidebyside_markdown
from tests.paper_repro.test_study import fake_fashion

TINY = dict(n_train=300, n_test=150, pca_dim=8, M=6, seeds=2, lrs=(1e-3, 1e-2), steps=20, window=10,
            null_permutations=2)  # fmt: skip


def test_methods_train_through_the_store_with_lr_from_validation(tmp_path):
    root = fake_fashion(tmp_path / "data")
    runs = grid(["fashion-mnist-super"], ["triplet-eps", "supcon", "softtriple"], root=str(root), **TINY)
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
    assert "| fashion-mnist-super | softtriple |" in table


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
