"""Embedding losses. Each returns unreduced per-tuple terms with their indices and a reduced scalar.

``make_loss(name, ...)`` builds one by the short names the CLI and the experiments use.
"""

from __future__ import annotations

from collapse._validation import check_choice
from collapse.losses.base import MetricLoss, as_groups
from collapse.losses.contrastive import ContrastiveLoss
from collapse.losses.margin import MarginLoss
from collapse.losses.multi_similarity import MultiSimilarityLoss
from collapse.losses.nca import EasyPositiveNCALoss
from collapse.losses.positive_weights import PositiveWeights, SoftEasyPositiveWeights
from collapse.losses.proxies import ProxyLoss
from collapse.losses.reducers import (
    REDUCERS,
    AvgNonZeroReducer,
    DivisorReducer,
    MeanReducer,
    Reducer,
    SumReducer,
)
from collapse.losses.softtriple import SoftTripleLoss
from collapse.losses.spread import SpreadLoss
from collapse.losses.subcenter_arcface import SubCenterArcFaceLoss
from collapse.losses.supcon import SupConLoss
from collapse.losses.terms import LossOutput, Terms
from collapse.losses.triplet import TripletMarginLoss
from collapse.sampling import Sampler

__all__ = [
    "LOSSES",
    "REDUCERS",
    "AvgNonZeroReducer",
    "ContrastiveLoss",
    "DivisorReducer",
    "EasyPositiveNCALoss",
    "LossOutput",
    "MarginLoss",
    "MeanReducer",
    "MetricLoss",
    "MultiSimilarityLoss",
    "PositiveWeights",
    "ProxyLoss",
    "Reducer",
    "SoftEasyPositiveWeights",
    "SoftTripleLoss",
    "SpreadLoss",
    "SubCenterArcFaceLoss",
    "SumReducer",
    "SupConLoss",
    "Terms",
    "TripletMarginLoss",
    "as_groups",
    "default_negative",
    "make_loss",
]

# name -> (class, fixed keyword arguments)
LOSSES: dict[str, tuple[type[MetricLoss], dict]] = {
    "contrastive": (ContrastiveLoss, {}),
    "triplet": (TripletMarginLoss, {}),
    "triplet-sq": (TripletMarginLoss, {"distance": "sqeuclidean"}),
    "margin": (MarginLoss, {}),
    "margin-learned": (MarginLoss, {"learn_beta": True}),
    "multisimilarity": (MultiSimilarityLoss, {}),
    "nca": (EasyPositiveNCALoss, {}),
    # Rival ways to prevent class collapse (issue 13); the proxy losses take no positive/negative rule.
    "supcon": (SupConLoss, {}),
    # SupCon with weighted EPS: positives weighted by softmax(-D/0.1) (collapse.losses.positive_weights).
    "supcon-weighted": (SupConLoss, {"positive_weights": SoftEasyPositiveWeights(0.1)}),
    "spread": (SpreadLoss, {}),
    "softtriple": (SoftTripleLoss, {}),
    "subcenter-arcface": (SubCenterArcFaceLoss, {}),
}


def default_negative(name: str) -> str:
    """The negative rule a loss is published with (kept unchanged when EPS swaps the positive rule)."""
    return LOSSES[check_choice("loss", name, LOSSES)][0].default_negative


def make_loss(
    name: str,
    positive: str | None = None,
    negative: str | None = None,
    *,
    num_classes: int | None = None,
    num_groups: int = 1,
    embedding_dim: int | None = None,
    random_state=0,
    **kwargs,
) -> MetricLoss:
    """Build the loss called ``name`` with a ``Sampler(positive, negative)``.

    ``None`` keeps the loss's published rule. ``num_classes``/``num_groups`` size the learnable betas of
    ``margin-learned``; with ``embedding_dim`` they also size the proxies of the proxy losses (``softtriple``,
    ``subcenter-arcface``), which take no positive/negative rule. Other losses ignore them.
    """
    cls, fixed = LOSSES[check_choice("loss", name, LOSSES)]
    sampler = Sampler(
        positive if positive is not None else cls.default_positive,
        negative if negative is not None else cls.default_negative,
        random_state=random_state,
    )
    if fixed.get("learn_beta"):
        kwargs = {"num_classes": num_classes, "num_groups": num_groups, **kwargs}
    if getattr(cls, "uses_proxies", False):
        if num_classes is None or embedding_dim is None:
            raise ValueError(f"num_classes and embedding_dim are required for {name!r} (its proxies are parameters)")
        kwargs = {"num_classes": num_classes, "embedding_dim": embedding_dim, "num_groups": num_groups,
                  "random_state": random_state, **kwargs}
    return cls(sampler=sampler, **{**fixed, **kwargs})
