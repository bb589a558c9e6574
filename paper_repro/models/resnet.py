"""ResNet-18 and ResNet-50 backbones in plain torch, with torchvision's architecture and parameter names.

The module tree is torchvision's ``ResNet`` (He et al., 2016, in the "v1.5" form: a bottleneck block strides in
its 3x3 conv, not in its first 1x1) minus the classifier: ``conv1, bn1, relu, maxpool, layer1..layer4, avgpool``,
each block ``conv1, bn1, conv2, bn2[, conv3, bn3][, downsample.0 (1x1 conv), downsample.1 (BN)]``. So a
torchvision ``state_dict`` loads one-to-one once its ``fc.*`` entries are dropped (see
:func:`paper_repro.models.weights.load_pretrained`). ``forward`` returns the globally average-pooled features,
``(B, out_features)`` with ``out_features = 512 * expansion`` (512 for ResNet-18, 2048 for ResNet-50).

``small_input=True`` swaps the ImageNet stem (7x7 stride-2 conv, then 3x3 stride-2 max pool: a 4x reduction)
for a 3x3 stride-1 conv and no pool, the usual CIFAR-style stem for 28-64 px images; the parameter names stay,
but ``conv1.weight`` then has shape ``(64, C, 3, 3)`` and ImageNet weights for it no longer fit.
"""

from __future__ import annotations

import torch
from torch import nn

from collapse._validation import check_int

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet50"]


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` with two 3x3 convs (ResNet-18/34)."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 (reduce to ``planes``) -> 3x3 (strided) -> 1x1 (expand to ``4 * planes``), plus the shortcut."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(c_in, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A torchvision-compatible ResNet trunk without the classifier; ``forward(x) -> (B, out_features)``.

    Parameters
    ----------
    block : BasicBlock or Bottleneck
    layers : four ints, the number of blocks in ``layer1..layer4``
    in_channels : int
        Image channels (3 for RGB, 1 for grey).
    small_input : bool
        3x3 stride-1 stem without max pool (for 28-64 px) instead of the ImageNet stem.
    zero_init_residual : bool
        Start every block's last BN scale at 0 so each block begins as the identity (torchvision's option).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        *,
        in_channels: int = 3,
        small_input: bool = False,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, low=1)
        if len(layers) != 4:
            raise ValueError(f"layers must give 4 block counts, got {len(layers)}")
        self.in_channels = in_channels
        self.small_input = bool(small_input)
        self.inplanes = 64
        if self.small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        # Identity keeps the attribute (and forward) the same shape in both stems; it has no parameters.
        self.maxpool = nn.Identity() if self.small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.out_features = 512 * block.expansion

        # torchvision's initialisation, so a model trained from scratch starts where torchvision's would.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def resnet18(in_channels: int = 3, *, small_input: bool = False, zero_init_residual: bool = False) -> ResNet:
    """ResNet-18 trunk (BasicBlock x [2, 2, 2, 2]): 11,689,512 - 513,000 = 11,176,512 parameters at 3 channels."""
    return ResNet(
        BasicBlock,
        (2, 2, 2, 2),
        in_channels=in_channels,
        small_input=small_input,
        zero_init_residual=zero_init_residual,
    )


def resnet50(in_channels: int = 3, *, small_input: bool = False, zero_init_residual: bool = False) -> ResNet:
    """ResNet-50 trunk (Bottleneck x [3, 4, 6, 3]): 25,557,032 - 2,049,000 = 23,508,032 parameters at 3 channels."""
    return ResNet(
        Bottleneck,
        (3, 4, 6, 3),
        in_channels=in_channels,
        small_input=small_input,
        zero_init_residual=zero_init_residual,
    )
