"""The glyph augmentation of paper_repro.transforms: identities at zero strength, seeded draws, stroke width."""

from __future__ import annotations

import torch

from paper_repro import transforms as T


def _glyph() -> torch.Tensor:
    x = torch.zeros(1, 32, 32)
    x[:, 6:26, 14:18] = 1.0  # a vertical bar
    x[:, 6:10, 8:24] = 1.0  # and a cross-bar: a T
    return x


def test_zero_strength_is_the_identity():
    x = _glyph()
    same = T.RandomAffine(degrees=0, translate=0, scale=(1.0, 1.0), shear=0)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        T.ElasticDistortion(alpha=0.0)(x, torch.Generator().manual_seed(0)), x, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(T.StrokeWidth(p=0.0)(x, torch.Generator().manual_seed(0)), x)


def test_affine_moves_the_ink_and_keeps_it_in_range():
    x = _glyph()
    out = T.RandomAffine(degrees=30, translate=0.1, scale=(0.8, 1.2), shear=20)(x, torch.Generator().manual_seed(3))
    assert out.shape == x.shape and not torch.allclose(out, x)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 + 1e-6
    # A pure 90-degree rotation maps the vertical bar to a horizontal one.
    rot = T.RandomAffine(degrees=90, translate=0, scale=(1.0, 1.0), shear=0)
    bar = torch.zeros(1, 32, 32)
    bar[:, 4:28, 15:17] = 1.0
    for seed in range(50):
        g = torch.Generator().manual_seed(seed)
        r = rot(bar, g)
        if float(r[0, 15:17, 4:28].mean()) > 0.9:
            break
    else:  # the angle is drawn from U(-90, 90); a near +-90 draw is certain in 50 tries
        raise AssertionError("no rotation by about 90 degrees in 50 draws")


def test_stroke_width_thickens_or_thins():
    x = _glyph()
    ink = float(x.sum())
    sums = {float(T.StrokeWidth(p=1.0)(x, torch.Generator().manual_seed(s)).sum()) for s in range(20)}
    assert min(sums) < ink < max(sums)  # both directions are drawn
    assert max(sums) <= float(torch.nn.functional.max_pool2d(x[None], 3, 1, 1).sum()) + 1e-4


def test_glyph_transform_is_seeded_and_per_image():
    t = T.glyph_train_transform(32, mean=(0.2,), std=(0.4,))
    x = _glyph()
    a = t(x, torch.Generator().manual_seed(7))
    b = t(x, torch.Generator().manual_seed(7))
    c = t(x, torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b)
    assert a.shape == x.shape and not torch.allclose(a, c)
    batch = t(torch.stack([x, x]), torch.Generator().manual_seed(7))
    assert not torch.allclose(batch[0], batch[1])  # each image draws its own augmentation
