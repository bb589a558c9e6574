"""Positive and negative selection, as independent rules that any sampler pairs freely."""

from collapse.sampling.batch import PKBatchSampler
from collapse.sampling.negatives import (
    NEGATIVE_RULES,
    AllNegatives,
    DistanceWeightedNegative,
    HardNegative,
    NegativeRule,
    RandomNegative,
    SemiHardNegative,
)
from collapse.sampling.positives import (
    POSITIVE_RULES,
    AllPositives,
    EasyPositive,
    HardPositive,
    PositiveRule,
    RandomPositive,
)
from collapse.sampling.sampler import Sampler, label_masks
from collapse.sampling.tuples import Pairs, Triplets, Tuples

__all__ = [
    "NEGATIVE_RULES",
    "POSITIVE_RULES",
    "AllNegatives",
    "AllPositives",
    "DistanceWeightedNegative",
    "EasyPositive",
    "HardNegative",
    "HardPositive",
    "NegativeRule",
    "PKBatchSampler",
    "Pairs",
    "PositiveRule",
    "RandomNegative",
    "RandomPositive",
    "Sampler",
    "SemiHardNegative",
    "Triplets",
    "Tuples",
    "label_masks",
]
