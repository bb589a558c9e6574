"""ResNet-18/50 trunks: torchvision's parameter counts, names and shapes; block wiring against a functional oracle."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from paper_repro.models import BasicBlock, Bottleneck, resnet18, resnet50

# torchvision's published totals (resnet18 / resnet50 with the 1000-class fc), and that fc's weight + bias.
TV_TOTAL = {"resnet18": 11_689_512, "resnet50": 25_557_032}
TV_FC = {"resnet18": 512 * 1000 + 1000, "resnet50": 2048 * 1000 + 1000}
# torchvision's state_dict lengths (parameters and BN buffers, fc included): 122 and 320 entries.
TV_KEYS = {"resnet18": 122, "resnet50": 320}
FACTORY = {"resnet18": resnet18, "resnet50": resnet50}


def _torchvision_keys(name: str) -> set[str]:
    """The state_dict names torchvision gives a ResNet without its fc, written out from its naming rules."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    blocks, convs = ((2, 2, 2, 2), 2) if name == "resnet18" else ((3, 4, 6, 3), 3)
    keys = {"conv1.weight"} | {f"bn1.{b}" for b in bn}
    for layer, n in enumerate(blocks, start=1):
        for i in range(n):
            p = f"layer{layer}.{i}"
            for c in range(1, convs + 1):
                keys |= {f"{p}.conv{c}.weight"} | {f"{p}.bn{c}.{b}" for b in bn}
            # a shortcut projection wherever the first block changes stride or width (all four for bottlenecks)
            if i == 0 and (layer > 1 or name == "resnet50"):
                keys |= {f"{p}.downsample.0.weight"} | {f"{p}.downsample.1.{b}" for b in bn}
    return keys


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_parameter_count_is_torchvisions_without_fc(name):
    model = FACTORY[name]()
    assert sum(p.numel() for p in model.parameters()) == TV_TOTAL[name] - TV_FC[name]
    assert model.out_features == {"resnet18": 512, "resnet50": 2048}[name]
    assert not hasattr(model, "fc")


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_state_dict_names_follow_torchvision(name):
    sd = FACTORY[name]().state_dict()
    assert len(sd) == TV_KEYS[name] - 2
    assert set(sd) == _torchvision_keys(name)


@pytest.mark.slow
def test_known_tensor_shapes():
    r50 = resnet50().state_dict()
    assert r50["layer3.1.conv2.weight"].shape == (256, 256, 3, 3)
    assert r50["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert r50["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert r50["conv1.weight"].shape == (64, 3, 7, 7)
    r18 = resnet18(in_channels=1).state_dict()
    assert r18["conv1.weight"].shape == (64, 1, 7, 7)
    assert r18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert "layer1.0.downsample.0.weight" not in r18


def test_bottleneck_strides_in_its_3x3_conv():
    # torchvision's "v1.5": the stride sits on conv2, not on the first 1x1.
    block = resnet50().layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2)


def _bn(x, m):
    return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)


def _reference_block(block, x):
    """Functional re-statement of torchvision's block forward (eval mode)."""
    if isinstance(block, Bottleneck):
        out = F.relu(_bn(F.conv2d(x, block.conv1.weight), block.bn1))
        out = F.relu(_bn(F.conv2d(out, block.conv2.weight, stride=block.stride, padding=1), block.bn2))
        out = _bn(F.conv2d(out, block.conv3.weight), block.bn3)
    else:
        out = F.relu(_bn(F.conv2d(x, block.conv1.weight, stride=block.stride, padding=1), block.bn1))
        out = _bn(F.conv2d(out, block.conv2.weight, padding=1), block.bn2)
    short = x
    if block.downsample is not None:
        short = _bn(F.conv2d(x, block.downsample[0].weight, stride=block.stride), block.downsample[1])
    return F.relu(out + short)


@pytest.mark.parametrize("name,layer", [("resnet18", 2), ("resnet18", 1), ("resnet50", 1), ("resnet50", 3)])
def test_block_matches_functional_oracle(name, layer):
    torch.manual_seed(0)
    block = getattr(FACTORY[name](), f"layer{layer}")[0].double().eval()
    for m in block.modules():  # non-trivial BN statistics, so a misplaced BN would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    c_in = block.conv1.in_channels
    x = torch.randn(2, c_in, 8, 8, dtype=torch.float64)
    assert isinstance(block, BasicBlock if name == "resnet18" else Bottleneck)
    torch.testing.assert_close(block(x), _reference_block(block, x))


@pytest.mark.parametrize("small_input,size,grid", [(False, 64, 2), (True, 32, 4)])
def test_resnet18_forward_shapes_and_stem(small_input, size, grid):
    model = resnet18(small_input=small_input).eval()
    seen = {}
    model.layer4.register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))  # returns None
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 512)
    assert seen["shape"] == (2, 512, grid, grid)
    assert model.conv1.kernel_size == ((3, 3) if small_input else (7, 7))
    assert isinstance(model.maxpool, torch.nn.Identity) == small_input


@pytest.mark.slow
def test_resnet50_forward_at_64px():
    model = resnet50().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 2048)
    assert bool(torch.isfinite(out).all()) and bool((out >= 0).all())  # pooled ReLU outputs


def test_zero_init_residual_makes_blocks_start_as_identity_branch():
    model = resnet18(zero_init_residual=True)
    assert all(not b.bn2.weight.detach().any() for layer in (model.layer1, model.layer4) for b in layer)
    assert all(not b.bn3.weight.detach().any() for b in resnet50(zero_init_residual=True).layer2)
    assert bool(resnet18().layer1[0].bn2.weight.detach().all())  # off by default: BN scales start at 1


@pytest.mark.slow
def test_channels_last_gives_the_same_features_and_trains():
    torch.manual_seed(0)
    model = resnet18(small_input=True)
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        ref = model(x)
    model = model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    model.train()
    model(x.contiguous(memory_format=torch.channels_last)).sum().backward()
    assert model.conv1.weight.grad is not None and bool(torch.isfinite(model.conv1.weight.grad).all())


def test_bad_arguments_have_one_line_errors():
    with pytest.raises(ValueError, match="in_channels"):
        resnet18(in_channels=0)
    with pytest.raises(TypeError, match="in_channels"):
        resnet50(in_channels=2.5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_bf16_autocast_channels_last():
    model = resnet50().cuda().to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 64, 64, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
    out.float().sum().backward()
    assert out.shape == (4, 2048) and bool(torch.isfinite(out).all())
    assert bool(torch.isfinite(model.conv1.weight.grad).all())
