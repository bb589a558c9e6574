r"""Label-noise models, stated as a mode-level transition matrix.

A noise model is a row-stochastic matrix :math:`T \in [0, 1]^{N \times C}`,

.. math:: T_{m y} = P(\tilde y = y \mid \text{mode } m), \qquad \sum_y T_{m y} = 1,

so the observed label :math:`\tilde y` of a sample depends only on its mode :math:`m`, whose true class
is :math:`c(m)`. With noise rate :math:`\varepsilon \in [0, 1)`:

* ``symmetric``      : :math:`T_{m, c(m)} = 1 - \varepsilon`, :math:`T_{m y} = \varepsilon / (C - 1)` for
  every :math:`y \ne c(m)`.
* ``pair_flip``      : :math:`T_{m, c(m)} = 1 - \varepsilon`, :math:`T_{m, (c(m) + 1) \bmod C} = \varepsilon`.
* ``mode_confusion`` : a set :math:`S` of confused modes (default: the last mode of each class) has
  :math:`T_{m, c(m)} = 1 - \varepsilon`, :math:`T_{m, (c(m) + 1) \bmod C} = \varepsilon` for :math:`m \in S`;
  every other mode is clean, :math:`T_{m, c(m)} = 1`. One mode of a class looks like the next class.

:math:`\varepsilon = 0` gives :math:`T_{m y} = [y = c(m)]` for every kind. The functions are torch-based
so that labels can be redrawn at every training step for a whole stack of batches at once.

Per-group noise: G independent runs trained in one program (see :mod:`collapse.optimize.train`) may each have
their own rate, :math:`\varepsilon_g`. Then :math:`T` is a stack :math:`(G, N, C)` and run g draws from
:math:`T_g`. The uniforms are drawn for the whole ``(G, ...)`` stack at once whatever the rates, so the
labels of run g depend only on :math:`\varepsilon_g` and the generator's state, never on the other runs' rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch

from collapse._validation import check_choice, check_generator, check_int, check_real

__all__ = ["NOISE_MODELS", "RESAMPLE_MODES", "LabelNoise", "draw_labels", "transition_matrix"]

NOISE_MODELS = ("symmetric", "pair_flip", "mode_confusion")
RESAMPLE_MODES = ("once", "step")


def transition_matrix(
    kind: str,
    eps: float,
    mode_class: np.ndarray | torch.Tensor,
    n_classes: int,
    *,
    confused_modes: Sequence[int] | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""Mode-level label-transition matrix :math:`T` of shape (N, C) (see the module docstring).

    Parameters
    ----------
    kind : str
        One of :data:`NOISE_MODELS`.
    eps : float
        Noise rate :math:`\varepsilon \in [0, 1)`.
    mode_class : array or tensor of shape (N,), integer
        True class :math:`c(m) \in \{0, \dots, C-1\}` of each mode.
    n_classes : int
        :math:`C \ge 2`.
    confused_modes : sequence of int, optional
        ``mode_confusion`` only: the global indices of the confused modes :math:`S` (distinct, in
        :math:`[0, N)`). Default: the last mode of each class that has modes.
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    torch.Tensor of shape (N, C)
        On the device of ``mode_class`` if it is a tensor, else on the CPU. Rows sum to 1.
    """
    kind = check_choice("kind", kind, NOISE_MODELS)
    eps = check_real("eps", eps, low=0.0, high=1.0, high_inclusive=False)
    n_classes = check_int("n_classes", n_classes, low=2)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    device = mode_class.device if isinstance(mode_class, torch.Tensor) else torch.device("cpu")
    mc = _check_mode_class(mode_class, n_classes)
    n_modes = mc.size
    confused = _check_confused_modes(confused_modes, kind, n_modes)

    # Built in float64 numpy so that the entries are exact before the one cast to `dtype`.
    T = np.zeros((n_modes, n_classes), dtype=np.float64)
    rows = np.arange(n_modes)
    nxt = (mc + 1) % n_classes
    if kind == "symmetric":
        T[:] = eps / (n_classes - 1)
        T[rows, mc] = 1.0 - eps
    elif kind == "pair_flip":
        T[rows, mc] = 1.0 - eps
        T[rows, nxt] = eps
    else:
        if confused is None:
            # Last mode of each class: the largest global index with that class.
            confused = tuple(int(np.flatnonzero(mc == c)[-1]) for c in range(n_classes) if np.any(mc == c))
        T[rows, mc] = 1.0
        idx = np.asarray(confused, dtype=np.int64)
        T[idx, mc[idx]] = 1.0 - eps
        T[idx, nxt[idx]] = eps
    return torch.as_tensor(T, dtype=dtype, device=device)


def draw_labels(modes: torch.Tensor, T: torch.Tensor, generator: None | int | torch.Generator) -> torch.Tensor:
    r"""Draw observed labels :math:`\tilde y \sim T_{m, \cdot}` independently for each entry of ``modes``.

    Inverse CDF: with :math:`F_{m k} = \sum_{y \le k} T_{m y}` and :math:`u \sim U[0, 1)`,
    :math:`\tilde y = \#\{k < C - 1 : u \ge F_{m k}\}`, which has law :math:`T_{m, \cdot}`. Leaving out
    :math:`F_{m, C-1}` keeps the label in range even when rounding makes it fall short of 1, and a
    one-hot row gives its class exactly. The CDF and :math:`u` are in float64.

    Parameters
    ----------
    modes : torch.Tensor of any shape, integer
        Global mode indices in :math:`[0, N)`, e.g. a (G, B) stack of batches.
    T : torch.Tensor of shape (N, C) or (G, N, C), floating
        Transition matrix (e.g. from :func:`transition_matrix`); moved to ``modes.device`` if needed. A stack
        (G, N, C) gives each run its own matrix: ``modes`` must then have shape (G, ...) and entry
        ``modes[g, ...]`` is drawn from ``T[g]``. The uniforms are the same as with one (N, C) matrix.
    generator : torch.Generator, int or None
        Source of :math:`u`, on ``modes.device``; the draw is a function of its state. An int seeds a new
        generator (the same draw every call), None a freshly seeded one.

    Returns
    -------
    torch.Tensor of int64, same shape and device as ``modes``

    Notes
    -----
    Checks that read tensor values (index range, rows summing to 1) run only for CPU tensors, so that a
    call on an accelerator never waits for the device.
    """
    if not isinstance(T, torch.Tensor) or not T.dtype.is_floating_point:
        raise TypeError(f"T must be a floating torch.Tensor, got {_describe(T)}")
    if T.ndim not in (2, 3) or min(T.shape) < 1:
        raise ValueError(
            f"T must have shape (N, C) with N, C >= 1, got {tuple(T.shape)} (or a (G, N, C) stack, one per group)"
        )
    _check_modes(modes, T.shape[-2])
    if T.ndim == 3 and (modes.ndim < 1 or modes.shape[0] != T.shape[0]):
        raise ValueError(
            f"a stack of G={T.shape[0]} transition matrices needs modes of shape (G, ...), got {tuple(modes.shape)}"
        )
    gen = check_generator(generator, device=modes.device)
    if gen.device.type != modes.device.type:
        raise ValueError(f"generator must be on the device of modes ({modes.device}), got one on {gen.device}")
    T = T.to(device=modes.device, dtype=torch.float64)
    if modes.device.type == "cpu" and (bool((T < 0).any()) or bool(((T.sum(-1) - 1).abs() > 1e-6).any())):
        raise ValueError("T must be row-stochastic (entries >= 0, rows summing to 1), got a matrix that is not")
    cdf = T.cumsum(-1)[..., :-1]
    u = torch.rand(modes.shape, generator=gen, dtype=torch.float64, device=modes.device)
    if T.ndim == 2:
        rows = cdf[modes.long()]
    else:
        group = torch.arange(T.shape[0], device=modes.device).view(-1, *([1] * (modes.ndim - 1)))
        rows = cdf[group, modes.long()]
    return (u.unsqueeze(-1) >= rows).sum(-1, dtype=torch.int64)


@dataclass(frozen=True)
class LabelNoise:
    r"""A label-noise model together with how often its labels are drawn.

    Attributes
    ----------
    kind : str
        One of :data:`NOISE_MODELS`.
    eps : float or sequence of float
        Noise rate :math:`\varepsilon \in [0, 1)`, or one rate per group :math:`(\varepsilon_0, \dots,
        \varepsilon_{G-1})` for G runs trained at once (stored as a tuple): :meth:`matrix` is then a (G, N, C)
        stack and :meth:`draw` needs ``modes`` of shape (G, ...).
    resample : str
        ``"once"``: a noisy data set, each sample's label drawn once and kept (a trainer calls
        :meth:`draw` once on all samples). ``"step"``: labels redrawn at every training step, so training
        sees the expectation over label draws (a trainer calls :meth:`draw` on each batch). The class
        only records the choice; the trainer acts on it.
    confused_modes : tuple of int or None
        ``mode_confusion`` only, see :func:`transition_matrix`.
    """

    kind: str = "symmetric"
    eps: float | tuple[float, ...] = 0.0
    resample: str = "once"
    confused_modes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", check_choice("kind", self.kind, NOISE_MODELS))
        object.__setattr__(self, "eps", _check_eps(self.eps))
        object.__setattr__(self, "resample", check_choice("resample", self.resample, RESAMPLE_MODES))
        # N is unknown until matrix() is called; that call checks the upper bound.
        object.__setattr__(self, "confused_modes", _check_confused_modes(self.confused_modes, self.kind, None))

    @property
    def n_groups(self) -> int | None:
        """The number of per-group rates, or None for one rate shared by every group."""
        return len(self.eps) if isinstance(self.eps, tuple) else None

    def matrix(self, mode_class: np.ndarray | torch.Tensor, n_classes: int) -> torch.Tensor:
        """The (N, C) float64 transition matrix of this model for the given modes; (G, N, C) with per-group rates."""
        if isinstance(self.eps, tuple):
            return torch.stack(
                [transition_matrix(self.kind, e, mode_class, n_classes, confused_modes=self.confused_modes)
                 for e in self.eps]
            )
        return transition_matrix(self.kind, self.eps, mode_class, n_classes, confused_modes=self.confused_modes)

    def draw(
        self,
        modes: torch.Tensor,
        mode_class: np.ndarray | torch.Tensor,
        n_classes: int,
        generator: None | int | torch.Generator,
    ) -> torch.Tensor:
        """Observed labels for ``modes`` (any shape), int64 on ``modes.device``.

        With a scalar ``eps == 0`` this is exactly ``mode_class[modes]`` and consumes no randomness. Per-group
        rates always consume one uniform per entry, zero rates included, so that the labels of group g do not
        depend on the rates of the other groups (a group with rate 0 still gets exactly its true classes).
        In a hot loop, build ``T = self.matrix(...)`` once on the device and call :func:`draw_labels` directly.
        """
        T = self.matrix(mode_class, n_classes)
        if isinstance(self.eps, tuple):
            return draw_labels(modes, T, generator)
        if self.eps == 0.0:
            _check_modes(modes, T.shape[0])
            # T is one-hot here, so its argmax is the true class of each mode.
            return T.argmax(1).to(modes.device)[modes.long()]
        return draw_labels(modes, T, generator)


def _check_eps(eps: object) -> float | tuple[float, ...]:
    """One rate in [0, 1), or a non-empty sequence of them (one per group) as a tuple of floats."""
    if isinstance(eps, (torch.Tensor, np.ndarray)):
        eps = eps.tolist()
    if isinstance(eps, Sequence) and not isinstance(eps, (str, bytes)):
        if len(eps) == 0:
            raise ValueError("eps must be a rate in [0, 1) or a non-empty sequence of rates (one per group), got []")
        return tuple(
            check_real(f"eps[{g}]", e, low=0.0, high=1.0, high_inclusive=False) for g, e in enumerate(eps)
        )
    return check_real("eps", eps, low=0.0, high=1.0, high_inclusive=False)


def _check_modes(modes: object, n_modes: int) -> None:
    """Integer tensor of mode indices; the range check reads values, so it runs on CPU tensors only."""
    if (
        not isinstance(modes, torch.Tensor)
        or modes.dtype.is_floating_point
        or modes.dtype.is_complex
        or modes.dtype == torch.bool
    ):
        raise TypeError(f"modes must be an integer torch.Tensor, got {_describe(modes)}")
    if modes.device.type == "cpu" and modes.numel():
        lo, hi = int(modes.min()), int(modes.max())
        if lo < 0 or hi >= n_modes:
            raise ValueError(f"modes must lie in [0, {n_modes}) (one row of T per mode), got values in [{lo}, {hi}]")


def _check_mode_class(mode_class: object, n_classes: int) -> np.ndarray:
    """``mode_class`` as a 1-D int64 numpy array with values in [0, n_classes)."""
    if isinstance(mode_class, torch.Tensor):
        arr = mode_class.detach().cpu().numpy()
    elif isinstance(mode_class, np.ndarray):
        arr = mode_class
    else:
        raise TypeError(f"mode_class must be a numpy array or torch.Tensor, got {type(mode_class).__name__}")
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"mode_class must be a non-empty 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n_classes:
        raise ValueError(f"mode_class must have values in [0, {n_classes}), got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def _check_confused_modes(value: object, kind: str, n_modes: int | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if kind != "mode_confusion":
        raise ValueError(f"confused_modes is only used with kind='mode_confusion', got kind={kind!r}")
    if isinstance(value, (str, bytes, Integral)) or not hasattr(value, "__iter__"):
        raise TypeError(f"confused_modes must be a sequence of mode indices, got {value!r}")
    high = None if n_modes is None else n_modes - 1
    out = tuple(check_int(f"confused_modes[{i}]", v, low=0, high=high) for i, v in enumerate(value))
    if len(set(out)) != len(out):
        raise ValueError(f"confused_modes must be distinct mode indices, got {out}")
    return out


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of dtype {x.dtype}"
    return type(x).__name__
