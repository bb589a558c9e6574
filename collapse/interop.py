"""pytorch-metric-learning (PML) interop: easy positive sampling as a PML miner.

    loss = pml.losses.TripletMarginLoss(); loss(emb, labels, EasyPositiveMiner(negative="semihard")(emb, labels))

:class:`EasyPositiveMiner` runs our ``Sampler(positive="easy", negative=...)`` on the distance matrix of the miner's
PML ``distance`` (default ``LpDistance(normalize_embeddings=True)``, i.e. our Euclidean distance on the unit sphere).
With ``negative="all"`` it returns PML's pair tuple ``(a1, p, a2, n)``: the easy positive pair of every anchor that
has one, and every negative pair of those anchors. With any other negative rule it returns ``(a, p, a, n)``, the
halves of our triplets (what PML's ``BatchEasyHardMiner`` returns). pytorch-metric-learning is imported only when
:class:`EasyPositiveMiner` is first used; :func:`as_pml_indices` does not need it.

Known divergence: when the miner returns exactly one positive and one negative pair, PML 2.9.0's pair losses
(``ContrastiveLoss``, via ``GenericPairLoss``) return 0, while our :class:`~collapse.losses.ContrastiveLoss` keeps
that pair's terms (see its docstring). The miner returns the same single pair as our sampler either way.
"""

from __future__ import annotations

from collapse.losses.base import as_groups
from collapse.sampling import Sampler, Tuples

# EasyPositiveMiner is built on first access by the module __getattr__ below (so PML is imported only then).
__all__ = ["EasyPositiveMiner", "as_pml_indices"]  # noqa: F822

_PIP = "pip install pytorch-metric-learning"


def as_pml_indices(tuples: Tuples, *, triplets: bool = False) -> tuple:
    """Convert single-group :class:`Tuples` to PML indices: ``(a1, p, a2, n)``, or ``(a, p, n)`` if ``triplets``.

    With a per-pair negative rule the pairs are ``(a, p, a, n)``. PML's triplet losses cross every positive pair
    of an anchor with every negative pair of it, which recovers our triplets only when each anchor has at most one
    positive (easy, hard, random); pass ``triplets=True`` to hand over the exact triplets otherwise.
    """
    if tuples.n_groups != 1:
        raise ValueError(f"as_pml_indices needs a single group, got n_groups={tuples.n_groups}")
    if triplets:
        t = tuples.triplets
        return t.a, t.p, t.n
    pos, neg = tuples.positive_pairs, tuples.negative_pairs
    return pos.a, pos.b, neg.a, neg.b


def _build_miner() -> type:
    try:
        from pytorch_metric_learning.miners import BaseMiner
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"EasyPositiveMiner needs pytorch-metric-learning: {_PIP}") from exc

    class EasyPositiveMiner(BaseMiner):
        """PML miner: each anchor's positive is its nearest same-label sample (easy positive sampling).

        ``negative`` is any of our negative rules (``all``, ``random``, ``hard``, ``semihard``, ``distance``);
        ``exclude_duplicates`` and ``random_state`` go to :class:`~collapse.sampling.Sampler`; other keyword
        arguments (``distance=...``) go to PML's ``BaseMiner``. Inverted PML distances (similarities) are negated,
        so with them ``exclude_duplicates`` applies to ``-similarity``.
        """

        def __init__(self, negative="all", *, exclude_duplicates=None, random_state=0, **kwargs):
            super().__init__(**kwargs)
            self.sampler = Sampler("easy", negative, exclude_duplicates=exclude_duplicates, random_state=random_state)
            dist = self.distance
            sphere = not dist.is_inverted and dist.p == 2 and dist.power == 1 and dist.normalize_embeddings
            if self.sampler.negative.name == "distance" and not sphere:
                raise ValueError("negative='distance' needs LpDistance(normalize_embeddings=True, p=2, power=1)")

        def mine(self, embeddings, labels, ref_emb, ref_labels):
            if ref_emb is not embeddings:
                raise ValueError("EasyPositiveMiner does not support ref_emb")
            # Same input checks as our losses: NaN or inf embeddings are refused (they would be mined silently);
            # an empty batch passes and yields no tuple, like PML's own TripletMarginMiner.
            as_groups(embeddings, labels)
            mat = self.distance(embeddings)
            mat = -mat if self.distance.is_inverted else mat
            return as_pml_indices(self.sampler(mat, labels, dim=embeddings.shape[-1]))

    EasyPositiveMiner.__module__, EasyPositiveMiner.__qualname__ = __name__, "EasyPositiveMiner"  # picklable
    return EasyPositiveMiner


def __getattr__(name: str):
    if name == "EasyPositiveMiner":
        cls = globals()["EasyPositiveMiner"] = _build_miner()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
