"""The configuration of one training run on real images, validated once, saved with the run as JSON.

Every field is a plain JSON value, so ``TrainConfig.from_dict(json.load(...))`` rebuilds a run exactly.
``train_samples`` / ``eval_samples`` keep a stratified random subset of that many training / test images (the
training subset depends on ``seed``; the test subset does not, so every run of a study is scored on the same images).
``label_noise`` > 0 corrupts the *training* labels once, a pure function of ``seed`` (``noise_kind`` one of
:data:`collapse.data.NOISE_MODELS`, see :mod:`paper_repro.label_noise`); test labels stay clean.
``dataset_options`` are extra keyword options of the data set's loader (``paper_repro.datasets.dataset_options``
lists them), e.g. ``{"split_on": "fine"}`` to hold out fine classes inside every coarse class with ``zero_shot``.
``None`` in ``negative`` keeps the loss's published negative rule (:func:`collapse.losses.default_negative`);
``None`` in ``batch_classes`` means ``min(8, number of training classes)``; ``None`` in ``checkpoint_every`` means
``eval_every``; ``None`` in ``image_size`` means the images' own size (28 px for MNIST-style data) for
the ``mnist-like`` transforms and 224 px for ``imagenet-like`` ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from collapse._validation import check_choice, check_fields, check_int, check_real
from collapse.data import NOISE_MODELS
from collapse.losses import LOSSES
from collapse.sampling import NEGATIVE_RULES, POSITIVE_RULES

__all__ = ["BACKBONES", "LOSS_NAMES", "RUNTIME_FIELDS", "TrainConfig"]

#: The losses of the real-image study (``collapse.losses.LOSSES`` also has ``triplet-sq``, usable here too).
LOSS_NAMES = tuple(LOSSES)
BACKBONES = ("small_cnn", "resnet18", "resnet50")
#: Fields that may change when a run is resumed: where and how fast it runs, not what it computes.
RUNTIME_FIELDS = ("out", "device", "workers", "steps", "eval_every", "checkpoint_every", "root", "eval_batch_size")


@dataclass(frozen=True)
class TrainConfig:
    """One run. See ``python -m paper_repro.train --help`` for the meaning of each field."""

    out: str
    dataset: str = "fashion-mnist-super"
    root: str = "data"
    zero_shot: bool = False
    dataset_options: dict = field(default_factory=dict)
    skip_bad: bool = False
    train_samples: int | None = None
    eval_samples: int | None = None
    label_noise: float = 0.0
    noise_kind: str = "symmetric"
    loss: str = "triplet"
    positive: str = "easy"
    negative: str | None = None
    steps: int = 2000
    eval_every: int = 500
    checkpoint_every: int | None = None
    batch_classes: int | None = None
    samples_per_class: int = 16
    replace_small_classes: bool = False
    lr: float = 1e-3
    weight_decay: float = 0.0
    dim: int = 128
    backbone: str = "small_cnn"
    pretrained: str | None = None
    image_size: int | None = None
    augment: bool = True
    seed: int = 0
    device: str = "cpu"
    amp: str | None = None
    channels_last: bool = False
    workers: int = 0
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSS_NAMES)
        if not isinstance(self.dataset_options, dict):
            raise TypeError(f"dataset_options must be a dict, got {type(self.dataset_options).__name__}")
        check_choice("positive", self.positive, POSITIVE_RULES)
        if self.negative is not None:
            check_choice("negative", self.negative, NEGATIVE_RULES)
        check_choice("backbone", self.backbone, BACKBONES)
        check_choice("device", self.device, ("cpu", "cuda"))
        if self.amp is not None:
            check_choice("amp", self.amp, ("bf16",))
        check_int("steps", self.steps, low=1)
        check_int("eval_every", self.eval_every, low=1)
        if self.checkpoint_every is not None:
            check_int("checkpoint_every", self.checkpoint_every, low=1)
        if self.batch_classes is not None:
            check_int("batch_classes", self.batch_classes, low=2)
        check_int("samples_per_class", self.samples_per_class, low=2)
        if self.train_samples is not None:
            check_int("train_samples", self.train_samples, low=2)
        if self.eval_samples is not None:
            check_int("eval_samples", self.eval_samples, low=2)
        check_real("label_noise", self.label_noise, low=0.0, high=1.0, high_inclusive=False)
        check_choice("noise_kind", self.noise_kind, NOISE_MODELS)
        check_real("lr", self.lr, low=0.0, low_inclusive=False)
        check_real("weight_decay", self.weight_decay, low=0.0)
        check_int("dim", self.dim, low=1)
        if self.image_size is not None:
            check_int("image_size", self.image_size, low=1)
        check_int("seed", self.seed, low=0)
        check_int("workers", self.workers, low=0)
        check_int("eval_batch_size", self.eval_batch_size, low=1)
        if not isinstance(self.out, str) or not self.out:
            raise ValueError(f"out must be a non-empty path, got {self.out!r}")

    @property
    def every_checkpoint(self) -> int:
        return self.checkpoint_every if self.checkpoint_every is not None else self.eval_every

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from a dict; unknown keys are a one-line error naming them."""
        check_fields(cls, d, "configuration")
        return cls(**d)

    def differences(self, other: TrainConfig) -> dict[str, tuple]:
        """Fields other than :data:`RUNTIME_FIELDS` whose values differ: ``{name: (self, other)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k not in RUNTIME_FIELDS and a[k] != b[k]}
