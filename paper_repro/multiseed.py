r"""Several runs (seeds, positive rules, learning rates) of one network trained in a single tensor program.

G runs of the same architecture become one network whose every parameter holds the G copies stacked along its
first axis (group-major):

* a convolution ``Conv2d(c_in, c_out)`` becomes ``Conv2d(G c_in, G c_out, groups=G)``: run g's images occupy
  input channels ``g c_in .. (g+1) c_in - 1`` and only meet run g's filters;
* ``BatchNorm2d(c)`` becomes ``BatchNorm2d(G c)``: BatchNorm normalises every channel over the batch, so each
  run keeps its own batch statistics and running averages, exactly as alone;
* a linear layer ``W h + b`` becomes a batched product with ``W`` of shape ``(G, out, in)``.

Run g's batch of step s is the very batch :mod:`paper_repro.train` would draw for its configuration (same
:class:`~paper_repro.batches.StepBatches`, same label noise, same per-image augmentation seeds), its network
starts from the same initialisation (``torch.manual_seed(seed)`` then :func:`~paper_repro.builders.build_model`),
its loss is the same :func:`collapse.losses.make_loss` object with the same random stream, and the optimiser is
Adam applied element-wise with run g's learning rate (:class:`GroupedAdam`, the update of ``torch.optim.Adam``).
Hence run g ends where ``python -m paper_repro.train`` ends for that configuration, up to float rounding (a
test checks it); the difference is speed: one grouped convolution over G batches replaces G small ones.

Losses: runs whose sampler draws nothing at random (positives all/easy/hard, negatives all/hard/semi-hard) and
that share loss and rules are scored in one ``(G_k, B, d)`` call of the loss (collapse's losses take a group
axis); runs with random rules call their own loss object, so each keeps the random stream of its single run.

:class:`GroupedMLP` is the same construction for an MLP head on fixed features (``Linear -> ReLU -> Linear ->
L2 normalisation``), used by the end-of-training regime study.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from collapse._validation import check_int
from paper_repro.batches import StepBatches, step_seed, transformed_batch
from paper_repro.builders import (
    build_loss,
    build_model,
    eval_transform_for,
    load_test,
    load_train,
    train_transform_for,
)
from paper_repro.config import TrainConfig
from paper_repro.models import EmbeddingNet, SmallCNN

__all__ = [
    "DETERMINISTIC_NEGATIVES",
    "DETERMINISTIC_POSITIVES",
    "GroupedAdam",
    "GroupedMLP",
    "GroupedSmallCNN",
    "MLPHead",
    "grouped_loss",
    "grouped_step",
    "train_grouped",
    "train_heads",
]

DETERMINISTIC_POSITIVES = ("all", "easy", "hard")
DETERMINISTIC_NEGATIVES = ("all", "hard", "semihard")
AUGMENT_STREAM = 1  # the stream paper_repro.train seeds its augmentations with


# --- networks -----------------------------------------------------------------------------------------------------
def _stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().clone() for t in tensors], dim=0)


class GroupedSmallCNN(nn.Module):
    """G copies of ``EmbeddingNet(SmallCNN)`` as one network: ``x (G, B, C, H, W) -> embeddings (G, B, dim)``."""

    def __init__(self, models: Sequence[EmbeddingNet], *, channels_last: bool = False) -> None:
        super().__init__()
        self.channels_last = bool(channels_last)
        if not models or not all(isinstance(m, EmbeddingNet) and isinstance(m.backbone, SmallCNN) for m in models):
            raise TypeError("GroupedSmallCNN takes a non-empty list of EmbeddingNet(SmallCNN) models")
        self.G = G = len(models)
        self.normalize = models[0].normalize
        self.in_channels = models[0].backbone.in_channels
        blocks = []
        for k, block in enumerate(models[0].backbone.features):
            conv, bn = block[0], block[1]
            gconv = nn.Conv2d(G * conv.in_channels, G * conv.out_channels, 3, padding=1, bias=False, groups=G)
            gbn = nn.BatchNorm2d(G * bn.num_features, eps=bn.eps, momentum=bn.momentum)
            with torch.no_grad():
                gconv.weight.copy_(_stack([m.backbone.features[k][0].weight for m in models]))
                gbn.weight.copy_(_stack([m.backbone.features[k][1].weight for m in models]))
                gbn.bias.copy_(_stack([m.backbone.features[k][1].bias for m in models]))
                gbn.running_mean.copy_(_stack([m.backbone.features[k][1].running_mean for m in models]))
                gbn.running_var.copy_(_stack([m.backbone.features[k][1].running_var for m in models]))
                gbn.num_batches_tracked.copy_(models[0].backbone.features[k][1].num_batches_tracked)
            blocks.append(nn.Sequential(gconv, gbn, nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)))
        self.features = nn.Sequential(*blocks)
        if self.channels_last:  # filters in the layout of the images, so that oneDNN keeps channels-last throughout
            self.features.to(memory_format=torch.channels_last)
        self.head_weight = nn.Parameter(torch.stack([m.head.weight.detach().clone() for m in models]))
        self.head_bias = nn.Parameter(torch.stack([m.head.bias.detach().clone() for m in models]))

    def forward(self, x: torch.Tensor, runs: Sequence[int] | None = None) -> torch.Tensor:
        """Embeddings of runs ``runs`` (default all G) for their images ``x (len(runs), B, C, H, W)``."""
        runs = list(range(self.G)) if runs is None else list(runs)
        if x.dim() != 5 or x.shape[0] != len(runs):
            raise ValueError(f"images must have shape ({len(runs)}, B, C, H, W), got {tuple(x.shape)}")
        G = self.G
        feats = []
        # One convolution per run on its slice of the stacked filters: oneDNN's grouped convolution
        # (groups=G) measured 3-4x slower per run than G plain ones here (docs/real_images.md, throughput).
        for i, g in enumerate(runs):
            h = x[i].contiguous(memory_format=torch.channels_last) if self.channels_last else x[i]
            for block in self.features:
                conv, bn = block[0], block[1]
                rows = slice(g * (conv.out_channels // G), (g + 1) * (conv.out_channels // G))
                h = F.conv2d(h, conv.weight[rows], padding=1)
                # Slices of the stacked running statistics are views: batch_norm updates them in place.
                h = F.batch_norm(h, bn.running_mean[rows], bn.running_var[rows], bn.weight[rows], bn.bias[rows],
                                 self.training, bn.momentum, bn.eps)  # fmt: skip
                h = F.max_pool2d(F.relu(h), 2, ceil_mode=True)
            feats.append(h.mean(dim=(-2, -1)))  # the global average pool
        if self.training and runs[0] == 0:  # one count per step, also when the runs are split over threads
            for block in self.features:
                block[1].num_batches_tracked.add_(1)
        h = torch.stack(feats)  # (len(runs), B, F)
        if len(runs) == G:
            wt, b = self.head_weight, self.head_bias
        else:
            idx = torch.tensor(runs)
            wt, b = self.head_weight[idx], self.head_bias[idx]
        z = torch.baddbmm(b.unsqueeze(1), h, wt.transpose(1, 2))
        return F.normalize(z, p=2.0, dim=-1, eps=1e-12) if self.normalize else z

    def to_models(self, template: Callable[[], EmbeddingNet]) -> list[EmbeddingNet]:
        """The G runs as separate networks (``template()`` builds one untrained copy of the architecture)."""
        out = []
        for g in range(self.G):
            m = template()
            with torch.no_grad():
                for k, block in enumerate(self.features):
                    conv, bn = block[0], block[1]
                    co, cb = conv.out_channels // self.G, bn.num_features // self.G
                    m.backbone.features[k][0].weight.copy_(conv.weight[g * co : (g + 1) * co])
                    tb = m.backbone.features[k][1]
                    for name in ("weight", "bias", "running_mean", "running_var"):
                        getattr(tb, name).copy_(getattr(bn, name)[g * cb : (g + 1) * cb])
                    tb.num_batches_tracked.copy_(bn.num_batches_tracked)
                m.head.weight.copy_(self.head_weight[g])
                m.head.bias.copy_(self.head_bias[g])
            out.append(m)
        return out


class MLPHead(nn.Module):
    """``features (B, F) -> Linear(F, hidden) -> ReLU -> Linear(hidden, dim) -> L2 normalisation``."""

    def __init__(self, in_features: int, dim: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.fc1 = nn.Linear(check_int("in_features", in_features, low=1), check_int("hidden", hidden, low=1))
        self.fc2 = nn.Linear(hidden, check_int("dim", dim, low=1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc2(F.relu(self.fc1(h))), p=2.0, dim=-1, eps=1e-12)


class GroupedMLP(nn.Module):
    """G copies of :class:`MLPHead` as batched products: ``features (G, B, F) -> embeddings (G, B, dim)``."""

    def __init__(self, heads: Sequence[MLPHead]) -> None:
        super().__init__()
        if not heads or not all(isinstance(h, MLPHead) for h in heads):
            raise TypeError("GroupedMLP takes a non-empty list of MLPHead")
        self.G = len(heads)
        self.w1 = nn.Parameter(torch.stack([h.fc1.weight.detach().clone() for h in heads]))
        self.b1 = nn.Parameter(torch.stack([h.fc1.bias.detach().clone() for h in heads]))
        self.w2 = nn.Parameter(torch.stack([h.fc2.weight.detach().clone() for h in heads]))
        self.b2 = nn.Parameter(torch.stack([h.fc2.bias.detach().clone() for h in heads]))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() == 2:  # the same features for every run (evaluation)
            h = h.unsqueeze(0).expand(self.G, -1, -1)
        a = F.relu(torch.baddbmm(self.b1.unsqueeze(1), h, self.w1.transpose(1, 2)))
        return F.normalize(torch.baddbmm(self.b2.unsqueeze(1), a, self.w2.transpose(1, 2)), p=2.0, dim=-1, eps=1e-12)


# --- optimiser ----------------------------------------------------------------------------------------------------
class GroupedAdam:
    r"""``torch.optim.Adam`` (no weight decay, no amsgrad) on group-major parameters, run g with ``lrs[g]``.

    Every parameter's first axis holds the G runs one after the other (``p.shape[0] = G * k``); the update is
    element-wise, so run g's slice moves exactly as its own Adam would move it:
    :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`, :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`,
    :math:`p \leftarrow p - \frac{lr}{1-\beta_1^t}\, m / (\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon)`.
    """

    def __init__(self, params: Sequence[nn.Parameter], lrs: Sequence[float], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.G = len(lrs)
        self.lrs = torch.tensor([float(lr) for lr in lrs], dtype=torch.float64)
        self.b1, self.b2, self.eps = float(betas[0]), float(betas[1]), float(eps)
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        for p in self.params:
            if p.shape[0] % self.G:
                raise ValueError(f"a parameter of shape {tuple(p.shape)} does not split into {self.G} runs")

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        c1, c2 = 1.0 - self.b1**self.t, math.sqrt(1.0 - self.b2**self.t)
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad
            m.lerp_(g, 1.0 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1.0 - self.b2)
            rows = p.shape[0] // self.G
            step = (self.lrs / c1).to(p.dtype).repeat_interleave(rows).view(-1, *([1] * (p.dim() - 1)))
            p.sub_(step * m / ((v.sqrt() / c2).add_(self.eps)))


# --- losses -------------------------------------------------------------------------------------------------------
def _deterministic(loss) -> bool:
    s = loss.sampler
    return s.positive.name in DETERMINISTIC_POSITIVES and s.negative.name in DETERMINISTIC_NEGATIVES


def grouped_loss(
    losses: Sequence, emb: torch.Tensor, labels: torch.Tensor, *, own_streams: bool = True
) -> tuple[torch.Tensor, list]:
    """Sum over runs of run g's loss on ``emb[g]``, and the per-run (loss value, tuples) list.

    Runs with deterministic samplers and the same loss class and rules share one grouped call. With
    ``own_streams=False`` runs with random rules are grouped too, drawing from the first run's generator: each
    run's tuples are then other (equally random) draws than alone, and the program is much faster for many runs.
    """
    G = emb.shape[0]
    outputs: list = [None] * G
    batches: dict[tuple, list[int]] = {}
    for g, loss in enumerate(losses):
        if (not own_streams or _deterministic(loss)) and not list(loss.parameters()):
            batches.setdefault((type(loss), repr(loss)), []).append(g)
        else:
            batches[("own", g)] = [g]
    total = emb.new_zeros(())
    for gs in batches.values():
        idx = torch.tensor(gs)
        out = losses[gs[0]](emb[idx], labels[idx])
        total = total + out.loss
        for k, g in enumerate(gs):
            outputs[g] = (out.per_group[k].detach(), out.tuples)
    return total, outputs


def grouped_step(net: nn.Module, losses: Sequence, x: torch.Tensor, y: torch.Tensor, *, threads: int = 1) -> list:
    """Forward, loss and backward of every run of ``net`` (gradients accumulate in its stacked parameters); returns
    :func:`grouped_loss`'s per-run outputs.

    With ``threads > 1`` the runs are split into that many contiguous shards, each computed (forward *and*
    backward, on its own autograd graph) by one Python thread with one intra-op thread. Small convolutions use two
    cores poorly from one op; two runs at once use them fully. Each run is computed by exactly one thread in the
    same order of operations, and the shards' gradients land in disjoint slices of the stacked parameters, so the
    result equals ``threads=1``'s up to the float rounding of one intra-op thread instead of several (measured
    2.6e-7 on the weights after 4 steps, ``tests/paper_repro/test_multiseed.py``).
    """
    G = x.shape[0]
    threads = max(1, min(int(threads), G))
    if threads == 1:
        total, outs = grouped_loss(losses, net(x), y)
        total.backward()
        return outs
    from concurrent.futures import ThreadPoolExecutor

    bounds = np.linspace(0, G, threads + 1).round().astype(int)
    shards = [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def work(gs: list[int]) -> list:
        total, outs = grouped_loss([losses[g] for g in gs], net(x[gs[0] : gs[-1] + 1], runs=gs), y[gs[0] : gs[-1] + 1])
        total.backward()
        return outs

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(len(shards)) as pool:
            parts = list(pool.map(work, shards))
    finally:
        torch.set_num_threads(before)
    return [o for part in parts for o in part]


# --- training -----------------------------------------------------------------------------------------------------
_SHARED = ("dataset", "root", "zero_shot", "dataset_options", "skip_bad", "eval_samples", "steps", "eval_every",
           "batch_classes", "samples_per_class", "replace_small_classes", "dim", "backbone", "pretrained",
           "image_size", "augment", "device", "eval_batch_size")  # fmt: skip


def _check_group(configs: Sequence[TrainConfig]) -> None:
    if not configs:
        raise ValueError("train_grouped needs at least one configuration")
    first = configs[0].to_dict()
    for c in configs[1:]:
        d = c.to_dict()
        odd = [k for k in _SHARED if d[k] != first[k]]
        if odd:
            raise ValueError(f"runs trained in one program must share {', '.join(odd)}; got {first[odd[0]]!r} "
                             f"and {d[odd[0]]!r} for {odd[0]}")  # fmt: skip
    for c in configs:
        if c.backbone != "small_cnn":
            raise ValueError(f"train_grouped supports backbone 'small_cnn' only, got {c.backbone!r}")
        if c.weight_decay:
            raise ValueError("train_grouped supports weight_decay 0 only (the grouped Adam has none)")
        if c.loss == "margin-learned":
            raise ValueError("train_grouped does not support 'margin-learned' (its betas are per-run parameters)")


def train_grouped(
    configs: Sequence[TrainConfig],
    *,
    train_data=None,
    test_data=None,
    progress: bool = True,
    evaluate: bool = True,
    on_eval: Callable[[int, list[EmbeddingNet]], list[dict]] | None = None,
    channels_last: bool = True,
    threads: int = 1,
) -> dict:
    """Train the runs ``configs`` together; return ``{"runs": [payload per run], "models": [...], "seconds": s}``.

    Each payload has the keys of :func:`paper_repro.train.train`'s ``metrics.json`` that describe results
    (``config``, ``history``, ``final``). Every ``eval_every`` steps each run's history gets its mean training loss
    since the last evaluation and, with ``evaluate``, the test metrics of :func:`paper_repro.evaluate` (or, with
    ``on_eval(step, models)``, whatever it returns per run). Nothing is written to disk here: the caller (a study)
    owns its result files. ``channels_last`` runs the convolutions in that layout (faster on CPU; equal to the
    single runs up to float rounding, amplified by Adam's first steps to a few 1e-4), ``threads`` splits the runs
    over that many threads of one intra-op thread each (:func:`grouped_step`).
    """
    configs = [c if isinstance(c, TrainConfig) else TrainConfig.from_dict(dict(c)) for c in configs]
    _check_group(configs)
    cfg0 = configs[0]
    dev = torch.device(cfg0.device)
    G = len(configs)
    test_ds = load_test(cfg0, test_data)
    datas, batches, models, losses = [], [], [], []
    for cfg in configs:
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        ds = load_train(cfg, train_data)
        P = cfg.batch_classes if cfg.batch_classes is not None else min(8, int((ds.class_counts() > 0).sum()))
        batches.append(StepBatches(ds.labels, P, cfg.samples_per_class, seed=cfg.seed,
                                   replace=cfg.replace_small_classes, class_names=ds.class_names))  # fmt: skip
        models.append(build_model(cfg, ds))
        loss = build_loss(cfg, len(ds.class_names)).to(dev)
        loss.sampler.generator(dev)
        losses.append(loss)
        datas.append(ds)
    net = GroupedSmallCNN(models, channels_last=channels_last).to(dev)
    opt = GroupedAdam(list(net.parameters()), [c.lr for c in configs])
    tf = train_transform_for(cfg0, datas[0]) if cfg0.augment else None
    eval_tf = eval_transform_for(cfg0, test_ds)
    template = lambda: build_model(cfg0, datas[0])  # noqa: E731

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for g in range(G):
            idx = batches[g].indices(step)
            if tf is None:
                x, y = transformed_batch(datas[g], idx, None)
                x = eval_tf(x)  # paper_repro.train applies the evaluation transform when augment is off
            else:
                gens = [torch.Generator().manual_seed(step_seed(configs[g].seed, step, AUGMENT_STREAM, j))
                        for j in range(idx.numel())]  # fmt: skip
                x, y = transformed_batch(datas[g], idx, tf, gens)
            xs.append(x)
            ys.append(y)
        return torch.stack(xs).to(dev), torch.stack(ys).to(dev)

    histories: list[list[dict]] = [[] for _ in range(G)]
    running = torch.zeros(G, dtype=torch.float64)
    n_running = 0
    seconds, tick = 0.0, time.perf_counter()
    net.train()
    for step in tqdm(range(1, cfg0.steps + 1), disable=not progress, desc=f"{G} runs", leave=False):
        x, y = batch(step)
        opt.zero_grad()
        outs = grouped_step(net, losses, x, y, threads=threads)
        opt.step()
        running += torch.stack([o[0].double().cpu() for o in outs])
        n_running += 1
        if step % cfg0.eval_every == 0 or step == cfg0.steps:
            if not bool(torch.isfinite(running).all()):
                bad = [configs[g].out for g in range(G) if not math.isfinite(float(running[g]))]
                raise FloatingPointError(f"the training loss became NaN or infinite at step {step} in {bad}; lower lr")
            seconds += time.perf_counter() - tick
            nets = net.to_models(template)
            if on_eval is not None:
                extra = on_eval(step, nets)
            elif evaluate:
                extra = [_evaluate(m, test_ds, eval_tf, c, dev) for m, c in zip(nets, configs)]
            else:
                extra = [{} for _ in range(G)]
            for g in range(G):
                entry = {"step": step, "train_loss": float(running[g]) / n_running, "seconds": seconds}
                histories[g].append(entry | extra[g])
            running.zero_()
            n_running = 0
            tick = time.perf_counter()
    seconds += time.perf_counter() - tick
    runs = [{"config": c.to_dict(), "history": h, "final": h[-1] if h else None} for c, h in zip(configs, histories)]
    return {"runs": runs, "models": net.to_models(template), "grouped": net, "seconds": seconds}


def _evaluate(model: EmbeddingNet, test_ds, eval_tf, cfg: TrainConfig, dev: torch.device) -> dict:
    from paper_repro.evaluate import evaluate_model

    return evaluate_model(model, test_ds, transform=eval_tf, batch_size=cfg.eval_batch_size, device=dev,
                          random_state=cfg.seed)  # fmt: skip


def train_heads(
    features: torch.Tensor,
    labels: Sequence[np.ndarray],
    *,
    losses: Sequence,
    lrs: Sequence[float],
    seeds: Sequence[int],
    batch_classes: int,
    samples_per_class: int,
    steps: int,
    dim: int = 64,
    hidden: int = 256,
    window: int = 100,
    on_window: Callable[[int, GroupedMLP], list[dict]] | None = None,
    own_streams: bool = False,
    progress: bool = True,
) -> dict:
    """Train G MLP heads on fixed ``features (N, F)``, run g on labels ``labels[g]`` (its own, e.g. noisy, labels),
    with loss ``losses[g]``, learning rate ``lrs[g]``, initialisation and batches seeded by ``seeds[g]``.

    Every ``window`` steps each run's curve gets ``{"step", "train_loss"}`` (the mean loss over the window) and,
    with ``on_window(step, net)``, whatever it returns for that run. Returns ``{"net": GroupedMLP, "curves":
    [[...] per run], "seconds": training seconds (windows' callbacks excluded)}``.
    """
    G = len(labels)
    if not (len(losses) == len(lrs) == len(seeds) == G):
        raise ValueError(f"labels, losses, lrs and seeds must have one entry per run, got {len(labels)}, "
                         f"{len(losses)}, {len(lrs)} and {len(seeds)}")  # fmt: skip
    features = torch.as_tensor(features, dtype=torch.float32)
    heads = []
    for s in seeds:
        torch.manual_seed(int(s))
        heads.append(MLPHead(features.shape[1], dim=dim, hidden=hidden))
    net = GroupedMLP(heads)
    opt = GroupedAdam(list(net.parameters()), lrs)
    # Proxy losses (SoftTriple, sub-centre ArcFace) own trained parameters: each run's at its own learning rate.
    loss_params = [{"params": list(loss.parameters()), "lr": float(lr)} for loss, lr in zip(losses, lrs)
                   if list(loss.parameters())]  # fmt: skip
    proxy_opt = torch.optim.Adam(loss_params) if loss_params else None
    # Runs that share seed and labels (e.g. the same seed under several losses or learning rates) draw the very
    # same batches, so each distinct (seed, labels) pair is drawn once per step.
    ys = torch.stack([torch.as_tensor(np.asarray(y), dtype=torch.long) for y in labels])
    draws: dict[tuple, int] = {}
    owner = torch.tensor([draws.setdefault((int(s), ys[g].numpy().tobytes()), len(draws))
                          for g, s in enumerate(seeds)])  # fmt: skip
    samplers = [StepBatches(np.frombuffer(y, dtype=np.int64).copy(), batch_classes, samples_per_class, seed=s)
                for s, y in draws]  # fmt: skip
    curves: list[list[dict]] = [[] for _ in range(G)]
    running = torch.zeros(G, dtype=torch.float64)
    seconds, tick, n = 0.0, time.perf_counter(), 0
    for step in tqdm(range(1, steps + 1), disable=not progress, desc=f"{G} heads", leave=False):
        idx = torch.stack([b.indices(step) for b in samplers])[owner]  # (G, B)
        x = features[idx]
        y = ys.gather(1, idx)
        total, outs = grouped_loss(losses, net(x), y, own_streams=own_streams)
        opt.zero_grad()
        if proxy_opt is not None:
            proxy_opt.zero_grad()
        total.backward()
        opt.step()
        if proxy_opt is not None:
            proxy_opt.step()
        running += torch.stack([o[0].double() for o in outs])
        n += 1
        if step % window == 0 or step == steps:
            seconds += time.perf_counter() - tick
            if not bool(torch.isfinite(running).all()):
                raise FloatingPointError(f"a head's training loss became NaN or infinite at step {step}; lower lr")
            extra = on_window(step, net) if on_window is not None else [{} for _ in range(G)]
            for g in range(G):
                curves[g].append({"step": step, "train_loss": float(running[g]) / n} | extra[g])
            running.zero_()
            n = 0
            tick = time.perf_counter()
    return {"net": net, "curves": curves, "seconds": seconds}
