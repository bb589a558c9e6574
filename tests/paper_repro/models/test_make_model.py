"""make_model: the backbone names, their shapes and one-line errors."""

from __future__ import annotations

import pytest
import torch

from paper_repro.models import BACKBONES, EmbeddingNet, ResNet, SmallCNN, make_backbone, make_model


def test_backbone_names():
    assert BACKBONES == ("small_cnn", "resnet18", "resnet50")


@pytest.mark.parametrize(
    "name,channels,size,small,kind,features",
    [
        ("small_cnn", 1, 8, None, SmallCNN, 128),
        ("resnet18", 1, 28, True, ResNet, 512),
        ("resnet50", 3, 64, None, ResNet, 2048),
    ],
)
def test_make_model_shapes(name, channels, size, small, kind, features):
    net = make_model(name, in_channels=channels, dim=24, small_input=small).eval()
    assert isinstance(net, EmbeddingNet) and isinstance(net.backbone, kind)
    assert net.backbone.out_features == features
    with torch.no_grad():
        out = net(torch.randn(2, channels, size, size))
    assert out.shape == (2, 24)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_small_input_picks_the_resnet_stem_and_small_cnn_ignores_it():
    assert make_backbone("resnet18", in_channels=3, small_input=True).conv1.kernel_size == (3, 3)
    assert make_backbone("resnet18", in_channels=3).conv1.kernel_size == (7, 7)
    assert isinstance(make_backbone("small_cnn", in_channels=1, small_input=True), SmallCNN)
    assert make_model("resnet18", in_channels=3, normalize=False).normalize is False


def test_one_line_errors():
    with pytest.raises(ValueError, match=r"backbone must be one of small_cnn, resnet18, resnet50; got 'vgg16'"):
        make_model("vgg16", in_channels=3)
    with pytest.raises(ValueError, match="in_channels"):
        make_model("resnet18", in_channels=0)
    with pytest.raises(TypeError, match="small_input"):
        make_model("resnet18", in_channels=3, small_input="yes")
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        make_model("resnet18", in_channels=3, pretrained="/nonexistent/nowhere.pth")
