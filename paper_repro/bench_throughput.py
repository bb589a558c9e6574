"""``python -m paper_repro.bench_throughput``: training throughput and peak memory of an embedding network.

One training step is what the real-image runs do per batch: forward through ``make_model(...)``, a metric loss
from ``collapse.losses`` (the triplet loss by default) on a P x K batch (P classes, K images each), backward,
and an Adam step. Input is synthetic (a fixed Gaussian batch on the device), so the number measures the model
and the loss, not data loading. ``--warmup`` steps run first and are not timed; CUDA is synchronised around the
timed steps.

``--runs G`` trains G independent runs (seeds) of the network in one tensor program
(:mod:`paper_repro.multiseed`: grouped convolutions, batched heads, element-wise Adam per run), each on its own
batch; images/s then counts the images of all G runs. ``--model mlp-head`` is the MLP head on fixed features of
the regime study (``--size`` is then the feature dimension). Compare with ``--runs 1`` for the speed-up over one
run per process. ``--channels-last`` puts the grouped CNN's images and filters in the channels-last layout (its
per-run convolutions then take oneDNN's fast path; see :class:`paper_repro.multiseed.GroupedSmallCNN`).

``--speedup 2,4,8`` measures, in one process and interleaved over ``--repeats`` rounds (best round kept, so that
a loaded machine penalises every row alike): one run (``--runs 1``, the network as ``paper_repro.train`` builds
it, NCHW, ``torch.optim.Adam``, all threads) in both layouts and on one thread (``cores`` of those side by side
are the "one run per process on each core at once" baseline, counted without contention: an upper bound), and
each G runs in one program, channels-last, with
all threads per op and split over the threads (``--shards``, one run per thread), plus a float32 matrix product
on the same threads; it prints and writes (``speedup_<model>_<hash>.{json,md}``) the speed-up rows and the
roofline: FLOPs per image (``torch.utils.flop_counter``, forward + backward) and the achieved FLOP/s against
the matrix product's.

Peak memory is ``torch.cuda.max_memory_allocated`` over warm-up and timed steps on a GPU, and the process's peak
resident set size (``ru_maxrss``, imports included) on the CPU.

Example::

    python -m paper_repro.bench_throughput --model resnet50 --size 224 --batch 64 --steps 20 \\
        --amp bf16 --channels-last --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from collapse._validation import check_choice, check_int
from collapse.cli import OneLineParser
from collapse.io import write_json
from collapse.losses import LOSSES, make_loss
from collapse.sampling import POSITIVE_RULES
from paper_repro.models import BACKBONES, make_model
from paper_repro.multiseed import grouped_loss, grouped_step

AMP_CHOICES = ("none", "bf16")
MODELS = (*BACKBONES, "mlp-head")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m paper_repro.bench_throughput",
        description="Measure training throughput (images/s for forward + loss + backward + Adam step on synthetic "
        "input) and peak memory of an embedding network; print one line and write a JSON file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default="resnet50", help=f"backbone: {', '.join(MODELS)}")
    p.add_argument("--runs", type=int, default=1, help="independent runs trained in one program (G; see above)")
    p.add_argument("--size", type=int, default=224, help="image height = width, in pixels")
    p.add_argument("--batch", type=int, default=64, help="images per step (a multiple of --per-class)")
    p.add_argument("--per-class", type=int, default=4, help="images per class in a batch (K of P x K)")
    p.add_argument("--steps", type=int, default=20, help="timed training steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocator, cuDNN autotuning)")
    p.add_argument("--amp", default="none", help=f"autocast dtype for forward: {', '.join(AMP_CHOICES)}")
    p.add_argument("--channels-last", action="store_true", help="model and input in torch.channels_last layout")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    p.add_argument("--in-channels", type=int, default=None, help="image channels (default: 1 for small_cnn, else 3)")
    p.add_argument("--small-input", action="store_true", help="ResNet 3x3 stem without max pool (28-64 px)")
    p.add_argument("--dim", type=int, default=128, help="embedding dimension")
    p.add_argument("--loss", default="triplet", help=f"loss: {', '.join(LOSSES)}")
    p.add_argument("--positive", default=None, help=f"positive rule ({', '.join(POSITIVE_RULES)}; default: the loss's)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed for the weights and the synthetic batch")
    p.add_argument("--out", default="results/throughput", help="folder for the JSON result")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--shards", type=int, default=1, help="with --runs > 1: threads the runs are split over, one "
                   "intra-op thread each (paper_repro.multiseed.grouped_step)")
    p.add_argument("--speedup", default=None, help="comma-separated G: the speed-up table of G runs in one program")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds of --speedup (best kept)")
    return p


def _validate(args: argparse.Namespace) -> torch.device:
    check_choice("--model", args.model, MODELS)
    check_int("--runs", args.runs, low=1)
    if args.runs > 1 and args.model not in ("small_cnn", "mlp-head"):
        raise ValueError(f"--runs > 1 supports --model small_cnn or mlp-head, got {args.model!r}")
    check_choice("--amp", args.amp, AMP_CHOICES)
    check_choice("--loss", args.loss, LOSSES)
    if args.positive is not None:
        check_choice("--positive", args.positive, POSITIVE_RULES)
    check_int("--size", args.size, low=1)
    check_int("--steps", args.steps, low=1)
    check_int("--warmup", args.warmup, low=0)
    check_int("--dim", args.dim, low=1)
    k = check_int("--per-class", args.per_class, low=2)
    b = check_int("--batch", args.batch, low=2 * k)
    if b % k:
        raise ValueError(f"--batch must be a multiple of --per-class ({k}) with at least 2 classes, got {b}")
    if args.in_channels is not None:
        check_int("--in-channels", args.in_channels, low=1)
    check_int("--repeats", args.repeats, low=1)
    check_int("--shards", args.shards, low=1)
    if args.speedup is not None:
        if args.model not in ("small_cnn", "mlp-head"):
            raise ValueError(f"--speedup supports --model small_cnn or mlp-head, got {args.model!r}")
        try:
            gs = [int(g) for g in args.speedup.split(",")]
        except ValueError:
            raise ValueError(f"--speedup must be comma-separated integers >= 2, got {args.speedup!r}") from None
        if not gs or min(gs) < 2:
            raise ValueError(f"--speedup must be comma-separated integers >= 2, got {args.speedup!r}")
    if not args.lr > 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device here")
    return device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _grouped(args: argparse.Namespace, device: torch.device, in_channels: int, classes: int):
    """G runs (seeds ``seed .. seed + G - 1``) in one program: network, per-run Adam, per-run losses, input."""
    from paper_repro.multiseed import GroupedAdam, GroupedMLP, GroupedSmallCNN, MLPHead

    G = args.runs
    nets = []
    for g in range(G):
        torch.manual_seed(args.seed + g)
        if args.model == "mlp-head":
            nets.append(MLPHead(args.size, dim=args.dim))
        else:
            nets.append(make_model(args.model, in_channels=in_channels, dim=args.dim))
    if args.model == "mlp-head":
        model = GroupedMLP(nets).to(device).train()
    else:
        model = GroupedSmallCNN(nets, channels_last=args.channels_last).to(device).train()
    losses = [
        make_loss(args.loss, args.positive, num_classes=classes, random_state=args.seed + g).to(device)
        for g in range(G)
    ]
    optimizer = GroupedAdam(list(model.parameters()), [args.lr] * G)
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    image = (args.size,) if args.model == "mlp-head" else (in_channels, args.size, args.size)
    shape = (G, args.batch, *image)
    return model, optimizer, losses, torch.randn(*shape, generator=gen).to(device)


def run(args: argparse.Namespace, device: torch.device) -> dict:
    """Build the model and loss, run the steps and return the measurements (see the module docstring)."""
    in_channels = args.in_channels or (1 if args.model == "small_cnn" else 3)
    per_class = args.per_class
    classes = args.batch // per_class
    torch.manual_seed(args.seed)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    G = args.runs
    if args.model == "mlp-head" or G > 1:
        model, optimizer, loss_fn, x = _grouped(args, device, in_channels, classes)
    else:
        model = make_model(args.model, in_channels=in_channels, dim=args.dim, small_input=args.small_input or None)
        model = model.to(device=device, memory_format=fmt).train()
        loss_fn = make_loss(args.loss, args.positive, num_classes=classes, random_state=args.seed).to(device)
        params = list(model.parameters()) + list(loss_fn.parameters())
        optimizer = torch.optim.Adam(params, lr=args.lr)
        gen = torch.Generator(device="cpu").manual_seed(args.seed)
        x = torch.randn(args.batch, in_channels, args.size, args.size, generator=gen)
        x = x.to(device=device).contiguous(memory_format=fmt)
    y = torch.arange(classes, device=device).repeat_interleave(per_class)
    amp_dtype = torch.bfloat16 if args.amp == "bf16" else None

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        amp = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
        if isinstance(loss_fn, list) and args.shards > 1:
            emb = None  # grouped_step runs the forward in its threads
        else:
            with amp:
                emb = model(x)
        # The loss runs outside autocast: its distances stay in float32 (EmbeddingNet returns float32).
        if isinstance(loss_fn, list) and args.shards > 1:
            outs = grouped_step(model, loss_fn, x, y.expand(G, -1), threads=args.shards)
            optimizer.step()
            return torch.stack([o[0] for o in outs]).sum()
        if isinstance(loss_fn, list):
            loss, _ = grouped_loss(loss_fn, emb, y.expand(G, -1))
        else:
            loss = loss_fn(emb, y).loss
        loss.backward()
        optimizer.step()
        return loss.detach()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        step()
    _sync(device)
    times, last = [], None
    for _ in tqdm(range(args.steps), desc=f"{args.model} {args.size}px", disable=args.quiet, leave=False):
        t0 = time.perf_counter()
        last = step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    total = sum(times)
    if device.type == "cuda":
        peak_mib, peak_kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_memory_allocated"
        device_name = torch.cuda.get_device_name(device)
    else:
        # ru_maxrss is in KiB on Linux (bytes on macOS).
        scale = 1.0 if sys.platform != "darwin" else 1 / 1024
        peak_mib, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1024, "process_max_rss"
        device_name = platform.processor() or platform.machine()
    return {
        "model": args.model,
        "size": args.size,
        "batch": args.batch,
        "per_class": per_class,
        "in_channels": in_channels,
        "small_input": bool(args.small_input),
        "dim": args.dim,
        "loss": args.loss,
        "positive": args.positive or "default",
        "amp": args.amp,
        "channels_last": bool(args.channels_last),
        "device": str(device),
        "device_name": device_name,
        "steps": args.steps,
        "warmup": args.warmup,
        "runs": G,
        "images_per_s": G * args.batch * args.steps / total,
        "step_ms_mean": 1e3 * total / args.steps,
        "step_ms_median": 1e3 * statistics.median(times),
        "peak_memory_mib": peak_mib,
        "peak_memory_kind": peak_kind,
        "final_loss": float(last),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def flops_per_image(args: argparse.Namespace) -> float:
    """FLOPs of one image's forward + backward through one run's network (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    from paper_repro.multiseed import MLPHead

    torch.manual_seed(args.seed)
    if args.model == "mlp-head":
        model, x = MLPHead(args.size, dim=args.dim), torch.randn(args.batch, args.size)
    else:
        in_channels = args.in_channels or (1 if args.model == "small_cnn" else 3)
        model = make_model(args.model, in_channels=in_channels, dim=args.dim)
        x = torch.randn(args.batch, in_channels, args.size, args.size)
    with FlopCounterMode(display=False) as counter:
        model.train()(x).sum().backward()
    return counter.get_total_flops() / args.batch


def matmul_flops_per_s(n: int = 1024, reps: int = 5) -> float:
    """FLOP/s of a float32 ``n x n`` matrix product on this process's threads (best of ``reps``): the roofline."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def speedup(args: argparse.Namespace, device: torch.device) -> dict:
    """The ``--speedup`` table (module docstring): rows of images/s, speed-ups and achieved FLOP/s."""
    import copy
    import os

    Gs = [int(g) for g in args.speedup.split(",")]
    cores = torch.get_num_threads()
    configs = [("one run, NCHW (paper_repro.train)", 1, False), ("one run, channels-last", 1, True),
               ("one run, NCHW, 1 thread", 1, "one-thread")]  # fmt: skip
    configs += [(f"{G} runs in one program, channels-last", G, True) for G in Gs]
    configs += [(f"{G} runs in one program, channels-last, {cores} threads x 1 run", G, "shards") for G in Gs]
    if args.model == "mlp-head":  # layouts do not apply to a head
        configs = [("one run", 1, False)] + [(f"{G} runs in one program", G, False) for G in Gs]
    best: dict[str, dict] = {}
    gemm = 0.0
    load = []
    for _ in tqdm(range(args.repeats), desc="rounds", disable=args.quiet, leave=False):
        load.append(os.getloadavg()[0])
        gemm = max(gemm, matmul_flops_per_s())
        for name, G, cl in configs:
            a = copy.copy(args)
            a.runs, a.channels_last, a.quiet = G, bool(cl), True
            a.shards = cores if cl == "shards" else 1
            if cl == "one-thread":
                a.channels_last = False
                torch.set_num_threads(1)
            try:
                r = run(a, device)
            finally:
                torch.set_num_threads(cores)
            if name not in best or r["images_per_s"] > best[name]["images_per_s"]:
                best[name] = r
    fpi = flops_per_image(args)
    base = best[configs[0][0]]["images_per_s"]
    # One run per process on each core at once: at best twice one single-threaded run (if the two never contend).
    concurrent = cores * best["one run, NCHW, 1 thread"]["images_per_s"] if args.model != "mlp-head" else None
    rows = []
    for name, G, cl in configs:
        r = best[name]
        ips = r["images_per_s"]
        rows.append({"program": name, "runs": G, "channels_last": cl is True or cl == "shards", "images_per_s": ips,
                     "step_ms_median": r["step_ms_median"], "speedup": ips / base,
                     "speedup_vs_concurrent": ips / concurrent if concurrent else None,
                     "gflop_per_s": ips * fpi / 1e9, "of_matmul": ips * fpi / gemm})  # fmt: skip
    return {"model": args.model, "size": args.size, "batch": args.batch, "per_class": args.per_class,
            "dim": args.dim, "loss": args.loss, "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
            "threads": torch.get_num_threads(), "flops_per_image": fpi, "matmul_gflop_per_s": gemm / 1e9,
            "load_average_1min": load, "rows": rows, "torch": torch.__version__,
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}  # fmt: skip


def speedup_markdown(res: dict) -> str:
    lines = [f"{res['model']} {res['size']}px, batch {res['batch']} per run ({res['loss']}), {res['threads']} threads, "
             f"best of {res['repeats']} interleaved rounds of {res['steps']} steps; load average "
             f"{', '.join(f'{v:.1f}' for v in res['load_average_1min'])}; {res['flops_per_image'] / 1e6:.1f} MFLOP per "
             f"image (forward + backward); float32 matrix product {res['matmul_gflop_per_s']:.1f} GFLOP/s.", "",
             f"| program | runs | images/s | ms/step | speed-up vs one run ({res['threads']} threads) | speed-up vs "
             f"{res['threads']} one-thread runs at once | GFLOP/s | of matmul |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in res["rows"]:
        vs = "n/a" if r.get("speedup_vs_concurrent") is None else f"{r['speedup_vs_concurrent']:.2f}x"
        lines.append(f"| {r['program']} | {r['runs']} | {r['images_per_s']:.0f} | {r['step_ms_median']:.0f} | "
                     f"{r['speedup']:.2f}x | {vs} | {r['gflop_per_s']:.1f} | {100 * r['of_matmul']:.0f} % |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        device = _validate(args)
    except (ValueError, TypeError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    command = "python -m paper_repro.bench_throughput " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.speedup is not None:
        from collapse.io import write_text
        from collapse.runs.outputs import runs_hash

        res = speedup(args, device) | {"command": command}
        stem = f"speedup_{args.model}_{runs_hash([command])}"
        write_json(Path(args.out) / f"{stem}.json", res)
        text = speedup_markdown(res)
        write_text(Path(args.out) / f"{stem}.md", text + f"\nCommand: `{command}`\n")
        print(text)
        return 0
    result = run(args, device)
    result["command"] = "python -m paper_repro.bench_throughput " + " ".join(argv if argv is not None else sys.argv[1:])
    stem = (
        f"{args.model}_{args.size}px_b{args.batch}_{args.amp}{f'_g{args.runs}' if args.runs > 1 else ''}"
        f"{'_cl' if args.channels_last else ''}{'_small' if args.small_input else ''}_{device.type}"
    )
    path = write_json(Path(args.out) / f"{stem}.json", result)
    print(
        f"{args.model} {args.size}px batch {args.batch} runs {args.runs} amp={args.amp} "
        f"channels_last={args.channels_last} "
        f"on {result['device_name']} ({result['threads']} threads): {result['images_per_s']:.1f} img/s "
        f"({result['step_ms_median']:.1f} ms/step median), peak memory {result['peak_memory_mib']:.0f} MiB "
        f"({result['peak_memory_kind']}); wrote {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
