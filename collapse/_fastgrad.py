r"""Closed-form backward passes for the two small operations on every loss step: unit rows and pair distances.

Autograd gets both right, but on a CPU a training step of a few hundred samples is dominated by per-operation
overhead, and the generic backward of ``F.normalize``, of row indexing (``x[i]``: a dense ``index_put`` with
accumulation) and of ``vector_norm`` take several operations each. Here each is one ``autograd.Function`` whose
backward is a handful of vectorised operations:

* :func:`unit_rows`: :math:`u = x / \max(\lVert x\rVert, \epsilon)` (exactly ``F.normalize``'s forward), with
  :math:`\partial L/\partial x = (g - u\,(u^\top g)) / \lVert x\rVert` where :math:`\lVert x\rVert > \epsilon`,
  and :math:`g/\epsilon` where the norm is clamped (the clamp is then a constant).
* :func:`pair_distance`: :math:`D_t = D(u_{i_t}, u_{j_t})` for rows ``i, j`` of a ``(N, d)`` matrix, read with
  ``index_select`` and scattered back with ``index_add``:

  - ``euclidean``: :math:`\lVert u_i - u_j\rVert`, gradient :math:`\pm g\,(u_i - u_j)/D` and 0 at :math:`D = 0`
    (tied embeddings exert no force, as in :mod:`collapse.distances`);
  - ``sqeuclidean``: :math:`\lVert u_i - u_j\rVert^2`, gradient :math:`\pm 2g\,(u_i - u_j)`;
  - ``cosine``: :math:`1 - u_i^\top u_j`, gradients :math:`-g\,u_j` and :math:`-g\,u_i`.

* :func:`anchor_distances`: the same distances between every row and one partner per row (``K`` partners each),
  the fixed-shape loss step's :math:`D_{a\,p(a)}` and :math:`D_{a\,n(a)}`: one gather of the partners, and a backward
  whose anchor part is a sum instead of a scatter; given the unit rows and norms of its input, it also applies the
  normalisation's backward (one node for both).

* :func:`log1p_sum_exp`: row-wise :math:`\log(1 + \sum_{j: m_j} e^{c (s_j - \lambda)})` (the two halves of the
  multi-similarity loss), computed as :math:`\mu + \log(e^{-\mu} + \sum_j e^{x_j - \mu})` with
  :math:`\mu = \max(0, \max_j x_j)`; its backward is the softmax weights times :math:`c\,g`, one pass over the
  saved weights instead of the chain through a concatenation and ``logsumexp``.

* :func:`gram`: :math:`P = U U^\top` (the cosine similarity of unit rows), with the backward
  :math:`\partial L/\partial U = (G + G^\top) U` (one transposed copy and one product).

All support one backward pass (no double backward). tests/test_fastgrad.py checks them with ``gradcheck``.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from collapse._buffers import kept_buffer

__all__ = [
    "PAIR_KINDS", "anchor_distances", "gram", "log1p_sum_exp", "pair_distance", "unit_rows", "unit_rows_and_norms"
]

PAIR_KINDS = ("euclidean", "sqeuclidean", "cosine")


def _unit_rows_forward(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, norm)``: ``F.normalize``'s values ``u = x / max(|x|, eps)`` (in a kept buffer) and the clamped norms."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(eps)
    return torch.div(x, norm, out=kept_buffer("unit-rows", tuple(x.shape), x)), norm


def _unit_rows_backward(u: torch.Tensor, norm: torch.Tensor, eps: float, g: torch.Tensor) -> torch.Tensor:
    r""":math:`(g - u\,(u^\top g)) / \lVert x\rVert` per row, without the radial term where the norm was clamped."""
    # Where the norm was clamped it is a constant: no radial term (a (rows, 1) mask, no host sync).
    prod = torch.mul(u, g, out=kept_buffer("unit-rows-product", tuple(u.shape), u))
    radial = prod.sum(-1, keepdim=True).masked_fill_(norm <= eps, 0.0)
    # (-(u r)) + g is g - u r bitwise, in one buffer instead of three fresh ones.
    grad = torch.mul(u, radial, out=kept_buffer("unit-rows-grad", tuple(u.shape), u))
    return grad.neg_().add_(g).div_(norm)


class _UnitRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:
        u, norm = _unit_rows_forward(x, eps)
        ctx.save_for_backward(u, norm)
        ctx.eps = eps
        return u

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        u, norm = ctx.saved_tensors
        return _unit_rows_backward(u, norm, ctx.eps, g), None


def unit_rows(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize(x, dim=-1, eps=eps)`` (bitwise the same values) with a closed-form backward."""
    return _UnitRows.apply(x, eps)


@torch.no_grad()
def unit_rows_and_norms(x: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """``(unit_rows(x), norms)`` without autograd (the same values), for :func:`anchor_distances`' ``unit``. The
    rows may sit in a buffer that the next call reuses: use them within the step."""
    return _unit_rows_forward(x, eps)


class _PairDistance(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, kind: str) -> torch.Tensor:
        u, v = x.index_select(0, i), x.index_select(0, j)
        if kind == "cosine":
            value = 1.0 - (u * v).sum(-1)
            ctx.save_for_backward(u, v, i, j)
        else:
            diff = u.sub_(v)  # u is a fresh copy from index_select
            value = torch.linalg.vector_norm(diff, dim=-1) if kind == "euclidean" else (diff * diff).sum(-1)
            ctx.save_for_backward(diff, value, i, j)
        ctx.kind, ctx.rows = kind, x.shape[0]
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        a, b, i, j = ctx.saved_tensors
        out = g.new_zeros(ctx.rows, a.shape[-1])
        if ctx.kind == "cosine":
            out.index_add_(0, i, b * g.unsqueeze(-1), alpha=-1.0)
            out.index_add_(0, j, a * g.unsqueeze(-1), alpha=-1.0)
            return out, None, None, None
        if ctx.kind == "euclidean":
            # d/du |u - v| = (u - v)/|u - v|, and 0 at u = v (a zero distance has a zero gradient).
            scale = (g / b).masked_fill_(b == 0, 0.0)
        else:
            scale = 2.0 * g
        step = a * scale.unsqueeze(-1)
        out.index_add_(0, i, step)
        out.index_add_(0, j, step, alpha=-1.0)
        return out, None, None, None


def pair_distance(x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, kind: str) -> torch.Tensor:
    """``D(x[i], x[j])`` for ``(N, d)`` rows ``x`` and index vectors ``i, j`` (see the module docstring)."""
    if kind not in PAIR_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PAIR_KINDS)}; got {kind!r}")
    return _PairDistance.apply(x, i, j, kind)


class _AnchorDistance(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, j: torch.Tensor, kind: str, unit, eps: float, shape) -> tuple[torch.Tensor, ...]:
        # unit = (u, norm): the distances are taken between the unit rows u = x / norm, computed by the caller.
        u, norm = (x, None) if unit is None else unit
        k, rows = j.shape
        partners = kept_buffer("anchor-partners", (k * rows, u.shape[-1]), u)
        v = torch.index_select(u, 0, j.reshape(-1), out=partners).view(k, rows, u.shape[-1])
        if kind == "cosine":
            value = 1.0 - (u * v).sum(-1)
            ctx.save_for_backward(u, v, j, norm)
        else:
            diff = v.neg_().add_(u)  # in the partners' buffer; (-v) + u is u - v bitwise, as pair_distance has it
            value = torch.linalg.vector_norm(diff, dim=-1) if kind == "euclidean" else (diff * diff).sum(-1)
            # The first backward writes its gradient over diff (a fresh (K, N, d) tensor would cost page faults on
            # every step on a CPU), so diff is held on ctx, outside the saved tensors' version check; u is kept (a
            # reference) to rebuild it if backward runs again through a retained graph.
            ctx.save_for_backward(u, value, j, norm)
            ctx.diff = diff
        ctx.kind, ctx.eps = kind, eps
        # One output per index set, each already in the caller's shape: no unbind or reshape nodes after it.
        return tuple(value[i].view(shape) for i in range(k))

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: torch.Tensor):
        a, b, j, norm = ctx.saved_tensors
        g = torch.stack([gk.reshape(-1) for gk in grads]) if len(grads) > 1 else grads[0].reshape(1, -1)
        dim = a.shape[-1]
        if ctx.kind == "cosine":
            out = (b * g.unsqueeze(-1)).sum(0).neg_()
            out.index_add_(0, j.reshape(-1), (a * g.unsqueeze(-1)).reshape(-1, dim), alpha=-1.0)
        else:
            diff, ctx.diff = ctx.diff, None
            if diff is None:  # a second backward: the first one wrote over diff
                diff = a.index_select(0, j.reshape(-1)).view(*j.shape, dim).neg_().add_(a)
            # The step of each pair, negated: -g/D (0 at D = 0: a zero distance has a zero gradient) or -2g, times
            # u_a - u_p (exact negations, so every sum below is the unnegated one's, negated, bitwise).
            if ctx.kind == "euclidean":
                scale = torch.div(g, b).neg_().masked_fill_(b == 0, 0.0)
            else:
                scale = g * -2.0
            neg_step = diff.mul_(scale.unsqueeze(-1))
            # The anchors are the rows themselves: their part is a sum over the k index sets, no scatter.
            buf = kept_buffer("anchor-distance-grad", tuple(a.shape), a)
            if len(neg_step) == 2:  # a + b, as the sum of two rows is
                out = torch.add(neg_step[0], neg_step[1], out=buf).neg_()
            else:
                out = torch.sum(neg_step, 0, out=buf).neg_()
            # The partners' part, subtracted: scatter_add_ accumulates in index order as index_add_ does (the same
            # sums), at about half its time on a CPU.
            out.scatter_add_(0, j.reshape(-1, 1).expand(-1, dim), neg_step.reshape(-1, dim))
        if norm is not None:
            out = _unit_rows_backward(a, norm, ctx.eps, out)
        return out, None, None, None, None, None


def anchor_distances(
    x: torch.Tensor,
    j: torch.Tensor,
    kind: str,
    *,
    unit: tuple[torch.Tensor, torch.Tensor] | None = None,
    eps: float = 1e-12,
    shape: tuple[int, ...] | None = None,
) -> tuple[torch.Tensor, ...]:
    """``D(x[a], x[j[k, a]])`` for every row ``a`` of ``(N, d)`` rows ``x`` and each of the ``K`` index vectors of
    ``j`` ``(K, N)``: the values of :func:`pair_distance` ``(x, arange(N).repeat(K), j.reshape(-1))``, as ``K``
    tensors (each ``(N,)``, or ``shape``), without gathering or scattering the anchors' own rows (they are ``x``).

    ``unit=(u, norm)`` (from :func:`unit_rows_and_norms` of ``x``, without autograd): the distances are taken between
    the unit rows ``u`` (``unit_rows(x)``'s values), and the gradient reaches ``x`` through the normalisation's
    closed-form backward inside this one call (one autograd node instead of two)."""
    if kind not in PAIR_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PAIR_KINDS)}; got {kind!r}")
    if j.dim() != 2 or j.shape[1] != x.shape[0]:
        raise ValueError(f"j must have shape (K, {x.shape[0]}), got {tuple(j.shape)}")
    if unit is not None and (unit[0].shape != x.shape or unit[1].shape != (*x.shape[:-1], 1)):
        raise ValueError("unit must be (unit rows, norms) of x, shaped like x and (N, 1)")
    return _AnchorDistance.apply(x, j, kind, unit, float(eps), tuple(shape) if shape is not None else (x.shape[0],))


def _log1p_sum_exp_weights(s, mask, exclude, scale: float, shift: float, one: bool = True):
    """``(weights, total, top)`` of :func:`log1p_sum_exp`: ``weights = exp(scale (s - shift) - top)`` (0 where not
    counted), ``total = exp(-top) + sum(weights)``, ``top = max(0, max_j scale (s_j - shift))``, each row; without
    ``one`` (:func:`log_sum_exp`) ``total = sum(weights)`` and ``top = max_j scale (s_j - shift)``."""
    # One kept buffer per kind of input: a step that takes the (B, B) matrix and then a (B, M) gather (the
    # all-pairs multi-similarity) would otherwise swap the large buffer for the small one on every call.
    name = "log1p-sum-exp" if s.shape[-1] == s.shape[-2] else "log1p-sum-exp/rows"
    if exclude is None:
        x = torch.sub(s, shift, out=kept_buffer(name, tuple(s.shape), s))
        x = x.mul_(scale).masked_fill_(~mask, float("-inf"))
        offset = 0.0
    else:
        # scale * s in one pass and -inf at the excluded entries (a scatter of their indices, not a pass over a
        # boolean mask); the shift goes into the subtracted maximum below.
        x = torch.mul(s, scale, out=kept_buffer(name, tuple(s.shape), s))
        x = x.scatter_(-1, exclude, float("-inf"))
        offset = scale * shift
    top = x.amax(dim=-1, keepdim=True).sub_(offset)
    if one:
        top.clamp_min_(0.0)  # the "1" is the term exp(0)
    weights = x.sub_(top + offset).exp_()
    total = weights.sum(dim=-1, keepdim=True)
    if one:
        total.add_(torch.exp(-top))
    return weights, total, top


class _Log1pSumExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: torch.Tensor, mask, exclude, scale: float, shift: float, pick, one: bool) -> torch.Tensor:
        weights, total, top = _log1p_sum_exp_weights(s, mask, exclude, scale, shift, one)
        # s, mask and exclude are kept (references, no copies) only to rebuild the weights if backward runs again.
        # The weights are an intermediate that the first backward overwrites, so they are held on ctx, outside the
        # saved tensors' version check.
        ctx.save_for_backward(total, pick, s, mask, exclude)
        ctx.weights, ctx.scale, ctx.shift, ctx.one = weights, scale, shift, one
        value = (top + torch.log(total)).squeeze(-1)
        if pick is None:
            return value
        if pick.dim() == s.dim():  # several columns per row
            return value, s.gather(-1, pick)
        return value, s.gather(-1, pick.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor, g_picked: torch.Tensor | None = None):
        total, pick, s, mask, exclude = ctx.saved_tensors
        weights, ctx.weights = ctx.weights, None
        if weights is None:
            # A second backward through a retained graph: the first one wrote its gradient over the saved weights.
            weights = _log1p_sum_exp_weights(s, mask, exclude, ctx.scale, ctx.shift, ctx.one)[0]
        # The gradient is written over the saved weights, which nothing else reads: a fresh (..., B, B) tensor
        # would cost page faults on every step on a CPU.
        grad = weights.mul_(g.unsqueeze(-1) * ctx.scale / total)
        if pick is not None and g_picked is not None:
            # The picked entries' gradient, added in place: autograd would otherwise build a second dense (..., B)
            # gradient for the gather and add the two.
            if pick.dim() < grad.dim():
                pick, g_picked = pick.unsqueeze(-1), g_picked.unsqueeze(-1)
            grad.scatter_add_(-1, pick, g_picked)
        return grad, None, None, None, None, None, None


def log1p_sum_exp(
    s: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float = 1.0,
    shift: float = 0.0,
    *,
    exclude: torch.Tensor | None = None,
    pick: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Row-wise ``log(1 + sum_{j: mask_j} exp(scale * (s_j - shift)))`` over the last dimension, stably.

    ``exclude`` (``(..., M)`` column indices per row, repeats allowed) may replace ``mask``: every entry except
    those is counted. It is a scatter of ``M`` entries per row instead of a pass over a boolean mask, which costs
    several float passes on a CPU. With ``pick`` (one column index per row, shape ``(...)``) it also returns
    ``s.gather(-1, pick[..., None])[..., 0]``, or, with several per row (shape ``(..., M)``), ``s.gather(-1, pick)``;
    their gradient joins the same dense gradient of ``s`` (no second dense gradient for autograd to add)."""
    if (mask is None) == (exclude is None):
        raise ValueError("give exactly one of mask and exclude")
    return _Log1pSumExp.apply(s, mask, exclude, float(scale), float(shift), pick, True)


def log_sum_exp(
    s: torch.Tensor,
    scale: float = 1.0,
    *,
    mask: torch.Tensor | None = None,
    exclude: torch.Tensor | None = None,
    pick: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Row-wise ``log(sum_{j counted} exp(scale * s_j))``, stably: :func:`log1p_sum_exp` without the ``1`` (the
    same one-node forward and backward; ``mask``, ``exclude`` and ``pick`` as there). Every row needs a counted
    entry."""
    if (mask is None) == (exclude is None):
        raise ValueError("give exactly one of mask and exclude")
    return _Log1pSumExp.apply(s, mask, exclude, float(scale), 0.0, pick, False)


class _Gram(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(u)
        shape = (*u.shape[:-1], u.shape[-2])
        return torch.matmul(u, u.transpose(-1, -2), out=kept_buffer("gram", shape, u))

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        (u,) = ctx.saved_tensors
        # (G + G^T) U: one product instead of two. G^T is first copied by torch's blocked transpose kernel (about a
        # fifth of a product's time at B = 512, d = 128, and less at larger B); an elementwise add that reads G
        # transposed directly is a strided pass slower than a product on a CPU.
        # The copy goes matrix by matrix: torch's fast transpose kernel serves 2-D copies only (a batched transposed
        # copy takes about four times as long).
        # G + G^T is dead once the product is taken: a kept buffer (collapse._buffers), not a fresh (..., B, B).
        sym = kept_buffer("gram-backward", tuple(g.shape), g)
        for out, part in zip(sym.reshape(-1, *g.shape[-2:]), g.reshape(-1, *g.shape[-2:])):
            out.copy_(part.transpose(0, 1))
        return sym.add_(g) @ u


def gram(u: torch.Tensor) -> torch.Tensor:
    """``u @ u.transpose(-1, -2)`` for ``(..., B, d)`` rows (bitwise the same values), with one product backward."""
    return _Gram.apply(u)
