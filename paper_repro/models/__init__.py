"""Embedding networks for the real-image reproduction: backbones, the embedding head, local weights.

``make_model(backbone, in_channels=...)`` is the one entry point the training loop needs::

    model = make_model("resnet50", in_channels=3, dim=128, pretrained="weights/resnet50.pth")
    emb = model(images)   # (B, 128), unit L2 norm
"""

from __future__ import annotations

import warnings
from pathlib import Path

from torch import nn

from collapse._validation import check_choice, check_int
from paper_repro.models.head import EmbeddingNet
from paper_repro.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet50
from paper_repro.models.small_cnn import SmallCNN
from paper_repro.models.weights import LoadReport, load_pretrained

__all__ = [
    "BACKBONES",
    "BasicBlock",
    "Bottleneck",
    "EmbeddingNet",
    "LoadReport",
    "ResNet",
    "SmallCNN",
    "load_pretrained",
    "make_backbone",
    "make_model",
    "resnet18",
    "resnet50",
]

BACKBONES = ("small_cnn", "resnet18", "resnet50")


def make_backbone(backbone: str, *, in_channels: int, small_input: bool | None = None) -> nn.Module:
    """The feature extractor called ``backbone`` (one of :data:`BACKBONES`), with an ``out_features`` attribute.

    ``small_input`` picks the ResNet stem (``True``: 3x3 stride-1, no max pool, for 28-64 px; ``None``/``False``:
    the ImageNet stem). ``small_cnn`` works at any input size and ignores it.
    """
    backbone = check_choice("backbone", backbone, BACKBONES)
    in_channels = check_int("in_channels", in_channels, low=1)
    if small_input is not None and not isinstance(small_input, bool):
        raise TypeError(f"small_input must be None, True or False, got {small_input!r}")
    if backbone == "small_cnn":
        return SmallCNN(in_channels=in_channels)
    factory = resnet18 if backbone == "resnet18" else resnet50
    return factory(in_channels=in_channels, small_input=bool(small_input))


def make_model(
    backbone: str,
    *,
    in_channels: int,
    dim: int = 128,
    normalize: bool = True,
    small_input: bool | None = None,
    pretrained: str | Path | None = None,
) -> EmbeddingNet:
    """``EmbeddingNet(make_backbone(...), dim, normalize)``, its backbone loaded from ``pretrained`` if given.

    ``pretrained`` is a local backbone checkpoint (e.g. a torchvision ``state_dict``; see
    :func:`~paper_repro.models.weights.load_pretrained`). A shape mismatch raises; names missing from the file
    or unexpected in it give a warning that lists them.
    """
    net = make_backbone(backbone, in_channels=in_channels, small_input=small_input)
    if pretrained is not None:
        report = load_pretrained(net, pretrained)
        if report.missing or report.unexpected:
            warnings.warn(f"partial pretrained load: {report}", stacklevel=2)
    return EmbeddingNet(net, dim=dim, normalize=normalize)
