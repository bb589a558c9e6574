"""Image transforms in plain torch, for float tensors ``(C, H, W)`` or batches ``(B, C, H, W)``, on any device.

Every transform is called as ``t(x, generator=None)``. Random ones draw from ``generator`` (a ``torch.Generator``;
``None`` means torch's global generator, which a ``DataLoader`` seeds differently in each worker) and, on a
batch, draw independently for every image. The generator is an argument of the call, not of the transform, so
a transform copied into several loader workers never repeats the same draws in each.

The semantics follow torchvision's tensor transforms (sizes as ``int`` or ``(h, w)``; ``Resize(int)`` matches
the shorter edge; ``RandomResizedCrop``'s scale/ratio sampling with ten tries and a centre-crop fallback), so
published recipes carry over, but nothing here imports torchvision.

Presets: :func:`train_transform` / :func:`eval_transform` for ``"mnist-like"`` (28 px grey digits or clothes:
light pad-and-crop, no flip, since a mirrored digit is another symbol) and ``"imagenet-like"`` (photographs:
RandomResizedCrop + horizontal flip for training, resize to size*256/224 then centre-crop for evaluation,
ImageNet mean/std).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from collapse._validation import check_choice, check_int, check_real

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "PRESETS",
    "CenterCrop",
    "Compose",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "ToChannels",
    "Transform",
    "eval_transform",
    "train_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
PRESETS = ("mnist-like", "imagenet-like")


def _size_pair(name: str, size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, Sequence) and not isinstance(size, str):
        if len(size) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {tuple(size)}")
        return check_int(f"{name}[0]", size[0], low=1), check_int(f"{name}[1]", size[1], low=1)
    s = check_int(name, size, low=1)
    return s, s


def _as_batch(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Lift ``(C, H, W)`` to ``(1, C, H, W)``; also say whether to squeeze back."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"transforms take floating-point tensors (e.g. uint8 images as x.float() / 255), got {got}")
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() == 4:
        return x, False
    raise ValueError(f"images must have shape (C, H, W) or (B, C, H, W), got {tuple(x.shape)}")


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    u = torch.rand((), generator=generator, device=generator.device if generator is not None else "cpu")
    return low + (high - low) * float(u)


def _randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform on ``{0, ..., high - 1}``."""
    dev = generator.device if generator is not None else "cpu"
    return int(torch.randint(high, (), generator=generator, device=dev))


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a batch; antialiased when shrinking, as torchvision's tensor Resize does."""
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _pad(x: torch.Tensor, left: int, top: int, right: int, bottom: int, fill: float) -> torch.Tensor:
    if left == top == right == bottom == 0:
        return x
    return F.pad(x, (left, right, top, bottom), mode="constant", value=fill)


class Transform:
    """Base class: ``__call__(x, generator=None)`` maps an image or a batch to an image or a batch."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply ``transforms`` in order, handing each the same generator."""

    def __init__(self, transforms: Sequence[Transform | Callable]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose takes callables, got {type(t).__name__}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, generator) if isinstance(t, Transform) else t(x)
        return x

    def __repr__(self) -> str:
        return "Compose(\n" + "".join(f"  {t!r},\n" for t in self.transforms) + ")"


class Resize(Transform):
    """Bilinear resize. An int matches the shorter edge to ``size`` keeping the aspect ratio (the longer edge
    becomes ``int(size * long / short)``); a pair ``(h, w)`` is the exact output size."""

    def __init__(self, size: int | Sequence[int]) -> None:
        # An int keeps its meaning "shorter edge"; only a pair is an exact (h, w).
        is_int = isinstance(size, int) and not isinstance(size, bool)
        self.size = check_int("size", size, low=1) if is_int else _size_pair("size", size)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        if not isinstance(self.size, int):
            return self.size
        if h <= w:
            return self.size, int(self.size * w / h)
        return int(self.size * h / w), self.size

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        xb, squeeze = _as_batch(x)
        out = _resize(xb, self.output_size(*xb.shape[-2:]))
        return out[0] if squeeze else out


class CenterCrop(Transform):
    """Crop the centre ``size`` region (top = round((H - h) / 2)); an image smaller than that is zero-padded."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size_pair("size", size)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        xb, squeeze = _as_batch(x)
        th, tw = self.size
        h, w = xb.shape[-2:]
        if th > h or tw > w:
            ph, pw = max(th - h, 0), max(tw - w, 0)
            xb = _pad(xb, pw // 2, ph // 2, (pw + 1) // 2, (ph + 1) // 2, 0.0)
            h, w = xb.shape[-2:]
        top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
        out = xb[..., top : top + th, left : left + tw]
        return out[0] if squeeze else out


class RandomCrop(Transform):
    """Pad every side by ``padding`` pixels of value ``fill``, then crop a uniformly placed ``size`` region."""

    def __init__(self, size: int | Sequence[int], padding: int = 0, fill: float = 0.0) -> None:
        self.size = _size_pair("size", size)
        self.padding = check_int("padding", padding, low=0)
        self.fill = check_real("fill", fill)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        xb, squeeze = _as_batch(x)
        p = self.padding
        xb = _pad(xb, p, p, p, p, self.fill)
        th, tw = self.size
        h, w = xb.shape[-2:]
        if th > h or tw > w:
            raise ValueError(f"RandomCrop size {self.size} is larger than the padded image ({h}, {w})")
        crops = []
        for img in xb:
            top, left = _randint(h - th + 1, generator), _randint(w - tw + 1, generator)
            crops.append(img[:, top : top + th, left : left + tw])
        out = torch.stack(crops)
        return out[0] if squeeze else out


class RandomResizedCrop(Transform):
    """Crop a random region and resize it to ``size`` (Szegedy et al., 2015; torchvision's sampling).

    The region has area ``s * H * W`` with ``s ~ U(scale)`` and aspect ratio ``w / h = exp(U(log ratio))``,
    rounded to whole pixels; a draw that does not fit is retried up to 10 times, then the largest centred
    region with a ratio inside ``ratio`` is used.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    ) -> None:
        self.size = _size_pair("size", size)
        if len(scale) != 2 or len(ratio) != 2:
            raise ValueError(f"scale and ratio must be pairs (low, high), got {tuple(scale)} and {tuple(ratio)}")
        lo = check_real("scale[0]", scale[0], low=0.0, high=1.0, low_inclusive=False)
        self.scale = (lo, check_real("scale[1]", scale[1], low=lo, high=1.0))
        lo = check_real("ratio[0]", ratio[0], low=0.0, low_inclusive=False)
        self.ratio = (lo, check_real("ratio[1]", ratio[1], low=lo))

    def get_params(self, h: int, w: int, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
        """``(top, left, height, width)`` of one random region of an ``h x w`` image."""
        area = h * w
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * _uniform(self.scale[0], self.scale[1], generator)
            aspect = math.exp(_uniform(log_lo, log_hi, generator))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                return _randint(h - ch + 1, generator), _randint(w - cw + 1, generator), ch, cw
        in_ratio = w / h
        # max(1, .): torchvision can round a side to 0 pixels on thin images (e.g. 1 x 1 with ratio < 0.5).
        if in_ratio < self.ratio[0]:
            cw, ch = w, max(1, int(round(w / self.ratio[0])))
        elif in_ratio > self.ratio[1]:
            ch, cw = h, max(1, int(round(h * self.ratio[1])))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        xb, squeeze = _as_batch(x)
        h, w = xb.shape[-2:]
        crops = []
        for img in xb:
            top, left, ch, cw = self.get_params(h, w, generator)
            crops.append(_resize(img[None, :, top : top + ch, left : left + cw], self.size))
        out = torch.cat(crops)
        return out[0] if squeeze else out


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right (reverse the width axis) with probability ``p``, independently per image."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_real("p", p, low=0.0, high=1.0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        xb, squeeze = _as_batch(x)
        dev = generator.device if generator is not None else "cpu"
        flip = (torch.rand(xb.shape[0], generator=generator, device=dev) < self.p).to(xb.device)
        out = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        return out[0] if squeeze else out


class Normalize(Transform):
    """``out[c] = (x[c] - mean[c]) / std[c]``; a single mean/std value applies to every channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        mean, std = tuple(mean), tuple(std)
        if len(mean) == 0 or len(mean) != len(std):
            raise ValueError(f"mean and std must be non-empty and of one length, got {len(mean)} and {len(std)}")
        self.mean = tuple(check_real(f"mean[{i}]", m) for i, m in enumerate(mean))
        self.std = tuple(check_real(f"std[{i}]", s, low=0.0, low_inclusive=False) for i, s in enumerate(std))

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        xb, squeeze = _as_batch(x)
        c = xb.shape[1]
        if len(self.mean) not in (1, c):
            raise ValueError(f"Normalize has {len(self.mean)} channel statistics but the images have {c} channels")
        mean = torch.tensor(self.mean, dtype=xb.dtype, device=xb.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=xb.dtype, device=xb.device).view(1, -1, 1, 1)
        out = (xb - mean) / std
        return out[0] if squeeze else out


class ToChannels(Transform):
    """Give images ``n`` channels: a grey (1-channel) image is repeated ``n`` times; ``n`` channels pass through."""

    def __init__(self, n: int) -> None:
        self.n = check_int("n", n, low=1)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        xb, squeeze = _as_batch(x)
        c = xb.shape[1]
        if c == self.n:
            return x
        if c != 1:
            raise ValueError(f"ToChannels({self.n}) can only repeat a 1-channel image, got {c} channels")
        out = xb.expand(-1, self.n, -1, -1).contiguous()
        return out[0] if squeeze else out


def _preset(name: str, size: int | None) -> tuple[str, int]:
    name = check_choice("name", name, PRESETS)
    default = 28 if name == "mnist-like" else 224
    return name, default if size is None else check_int("size", size, low=1)


def train_transform(
    name: str, size: int | None = None, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> Compose:
    """The training augmentation of preset ``name`` (see :data:`PRESETS`) at ``size`` px (28 / 224 by default).

    ``"mnist-like"``: resize to ``size`` if needed, zero-pad by ``max(1, size // 14)`` px (2 at 28 px) and crop
    back to ``size`` at a random offset, normalise with MNIST mean/std. ``"imagenet-like"``: grey -> RGB,
    RandomResizedCrop(size, scale=(0.08, 1)), horizontal flip with p = 0.5, normalise with ImageNet mean/std.
    ``mean``/``std`` replace the preset's statistics (e.g. Fashion-MNIST's 0.2860 / 0.3530).
    """
    name, size = _preset(name, size)
    if name == "mnist-like":
        return Compose(
            [
                Resize((size, size)),
                RandomCrop(size, padding=max(1, size // 14)),
                Normalize(MNIST_MEAN if mean is None else mean, MNIST_STD if std is None else std),
            ]
        )
    return Compose(
        [
            ToChannels(3),
            RandomResizedCrop(size),
            RandomHorizontalFlip(0.5),
            Normalize(IMAGENET_MEAN if mean is None else mean, IMAGENET_STD if std is None else std),
        ]
    )


def eval_transform(
    name: str, size: int | None = None, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> Compose:
    """The deterministic evaluation transform of preset ``name`` at ``size`` px (28 / 224 by default).

    ``"mnist-like"``: resize to ``size`` if needed and normalise. ``"imagenet-like"``: grey -> RGB, resize the
    shorter edge to ``round(size * 256 / 224)`` (256 at 224 px), centre-crop ``size``, normalise.
    """
    name, size = _preset(name, size)
    if name == "mnist-like":
        return Compose(
            [Resize((size, size)), Normalize(MNIST_MEAN if mean is None else mean, MNIST_STD if std is None else std)]
        )
    return Compose(
        [
            ToChannels(3),
            Resize(int(round(size * 256 / 224))),
            CenterCrop(size),
            Normalize(IMAGENET_MEAN if mean is None else mean, IMAGENET_STD if std is None else std),
        ]
    )


# --- glyph augmentation (font glyphs vary less than handwriting) ----------------------------------------------
# Kept as one block at the end of the module: RandomAffine, StrokeWidth, ElasticDistortion, glyph_train_transform.


def _gauss_kernel(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


class RandomAffine(Transform):
    r"""Random rotation, shear, scale and translation of each image, bilinear, zeros outside.

    Per image: angle :math:`\theta \sim U(\pm \text{degrees})`, shear :math:`\phi \sim U(\pm \text{shear})`
    (degrees, along x), scale :math:`s \sim U(\text{scale})`, shift :math:`t \sim U(\pm \text{translate})` of the
    image size on each axis. The output pixel at normalised position :math:`p` samples the input at
    :math:`A^{-1}(p - t)` with :math:`A = s R(\theta) \begin{pmatrix}1 & \tan\phi\\ 0 & 1\end{pmatrix}`.
    """

    def __init__(
        self,
        degrees: float = 10.0,
        translate: float = 0.08,
        scale: tuple[float, float] = (0.85, 1.1),
        shear: float = 10.0,
    ) -> None:
        self.degrees = check_real("degrees", degrees, low=0.0, high=180.0)
        self.translate = check_real("translate", translate, low=0.0, high=1.0)
        if len(scale) != 2:
            raise ValueError(f"scale must be a pair (low, high), got {tuple(scale)}")
        lo = check_real("scale[0]", scale[0], low=0.0, low_inclusive=False)
        self.scale = (lo, check_real("scale[1]", scale[1], low=lo))
        self.shear = check_real("shear", shear, low=0.0, high=60.0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        xb, squeeze = _as_batch(x)
        thetas = []
        for _ in range(xb.shape[0]):
            a = math.radians(_uniform(-self.degrees, self.degrees, generator))
            sh = math.tan(math.radians(_uniform(-self.shear, self.shear, generator)))
            s = _uniform(self.scale[0], self.scale[1], generator)
            tx = 2 * _uniform(-self.translate, self.translate, generator)  # normalised coordinates span 2
            ty = 2 * _uniform(-self.translate, self.translate, generator)
            # A = s R(a) Sh, so A^-1 = Sh^-1 R(-a) / s, written out (a 2x2 inverse per image, no LAPACK call).
            c, n = math.cos(a), math.sin(a)
            inv = [[(c + sh * n) / s, (n - sh * c) / s], [-n / s, c / s]]
            shift = [-(inv[0][0] * tx + inv[0][1] * ty), -(inv[1][0] * tx + inv[1][1] * ty)]
            thetas.append([[inv[0][0], inv[0][1], shift[0]], [inv[1][0], inv[1][1], shift[1]]])
        theta = torch.tensor(thetas, device=xb.device, dtype=xb.dtype)
        grid = F.affine_grid(theta, list(xb.shape), align_corners=False)
        out = F.grid_sample(xb, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out[0] if squeeze else out


class StrokeWidth(Transform):
    r"""Thicken or thin the strokes of bright-on-dark images by a random amount.

    With probability ``p`` per image, a direction (thicker or thinner, equally likely) and a strength
    :math:`u \sim U(0, 1)` are drawn; thicker is :math:`x + u(\max_{3\times3} x - x)` (grey dilation), thinner is
    :math:`x - u(x - \min_{3\times3} x)` (grey erosion), so :math:`u = 1` moves every stroke edge by one pixel.
    """

    def __init__(self, p: float = 0.8) -> None:
        self.p = check_real("p", p, low=0.0, high=1.0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        xb, squeeze = _as_batch(x)
        n = xb.shape[0]
        dev = generator.device if generator is not None else "cpu"
        draws = torch.rand(n, 3, generator=generator, device=dev).to(device=xb.device, dtype=xb.dtype)
        dilated = F.max_pool2d(xb, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-xb, 3, stride=1, padding=1)
        apply, thicker, u = (draws[:, 0] < self.p), (draws[:, 1] < 0.5), draws[:, 2]
        u = (u * apply)[:, None, None, None]
        target = torch.where(thicker[:, None, None, None], dilated, eroded)
        out = xb + u * (target - xb)
        return out[0] if squeeze else out


class ElasticDistortion(Transform):
    r"""Elastic distortion (Simard et al., 2003): resample at :math:`p + \alpha\, G_\sigma * U(-1, 1)` per pixel.

    The displacement field is uniform noise smoothed by a Gaussian of ``sigma`` px and scaled so that its largest
    component is ``alpha`` px; one field per image.
    """

    def __init__(self, alpha: float = 1.5, sigma: float = 3.0) -> None:
        self.alpha = check_real("alpha", alpha, low=0.0)
        self.sigma = check_real("sigma", sigma, low=0.0, low_inclusive=False)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        xb, squeeze = _as_batch(x)
        n, _, h, w = xb.shape
        dev = generator.device if generator is not None else "cpu"
        field = (2 * torch.rand(n, 2, h, w, generator=generator, device=dev) - 1).to(xb.device, xb.dtype)
        k = _gauss_kernel(self.sigma, xb.device, xb.dtype)
        r = k.numel() // 2
        field = F.conv2d(F.pad(field, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(2, 1, 1, -1),
                         groups=2)
        field = F.conv2d(F.pad(field, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(2, 1, -1, 1),
                         groups=2)
        peak = field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        field = field / peak * self.alpha  # pixels
        ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=xb.device, dtype=xb.dtype)
        xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=xb.device, dtype=xb.dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([gx + field[:, 0] * 2 / w, gy + field[:, 1] * 2 / h], dim=-1)
        out = F.grid_sample(xb, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out[0] if squeeze else out


def glyph_train_transform(
    size: int = 32, *, mean: Sequence[float] = MNIST_MEAN, std: Sequence[float] = MNIST_STD
) -> Compose:
    """Training augmentation for rendered font glyphs (white on black), which vary less than handwriting.

    Resize to ``size``, :class:`RandomAffine` (rotation +-10 deg, shear +-10 deg, scale 0.85-1.1, shift +-8%),
    :class:`StrokeWidth` (p = 0.8, up to one pixel thicker or thinner), :class:`ElasticDistortion` (alpha 1.5 px,
    sigma 3 px), normalise. Evaluation uses ``eval_transform("mnist-like", size, mean=..., std=...)``.
    """
    size = check_int("size", size, low=1)
    return Compose(
        [Resize((size, size)), RandomAffine(), StrokeWidth(), ElasticDistortion(), Normalize(mean, std)]
    )


__all__ += ["ElasticDistortion", "RandomAffine", "StrokeWidth", "glyph_train_transform"]
