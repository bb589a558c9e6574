"""paper_repro.train: end-to-end tiny runs on scikit-learn digits, exact resume, run-directory safety, batch rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from paper_repro.batches import StepBatches
from paper_repro.builders import train_transform_for
from paper_repro.checkpoint import CHECKPOINT, load_checkpoint
from paper_repro.config import TrainConfig
from paper_repro.train import StepBatchData, main, train


def tiny(out, **kw) -> dict:
    cfg = dict(out=str(out), dataset="digits", steps=12, eval_every=6, checkpoint_every=3, batch_classes=2,
               samples_per_class=6, lr=3e-3, dim=16)  # fmt: skip
    return cfg | kw


def run(cfg, data, **kw) -> dict:
    return train(cfg, train_data=data[0], test_data=data[1], progress=False, **kw)


@pytest.mark.slow
def test_end_to_end_writes_run_and_learns(tmp_path, digits):
    res = run(tiny(tmp_path / "r", steps=40, eval_every=20), digits)
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.json", "metrics.json", CHECKPOINT} <= files
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["finished"] and saved["final"] == res["final"] and [h["step"] for h in saved["history"]] == [20, 40]
    fin = res["final"]
    for key in ("recall_at_1", "recall_at_8", "map_at_r", "nmi", "fine_recall_at_1_within_coarse", "submode_nmi"):
        assert 0.0 <= fin[key] <= 1.0
    # 40 Adam steps on digits already separate even from odd far above chance (0.5).
    assert fin["recall_at_1"] > 0.8
    assert fin["fine_recall_at_1_within_coarse"] > fin["fine_chance"]
    assert load_checkpoint(tmp_path / "r" / CHECKPOINT)["step"] == 40


@pytest.mark.slow
@pytest.mark.parametrize(
    "kw",
    [
        {"loss": "triplet", "positive": "easy", "negative": "semihard"},
        # random positives and distance-weighted negatives draw from the loss generator; beta is learned.
        {"loss": "margin-learned", "positive": "random"},
    ],
)
def test_resume_gives_the_same_final_metrics(tmp_path, digits, kw):
    full = run(tiny(tmp_path / "full", **kw), digits)

    class Crash(Exception):
        pass

    def crash_at_8(step):  # after the checkpoint of step 6, before the one of step 9
        if step == 8:
            raise Crash

    with pytest.raises(Crash):
        run(tiny(tmp_path / "cut", **kw), digits, callback=crash_at_8)
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT)["step"] == 6
    resumed = run(tiny(tmp_path / "cut", **kw), digits, resume=True)

    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(full["history"])
    a = load_checkpoint(tmp_path / "full" / CHECKPOINT)
    b = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["loss"]:
        assert torch.equal(a["loss"][k], b["loss"][k]), k
    # Resuming a finished run trains nothing and returns the same metrics.
    again = run(tiny(tmp_path / "cut", **kw), digits, resume=True)
    assert strip(again["history"]) == strip(full["history"])


def test_existing_run_directory_is_never_silently_overwritten(tmp_path, digits):
    out = tmp_path / "r"
    run(tiny(out, steps=3, eval_every=3), digits)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FileExistsError, match="--resume.*--overwrite"):
        run(tiny(out, steps=3, eval_every=3), digits)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(ValueError, match="exclude each other"):
        run(tiny(out, steps=3, eval_every=3), digits, resume=True, overwrite=True)
    with pytest.raises(ValueError, match=r"cannot resume .*lr \(0.003 -> 0.01\)"):
        run(tiny(out, steps=6, eval_every=3, lr=1e-2), digits, resume=True)
    res = run(tiny(out, steps=3, eval_every=3, seed=5), digits, overwrite=True)
    assert res["config"]["seed"] == 5


def test_class_with_too_few_images_is_named_or_replaced(tmp_path, digits):
    tr, te = digits
    odd = np.flatnonzero(tr.labels == 1)
    small = tr.subset(np.concatenate([np.flatnonzero(tr.labels == 0), odd[:4]]))
    with pytest.raises(ValueError, match=r"'odd' has 4.*--replace-small-classes"):
        run(tiny(tmp_path / "a", steps=2, eval_every=2), (small, te))
    res = run(tiny(tmp_path / "b", steps=2, eval_every=2, replace_small_classes=True), (small, te))
    assert res["finished"]


def test_step_batches_are_a_function_of_seed_and_step():
    labels = np.repeat(np.arange(5), [9, 7, 12, 8, 10])
    b = StepBatches(labels, 3, 4, seed=1)
    i1, i2 = b.indices(7), StepBatches(labels, 3, 4, seed=1).indices(7)
    assert torch.equal(i1, i2)
    assert not torch.equal(b.indices(7), b.indices(8)) or not torch.equal(b.indices(8), b.indices(9))
    for step in range(1, 20):
        idx = b.indices(step).numpy()
        assert len(set(idx.tolist())) == 12  # distinct images
        cls = labels[idx].reshape(3, 4)
        assert (cls == cls[:, :1]).all() and len(set(cls[:, 0].tolist())) == 3
    with pytest.raises(ValueError, match="batch-classes=6 is more than the 5 classes"):
        StepBatches(labels, 6, 4, seed=0)


def test_step_data_splits_exactly_over_ranks_and_is_reproducible(digits):
    """Rank r's slice (augmented) is rows r, r + W, ... of the single-process batch, for every world size."""
    tr, _ = digits
    cfg = TrainConfig(out="x", dataset="digits")
    transform = train_transform_for(cfg, tr)
    batches = StepBatches(tr.labels, 2, 6, seed=3)
    whole_x, whole_y = StepBatchData(tr, batches, transform, 3, 0, 1)[5]
    again_x, _ = StepBatchData(tr, batches, transform, 3, 0, 1)[5]
    assert torch.equal(whole_x, again_x)
    assert not torch.equal(whole_x, StepBatchData(tr, batches, transform, 3, 0, 1)[6][0])
    for world in (2, 3, 4):
        parts = [StepBatchData(tr, batches, transform, 3, r, world)[5] for r in range(world)]
        assert torch.equal(torch.stack([p[0] for p in parts], 1).reshape(whole_x.shape), whole_x)
        assert torch.equal(torch.stack([p[1] for p in parts], 1).reshape(-1), whole_y)


@pytest.mark.slow
def test_loader_workers_do_not_change_the_run(tmp_path, digits):
    a = run(tiny(tmp_path / "w0", steps=6, eval_every=6), digits)
    b = run(tiny(tmp_path / "w2", steps=6, eval_every=6, workers=2), digits)
    assert {k: v for k, v in a["final"].items() if k != "seconds"} == {
        k: v for k, v in b["final"].items() if k != "seconds"
    }


def test_config_rejects_bad_values_in_one_line():
    with pytest.raises(ValueError, match="positive must be one of"):
        TrainConfig(out="x", positive="nearest")
    with pytest.raises(ValueError, match=r"samples_per_class must be an integer in \[2, inf\)"):
        TrainConfig(out="x", samples_per_class=1)
    with pytest.raises(ValueError, match="unknown configuration keys"):
        TrainConfig.from_dict({"out": "x", "learning_rate": 1.0})


def test_cli_runs_and_reports_errors_in_one_line(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--dataset", "digits", "--steps", "2", "--eval-every", "2", "--batch-classes", "3",
            "--samples-per-class", "4", "--dim", "8", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert json.loads((out / "metrics.json").read_text())["finished"]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "\n" not in err
    assert main([*args, "--resume"]) == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("kw", [{}, {"amp": "bf16", "channels_last": True}])
def test_cuda_run_resumes_exactly(tmp_path, digits, kw):
    cfg = tiny(tmp_path / "full", device="cuda", loss="margin-learned", positive="random", **kw)
    full = run(cfg, digits)
    assert full["final"]["recall_at_1"] > 0.5

    def crash_at_8(step):
        if step == 8:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        run(cfg | {"out": str(tmp_path / "cut")}, digits, callback=crash_at_8)
    resumed = run(cfg | {"out": str(tmp_path / "cut")}, digits, resume=True)
    a = load_checkpoint(tmp_path / "full" / CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "cut" / CHECKPOINT)["model"]
    # cuDNN may pick non-deterministic kernels, so equality is up to float rounding here.
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-4), k
    assert resumed["final"]["recall_at_1"] == pytest.approx(full["final"]["recall_at_1"], abs=0.02)
