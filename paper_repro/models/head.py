"""The embedding network: a backbone, a linear projection, and (by default) projection onto the unit sphere.

For an image ``x`` with backbone features ``h = f(x)`` in R^F, the embedding is

    z = W h + b            (W in R^{dim x F}, b in R^dim)
    e = z / max(||z||_2, eps)   with eps = 1e-12   (normalize=True; so ||e||_2 = 1)

and ``e = z`` when ``normalize=False``. Metric-learning losses in ``collapse.losses`` measure distances on the
unit sphere, hence the default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collapse._validation import check_int

__all__ = ["EmbeddingNet"]


class EmbeddingNet(nn.Module):
    """``backbone -> Linear(backbone.out_features, dim) -> L2 normalisation``; ``forward(x) -> (B, dim)``.

    Parameters
    ----------
    backbone : nn.Module
        Maps images to ``(B, F)`` features and has an ``out_features`` attribute giving F.
    dim : int
        Embedding dimension.
    normalize : bool
        Divide each embedding by its L2 norm (see the module docstring); ``False`` returns the raw projection.

    Under ``torch.autocast`` with a 16-bit dtype the embedding is returned in float32: the normalisation and the
    loss's distances are then computed at full precision, which costs nothing next to the backbone.
    """

    def __init__(self, backbone: nn.Module, dim: int = 128, normalize: bool = True) -> None:
        super().__init__()
        features = getattr(backbone, "out_features", None)
        if not isinstance(features, int) or features < 1:
            raise TypeError(f"backbone must have a positive int attribute out_features, got {features!r}")
        self.backbone = backbone
        self.dim = check_int("dim", dim, low=1)
        self.out_features = self.dim
        self.normalize = bool(normalize)
        self.head = nn.Linear(features, self.dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone features ``h = f(x)``, before the projection."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.backbone(x))
        if z.dtype in (torch.float16, torch.bfloat16):
            z = z.float()
        return F.normalize(z, p=2.0, dim=-1, eps=1e-12) if self.normalize else z

    def extra_repr(self) -> str:
        return f"dim={self.dim}, normalize={self.normalize}"
