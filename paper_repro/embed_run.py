"""The test-embedding run kind: a finished real-image run's test split embedded by its final checkpoint, as a run of
:mod:`collapse.runs`, so that figures (e) and (f) read the embeddings from the result store instead of computing them.

An :class:`EmbedRun` names a checkpoint by its content (sha256) and the configuration it was trained with, less where
and how fast it ran (:data:`paper_repro.train_run.PLACE_FIELDS`): its key is the same wherever the run folder lies and
changes when the weights do. The measurement (:func:`measure_embed`) rebuilds the network and the test split exactly as
``python -m paper_repro.evaluate`` does (:mod:`paper_repro.builders`, the run's own ``eval_samples`` subset) and
embeds the test images; the record holds the embeddings (float32 values, exact in JSON), the labels, fine labels and
their names, the checkpoint's step and the run folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collapse.runs import Kind, ResultStore, Run, execute, register_kind
from paper_repro.config import TrainConfig
from paper_repro.train_run import PLACE_FIELDS

__all__ = ["EmbedRun", "EmbeddedTest", "embedded_test", "measure_embed"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class EmbedRun(Run):
    """The test embeddings of the checkpoint ``checkpoint_sha256`` of a run trained with ``config``; ``data_root``
    (where to read the images when the run's own data folder is missing) is a place, not part of its identity."""

    KIND = "paper-repro-embed"
    SCHEMA = 1

    config: TrainConfig = field(default_factory=lambda: TrainConfig(out="-"))
    checkpoint_sha256: str = ""
    data_root: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, run_dir: str | Path, config: TrainConfig, *, data_root: str | None = None) -> EmbedRun:
        """The embedding run of the final checkpoint in ``run_dir`` (trained with ``config``)."""
        from paper_repro.checkpoint import CHECKPOINT

        ckpt = Path(run_dir) / CHECKPOINT
        if not ckpt.is_file():
            raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT}: nothing to embed")
        cfg = TrainConfig.from_dict({**config.to_dict(), "out": str(run_dir)})
        return cls(cfg, _sha256(ckpt), data_root)

    def identity(self) -> dict:
        cfg = {k: v for k, v in self.config.to_dict().items() if k not in PLACE_FIELDS}
        return {"config": cfg, "checkpoint_sha256": self.checkpoint_sha256}

    def describe(self) -> str:
        c = self.config
        return f"embed {c.dataset} {c.loss}/{c.positive} seed {c.seed} test split ({self.checkpoint_sha256[:10]})"


def _config_with_data(run: EmbedRun) -> TrainConfig:
    cfg = run.config
    if run.data_root is not None and not Path(cfg.root).exists():
        cfg = TrainConfig.from_dict({**cfg.to_dict(), "root": run.data_root})
    return cfg


def measure_embed(runs: Sequence[EmbedRun]) -> list[dict]:
    """Embed the test split of each run with its final checkpoint (eval mode, no gradients, on the CPU)."""
    import torch

    from paper_repro.builders import build_model, eval_transform_for, load_test
    from paper_repro.checkpoint import CHECKPOINT, load_checkpoint
    from paper_repro.evaluate import embed_dataset

    out = []
    for run in runs:
        cfg = _config_with_data(run)
        ckpt_path = Path(cfg.out) / CHECKPOINT
        if _sha256(ckpt_path) != run.checkpoint_sha256:
            raise ValueError(f"{ckpt_path} changed since this embedding run was made (sha256 differs); make it again")
        test = load_test(cfg)
        model = build_model(cfg, test)
        ckpt = load_checkpoint(ckpt_path, map_location="cpu")
        model.load_state_dict(ckpt["model"])
        with torch.no_grad():
            emb = embed_dataset(model, test, transform=eval_transform_for(cfg, test), batch_size=cfg.eval_batch_size)
        fine = test.fine_labels
        out.append({
            "embeddings": emb.numpy().astype(np.float32).tolist(),
            "labels": np.asarray(test.labels).tolist(),
            "fine_labels": None if fine is None else np.asarray(fine).tolist(),
            "class_names": list(test.class_names),
            "fine_names": None if fine is None else list(test.fine_names),
            "step": int(ckpt["step"]),
            "path": str(cfg.out),
        })
    return out


register_kind(Kind("paper-repro-embed", EmbedRun, measure_embed))


@dataclass
class EmbeddedTest:
    """A run's embedded test split, read from its record: ``embeddings`` (N, d) float32, labels and names. The
    pixels are not in the record: :meth:`get_batch` reads them from the data set, for display only."""

    run: EmbedRun
    embeddings: np.ndarray
    labels: np.ndarray
    fine_labels: np.ndarray | None
    class_names: list[str]
    fine_names: list[str] | None
    _data: object = None

    def get_batch(self, indices: object):
        """Images and labels of ``indices`` of the test split (the data set's own :meth:`get_batch`)."""
        if self._data is None:
            from paper_repro.builders import load_test

            self._data = load_test(_config_with_data(self.run))
        return self._data.get_batch(indices)


def embedded_test(run_dir: str | Path, config: TrainConfig, store: ResultStore, *, data_root: str | None = None,
                  progress: bool = False) -> EmbeddedTest:
    """The embedded test split of the run in ``run_dir``: its record in ``store``, computed there on first use."""
    run = EmbedRun.of(run_dir, config, data_root=data_root)
    ex = execute([run], store, progress=progress, desc="embed test split")
    if not ex.ok:
        raise RuntimeError(f"embedding the test split failed: {ex.errors[0]}")
    rec = store.result(run)
    fine = rec["fine_labels"]
    return EmbeddedTest(run, np.asarray(rec["embeddings"], dtype=np.float32), np.asarray(rec["labels"]),
                        None if fine is None else np.asarray(fine), list(rec["class_names"]),
                        None if rec["fine_names"] is None else list(rec["fine_names"]))
