r"""Train an embedding network on real images with a metric-learning loss and a positive x negative sampling rule.

One step:

    global P x M batch of step s (paper_repro.batches) -> this rank's slice -> augmentation (per image, seeded by
    (seed, s, position)) -> network -> L2-normalised embeddings -> [all-gather across ranks] -> loss from
    collapse.losses.make_loss(loss, positive, negative) on the global batch -> Adam step

Every ``eval_every`` steps the test split is embedded and scored (:mod:`paper_repro.evaluate`); every
``checkpoint_every`` steps (default: at every evaluation) and at the end, the state is checkpointed atomically
(:mod:`paper_repro.checkpoint`). ``--resume`` continues from the last checkpoint and ends with exactly the metrics
an uninterrupted run would have: batches and augmentations are functions of ``(seed, step)``, and the checkpoint
restores the model, the optimiser, the loss (learned margins), and the random generators.

Launched by ``torchrun`` (RANK / WORLD_SIZE set), it trains data-parallel (:mod:`paper_repro.distributed`): each
rank embeds its slice of the global batch and the loss, computed on the all-gathered embeddings, sees the whole
global batch, so easy positives are the nearest same-class images among all P * M.

On CUDA, ``--amp bf16`` runs the network under bfloat16 autocast (the embeddings, distances and loss stay in
float32) and ``--channels-last`` stores images and convolution weights as NHWC; both are ignored on the CPU.

Examples::

    python -m paper_repro.train --dataset fashion-mnist-super --loss triplet --positive easy --negative semihard \
        --steps 2000 --eval-every 500 --batch-classes 3 --samples-per-class 16 --seed 0 --out results/paper_repro/demo
    torchrun --nproc-per-node 4 -m paper_repro.train --dataset cub --backbone resnet50 --device cuda --amp bf16 ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from collapse.cli import OneLineParser
from collapse.data import NOISE_MODELS
from collapse.io import write_json
from collapse.losses import LOSSES, default_negative
from collapse.sampling import NEGATIVE_RULES, POSITIVE_RULES
from paper_repro import distributed as D
from paper_repro.batches import StepBatches, step_seed, transformed_batch
from paper_repro.builders import (
    build_loss,
    build_model,
    eval_transform_for,
    load_test,
    load_train,
    train_transform_for,
)
from paper_repro.checkpoint import (
    CHECKPOINT,
    capture_rng,
    load_checkpoint,
    prepare_run_dir,
    restore_rng,
    save_checkpoint,
)
from paper_repro.config import BACKBONES, TrainConfig
from paper_repro.evaluate import autocast_context, evaluate_model

__all__ = ["StepBatchData", "build_parser", "config_from_args", "main", "train"]

AUGMENT_STREAM = 1


class StepBatchData(Dataset):
    """Item ``s`` is ``(images, labels)`` of this rank's slice of the global batch of step ``s``, augmented.

    The augmentation of the image at global batch position ``j`` draws from its own generator seeded by
    ``(seed, s, 1, j)``, so it does not depend on how many ranks share the batch or on loader workers.
    """

    def __init__(self, dataset, batches: StepBatches, transform: Callable | None, seed: int, rank: int, world: int):
        self.dataset, self.batches, self.transform = dataset, batches, transform
        self.seed, self.rank, self.world = seed, rank, world

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        positions = D.rank_slice(torch.arange(self.batches.batch_size), self.rank, self.world)
        idx = self.batches.indices(step)[positions]
        # Transform before stacking, so images of different native sizes (CUB, Cars) batch.
        if self.transform is None:
            return transformed_batch(self.dataset, idx, None)
        seeds = [step_seed(self.seed, step, AUGMENT_STREAM, j) for j in positions.tolist()]
        return transformed_batch(self.dataset, idx, self.transform, [torch.Generator().manual_seed(s) for s in seeds])


def _metrics_payload(
    cfg: TrainConfig,
    history: list[dict],
    *,
    step: int,
    seconds: float,
    finished: bool,
    flipped: float | None = None,
    skipped: dict | None = None,
) -> dict:
    final = history[-1] if (finished and history) else None
    payload = {
        "config": cfg.to_dict(),
        "negative_used": cfg.negative if cfg.negative is not None else default_negative(cfg.loss),
        "step": step,
        "seconds": seconds,
        "finished": finished,
        "final": final,
        "history": history,
    }
    if flipped is not None:  # noisy runs only, so a clean run's files are unchanged
        payload["train_labels_flipped"] = flipped
    if skipped is not None:  # --skip-bad runs only: how many unreadable images each split lost, and which
        payload["bad_files_skipped"] = skipped
    return payload


def train(
    config: TrainConfig | dict,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    train_data=None,
    test_data=None,
    callback: Callable[[int], None] | None = None,
) -> dict:
    """Train one run and return its metrics dict (what ``metrics.json`` holds: config, final metrics, history).

    Parameters
    ----------
    config : TrainConfig or a dict of its fields.
    resume : continue the run in ``config.out`` from its checkpoint (a finished run returns its saved metrics).
    overwrite : delete an existing ``config.out`` first. Without either flag, an existing non-empty run directory
        is an error: nothing is ever silently overwritten.
    train_data, test_data : ImageDataset objects to use instead of loading ``config.dataset`` (tests, notebooks).
    callback : called with the step number after every step (after that step's checkpoint); may raise to stop.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
    ctx = D.from_env(cfg.device)
    try:
        return _train(cfg, ctx, resume, overwrite, progress, train_data, test_data, callback)
    finally:
        D.cleanup(ctx)


def _train(cfg, ctx, resume, overwrite, progress, train_data, test_data, callback) -> dict:
    out = Path(cfg.out)
    # Rank 0 alone touches the directory; the others learn its verdict (or its error) from it.
    verdict: object
    if ctx.is_main:
        try:
            verdict = prepare_run_dir(out, resume=resume, overwrite=overwrite)
        except (ValueError, OSError) as exc:
            verdict = exc
    else:
        verdict = None
    verdict = D.broadcast_object(verdict, ctx)
    if isinstance(verdict, BaseException):
        raise verdict
    has_checkpoint = bool(verdict)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    dev = ctx.device
    cuda = dev.type == "cuda"
    if (cfg.amp or cfg.channels_last) and not cuda and ctx.is_main:
        warnings.warn("--amp and --channels-last only apply on CUDA; this CPU run ignores them", stacklevel=2)

    train_ds, test_ds = load_train(cfg, train_data), load_test(cfg, test_data)
    # The share of training images whose label the noise changed (None for a clean run).
    clean = getattr(train_ds, "clean_labels", None)
    flipped = None if clean is None else float(np.mean(train_ds.labels != clean))
    skipped = None
    if cfg.skip_bad:
        skipped = {
            part: {"count": int(ds.n_bad), "files": [str(f) for f in ds.bad_files]}
            for part, ds in (("train", train_ds), ("test", test_ds))
        }
    extras = {"flipped": flipped, "skipped": skipped}
    n_classes = len(train_ds.class_names)
    P = cfg.batch_classes if cfg.batch_classes is not None else min(8, int((train_ds.class_counts() > 0).sum()))
    batches = StepBatches(
        train_ds.labels,
        P,
        cfg.samples_per_class,
        seed=cfg.seed,
        replace=cfg.replace_small_classes,
        class_names=train_ds.class_names,
    )
    if batches.batch_size % ctx.world_size:
        raise ValueError(
            f"batch-classes x samples-per-class = {batches.batch_size} must be a multiple of the {ctx.world_size} ranks"
        )

    model = build_model(cfg, train_ds).to(dev)
    if cuda and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(cfg, n_classes).to(dev)
    params = list(model.parameters()) + list(loss_fn.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_gen = loss_fn.sampler.generator(dev)

    start, history, seconds = 0, [], 0.0
    running_state = {"sum": 0.0, "n": 0, "no_positive": 0}
    ckpt_path = out / CHECKPOINT
    if has_checkpoint:
        ckpt = load_checkpoint(ckpt_path, map_location=dev)
        saved = TrainConfig.from_dict(ckpt["config"])
        diff = saved.differences(cfg)
        if diff:
            raise ValueError(
                f"cannot resume {out}: the configuration differs from the checkpoint's in "
                + ", ".join(f"{k} ({a!r} -> {b!r})" for k, (a, b) in diff.items())
            )
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        loss_fn.load_state_dict(ckpt["loss"])
        restore_rng(ckpt["rng"])
        loss_gen.set_state(ckpt["loss_generator"].cpu())
        start, history, seconds = int(ckpt["step"]), list(ckpt["history"]), float(ckpt["seconds"])
        running_state = ckpt["running"]
        if start > cfg.steps:
            # Resuming cannot shorten a run: its files would then claim fewer steps than were trained.
            raise ValueError(
                f"cannot resume {out} with --steps {cfg.steps}: its checkpoint is already at step {start}; pass "
                f"--steps {start} or more (nothing was changed)"
            )
    if ctx.is_main:
        write_json(out / "config.json", {"config": cfg.to_dict(), "world_size": ctx.world_size})

    if start >= cfg.steps:
        payload = _metrics_payload(cfg, history, step=start, seconds=seconds, finished=True, **extras)
        if ctx.is_main:
            write_json(out / "metrics.json", payload)
        return payload

    net = model
    if ctx.enabled:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[ctx.local_rank] if cuda else None)
    gloss = D.GlobalBatchLoss(loss_fn, ctx)
    eval_tf = eval_transform_for(cfg, test_ds)
    data = StepBatchData(train_ds, batches, train_transform_for(cfg, train_ds), cfg.seed, ctx.rank, ctx.world_size)
    loader = DataLoader(
        data,
        batch_size=None,
        sampler=range(start + 1, cfg.steps + 1),
        num_workers=cfg.workers,
        pin_memory=cuda,
    )

    def evaluate() -> dict:
        return evaluate_model(
            model,
            test_ds,
            transform=eval_tf,
            batch_size=cfg.eval_batch_size,
            device=dev,
            amp=cfg.amp,
            channels_last=cfg.channels_last,
            random_state=cfg.seed,
        )

    def checkpoint(step: int) -> None:
        if ctx.is_main:
            save_checkpoint(
                ckpt_path,
                {
                    "config": cfg.to_dict(),
                    "step": step,
                    "seconds": seconds,
                    "history": history,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "loss": loss_fn.state_dict(),
                    "rng": capture_rng(),
                    "loss_generator": loss_gen.get_state(),
                    "batches": batches.state_dict(),
                    # The training-loss average since the last evaluation, so a resumed history matches.
                    "running": {"sum": float(running), "n": n_running, "no_positive": no_positive},
                },
            )
            payload = _metrics_payload(cfg, history, step=step, seconds=seconds, finished=False, **extras)
            write_json(out / "metrics.json", payload)
        D.barrier(ctx)

    model.train()
    running = torch.tensor(float(running_state["sum"]), dtype=torch.float64, device=dev)
    n_running, no_positive = int(running_state["n"]), int(running_state["no_positive"])
    bar = tqdm(total=cfg.steps, initial=start, disable=not (progress and ctx.is_main), desc=out.name, leave=False)
    tick = time.perf_counter()
    for step, (x, y) in zip(range(start + 1, cfg.steps + 1), loader):
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        if cuda and cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(dev, cfg.amp):
            emb = net(x)
        result = gloss(emb.float(), y)
        opt.zero_grad(set_to_none=True)
        D.backward_global(result.loss, ctx, loss_fn.parameters())
        opt.step()
        running += result.loss.detach()
        n_running += 1
        no_positive += result.tuples.anchors_without_positive
        bar.update(1)

        is_eval = step % cfg.eval_every == 0 or step == cfg.steps
        is_ckpt = is_eval or step % cfg.every_checkpoint == 0
        if is_ckpt or step % 100 == 0:
            if not bool(torch.isfinite(running)):
                raise FloatingPointError(f"the training loss became NaN or infinite at step {step}; lower --lr")
        if is_eval:
            seconds += time.perf_counter() - tick
            entry = {
                "step": step,
                "train_loss": float(running) / max(n_running, 1),
                "anchors_without_positive": no_positive,
                "seconds": seconds,
            }
            if ctx.is_main:
                entry |= evaluate()
                bar.write(
                    f"{out.name} step {step}: loss {entry['train_loss']:.4f}  R@1 {entry['recall_at_1']:.4f}"
                    + (
                        f"  fine R@1 in class {entry['fine_recall_at_1_within_coarse']:.4f}"
                        if "fine_recall_at_1_within_coarse" in entry
                        else ""
                    )
                )
            history.append(entry)
            running.zero_()
            n_running = no_positive = 0
            tick = time.perf_counter()
        if is_ckpt:
            seconds += time.perf_counter() - tick
            tick = time.perf_counter()
            checkpoint(step)
        if callback is not None:
            callback(step)
    bar.close()
    payload = _metrics_payload(cfg, history, step=cfg.steps, seconds=seconds, finished=True, **extras)
    if ctx.is_main:
        write_json(out / "metrics.json", payload)
    return payload


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m paper_repro.train",
        description="Train an embedding network on real images with a metric-learning loss and a positive x "
        "negative sampling rule (easy positives = EPS); evaluate on the test split, checkpoint atomically, resume. "
        "Under torchrun it trains data-parallel with the loss on the all-gathered global batch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = TrainConfig.__dataclass_fields__
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=d["dataset"].default, help="data set name (see paper_repro.datasets)")
    g.add_argument("--root", default=d["root"].default, help="folder holding the data sets")
    g.add_argument("--zero-shot", action="store_true", help="train on some classes, test on the unseen others")
    g.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra loader option (repeatable; VALUE parsed as JSON when possible), e.g. split_on=fine",
    )
    g.add_argument("--skip-bad", action="store_true", help="skip unreadable image files instead of failing")
    g.add_argument("--train-samples", type=int, default=None, help="stratified subset of the training split")
    g.add_argument("--eval-samples", type=int, default=None, help="stratified subset of the test split to score")
    g.add_argument(
        "--label-noise",
        type=float,
        default=d["label_noise"].default,
        metavar="EPS",
        help="corrupt the training labels once with this rate (seeded by --seed); test labels stay clean",
    )
    g.add_argument(
        "--noise-kind", default=d["noise_kind"].default, choices=NOISE_MODELS, help="label-noise model (with EPS > 0)"
    )
    g.add_argument("--image-size", type=int, default=None, help="input size in px (default: native / 224)")
    g.add_argument("--no-augment", action="store_true", help="train on un-augmented images")
    g = p.add_argument_group("loss and sampling")
    g.add_argument("--loss", default=d["loss"].default, choices=tuple(LOSSES), help="embedding loss")
    g.add_argument("--positive", default=d["positive"].default, choices=tuple(POSITIVE_RULES), help="positive rule")
    g.add_argument(
        "--negative", default=None, choices=tuple(NEGATIVE_RULES), help="negative rule (default: the loss's own)"
    )
    g.add_argument("--batch-classes", type=int, default=None, help="P, classes per batch (default: min(8, C))")
    g.add_argument("--samples-per-class", type=int, default=d["samples_per_class"].default, help="M, images per class")
    g.add_argument(
        "--replace-small-classes",
        action="store_true",
        help="allow classes with fewer than M images, drawn with replacement (default: an error naming them)",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=d["steps"].default, help="training steps")
    g.add_argument("--eval-every", type=int, default=d["eval_every"].default, help="evaluate every N steps")
    g.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N steps (default: eval-every)")
    g.add_argument("--lr", type=float, default=d["lr"].default, help="Adam learning rate")
    g.add_argument("--weight-decay", type=float, default=d["weight_decay"].default, help="Adam weight decay")
    g.add_argument("--dim", type=int, default=d["dim"].default, help="embedding dimension")
    g.add_argument("--backbone", default=d["backbone"].default, choices=BACKBONES, help="network")
    g.add_argument("--pretrained", default=None, help="local backbone weights file (e.g. a torchvision state_dict)")
    g.add_argument("--seed", type=int, default=d["seed"].default, help="seed of everything random in the run")
    g = p.add_argument_group("run")
    g.add_argument("--out", default=None, help="run directory (default: results/paper_repro/<dataset>-<loss>-...)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--overwrite", action="store_true", help="delete an existing --out first")
    g.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train")
    g.add_argument("--amp", default=None, choices=("bf16",), help="bfloat16 autocast (CUDA only)")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format (CUDA only)")
    g.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    g.add_argument("--eval-batch-size", type=int, default=d["eval_batch_size"].default, help="batch size to embed")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _parse_options(items: Sequence[str]) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--dataset-option must look like KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    neg = args.negative if args.negative is not None else "default"
    noise = f"-noise{args.label_noise:g}" if args.label_noise else ""
    out = args.out or f"results/paper_repro/{args.dataset}-{args.loss}-{args.positive}-{neg}{noise}-seed{args.seed}"
    return TrainConfig(
        out=out,
        dataset=args.dataset,
        root=args.root,
        zero_shot=args.zero_shot,
        dataset_options=_parse_options(args.dataset_option),
        skip_bad=args.skip_bad,
        train_samples=args.train_samples,
        eval_samples=args.eval_samples,
        label_noise=args.label_noise,
        noise_kind=args.noise_kind,
        loss=args.loss,
        positive=args.positive,
        negative=args.negative,
        steps=args.steps,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        batch_classes=args.batch_classes,
        samples_per_class=args.samples_per_class,
        replace_small_classes=args.replace_small_classes,
        lr=args.lr,
        weight_decay=args.weight_decay,
        dim=args.dim,
        backbone=args.backbone,
        pretrained=args.pretrained,
        image_size=args.image_size,
        augment=not args.no_augment,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        channels_last=args.channels_last,
        workers=args.workers,
        eval_batch_size=args.eval_batch_size,
    )


def _resume_hint(out: Path) -> str:
    """Where an interrupted run stands (checkpoints are atomic, so the last one is whole) and how to continue it."""
    try:
        step = int(json.loads((out / "metrics.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"{out} has no checkpoint yet; run the same command with --resume to start it again from step 0"
    return f"{out} keeps its checkpoint of step {step}; run the same command with --resume to continue from it"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        result = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    except (ValueError, TypeError, OSError, FloatingPointError) as exc:
        print(f"python -m paper_repro.train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\npython -m paper_repro.train: interrupted; {_resume_hint(Path(args.out))}", file=sys.stderr)
        return 130
    if result.get("final") and int(os.environ.get("RANK", "0")) == 0:  # the other ranks hold no metrics
        keys = [k for k in result["final"] if k not in ("step", "anchors_without_positive")]
        print(json.dumps({k: round(result["final"][k], 4) for k in keys}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
