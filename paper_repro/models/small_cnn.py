"""A small convolutional backbone for 28x28 (MNIST-like) and 8x8 (scikit-learn digits) images.

Three blocks ``conv3x3 -> BatchNorm -> ReLU -> maxpool 2x2`` with ``width, 2*width, 4*width`` channels, then a
global average pool, so the feature vector has ``out_features = 4 * width`` entries whatever the input size.
The pools round up (``ceil_mode``), which halves 28 -> 14 -> 7 -> 4 and 8 -> 4 -> 2 -> 1 and leaves a 1x1 map
1x1: any input of at least 1x1 pixel works.
"""

from __future__ import annotations

import torch
from torch import nn

from collapse._validation import check_int

__all__ = ["SmallCNN"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    # bias=False: the BatchNorm shift that follows makes a conv bias redundant.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),
    )


class SmallCNN(nn.Module):
    """``x (B, in_channels, H, W) -> features (B, 4 * width)``.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for grey images).
    width : int
        Channels of the first block; the next two have ``2 * width`` and ``4 * width``.
    """

    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, low=1)
        width = check_int("width", width, low=1)
        self.in_channels = in_channels
        self.out_features = 4 * width
        self.features = nn.Sequential(
            _block(in_channels, width), _block(width, 2 * width), _block(2 * width, 4 * width)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)
