"""The hostile-input catalogue: one test per row of docs/hostile_inputs.md.

Each row feeds one hostile input to the library or a command line and checks the two things the table states:
what the user sees (a one-line error naming the input, or the correct result) and what is kept (no file changed,
written or left behind that should not be). Command lines run in-process through their ``main`` where they can, and
in a subprocess where the row is about a signal.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from paper_repro.checkpoint import CHECKPOINT, save_checkpoint
from paper_repro.datasets import get_dataset
from paper_repro.datasets.mnist import CHECKSUMS

from .paper_repro.datasets.fixtures import corrupt, idx_bytes, make_cub, make_omniglot

ROOT = Path(__file__).resolve().parents[1]


def one_line(text: str) -> str:
    """The single line a command printed; fails on a traceback or a multi-line message."""
    text = text.strip()
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


def snapshot(folder: Path) -> dict[str, str]:
    """md5 of every file under ``folder`` (what "nothing was changed" is checked against)."""
    files = (p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def tiny_run(out: Path, steps: int = 2) -> Path:
    from paper_repro.train import main

    args = ["--dataset", "digits", "--steps", str(steps), "--eval-every", str(steps), "--batch-classes", "3",
            "--samples-per-class", "4", "--dim", "8", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished 2-step run (config.json, checkpoint.pt, metrics.json); tests copy it before changing it."""
    return tiny_run(tmp_path_factory.mktemp("runs") / "done")


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# --- library ------------------------------------------------------------------------------------------------------
def test_empty_batch_is_a_zero_loss_for_every_combination():
    from collapse.losses import make_loss
    from tests.losses.test_empty_batch import COMBOS

    for name, positive, negative in COMBOS:
        emb = torch.zeros(0, 4, requires_grad=True)
        loss = make_loss(name, positive, negative, num_classes=2, embedding_dim=4)
        out = loss(emb, torch.zeros(0, dtype=torch.long))
        out.loss.backward()
        assert out.loss.item() == 0.0 and emb.grad.shape == (0, 4), (name, positive, negative)
        assert all(len(t) == 0 for t in out.terms.values()), (name, positive, negative)


def test_nan_embeddings_are_refused_by_the_losses():
    from collapse.losses import TripletMarginLoss

    emb = torch.randn(6, 4)
    emb[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        TripletMarginLoss()(emb, torch.tensor([0, 0, 1, 1, 2, 2]))


def test_easy_positive_miner_on_empty_batch_and_nan():
    pytest.importorskip("pytorch_metric_learning")
    from collapse.interop import EasyPositiveMiner

    empty = EasyPositiveMiner("semihard")(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert [len(i) for i in empty] == [0, 0, 0, 0]
    emb = torch.randn(6, 4)
    emb[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        EasyPositiveMiner()(emb, torch.tensor([0, 0, 1, 1, 2, 2]))


# --- files --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_during_checkpoint_save_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    path = tmp_path / CHECKPOINT
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()
    # A real SIGKILL in the middle of a save: after the temporary is written, before it replaces the checkpoint.
    code = textwrap.dedent(
        f"""
        import os, signal, torch
        import paper_repro.checkpoint as c
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        c.save_checkpoint({str(path)!r}, {{"step": 2, "w": torch.zeros(100_000)}})
        """
    )
    done = subprocess.run([sys.executable, "-c", code], env=os.environ | {"PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == -signal.SIGKILL
    left = list(tmp_path.glob(f".{CHECKPOINT}.*.tmp"))
    assert len(left) == 1 and left[0].stat().st_size > 400_000  # the killed save's temporary, full size
    assert path.read_bytes() == before  # the old checkpoint is intact
    # A temporary of a live process (a concurrent save) is kept; the dead one is removed by the next save.
    live = tmp_path / f".{CHECKPOINT}.{os.getppid()}.abcdefgh.tmp"
    live.write_bytes(b"in progress")
    save_checkpoint(path, {"step": 3})
    assert sorted(tmp_path.glob(f".{CHECKPOINT}.*.tmp")) == [live]
    assert torch.load(path, weights_only=True) == {"step": 3}


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "truncated", "not-a-checkpoint"])
def test_corrupt_checkpoint_is_one_line_in_evaluate_and_resume(tmp_path, finished_run, capsys, damage):
    from paper_repro.evaluate import main as evaluate
    from paper_repro.train import main as train

    run = copy_run(finished_run, tmp_path / "run")
    ckpt = run / CHECKPOINT
    if damage == "garbage":
        ckpt.write_bytes(b"\x00\x01 definitely not a torch file")
    elif damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    else:
        torch.save({"weights": torch.zeros(3)}, ckpt)
    kept = snapshot(run)
    capsys.readouterr()
    assert evaluate(["--run", str(run), "--no-progress"]) == 2
    err = one_line(capsys.readouterr().err)
    assert str(ckpt) in err and ("cannot be read" in err or "not a paper_repro.train checkpoint" in err)
    args = ["--dataset", "digits", "--steps", "2", "--eval-every", "2", "--batch-classes", "3",
            "--samples-per-class", "4", "--dim", "8", "--out", str(run), "--no-progress", "--resume"]  # fmt: skip
    assert train(args) == 2
    assert str(ckpt) in one_line(capsys.readouterr().err)
    assert snapshot(run) == kept  # the damaged checkpoint is left for the user to inspect


def test_resume_with_fewer_steps_than_the_checkpoint_is_refused(tmp_path, finished_run, capsys):
    from paper_repro.train import main as train

    run = copy_run(finished_run, tmp_path / "run")
    kept = snapshot(run)
    args = ["--dataset", "digits", "--steps", "1", "--eval-every", "2", "--batch-classes", "3",
            "--samples-per-class", "4", "--dim", "8", "--out", str(run), "--no-progress", "--resume"]  # fmt: skip
    capsys.readouterr()
    assert train(args) == 2
    err = one_line(capsys.readouterr().err)
    assert "--steps 1" in err and "step 2" in err
    assert snapshot(run) == kept
    assert json.loads((run / "config.json").read_text())["config"]["steps"] == 2
    assert json.loads((run / "metrics.json").read_text())["step"] == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="the row is about a machine without CUDA")
def test_evaluate_on_cuda_without_cuda_is_one_line(finished_run, capsys):
    from paper_repro.evaluate import main as evaluate

    kept = snapshot(finished_run)
    capsys.readouterr()
    assert evaluate(["--run", str(finished_run), "--device", "cuda", "--no-progress"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "--device cuda" in err and "--device cpu" in err
    assert snapshot(finished_run) == kept


@pytest.mark.parametrize("content", ["{not json", '{"no_config": 1}', '{"config": {"steps": "x", "bogus": 1}}'])
def test_evaluate_names_a_bad_config_json(tmp_path, finished_run, capsys, content):
    from paper_repro.evaluate import main as evaluate

    run = copy_run(finished_run, tmp_path / "run")
    (run / "config.json").write_text(content)
    capsys.readouterr()
    assert evaluate(["--run", str(run), "--no-progress"]) == 2
    assert str(run / "config.json") in one_line(capsys.readouterr().err)
    assert not (run / "eval.json").exists()


# --- data ---------------------------------------------------------------------------------------------------------
def _official_size_mnist(folder: Path) -> dict[str, Path]:
    """An MNIST folder whose train files have the official item count (60000; 1x1 images to stay small)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {}
    for part, n in (("train", 60000), ("t10k", 10000)):
        for kind, arr in (("images-idx3", rng.integers(0, 256, (n, 1, 1), dtype=np.uint8)),
                          ("labels-idx1", rng.integers(0, 10, n).astype(np.uint8))):  # fmt: skip
            path = folder / f"{part}-{kind}-ubyte.gz"
            path.write_bytes(gzip.compress(idx_bytes(arr), compresslevel=1))
            files[f"{part}-{kind}-ubyte"] = path
    return files


def test_a_fashion_labels_file_in_the_mnist_folder_is_refused(tmp_path, monkeypatch):
    files = _official_size_mnist(tmp_path / "mnist")
    # Our 60000 synthetic images stand in for the official ones (their md5 is declared official for this test) ...
    for base, path in files.items():
        monkeypatch.setitem(CHECKSUMS["mnist"], base, hashlib.md5(gzip.decompress(path.read_bytes())).hexdigest())
    assert len(get_dataset("mnist", root=tmp_path, split="train")) == 60000
    # ... then a labels file that is not MNIST's (here: declared to be Fashion-MNIST's) takes the labels' place.
    other = idx_bytes(np.random.default_rng(1).integers(0, 10, 60000).astype(np.uint8))
    monkeypatch.setitem(CHECKSUMS["fashion-mnist"], "train-labels-idx1-ubyte", hashlib.md5(other).hexdigest())
    files["train-labels-idx1-ubyte"].write_bytes(gzip.compress(other, compresslevel=1))
    with pytest.raises(ValueError) as err:
        get_dataset("mnist", root=tmp_path, split="train")
    msg = one_line(str(err.value))
    assert str(files["train-labels-idx1-ubyte"]) in msg and "Fashion-MNIST file" in msg and "fetch" in msg


REAL = ROOT / "data"


@pytest.mark.skipif(
    not all((REAL / d / "train-labels-idx1-ubyte.gz").is_file() for d in ("mnist", "fashion-mnist")),
    reason="real MNIST / Fashion-MNIST not fetched (python -m paper_repro.datasets.fetch)",
)
def test_the_real_fashion_labels_in_an_mnist_folder_are_refused(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for f in (REAL / "mnist").iterdir():
        (folder / f.name).symlink_to(f)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    (folder / "train-labels-idx1-ubyte.gz").symlink_to(REAL / "fashion-mnist" / "train-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="it is the Fashion-MNIST file"):
        get_dataset("mnist", root=tmp_path, split="train")


@pytest.mark.parametrize("bad", ["../../outside.jpg", "/etc/passwd", "001.Bird_1/../../../x.jpg", "C:\\x.jpg"])
def test_cub_paths_leaving_the_data_folder_are_refused(tmp_path, bad):
    made = make_cub(tmp_path)
    images_txt = made["folder"] / "images.txt"
    lines = images_txt.read_text().splitlines()
    lines[0] = f"1 {bad}"
    images_txt.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as err:
        get_dataset("cub", root=tmp_path, split="train")
    msg = one_line(str(err.value))
    assert str(images_txt) in msg and repr(bad) in msg


@pytest.mark.slow
def test_skip_bad_counts_are_in_metrics_json(tmp_path, capsys):
    from paper_repro.train import main as train

    folder = make_omniglot(tmp_path / "data")
    bad = sorted((folder / "images_background" / "Alpha_B").rglob("*.png"))[0]
    corrupt(bad)
    args = ["--dataset", "omniglot", "--root", str(tmp_path / "data"), "--skip-bad", "--steps", "2", "--eval-every",
            "2", "--batch-classes", "2", "--samples-per-class", "2", "--dim", "8", "--out", str(tmp_path / "run"),
            "--no-progress"]  # fmt: skip
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        assert train(args) == 0
    skipped = json.loads((tmp_path / "run" / "metrics.json").read_text())["bad_files_skipped"]
    assert skipped == {"train": {"count": 1, "files": [str(bad)]}, "test": {"count": 0, "files": []}}


# --- command lines ------------------------------------------------------------------------------------------------
def test_sweep_refuses_a_malformed_scheduler_address_before_connecting(tmp_path, capsys, monkeypatch):
    import distributed

    from collapse.sweep import main as sweep

    monkeypatch.setattr(distributed, "Client", lambda *a, **k: pytest.fail("connected to a malformed address"))
    for bad in ("notanaddress", "tcp://host", "tcp://host:99999", "tcp://host:port"):
        with pytest.raises(SystemExit) as exc:
            sweep(["--scheduler", bad, "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store")])
        assert exc.value.code == 2
        err = one_line(capsys.readouterr().err)
        assert "--scheduler" in err and repr(bad) in err and "tcp://host:8786" in err
    assert not any(tmp_path.iterdir())


def test_sweep_dry_run_names_a_bad_grid_value(tmp_path, capsys):
    from collapse.sweep import main as sweep

    for grid, field in (("data_seed=-5", "data_seed"), ("seed=-1", "seed"), ("dim=0", "dim")):
        with pytest.raises(SystemExit) as exc:
            sweep(["--grid", grid, "--dry-run", "--out", str(tmp_path / "out")])
        assert exc.value.code == 2
        err = one_line(capsys.readouterr().err)
        assert f"grid field {field}" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--classes", "99999999999999999999"], "configuration too large: classes=99999999999999999999"),
        (["--dim", "1e11"], "--dim: invalid int value: '1e11'"),
        (["--dim", "100000000000"], "configuration too large"),
        (["--samples-per-mode", "10000000000"], "samples_per_mode=10000000000"),
    ],
)
def test_simulate_refuses_sizes_no_machine_holds(tmp_path, capsys, argv, says):
    from collapse.simulate import main as simulate

    with pytest.raises(SystemExit) as exc:
        simulate([*argv, "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store")])
    assert exc.value.code == 2
    assert says in one_line(capsys.readouterr().err)
    assert not any(tmp_path.iterdir())


def _interrupt(cmd: list[str], ready, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group, wait until ``ready()``, then Ctrl-C the group (what a terminal does)."""
    import time

    # A terminal's shell starts commands with Ctrl-C at its default; a test runner's worker may ignore it, and an
    # ignored signal would be inherited through exec.
    proc = subprocess.Popen(cmd, cwd=cwd, env=os.environ | {"PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.slow
def test_ctrl_c_in_train_stops_cleanly_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "paper_repro.train", "--dataset", "digits", "--steps", "100000", "--eval-every",
           "10", "--batch-classes", "3", "--samples-per-class", "4", "--dim", "8", "--out", str(out),
           "--no-progress"]  # fmt: skip
    done = _interrupt(cmd, lambda: (out / "metrics.json").is_file(), tmp_path)
    assert done.returncode == 130
    msg = one_line(done.stderr)
    assert "interrupted" in msg and "--resume" in msg and f"{out} keeps its checkpoint of step" in msg
    assert not list(out.glob(".*.tmp"))  # no half-written checkpoint or JSON
    step = int(json.loads((out / "metrics.json").read_text())["step"])
    resumed = subprocess.run([*cmd[:6], str(step + 10), *cmd[7:], "--resume"], cwd=tmp_path, capture_output=True,
                             text=True, env=os.environ | {"PYTHONPATH": str(ROOT)}, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "metrics.json").read_text())["step"] == step + 10


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["processes", "dask"])
def test_ctrl_c_in_sweep_stops_cleanly_and_keeps_the_store(tmp_path, backend):
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "collapse.sweep", "--backend", backend, "--grid", "noise=0,0.1", "steps=20000",
           "seeds=1", "--out", str(tmp_path / "out"), "--store", str(store), "--no-progress"]  # fmt: skip
    done = _interrupt(cmd, lambda: (store / "records").is_dir(), tmp_path)
    assert done.returncode == 130
    lines = [ln for ln in done.stderr.splitlines() if ln.strip() and "resource_tracker" not in ln
             and "warnings.warn" not in ln]  # fmt: skip
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "interrupted" in lines[0] and str(store) in lines[0] and "same command again" in lines[0]
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]


def test_figures_say_so_when_no_manifest_was_written(tmp_path, capsys):
    from paper_repro.figures.__main__ import main as figures

    out = tmp_path / "figs"
    rc = figures(["--only", "e", "--data-root", str(tmp_path / "no-data"), "--train-root", str(tmp_path / "train"),
                  "--runs-root", str(tmp_path / "runs"), "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "0/1 figures" in last and "manifest.json not written" in last
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize(
    "module, argv, says",
    [
        ("paper_repro.evaluate", [], "the following arguments are required: --run"),
        ("paper_repro.datasets.fetch", ["--dataset", "cifar"], "--dataset"),
        ("collapse.metrics.controls", ["--seed", "x"], "--seed"),
        ("collapse.simulate", ["--noise"], "--noise"),
        ("paper_repro.train", ["--steps"], "--steps"),
    ],
)
def test_missing_or_bad_flags_are_one_line_without_usage(capsys, module, argv, says):
    import importlib

    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = one_line(capsys.readouterr().err)
    assert says in err and "usage:" not in err
