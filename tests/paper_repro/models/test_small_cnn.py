"""SmallCNN: feature size for 28x28, 8x8 and tiny inputs; its three conv-BN-ReLU-pool blocks."""

from __future__ import annotations

import pytest
import torch

from paper_repro.models import SmallCNN


@pytest.mark.parametrize("size", [28, 8, 5, 1])
def test_any_input_size_gives_out_features(size):
    model = SmallCNN(in_channels=1, width=8)
    out = model(torch.randn(3, 1, size, size))
    assert model.out_features == 32
    assert out.shape == (3, 32)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("size,maps", [(28, [14, 7, 4]), (8, [4, 2, 1])])
def test_each_block_halves_rounding_up(size, maps):
    model = SmallCNN(in_channels=3, width=4).eval()
    shapes = []
    for block in model.features:
        block.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    model(torch.randn(1, 3, size, size))
    assert shapes == [(4, maps[0], maps[0]), (8, maps[1], maps[1]), (16, maps[2], maps[2])]
    kinds = [type(m).__name__ for m in model.features[0]]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]


def test_features_are_the_average_of_the_last_map():
    model = SmallCNN(in_channels=1, width=4).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.features(x).mean(dim=(2, 3)))


def test_channels_last_and_cpu_bf16_autocast():
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, width=8).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(low.float(), ref, rtol=0.05, atol=0.05)


def test_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        SmallCNN(width=0)
    with pytest.raises(TypeError, match="in_channels"):
        SmallCNN(in_channels="1")
