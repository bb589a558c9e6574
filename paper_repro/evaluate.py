r"""Evaluate an embedding network on held-out images: retrieval metrics on the class labels and, for data sets with
sub-classes (fine labels inside coarse classes), how much of the sub-class structure the embedding kept.

Embedding: the test images go through the evaluation transform and the network in batches, without gradients,
in eval mode (BatchNorm running statistics). Every test image is a query and the rest of the test set is the
reference (the usual zero-shot DML protocol: the test classes need not have been seen in training).

Metrics, all computed by :mod:`collapse.metrics` (not re-implemented here):

* on the class labels :math:`y` (coarse classes for superclass data): ``recall_at_{1,2,4,8}``, ``precision_at_1``,
  ``r_precision``, ``map_at_r``, ``nmi`` (:func:`collapse.metrics.retrieval_metrics`, pytorch-metric-learning
  semantics) and the density ratio ``intra_inter_ratio`` (mean intra-class over mean inter-class distance,
  :func:`collapse.metrics.intra_inter_ratio`);
* when fine labels :math:`m` exist and some class holds two or more of them:

  - ``fine_recall_at_1_within_coarse`` :math:`= \mathrm{mean}_i [m_{j^*(i)} = m_i]`, where :math:`j^*(i)` is the
    nearest *other* image of the same coarse class as query i (ties at the same distance count fractionally, as
    a uniformly random tie-break would), and ``fine_chance``, its value for a fully collapsed class
    (:func:`collapse.metrics.fine_precision_at_1`). This is "among neighbours of the same coarse class, is the
    nearest one of the same fine label". A class-collapsed embedding scores ``fine_chance``;
  - ``submode_nmi`` / ``submode_ari`` / ``modes_recovered``: k-means inside each coarse class with as many
    clusters as it has fine labels, compared with the fine labels (:func:`collapse.metrics.submode_recovery`);
  - ``fine_recall_at_1``, ``fine_map_at_r``: plain retrieval on the fine labels over the whole test set.

``python -m paper_repro.evaluate --run DIR`` re-embeds the test split with the run's final checkpoint and writes
``DIR/eval.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from collapse._validation import check_int
from collapse.cli import OneLineParser
from collapse.io import write_json
from collapse.metrics import fine_precision_at_1, intra_inter_ratio, retrieval_metrics, submode_recovery
from paper_repro.batches import transformed_batch

__all__ = ["embed_dataset", "embedding_metrics", "evaluate_model", "evaluate_run", "main"]

KS = (1, 2, 4, 8)
# Rows of the k-NN distance block; R (the size of the largest class minus 1) neighbours are kept per row, so a
# smaller chunk than collapse's default keeps the evaluation within a few hundred MB for 10 000 test images.
CHUNK = 1024


def autocast_context(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked for; a no-op elsewhere (CPU runs stay in float32)."""
    if amp == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def embed_dataset(
    model: nn.Module,
    dataset,
    *,
    transform: Callable | None = None,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    amp: str | None = None,
    channels_last: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Embeddings ``(N, d)`` (float32, on the CPU) of every image of ``dataset``, in order, in eval mode.

    ``transform`` is applied to each batch from ``dataset.get_batch`` (deterministic: no generator is used).
    The model's train/eval mode is restored afterwards.
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    try:
        n = len(dataset)
        for start in tqdm(range(0, n, batch_size), disable=not progress, desc="embedding", leave=False):
            idx = np.arange(start, min(start + batch_size, n))
            if getattr(dataset, "image_shape", None) is not None:
                x, _ = dataset.get_batch(idx)
                if transform is not None:
                    x = transform(x)
            else:  # images of different native sizes: transform each before stacking
                x, _ = transformed_batch(dataset, idx, transform)
            x = x.to(device, non_blocking=True)
            if channels_last and device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, amp):
                emb = model(x)
            out.append(emb.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def _has_submodes(labels: np.ndarray, fine: np.ndarray) -> bool:
    pairs = np.unique(np.stack([labels, fine], axis=1), axis=0)
    return bool((np.bincount(pairs[:, 0]) >= 2).any())


def embedding_metrics(
    embeddings: torch.Tensor | np.ndarray,
    labels: np.ndarray | Sequence[int],
    fine_labels: np.ndarray | Sequence[int] | None = None,
    *,
    ks: Sequence[int] = KS,
    random_state: int = 0,
) -> dict[str, float]:
    """Every metric of the module docstring for one set of embeddings; python floats, flat dict."""
    y = np.asarray(labels, dtype=np.int64)
    out = retrieval_metrics(embeddings, y, ks=ks, chunk_size=CHUNK, random_state=random_state)
    if len(np.unique(y)) >= 2:
        out |= {k: v for k, v in intra_inter_ratio(embeddings, y, chunk_size=CHUNK).items() if k == "intra_inter_ratio"}
    if fine_labels is not None:
        m = np.asarray(fine_labels, dtype=np.int64)
        if _has_submodes(y, m):
            fp = fine_precision_at_1(embeddings, y, m, chunk_size=CHUNK)
            out["fine_recall_at_1_within_coarse"] = fp["fine_precision_at_1"]
            out["fine_chance"] = fp["fine_chance"]
            sr = submode_recovery(embeddings, y, m, random_state=random_state)
            out |= {k: sr[k] for k in ("submode_nmi", "submode_ari", "modes_recovered", "true_modes")}
        fine = retrieval_metrics(embeddings, m, ks=(1,), chunk_size=CHUNK, nmi=False)
        out["fine_recall_at_1"] = fine["recall_at_1"]
        out["fine_map_at_r"] = fine["map_at_r"]
    return out


def evaluate_model(
    model: nn.Module,
    dataset,
    *,
    transform: Callable | None = None,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    amp: str | None = None,
    channels_last: bool = False,
    random_state: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """:func:`embed_dataset` then :func:`embedding_metrics` with the data set's labels and fine labels."""
    emb = embed_dataset(
        model,
        dataset,
        transform=transform,
        batch_size=batch_size,
        device=device,
        amp=amp,
        channels_last=channels_last,
        progress=progress,
    )
    return embedding_metrics(emb, dataset.labels, dataset.fine_labels, random_state=random_state)


def evaluate_run(run_dir: str | Path, *, device: str = "cpu", progress: bool = True) -> dict:
    """Rebuild a finished (or checkpointed) run's network and test split, evaluate, and write ``run_dir/eval.json``."""
    from paper_repro.builders import build_model, eval_transform_for, load_test
    from paper_repro.checkpoint import CHECKPOINT, load_checkpoint
    from paper_repro.config import TrainConfig

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: {cfg_path.name} is missing")
    try:
        cfg = TrainConfig.from_dict(json.loads(cfg_path.read_text())["config"])
    except (ValueError, KeyError, TypeError) as exc:  # bad JSON (a ValueError), no "config" key, bad fields
        why = f"no {exc} key" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise ValueError(f"{cfg_path} is not a run configuration written by paper_repro.train: {why}") from exc
    ckpt_path = run_dir / CHECKPOINT
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT}: the run never reached its first checkpoint")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: this machine has no usable CUDA device (torch.cuda.is_available() is False); "
                         "use --device cpu")
    test = load_test(cfg)
    model = build_model(cfg, test).to(dev)
    ckpt = load_checkpoint(ckpt_path, map_location=dev)
    model.load_state_dict(ckpt["model"])
    metrics = evaluate_model(
        model,
        test,
        transform=eval_transform_for(cfg, test),
        batch_size=cfg.eval_batch_size,
        device=dev,
        amp=cfg.amp,
        channels_last=cfg.channels_last,
        random_state=cfg.seed,
        progress=progress,
    )
    result = {"run": str(run_dir), "step": int(ckpt["step"]), "n_test": len(test), "metrics": metrics}
    if cfg.skip_bad:  # as in metrics.json: the unreadable test images left out of these metrics
        result["bad_files_skipped"] = {"count": int(test.n_bad), "files": [str(f) for f in test.bad_files]}
    write_json(run_dir / "eval.json", result)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m paper_repro.evaluate",
        description="Embed the test split with a run's last checkpoint and report Recall@K, NMI, MAP@R and, for "
        "superclass data, fine-label Recall@1 within each coarse class and sub-mode recovery. Writes DIR/eval.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--run", required=True, help="run directory written by python -m paper_repro.train")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run the network")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = evaluate_run(args.run, device=args.device, progress=not args.no_progress)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"python -m paper_repro.evaluate: error: {exc}", file=sys.stderr)
        return 2
    width = max(len(k) for k in result["metrics"])
    print(f"{result['run']} (step {result['step']}, {result['n_test']} test images)")
    for key, value in result["metrics"].items():
        print(f"  {key:<{width}}  {value:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
