r"""Embedding models, each holding G independent copies trained in one tensor program.

A model maps sample indices ``idx`` of shape ``(G, B)`` to embeddings ``(G, B, d)``; copy ``g`` only ever sees
its own parameters, so G seeds (or G configurations of one shape) train at once.

* :class:`TiedModeEmbedding`   : :math:`f(x_i) = z_{m(i)}`, one free vector per *mode*. Every sample of a mode
  shares one point, which is the mode-level model of the theory: no single noisy label can be memorised.
* :class:`FreeSampleEmbedding` : :math:`f(x_i) = z_i`, one free vector per *sample* (can memorise labels).
* :class:`MLPEmbedding`        : :math:`f(x) = W_3\,\mathrm{relu}(W_2\,\mathrm{relu}(W_1 x + b_1) + b_2) + b_3`
  on the input coordinates.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from collapse._validation import check_choice, check_int

__all__ = ["MODELS", "FreeSampleEmbedding", "MLPEmbedding", "TiedModeEmbedding", "make_model"]


def _gaussian(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=dtype)


class TiedModeEmbedding(nn.Module):
    def __init__(self, modes: torch.Tensor, n_modes: int, dim: int, n_groups: int, *, generator, dtype) -> None:
        super().__init__()
        self.register_buffer("modes", torch.as_tensor(modes, dtype=torch.long))
        self.weight = nn.Parameter(_gaussian((n_groups, n_modes, dim), generator, dtype))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.gather(self.weight, 1, self.modes[idx].unsqueeze(-1).expand(-1, -1, self.weight.shape[-1]))


class FreeSampleEmbedding(nn.Module):
    def __init__(self, n_samples: int, dim: int, n_groups: int, *, generator, dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(_gaussian((n_groups, n_samples, dim), generator, dtype))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.gather(self.weight, 1, idx.unsqueeze(-1).expand(-1, -1, self.weight.shape[-1]))


class MLPEmbedding(nn.Module):
    """Two hidden ReLU layers of width ``hidden``; weights ``(G, fan_in, fan_out)`` with He-uniform init."""

    def __init__(self, X: torch.Tensor, dim: int, n_groups: int, *, hidden: int = 64, generator, dtype) -> None:
        super().__init__()
        X = torch.as_tensor(X, dtype=dtype)
        # Standardised inputs keep the default learning rate meaningful whatever the generator's scale.
        self.register_buffer("X", (X - X.mean(0)) / X.std(0).clamp_min(1e-8))
        sizes = [X.shape[1], hidden, hidden, dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = math.sqrt(6.0 / fan_in)
            w = (torch.rand((n_groups, fan_in, fan_out), generator=generator, dtype=dtype) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(n_groups, 1, fan_out, dtype=dtype)))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.X[idx]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h


MODELS = ("tied", "sample", "mlp")


def make_model(
    name: str,
    *,
    X: torch.Tensor,
    modes: torch.Tensor,
    n_modes: int,
    dim: int,
    n_groups: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> nn.Module:
    """Build ``"tied"`` (per mode), ``"sample"`` (per sample) or ``"mlp"`` for ``n_groups`` independent runs."""
    check_choice("model", name, MODELS)
    dim = check_int("dim", dim, low=1)
    n_groups = check_int("n_groups", n_groups, low=1)
    if name == "tied":
        return TiedModeEmbedding(modes, n_modes, dim, n_groups, generator=generator, dtype=dtype)
    if name == "sample":
        return FreeSampleEmbedding(len(modes), dim, n_groups, generator=generator, dtype=dtype)
    return MLPEmbedding(X, dim, n_groups, generator=generator, dtype=dtype)
