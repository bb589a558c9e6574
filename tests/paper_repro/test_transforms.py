"""Transforms: shapes, crop/flip/normalise maths on known tensors, determinism under a generator, presets."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from paper_repro.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToChannels,
    eval_transform,
    train_transform,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _grid(c: int, h: int, w: int) -> torch.Tensor:
    """A (C, H, W) image whose every pixel value is distinct: value = c * 1000 + row * 100 + col."""
    c_, r, k = torch.meshgrid(torch.arange(c), torch.arange(h), torch.arange(w), indexing="ij")
    return (c_ * 1000 + r * 100 + k).float()


# ---- Resize ----------------------------------------------------------------------------------------------------


def test_resize_int_matches_the_shorter_edge():
    assert Resize(10)(torch.rand(3, 20, 45)).shape == (3, 10, 22)  # int(10 * 45 / 20) = 22
    assert Resize(10)(torch.rand(2, 1, 45, 20)).shape == (2, 1, 22, 10)
    assert Resize((7, 9))(torch.rand(3, 20, 45)).shape == (3, 7, 9)
    assert Resize(256)(torch.rand(3, 375, 500)).shape == (3, 256, 341)


def test_resize_keeps_constants_and_is_identity_at_the_same_size():
    x = torch.full((3, 13, 17), 0.25)
    torch.testing.assert_close(Resize((31, 5))(x), torch.full((3, 31, 5), 0.25))
    y = torch.rand(2, 3, 8, 8)
    assert Resize(8)(y) is y


def test_resize_upsampling_matches_bilinear_half_pixel_oracle():
    # 1 x 2 -> 1 x 4 with half-pixel centres: output x maps to source (x + 0.5) / 2 - 0.5, clamped to [0, 1].
    x = torch.tensor([[[0.0, 1.0]]])
    out = Resize((1, 4))(x)
    src = [min(max((i + 0.5) / 2 - 0.5, 0.0), 1.0) for i in range(4)]
    torch.testing.assert_close(out, torch.tensor([[src]]))


# ---- CenterCrop ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h,w,th,tw", [(5, 5, 3, 3), (6, 6, 3, 3), (7, 10, 4, 5), (8, 8, 8, 8)])
def test_center_crop_offsets_are_torchvisions(h, w, th, tw):
    x = _grid(2, h, w)
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    out = CenterCrop((th, tw))(x)
    torch.testing.assert_close(out, x[:, top : top + th, left : left + tw])
    torch.testing.assert_close(CenterCrop((th, tw))(x[None].repeat(3, 1, 1, 1))[1], out)


def test_center_crop_pads_small_images_with_zeros():
    x = torch.ones(1, 2, 3)
    out = CenterCrop((4, 5))(x)
    assert out.shape == (1, 4, 5)
    assert float(out.sum()) == 6.0
    torch.testing.assert_close(out[0, 1:3, 1:4], torch.ones(2, 3))


# ---- RandomCrop ------------------------------------------------------------------------------------------------


def test_random_crop_is_a_window_of_the_padded_image_and_is_seeded():
    x = _grid(1, 6, 6) + 1  # no zeros, so padding is recognisable
    crop = RandomCrop(6, padding=2)
    out = crop(x, _gen(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    windows = [(i, j) for i in range(5) for j in range(5) if torch.equal(padded[:, i : i + 6, j : j + 6], out)]
    assert len(windows) == 1
    torch.testing.assert_close(crop(x, _gen(3)), out)
    offsets = {tuple(crop(x, _gen(s))[0, 0, :1].tolist()) for s in range(40)}
    assert len(offsets) > 3
    assert torch.equal(RandomCrop(6)(x, _gen(0)), x)


def test_random_crop_draws_per_image_in_a_batch():
    x = (_grid(1, 6, 6) + 1)[None].repeat(16, 1, 1, 1)
    out = RandomCrop(6, padding=2)(x, _gen(0))
    assert out.shape == (16, 1, 6, 6)
    assert len({tuple(o.flatten().tolist()) for o in out}) > 1


# ---- RandomResizedCrop -----------------------------------------------------------------------------------------


@given(
    st.integers(0, 10_000),
    st.integers(1, 300),
    st.integers(1, 300),
    st.floats(0.01, 1.0),
    st.floats(0.2, 5.0),
)
def test_random_resized_crop_region_fits_and_follows_scale_and_ratio(seed, h, w, s_lo, r_lo):
    t = RandomResizedCrop(8, scale=(s_lo, 1.0), ratio=(r_lo, r_lo * 1.5))
    top, left, ch, cw = t.get_params(h, w, _gen(seed))
    assert 0 <= top and 0 <= left and 1 <= ch and 1 <= cw and top + ch <= h and left + cw <= w
    fallback = (top, left) == ((h - ch) // 2, (w - cw) // 2)
    if not fallback and min(ch, cw) >= 20:  # away from pixel rounding, a sampled region obeys scale and ratio
        assert s_lo * 0.85 <= ch * cw / (h * w) <= 1.0 + 1e-9
        assert r_lo * 0.9 <= cw / ch <= r_lo * 1.5 * 1.1


def test_random_resized_crop_full_region_is_a_plain_resize():
    x = torch.rand(3, 20, 30)
    t = RandomResizedCrop((10, 12), scale=(1.0, 1.0), ratio=(1.5, 1.5))
    assert t.get_params(20, 30, _gen(0)) == (0, 0, 20, 30)
    torch.testing.assert_close(t(x, _gen(0)), Resize((10, 12))(x))


def test_random_resized_crop_fallback_is_the_centred_largest_fitting_region():
    # a 10 x 100 strip cannot hold a square of area >= 990 px: ten misses, then the centred 10 x 10 square.
    t = RandomResizedCrop(4, scale=(0.99, 1.0), ratio=(1.0, 1.0))
    assert t.get_params(10, 100, _gen(0)) == (0, 45, 10, 10)


def test_random_resized_crop_shapes_and_determinism():
    x = torch.rand(5, 3, 40, 50)
    t = RandomResizedCrop(16)
    out = t(x, _gen(7))
    assert out.shape == (5, 3, 16, 16)
    torch.testing.assert_close(t(x, _gen(7)), out)
    assert not torch.equal(t(x, _gen(8)), out)
    assert t(x[0], _gen(7)).shape == (3, 16, 16)


# ---- RandomHorizontalFlip --------------------------------------------------------------------------------------


def test_flip_reverses_columns_of_a_known_tensor():
    x = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    torch.testing.assert_close(RandomHorizontalFlip(1.0)(x), torch.tensor([[[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]]]))
    assert torch.equal(RandomHorizontalFlip(0.0)(x, _gen(0)), x)


def test_flip_decides_per_image_and_is_seeded():
    x = _grid(2, 3, 4)[None].repeat(64, 1, 1, 1)
    flip = RandomHorizontalFlip(0.5)
    out = flip(x, _gen(1))
    flipped = torch.tensor([torch.equal(o, x[0].flip(-1)) for o in out])
    kept = torch.tensor([torch.equal(o, x[0]) for o in out])
    assert bool((flipped ^ kept).all())
    assert 10 < int(flipped.sum()) < 54
    torch.testing.assert_close(flip(x, _gen(1)), out)


# ---- Normalize and ToChannels ----------------------------------------------------------------------------------


def test_normalize_math_per_channel():
    x = torch.rand(2, 3, 4, 5)
    mean, std = (0.1, 0.5, -0.2), (0.3, 2.0, 0.7)
    out = Normalize(mean, std)(x)
    for b in range(2):
        for c in range(3):
            for i in range(4):
                for j in range(5):
                    assert math.isclose(float(out[b, c, i, j]), (float(x[b, c, i, j]) - mean[c]) / std[c], rel_tol=1e-5)
    torch.testing.assert_close(Normalize((0.5,), (0.25,))(x), (x - 0.5) / 0.25)


def test_normalize_errors():
    with pytest.raises(ValueError, match="2 channel statistics but the images have 3 channels"):
        Normalize((0.0, 0.0), (1.0, 1.0))(torch.rand(3, 2, 2))
    with pytest.raises(ValueError, match=r"std\[1\]"):
        Normalize((0.0, 0.0), (1.0, 0.0))
    with pytest.raises(ValueError, match="one length"):
        Normalize((0.0,), (1.0, 1.0))


def test_to_channels():
    grey = torch.rand(2, 1, 4, 4)
    rgb = ToChannels(3)(grey)
    assert rgb.shape == (2, 3, 4, 4)
    for c in range(3):
        assert torch.equal(rgb[:, c], grey[:, 0])
    x = torch.rand(3, 4, 4)
    assert ToChannels(3)(x) is x
    with pytest.raises(ValueError, match="1-channel"):
        ToChannels(3)(torch.rand(2, 4, 4))


def test_input_errors():
    with pytest.raises(TypeError, match="floating-point"):
        Resize(4)(torch.zeros(1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(B, C, H, W\)"):
        CenterCrop(2)(torch.rand(8, 8))
    with pytest.raises(ValueError, match="size"):
        CenterCrop(0)
    with pytest.raises(ValueError, match="p must be"):
        RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(10)(torch.rand(1, 8, 8))


# ---- Compose and presets ---------------------------------------------------------------------------------------


def test_compose_hands_the_generator_to_each_step():
    t = Compose([RandomCrop(6, padding=2), RandomHorizontalFlip(), lambda x: x * 2])
    x = torch.rand(4, 1, 6, 6)
    torch.testing.assert_close(t(x, _gen(5)), t(x, _gen(5)))
    assert any(not torch.equal(t(x, _gen(5)), t(x, _gen(s))) for s in range(6, 10))


@pytest.mark.parametrize(
    "name,size,shape_in,shape_out",
    [
        ("mnist-like", None, (1, 28, 28), (1, 28, 28)),
        ("mnist-like", 32, (4, 1, 28, 28), (4, 1, 32, 32)),
        ("imagenet-like", None, (3, 300, 400), (3, 224, 224)),
        ("imagenet-like", 64, (2, 1, 80, 90), (2, 3, 64, 64)),
    ],
)
def test_preset_shapes_and_determinism(name, size, shape_in, shape_out):
    x = torch.rand(shape_in)
    for make in (train_transform, eval_transform):
        t = make(name, size)
        out = t(x, _gen(0))
        assert out.shape == shape_out
        torch.testing.assert_close(t(x, _gen(0)), out)


def test_imagenet_eval_is_resize_256_centre_crop_224_normalise():
    x = torch.rand(3, 300, 400)
    expected = (CenterCrop(224)(Resize(256)(x)) - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(
        IMAGENET_STD
    )[:, None, None]
    torch.testing.assert_close(eval_transform("imagenet-like")(x), expected)
    names = [type(s).__name__ for s in train_transform("imagenet-like").transforms]
    assert names == ["ToChannels", "RandomResizedCrop", "RandomHorizontalFlip", "Normalize"]


def test_mnist_train_never_flips_and_crops_lightly():
    names = [type(s).__name__ for s in train_transform("mnist-like").transforms]
    assert "RandomHorizontalFlip" not in names
    crop = train_transform("mnist-like").transforms[1]
    assert isinstance(crop, RandomCrop) and crop.padding == 2 and crop.size == (28, 28)
    x = torch.rand(1, 28, 28)
    out = train_transform("mnist-like", mean=(0.0,), std=(1.0,))(x, _gen(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert any(torch.equal(padded[:, i : i + 28, j : j + 28], out) for i in range(5) for j in range(5))


def test_preset_errors():
    with pytest.raises(ValueError, match="name must be one of mnist-like, imagenet-like; got 'cifar'"):
        train_transform("cifar")
    with pytest.raises(ValueError, match="size"):
        eval_transform("mnist-like", 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_tensors_with_cpu_and_cuda_generators():
    x = torch.rand(4, 3, 40, 50, device="cuda")
    for gen in (_gen(0), torch.Generator(device="cuda").manual_seed(0)):
        out = train_transform("imagenet-like", 32)(x, gen)
        assert out.device.type == "cuda" and out.shape == (4, 3, 32, 32)
