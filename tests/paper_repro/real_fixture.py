"""The tiny real-image setting of the figure tests: an MNIST-layout data set and a 4-step random/easy pair."""

from __future__ import annotations

from pathlib import Path

from paper_repro.figures.real_runs import RealParams

from .datasets.fixtures import make_idx_set


def tiny_real(root: Path) -> RealParams:
    """Writes the data under ``root`` (image i is the constant i, label i % 10); runs and store go there too."""
    make_idx_set(root / "data" / "mnist", n_train=150, n_test=60, hw=6)
    return RealParams(dataset="mnist-groups", data_root=str(root / "data"), runs_root="",
                      train_root=str(root / "runs"), steps=4, eval_every=2, train_samples=None, eval_samples=None,
                      batch_classes=3, samples_per_class=4, dim=8, store=str(root / "store"))
