"""The compiled loss step: ``torch.compile(fullgraph=True, dynamic=False)`` of our forward (AOTAutograd compiles the
backward with it), timed against PML like the eager rows, with its graph breaks and values checked.

A row ``<case> compiled`` runs the same batch as the eager row of that case. Its check has two parts:

* ``torch._dynamo.explain`` of the forward reports one graph and zero graph breaks (the fixed-shape selection and
  terms of :mod:`collapse.sampling.selection` and :mod:`collapse.losses.base` make that possible);
* the compiled step's value and gradient equal the eager step's (``rtol`` :data:`RTOL`, float32: the compiler may
  reorder sums). A random sampler (distance-weighted negatives) cannot use its ``torch.Generator`` inside a
  compiled graph and draws from torch's global generator instead, so there the reference is the same graph run
  op by op (``backend="eager"``) from the same global seed, with inductor's ``fallback_random`` so that both draw
  the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from collapse.bench.checks import Check, combine, compare
from collapse.losses.base import MetricLoss

__all__ = ["RTOL", "ATOL", "compiled_step", "explain_breaks", "check_compiled"]

RTOL, ATOL = 1e-4, 1e-6


def _forward(loss: MetricLoss, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(e: torch.Tensor) -> torch.Tensor:
        return loss(e, y).loss

    return forward


def _random(loss: MetricLoss) -> bool:
    return bool(loss.sampler.positive.random or loss.sampler.negative.random)


def compile_loss(loss: MetricLoss, y: torch.Tensor, *, backend: str | None = None) -> Callable:
    """``torch.compile`` of the loss's forward on labels ``y``: whole graph, static shapes; on CUDA in
    ``reduce-overhead`` mode (the step captured as a CUDA graph)."""
    kwargs: dict = {"fullgraph": True, "dynamic": False}
    if backend is not None:
        kwargs["backend"] = backend
    elif y.device.type == "cuda":
        kwargs["mode"] = "reduce-overhead"
    fn = torch.compile(_forward(loss, y), **kwargs)
    if backend is None and _random(loss):
        # The global generator's draws, not inductor's own: the check can then reproduce them op by op.
        from torch._inductor import config as inductor_config

        compiled = fn

        def fn(e: torch.Tensor) -> torch.Tensor:
            with inductor_config.patch(fallback_random=True):
                return compiled(e)

    return fn


def compiled_step(loss: MetricLoss, x: torch.Tensor, y: torch.Tensor, *, backend: str | None = None):
    """A closure running one compiled forward + backward on a leaf copy of ``x`` made once (as
    :func:`collapse.bench.loss_cases.ours_step`); returns the gradient."""
    forward = compile_loss(loss, y, backend=backend)
    leaf = x.detach().clone().requires_grad_()

    def step() -> torch.Tensor:
        leaf.grad = None
        forward(leaf).backward()
        return leaf.grad

    step.forward = forward
    return step


def explain_breaks(loss: MetricLoss, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int, list[str]]:
    """``(graphs, graph breaks, reasons)`` of the loss's forward, from ``torch._dynamo.explain``."""
    out = torch._dynamo.explain(_forward(loss, y))(x.detach().clone().requires_grad_())
    return out.graph_count, out.graph_break_count, [str(r.reason).splitlines()[0] for r in out.break_reasons]


def _value_and_grad(fn: Callable, x: torch.Tensor, seed: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    if seed is not None:
        torch.manual_seed(seed)
    e = x.detach().clone().requires_grad_()
    value = fn(e)
    value.backward()
    return value.detach(), e.grad


def check_compiled(make: Callable[[], MetricLoss], forward: Callable, x: torch.Tensor, y: torch.Tensor) -> Check:
    """Zero graph breaks, and the compiled ``forward``'s value and gradient equal to the eager reference."""
    graphs, breaks, reasons = explain_breaks(make(), x, y)
    parts = [Check("graph breaks", graphs == 1 and breaks == 0, f"{graphs} graph, {breaks} graph breaks"
                   + (f": {'; '.join(reasons[:2])}" if reasons else ""))]
    loss = make()
    if _random(loss):
        from torch._inductor import config as inductor_config

        reference = torch.compile(_forward(loss, y), backend="eager", fullgraph=True, dynamic=False)
        with inductor_config.patch(fallback_random=True):
            v_ref, g_ref = _value_and_grad(reference, x, seed=0)
        name = "vs the same graph op by op, same seed"
    else:
        v_ref, g_ref = _value_and_grad(_forward(loss, y), x, seed=None)
        name = "vs eager"
    v, g = _value_and_grad(forward, x, seed=0)
    parts += [compare(f"value {name}", v, v_ref, rtol=RTOL, atol=ATOL),
              compare(f"gradient {name}", g, g_ref, rtol=RTOL, atol=ATOL)]
    return combine("compiled", parts)
