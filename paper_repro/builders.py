"""From a :class:`~paper_repro.config.TrainConfig` to the objects a run needs: data splits, transforms, network, loss.

Training and evaluation both build through here, so ``python -m paper_repro.evaluate --run DIR`` rebuilds exactly
what the run trained.

Transforms: photographs (CUB, Cars) use the ``imagenet-like`` presets (3 channels, 224 px by default); every
other data set (grey digits, clothes, characters) the ``mnist-like`` ones at the images' own size unless
``image_size`` is given, normalised with Fashion-MNIST's statistics for Fashion-MNIST and MNIST's otherwise.
"""

from __future__ import annotations

import numpy as np

from collapse.losses import MetricLoss, make_loss
from paper_repro import transforms as T
from paper_repro.config import TrainConfig
from paper_repro.label_noise import with_label_noise

__all__ = [
    "TEST_SUBSET_SEED",
    "build_loss",
    "build_model",
    "eval_transform_for",
    "in_channels_for",
    "load_split",
    "load_test",
    "load_train",
    "preset_for",
    "stratified_subset",
    "train_transform_for",
]

PHOTO_DATASETS = ("cub", "cars")
#: The test subset (``eval_samples``) is the same for every run of a study, whatever its seed.
TEST_SUBSET_SEED = 0
# (mean, std) of the training pixels in [0, 1]; the transforms' default for mnist-like is MNIST's.
PIXEL_STATS = {"fashion-mnist": ((0.2860,), (0.3530,)), "fashion-mnist-super": ((0.2860,), (0.3530,))}
# Rendered font glyphs: measured on the whole built set (0.2125 / 0.3753); trained with the glyph augmentation.
GLYPH_DATASETS = ("glyphs", "glyph-case")
PIXEL_STATS.update({name: ((0.2125,), (0.3753,)) for name in GLYPH_DATASETS})


def load_split(cfg: TrainConfig, split: str):
    """The ``split`` ("train" / "test") :class:`ImageDataset` of ``cfg``; no transform attached (we apply our own)."""
    from paper_repro.datasets import get_dataset

    options = dict(cfg.dataset_options)
    if cfg.zero_shot:
        options["zero_shot"] = True
    return get_dataset(cfg.dataset, root=cfg.root, split=split, skip_bad=cfg.skip_bad, **options)


def load_train(cfg: TrainConfig, dataset=None):
    """The training split (or ``dataset``), reduced to ``cfg.train_samples`` images when set, its labels corrupted
    by ``cfg.label_noise`` (:func:`paper_repro.label_noise.with_label_noise`; ``dataset`` itself is not modified)."""
    data = dataset if dataset is not None else load_split(cfg, "train")
    if cfg.train_samples is not None:
        data = data.subset(stratified_subset(_strata(data), cfg.train_samples, cfg.seed))
    return with_label_noise(data, cfg.label_noise, cfg.noise_kind, seed=cfg.seed)


def load_test(cfg: TrainConfig, dataset=None):
    """The test split (or ``dataset``), reduced to ``cfg.eval_samples`` images when set (same subset for all seeds).

    The subset keeps at least two images of every class and fine label that has two (so that every query has a
    neighbour of its own label and every retrieval metric is defined); fewer ``eval_samples`` than that is refused.
    """
    data = dataset if dataset is not None else load_split(cfg, "test")
    if cfg.eval_samples is not None:
        strata = _strata(data)
        unit = "fine labels" if data.fine_labels is not None else "classes"
        keep = stratified_subset(strata, cfg.eval_samples, TEST_SUBSET_SEED, min_per_class=2,
                                 option="eval_samples (--eval-samples)", unit=unit)
        data = data.subset(keep)
    return data


def _strata(data) -> np.ndarray:
    # Fine labels refine the classes, so stratifying on them keeps every sub-class in proportion too.
    return data.fine_labels if data.fine_labels is not None else data.labels


def stratified_subset(
    labels: np.ndarray, n: int, seed: int, *, min_per_class: int = 1, option: str = "n", unit: str = "classes"
) -> np.ndarray:
    """Sorted indices of about ``n`` samples, every class kept in proportion (at least ``min_per_class`` each).

    Class c of size ``n_c`` keeps ``min(n_c, max(min_per_class, round(n * n_c / N)))`` images drawn without
    replacement. ``n`` below ``sum_c min(n_c, min_per_class)`` cannot keep that many of each class: a one-line
    ``ValueError`` naming ``option`` and that minimum (``unit`` names the classes in it).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    if n >= labels.size:
        return np.arange(labels.size)
    classes, sizes = np.unique(labels, return_counts=True)
    minimum = int(np.minimum(sizes, min_per_class).sum())
    if min_per_class > 1 and n < minimum:
        raise ValueError(
            f"{option} is {n}, too few to keep {min_per_class} images of each of the {classes.size} {unit}: "
            f"give at least {minimum} (or leave it unset to use all {labels.size})"
        )
    keep = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        k = max(min_per_class, int(round(n * members.size / labels.size)))
        keep.append(rng.choice(members, size=min(k, members.size), replace=False))
    return np.sort(np.concatenate(keep))


def preset_for(cfg: TrainConfig) -> str:
    return "imagenet-like" if cfg.dataset in PHOTO_DATASETS else "mnist-like"


def _size_for(cfg: TrainConfig, dataset) -> int | None:
    if cfg.image_size is not None:
        return cfg.image_size
    if preset_for(cfg) == "mnist-like" and dataset.image_shape is not None:
        return int(dataset.image_shape[-1])
    return None


def train_transform_for(cfg: TrainConfig, dataset):
    """The training augmentation (or the evaluation transform when ``cfg.augment`` is False)."""
    if not cfg.augment:
        return eval_transform_for(cfg, dataset)
    mean, std = PIXEL_STATS.get(cfg.dataset, (None, None))
    if cfg.dataset in GLYPH_DATASETS:
        return T.glyph_train_transform(_size_for(cfg, dataset) or 32, mean=mean, std=std)
    return T.train_transform(preset_for(cfg), _size_for(cfg, dataset), mean=mean, std=std)


def eval_transform_for(cfg: TrainConfig, dataset):
    mean, std = PIXEL_STATS.get(cfg.dataset, (None, None))
    return T.eval_transform(preset_for(cfg), _size_for(cfg, dataset), mean=mean, std=std)


def in_channels_for(cfg: TrainConfig, dataset) -> int:
    """Channels the network sees: 3 after the imagenet-like transforms, the images' own count otherwise."""
    if preset_for(cfg) == "imagenet-like":
        return 3
    if dataset.image_shape is not None:
        return int(dataset.image_shape[0])
    return int(dataset[0][0].shape[0])


def build_model(cfg: TrainConfig, dataset):
    """``paper_repro.models.make_model`` for ``cfg`` (L2-normalised embeddings of size ``cfg.dim``)."""
    from paper_repro.models import make_model

    size = _size_for(cfg, dataset)
    small_input = None if cfg.backbone == "small_cnn" else bool(size is not None and size <= 64)
    return make_model(
        cfg.backbone,
        in_channels=in_channels_for(cfg, dataset),
        dim=cfg.dim,
        small_input=small_input,
        pretrained=cfg.pretrained,
    )


def build_loss(cfg: TrainConfig, n_classes: int) -> MetricLoss:
    """``collapse.losses.make_loss(cfg.loss, cfg.positive, cfg.negative)``, its random choices seeded by the run."""
    return make_loss(
        cfg.loss, cfg.positive, cfg.negative, num_classes=n_classes, embedding_dim=cfg.dim, random_state=cfg.seed
    )
