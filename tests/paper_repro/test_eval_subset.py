"""The test subset that ``eval_samples`` keeps: stratified, at least two images per class (or fine label) so that
every class has a neighbour of its own, and a one-line error naming the option and its minimum when it cannot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paper_repro.builders import load_test, stratified_subset
from paper_repro.config import TrainConfig
from paper_repro.datasets.memory import InMemoryImageDataset
from paper_repro.evaluate import embedding_metrics


def glyph_like(n_classes: int = 2, fine_per_class: int = 30, per_fine: tuple[int, ...] = (2, 6), seed: int = 0):
    """A generated data set shaped like the tiny glyph set: few classes, many fine labels of 2-6 images each."""
    rng = np.random.default_rng(seed)
    labels, fine = [], []
    for c in range(n_classes):
        for f in range(fine_per_class):
            k = int(rng.choice(per_fine))
            labels += [c] * k
            fine += [c * fine_per_class + f] * k
    images = rng.integers(0, 255, size=(len(labels), 1, 4, 4), dtype=np.uint8)
    fine_names = [f"f{i}" for i in range(n_classes * fine_per_class)]
    return InMemoryImageDataset(images, np.array(labels), [f"c{c}" for c in range(n_classes)], name="generated",
                                fine_labels=np.array(fine), fine_names=fine_names)


def _cfg(eval_samples: int | None) -> TrainConfig:
    return TrainConfig(out="-", dataset="glyphs", eval_samples=eval_samples)


def test_every_fine_label_keeps_two_images_and_the_metrics_are_defined():
    data = glyph_like()
    minimum = 2 * 60
    test = load_test(_cfg(minimum), data)
    counts = np.bincount(test.fine_labels)
    assert counts[counts > 0].min() >= 2 and len(np.unique(test.fine_labels)) == 60
    emb = torch.randn(len(test), 8, generator=torch.Generator().manual_seed(0))
    metrics = embedding_metrics(emb, test.labels, test.fine_labels)
    assert np.isfinite([metrics["recall_at_1"], metrics["fine_recall_at_1"], metrics["fine_map_at_r"]]).all()


def test_too_few_eval_samples_is_a_one_line_error_naming_the_option_and_the_minimum():
    data = glyph_like()
    with pytest.raises(ValueError) as info:
        load_test(_cfg(10), data)
    msg = str(info.value)
    assert "\n" not in msg and "--eval-samples" in msg and "120" in msg and "60 fine labels" in msg


def test_a_class_with_a_single_image_keeps_it_and_counts_one_toward_the_minimum():
    labels = np.array([0] * 10 + [1] * 10 + [2])
    keep = stratified_subset(labels, 5, seed=0, min_per_class=2)
    assert np.bincount(labels[keep]).tolist() == [2, 2, 1]
    with pytest.raises(ValueError, match="at least 5"):
        stratified_subset(labels, 4, seed=0, min_per_class=2, option="--eval-samples")


def test_proportions_above_the_minimum_are_unchanged():
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    one = stratified_subset(labels, 100, seed=3)
    two = stratified_subset(labels, 100, seed=3, min_per_class=2)
    assert np.array_equal(one, two) and np.bincount(labels[two]).tolist() == [10, 20, 30, 40]


@pytest.mark.slow
def test_evaluate_a_tiny_glyph_run_with_the_smallest_eval_samples(tmp_path, capsys):
    """The reported case: a run on the tiny glyph set with a small ``eval_samples`` trains and evaluates; fewer
    than the minimum is a one-line error from ``paper_repro.train``."""
    from paper_repro.datasets import get_dataset
    from paper_repro.datasets.glyphs_build import build_glyphs
    from paper_repro.evaluate import main as evaluate_main
    from paper_repro.train import main as train_main

    from .datasets.glyph_fixtures import FIXTURE_SETTINGS, copy_fonts

    root = tmp_path / "data"
    build_glyphs(root, font_dirs=[copy_fonts(tmp_path / "fonts")], log=lambda s: None, **FIXTURE_SETTINGS)
    capsys.readouterr()  # the build's progress bars
    fine = get_dataset("glyphs", str(root), "test").fine_labels
    minimum = int(np.minimum(np.bincount(fine)[np.unique(fine)], 2).sum())
    common = ["--dataset", "glyphs", "--root", str(root), "--steps", "2", "--eval-every", "2", "--dim", "8",
              "--batch-classes", "2", "--samples-per-class", "4", "--no-progress"]
    assert train_main(["--out", str(tmp_path / "small"), "--eval-samples", str(minimum - 1), *common]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"give at least {minimum}" in err and "--eval-samples" in err
    assert train_main(["--out", str(tmp_path / "run"), "--eval-samples", str(minimum), *common]) == 0
    assert evaluate_main(["--run", str(tmp_path / "run"), "--no-progress"]) == 0
    assert f"{minimum} test images" in capsys.readouterr().out
