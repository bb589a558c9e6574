"""paper_repro.label_noise: the coarse training labels corrupted once per seed; test labels and eps = 0 untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.data import NOISE_MODELS
from paper_repro.builders import load_test, load_train
from paper_repro.checkpoint import CHECKPOINT, load_checkpoint
from paper_repro.config import TrainConfig
from paper_repro.datasets import get_dataset, merge_classes
from paper_repro.label_noise import noisy_labels, with_label_noise
from paper_repro.train import build_parser, config_from_args, train
from tests.paper_repro.conftest import PARITY

# 3 classes of 4 fine modes each, 2000 images per mode: enough for 5-sigma rate checks.
FINE = np.repeat(np.arange(12), 2000)
COARSE = FINE // 4


def expected_transitions(kind: str, eps: float, n_classes: int, modes_per_class: int) -> np.ndarray:
    """Naive-loop oracle of the module docstring: P(observed y | mode m), modes numbered class by class."""
    T = np.zeros((n_classes * modes_per_class, n_classes))
    for m in range(T.shape[0]):
        c = m // modes_per_class
        last = m % modes_per_class == modes_per_class - 1
        for y in range(n_classes):
            if kind == "symmetric":
                T[m, y] = 1 - eps if y == c else eps / (n_classes - 1)
            elif kind == "pair_flip" or (kind == "mode_confusion" and last):
                T[m, y] = 1 - eps if y == c else (eps if y == (c + 1) % n_classes else 0.0)
            else:
                T[m, y] = float(y == c)
    return T


@pytest.mark.parametrize("kind", NOISE_MODELS)
def test_transition_frequencies_match_the_noise_model(kind):
    eps = 0.25
    y = noisy_labels(COARSE, FINE, eps, kind, seed=3)
    T = expected_transitions(kind, eps, 3, 4)
    for m in range(12):
        freq = np.bincount(y[FINE == m], minlength=3) / 2000
        sigma = np.sqrt(T[m] * (1 - T[m]) / 2000)
        assert np.all(np.abs(freq - T[m]) <= 5 * sigma + 1e-12), (kind, m, freq, T[m])
    if kind != "mode_confusion":
        assert abs(np.mean(y != COARSE) - eps) < 5 * np.sqrt(eps * (1 - eps) / y.size)


def test_labels_are_a_function_of_the_seed_alone():
    a = noisy_labels(COARSE, FINE, 0.2, seed=7)
    torch.manual_seed(123)
    np.random.seed(5)
    b = noisy_labels(COARSE, FINE, 0.2, seed=7)  # the global generators play no part
    assert np.array_equal(a, b)
    assert not np.array_equal(a, noisy_labels(COARSE, FINE, 0.2, seed=8))
    # ...and the draw leaves the global generators where they were (a resumed run restores them separately).
    state = torch.get_rng_state()
    noisy_labels(COARSE, FINE, 0.2, seed=7)
    assert torch.equal(state, torch.get_rng_state())


@given(
    classes=st.lists(st.integers(0, 6), min_size=2, max_size=60),
    eps=st.floats(0.0, 0.95),
    kind=st.sampled_from(NOISE_MODELS),
    seed=st.integers(0, 2**31),
)
def test_noise_stays_within_the_classes_present(classes, eps, kind, seed):
    labels = np.asarray(classes)
    if np.unique(labels).size < 2:
        labels = np.append(labels, (labels[0] + 1) % 7)
    y = noisy_labels(labels, None, eps, kind, seed=seed)
    assert y.shape == labels.shape and y.dtype == np.int64
    assert set(y.tolist()) <= set(labels.tolist())
    if eps == 0.0:
        assert np.array_equal(y, labels)


def test_zero_noise_returns_the_data_set_itself_and_test_labels_stay_clean(digits):
    tr, te = digits
    cfg = TrainConfig(out="x", dataset="digits")
    assert load_train(cfg, tr) is tr
    state = torch.get_rng_state()
    noisy_cfg = TrainConfig(out="x", dataset="digits", label_noise=0.3, seed=2)
    before = tr.labels.copy()
    noisy = load_train(noisy_cfg, tr)
    assert torch.equal(state, torch.get_rng_state())
    assert np.array_equal(tr.labels, before)  # the caller's data set is not modified
    assert np.array_equal(noisy.clean_labels, before) and np.array_equal(noisy.fine_labels, tr.fine_labels)
    assert 0.2 < np.mean(noisy.labels != before) < 0.4
    assert np.array_equal(load_train(noisy_cfg, tr).labels, noisy.labels)
    test = load_test(noisy_cfg, te)
    assert test is te and np.array_equal(test.labels, merge_classes(get_dataset("digits", split="test"), PARITY).labels)


def tiny(out, **kw) -> dict:
    cfg = dict(out=str(out), dataset="digits", steps=8, eval_every=4, checkpoint_every=2, batch_classes=2,
               samples_per_class=6, lr=3e-3, dim=16, loss="triplet", positive="random", negative="all")  # fmt: skip
    return cfg | kw


def test_noise_enters_a_run_through_the_training_labels_only(tmp_path, digits):
    """A noisy run is bit for bit a clean run on the same images carrying the noisy labels: no randomness of the
    run (batches, augmentation, sampling) is shifted by the draw, and evaluation sees the clean test labels."""
    tr, te = digits
    noisy = train(tiny(tmp_path / "noisy", label_noise=0.3, seed=1), train_data=tr, test_data=te, progress=False)
    relabelled = with_label_noise(tr, 0.3, seed=1)
    plain = train(tiny(tmp_path / "plain", seed=1), train_data=relabelled, test_data=te, progress=False)
    a = load_checkpoint(tmp_path / "noisy" / CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "plain" / CHECKPOINT)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(noisy["history"]) == strip(plain["history"])
    saved = json.loads((tmp_path / "noisy" / "metrics.json").read_text())
    assert saved["config"]["label_noise"] == 0.3 and saved["config"]["noise_kind"] == "symmetric"
    assert saved["train_labels_flipped"] == pytest.approx(np.mean(relabelled.labels != tr.labels))
    clean = train(tiny(tmp_path / "clean", seed=1), train_data=tr, test_data=te, progress=False)
    assert "train_labels_flipped" not in clean  # a clean run's files are as before
    c = load_checkpoint(tmp_path / "clean" / CHECKPOINT)["model"]
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_noisy_run_resumes_exactly(tmp_path, digits):
    kw = {"label_noise": 0.3, "noise_kind": "pair_flip"}
    full = train(tiny(tmp_path / "full", **kw), train_data=digits[0], test_data=digits[1], progress=False)

    def crash_at_5(step):
        if step == 5:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        train(tiny(tmp_path / "cut", **kw), train_data=digits[0], test_data=digits[1], progress=False,
              callback=crash_at_5)  # fmt: skip
    resumed = train(tiny(tmp_path / "cut", **kw), train_data=digits[0], test_data=digits[1], progress=False,
                    resume=True)  # fmt: skip
    a = load_checkpoint(tmp_path / "full" / CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "cut" / CHECKPOINT)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["final"] == full["final"] | {"seconds": resumed["final"]["seconds"]}
    with pytest.raises(ValueError, match=r"label_noise \(0.3 -> 0.1\)"):
        train(tiny(tmp_path / "cut", label_noise=0.1), train_data=digits[0], test_data=digits[1], resume=True)


def test_flag_and_one_line_errors():
    args = build_parser().parse_args(["--label-noise", "0.2", "--noise-kind", "pair_flip", "--seed", "3"])
    cfg = config_from_args(args)
    assert (cfg.label_noise, cfg.noise_kind) == (0.2, "pair_flip") and cfg.out.endswith("-noise0.2-seed3")
    assert config_from_args(build_parser().parse_args([])).label_noise == 0.0
    with pytest.raises(ValueError, match=r"label_noise must be .*\[0(\.0)?, 1(\.0)?\)"):
        TrainConfig(out="x", label_noise=1.0)
    with pytest.raises(ValueError, match="noise_kind must be one of"):
        TrainConfig(out="x", noise_kind="uniform")
    with pytest.raises(ValueError, match="at least 2 classes"):
        noisy_labels(np.zeros(5, dtype=np.int64), None, 0.1)
