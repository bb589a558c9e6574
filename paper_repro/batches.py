"""P x M batches of real images, one global batch per training step, reproducible from ``(seed, step)`` alone.

The draw itself is :class:`collapse.sampling.PKBatchSampler` (P classes uniformly among the eligible ones, then
M distinct images of each). What this module adds is *where the randomness comes from*: the batch of step ``s``
uses a fresh ``torch.Generator`` seeded from ``numpy.random.SeedSequence([seed, s])``. The sampler's state is
therefore just the step number, which makes three things exact without extra bookkeeping:

* ``--resume`` continues with the very batches an uninterrupted run would have drawn;
* data-loader workers may prefetch batches ahead of the training loop without advancing any shared state;
* every rank of a distributed run computes the same global batch and takes its own slice of it.

Classes with fewer than M images: an error naming them and their sizes, or, with ``replace=True``, they are
topped up by drawing with replacement (PKBatchSampler's documented fallback; duplicates then appear in a batch).

:func:`transformed_batch` loads the images of a batch and transforms them *before* stacking, so data sets whose
images differ in size (real CUB and Cars photographs) batch as soon as the transform gives them one size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from collapse._validation import check_int
from collapse.sampling import PKBatchSampler

__all__ = ["StepBatches", "step_seed", "transformed_batch"]


def step_seed(seed: int, step: int, *streams: int) -> int:
    """A 63-bit seed for step ``step`` of run ``seed``; ``streams`` separate independent uses (the batch draw,
    the augmentation of the image at a given batch position, ...)."""
    entropy = [int(seed), int(step), *(int(s) for s in streams)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


class StepBatches:
    """Global P x M batch indices of every step.

    Parameters
    ----------
    labels : (N,) integer class labels of the training images (0 .. n_classes - 1).
    classes_per_batch, samples_per_class : P and M.
    seed : run seed.
    replace : allow classes with fewer than M images, drawing them with replacement.
    class_names : names used in error messages.
    """

    def __init__(
        self,
        labels: np.ndarray | torch.Tensor,
        classes_per_batch: int,
        samples_per_class: int,
        *,
        seed: int,
        replace: bool = False,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if self.labels.dim() != 1 or self.labels.numel() == 0:
            raise ValueError(f"labels must be a non-empty 1-d array, got shape {tuple(self.labels.shape)}")
        if int(self.labels.min()) < 0:
            raise ValueError(f"labels must be >= 0, got {int(self.labels.min())}")
        self.seed = check_int("seed", seed, low=0)
        self.n_classes = int(self.labels.max()) + 1
        self.sampler = PKBatchSampler(classes_per_batch, samples_per_class, replace=replace)
        counts = torch.bincount(self.labels, minlength=self.n_classes)
        present = counts > 0
        n_present = int(present.sum())
        name = (lambda c: str(class_names[c])) if class_names is not None else str
        if self.sampler.P > n_present:
            raise ValueError(
                f"batch-classes={self.sampler.P} is more than the {n_present} classes in the training data; "
                f"use at most {n_present}"
            )
        small = [c for c in range(self.n_classes) if 0 < int(counts[c]) < self.sampler.M]
        if small and not replace:
            listed = ", ".join(f"{name(c)!r} has {int(counts[c])}" for c in small)
            raise ValueError(
                f"samples-per-class={self.sampler.M} but {len(small)} class(es) have fewer images: {listed}; "
                "lower samples-per-class or pass --replace-small-classes to draw those with replacement"
            )

    @property
    def batch_size(self) -> int:
        return self.sampler.batch_size

    def indices(self, step: int) -> torch.Tensor:
        """Indices ``(P * M,)`` of the global batch of ``step``, grouped by class (M consecutive rows per class)."""
        gen = torch.Generator().manual_seed(step_seed(self.seed, step))
        return self.sampler.sample(self.labels, self.n_classes, gen)

    def state_dict(self) -> dict:
        """Everything the draw depends on besides the step number (checked on resume)."""
        return {"seed": self.seed, "P": self.sampler.P, "M": self.sampler.M, "replace": self.sampler.replace}

    def __repr__(self) -> str:
        return f"StepBatches({self.sampler!r}, seed={self.seed})"


def transformed_batch(
    dataset,
    indices: np.ndarray | torch.Tensor | Sequence[int],
    transform: Callable | None,
    generators: Sequence[torch.Generator | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(B, C, H', W')`` and labels ``(B,)`` of ``indices``, each image transformed before the stack.

    ``transform(image, generator)`` receives image ``k`` as ``(C, H, W)`` with ``generators[k]`` (``None`` for a
    deterministic transform). Data sets whose images all share one shape (``dataset.image_shape`` set) load the
    batch in one call; others (photographs of native sizes) load image by image, so only the *transformed* images
    need to agree in shape. A transform that leaves them of different sizes is a one-line error naming the data.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if generators is not None and len(generators) != idx.size:
        raise ValueError(f"generators must have one entry per image ({idx.size}), got {len(generators)}")
    gens = list(generators) if generators is not None else [None] * idx.size
    if getattr(dataset, "image_shape", None) is not None:
        x, y = dataset.get_batch(idx)
        if transform is None:
            return x, y
        images = list(x)
    else:
        pairs = [dataset.get_batch(idx[k : k + 1]) for k in range(idx.size)]
        images = [p[0][0] for p in pairs]
        y = torch.cat([p[1] for p in pairs]) if pairs else torch.empty(0, dtype=torch.long)
    if transform is not None:
        images = [transform(img, g) if g is not None else transform(img) for img, g in zip(images, gens)]
    shapes = {tuple(img.shape) for img in images}
    if len(shapes) > 1:
        some = ", ".join(str(s) for s in sorted(shapes)[:3])
        name = getattr(dataset, "name", "the data set")
        raise ValueError(
            f"cannot stack a batch of {name}: after the transform the images still differ in shape ({some}); "
            "give --image-size or a transform that resizes to one size"
        )
    return torch.stack(images), y
