"""EmbeddingNet: e = (W h + b) / ||W h + b||, or the raw projection; float32 out of 16-bit autocast."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from paper_repro.models import EmbeddingNet, SmallCNN, resnet18


class _Flat(nn.Module):
    """A parameter-free backbone: flattens the input, so the head sees exactly the given features."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.out_features = n

    def forward(self, x):
        return x.flatten(1)


@pytest.mark.slow
@given(st.integers(0, 10_000), st.integers(1, 6), st.integers(1, 9), st.integers(1, 12))
def test_normalized_embedding_is_unit_projection(seed, batch, features, dim):
    torch.manual_seed(seed)
    net = EmbeddingNet(_Flat(features), dim=dim).double()
    h = torch.randn(batch, features, dtype=torch.float64)
    e = net(h)
    z = (h @ net.head.weight.T + net.head.bias).detach()  # the math in the docstring
    expected = torch.stack([zi / max(float(zi.norm()), 1e-12) for zi in z])
    torch.testing.assert_close(e, expected)
    assert e.shape == (batch, dim)
    raw = EmbeddingNet(_Flat(features), dim=dim, normalize=False).double()
    raw.load_state_dict(net.state_dict())
    torch.testing.assert_close(raw(h), z)


def test_image_backbones_give_unit_vectors():
    net = EmbeddingNet(SmallCNN(in_channels=1, width=8), dim=16).eval()
    out = net(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 16) and net.out_features == 16
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    assert net.features(torch.zeros(1, 1, 8, 8)).shape == (1, 32)


@pytest.mark.slow
def test_bf16_autocast_on_cpu_returns_float32_unit_vectors():
    torch.manual_seed(0)
    net = EmbeddingNet(resnet18(small_input=True), dim=32).eval().to(memory_format=torch.channels_last)
    x = torch.randn(3, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    assert float((out * ref).sum(dim=1).min()) > 0.98  # same direction up to bf16 rounding


def test_bad_arguments():
    with pytest.raises(TypeError, match="out_features"):
        EmbeddingNet(nn.Identity())
    with pytest.raises(ValueError, match="dim"):
        EmbeddingNet(_Flat(4), dim=0)
