"""Image data sets held in memory as one integer tensor (MNIST, Fashion-MNIST, sklearn digits)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from paper_repro.datasets.base import ImageDataset, Transform

__all__ = ["InMemoryImageDataset"]


class InMemoryImageDataset(ImageDataset):
    """Images stored as one ``(N, C, H, W)`` uint8 tensor; pixel ``v`` is served as ``v / scale``.

    ``scale`` is 255 for 8-bit images and 16 for sklearn's digits (values 0..16), so every image lies in [0, 1].
    :meth:`get_batch` without a transform is a single tensor index.
    """

    def __init__(
        self,
        images: torch.Tensor | np.ndarray,
        labels: np.ndarray | Sequence[int],
        class_names: Sequence[str],
        *,
        name: str,
        scale: float = 255.0,
        fine_labels: np.ndarray | Sequence[int] | None = None,
        fine_names: Sequence[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim not in (3, 4):
            raise ValueError(
                f"images must be a uint8 tensor of shape (N, H, W) or (N, C, H, W), got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if images.ndim == 3:
            images = images.unsqueeze(1)
        top = int(images.max()) if images.numel() else 0
        if not scale > 0 or top > scale:
            raise ValueError(f"scale must be positive and at least the largest pixel value, got {scale}")
        super().__init__(
            labels,
            class_names,
            name=name,
            fine_labels=fine_labels,
            fine_names=fine_names,
            image_shape=tuple(images.shape[1:]),
            transform=transform,
        )
        if images.shape[0] != len(self.labels):
            raise ValueError(f"got {images.shape[0]} images but {len(self.labels)} labels")
        self.images = images.contiguous()
        self.scale = float(scale)

    def _image(self, i: int) -> torch.Tensor:
        return self.images[i].float().div_(self.scale)

    def _images(self, idx: np.ndarray) -> torch.Tensor:
        return self.images[torch.from_numpy(idx)].float().div_(self.scale)

    def _take(self, idx: np.ndarray) -> None:
        self.images = self.images[torch.from_numpy(idx)]
