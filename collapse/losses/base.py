"""The shared skeleton of every embedding loss.

``loss(embeddings, labels)`` runs the one-way pipeline

    distance matrix -> sampler (no gradient) -> unreduced terms -> reducer

and returns a :class:`~collapse.losses.terms.LossOutput`. Embeddings are ``(B, d)`` for one batch or
``(G, B, d)`` for G independent runs trained in one tensor program; labels are ``(B,)`` or ``(G, B)``.

Layouts, one implementation. Each loss writes its per-tuple math once, as term functions of distance values
(e.g. :meth:`TripletMarginLoss.term(d_ap, d_an) <collapse.losses.triplet.TripletMarginLoss.term>`), and applies
them in two layouts, plus a third for the all x all rule:

* **fixed-shape** (:meth:`MetricLoss.anchor_terms`), the training step of every sampler that picks one positive per
  anchor (easy, hard or random positives, with any negative rule): the sampler returns an
  :class:`~collapse.sampling.selection.AnchorSelection` (``(G, B)`` indices and validity masks; for ``all``
  negatives a ``(G, B, B)`` mask), the terms are computed for every anchor and carry the mask, and the reducers
  weight by it. No shape depends on the data and nothing reads a value back from the device, so
  ``torch.compile(fullgraph=True, dynamic=False)`` captures the whole forward and backward (one graph, zero graph
  breaks; tests/losses/test_fixed_shape.py) and a GPU can replay it as one CUDA graph;
* **listed** (:meth:`MetricLoss.compute_terms`): index tuples (:class:`~collapse.sampling.tuples.Tuples`), for the
  ``all`` positive rule, for the theory (which weights given tuples) and for rule subclasses that list their own;
* **dense all-pairs** (:meth:`MetricLoss.all_pairs_terms`, contrastive, multi-similarity and the published SupCon):
  the training step of the plain ``all`` x ``all`` sampler, with the rule's pairs as masks over the matrix or, on
  eager CPU steps, as each anchor's label segment (:class:`~collapse.sampling.all_pairs.AllPairsSelection`), so no
  index list of the O(B^2) pairs is built. The terms are the same term functions or per-anchor sums (for SupCon, the
  same log-sum-exp minus mean positive logit as ``supcon_terms``, over masks instead of lists); tests check the
  values and gradients against the listed layout (tests/losses/test_dense_pairs.py). Its **pruned** form
  (:meth:`MetricLoss.pruned_pairs_terms`, the contrastive loss, on eager CPU steps with a reducer that skips zero
  terms): a hinge :math:`[m - D]_+` is exactly 0 beyond its margin, so only the negative pairs inside it are listed
  (:func:`~collapse.sampling.within.negatives_within`, one product and a row minimum) and their distances, and the
  positive pairs', recomputed with autograd in O(T d) (:class:`PairDistances`): no B x B tensor with autograd. The
  full listing of terms is built on first read (:class:`~collapse.losses.terms.PrunedTerms`). Where more than an
  eighth of the pairs lie inside the margin, where classes are large (a distance row per positive pair costs more
  than the matrix) and for a distance without a radius search (:attr:`Distance.radius_search`), the step takes the
  dense form.

The listed view of a fixed-shape step (``LossOutput.terms``/``.tuples``) is derived from the masks on first read,
so the per-tuple API stays what it was; tests check that both layouts give the same values and gradients. We chose
shared term functions over making one layout the only one because the theory needs the listed layout with its own
tuples and weights, and the all-positives rule has no fixed per-anchor shape; the formulas are not duplicated.

Cost. When the terms read the distance only at ``D[g, a, p(a)]`` and ``D[g, a, n(a)]`` (one negative per anchor),
the matrix is computed once without autograd, for the selection only, and those distances are recomputed with
autograd from the embeddings (:class:`PairDistances`, :func:`~collapse._fastgrad.pair_distance`): the backward pass
is O(B d) instead of O(B^2 d), and no (B, B) tensor is kept for it. They equal the matrix entries up to rounding.
When the rules only compare the entries of a row (nearest, farthest, semi-hard, random; no duplicate tolerance),
that matrix is :meth:`~collapse.distances.Distance.order_matrix`, which orders every row as the distances do, in
one product without the distance matrix's elementwise passes.
Terms that read whole rows (``all`` negatives, multi-similarity) take the matrix with autograd (for cosine, the
Gram matrix with a one-product backward, :func:`~collapse._fastgrad.gram`). In the listed layout, a step with more
tuple work than the matrix uses the matrix with autograd.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import nn

from collapse._buffers import kept_buffer
from collapse._fastgrad import anchor_distances, pair_distance
from collapse.distances import CosineDistance, Distance, get_distance
from collapse.losses.reducers import REDUCERS, Reducer
from collapse.losses.terms import LossOutput, Terms
from collapse.sampling.all_pairs import AllPairsSelection
from collapse.sampling.negatives import AllNegatives
from collapse.sampling.positives import AllPositives
from collapse.sampling.sampler import Sampler
from collapse.sampling.selection import AnchorSelection
from collapse.sampling.tuples import Tuples, warn_if_no_positive
from collapse.sampling.within import negatives_within

__all__ = ["SCRATCH_ELEMENTS", "MetricLoss", "PairDistances", "anchor_values", "as_groups", "triplet_layout"]

_COSINE = CosineDistance()

#: Largest selection matrix (entries) a loss keeps between steps as a reusable buffer (16M: 64 MB of float32).
SCRATCH_ELEMENTS = 1 << 24


def as_groups(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and lift ``(B, d)``/``(B,)`` inputs to ``(1, B, d)``/``(1, B)``."""
    if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
        raise TypeError("embeddings must be a floating-point torch.Tensor")
    labels = torch.as_tensor(labels, device=embeddings.device)
    if embeddings.dim() == 2:
        embeddings, labels = embeddings.unsqueeze(0), labels.reshape(1, -1)
    if embeddings.dim() != 3:
        raise ValueError(f"embeddings must have shape (B, d) or (G, B, d), got {tuple(embeddings.shape)}")
    if labels.shape != embeddings.shape[:2]:
        raise ValueError(f"labels must have shape {tuple(embeddings.shape[:2])}, got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    # min/max propagate NaN and inf, and are one vectorised pass (isfinite().all() is several times slower on CPU).
    # Under torch.compile the check would split the graph (it reads values back); a compiled step skips it.
    if embeddings.numel() and not torch.compiler.is_compiling():
        # The one read-back of an eager step (on a GPU it waits for the device): bad input must fail clearly.
        if not all(math.isfinite(float(v)) for v in torch.aminmax(embeddings.detach())):
            raise ValueError("embeddings contain NaN or inf")
    return embeddings, labels


class PairDistances:
    """Stands in for the ``(G, B, B)`` distance matrix in :meth:`MetricLoss.compute_terms`: ``D[g, i, j]`` with index
    vectors is computed on demand, with autograd, from the prepared embeddings; the matrix itself is never built.

    ``prepared`` are the embeddings the distance is taken between (:meth:`Distance.prepare`), with autograd; or,
    given ``embeddings`` (the raw ones, with autograd), the values of ``prepare(embeddings)`` without autograd and,
    when the distance normalises, ``norms``: then :meth:`anchors` differentiates through the normalisation in the
    same node as the distances (:func:`~collapse._fastgrad.anchor_distances`), and only other reads build the
    prepared embeddings with autograd.
    """

    def __init__(
        self,
        distance: Distance,
        prepared: torch.Tensor,
        *,
        embeddings: torch.Tensor | None = None,
        norms: torch.Tensor | None = None,
    ) -> None:
        self.distance = distance
        self._prepared = prepared
        self.embeddings = embeddings
        self.norms = norms

    @property
    def prepared(self) -> torch.Tensor:
        """The prepared embeddings with autograd (built on first read when only their values were given)."""
        if self.embeddings is not None and self._prepared.requires_grad is not self.embeddings.requires_grad:
            self._prepared = self.distance.prepare(self.embeddings)
        return self._prepared

    def __getitem__(self, index: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        g, i, j = index
        prepared = self.prepared
        n_groups, batch, dim = prepared.shape
        if n_groups == 1:
            # One group: the rows are the batch indices themselves (no index arithmetic per call).
            return pair_distance(prepared.reshape(batch, dim), i, j, self.distance.pair_kind)
        return self.distance.pairs(prepared, g, i, j, prepared=True)

    def anchors(self, *index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``D[g, a, idx[g, a]]`` for every anchor, one ``(G, B)`` tensor per ``(G, B)`` index matrix, in one
        :func:`~collapse._fastgrad.anchor_distances` call (fixed shapes)."""
        n_groups, batch, dim = self._prepared.shape
        rows = n_groups * batch
        if n_groups > 1:
            offset = torch.arange(0, rows, batch, device=self._prepared.device).unsqueeze(-1)
            index = tuple(idx + offset for idx in index)
        j = torch.stack([idx.reshape(-1) for idx in index]) if len(index) > 1 else index[0].reshape(1, -1)
        kind, shape = self.distance.pair_kind, (n_groups, batch)
        if self.embeddings is None:
            return anchor_distances(self._prepared.reshape(rows, dim), j, kind, shape=shape)
        unit = None if self.norms is None else (self._prepared.reshape(rows, dim), self.norms.reshape(rows, 1))
        return anchor_distances(self.embeddings.reshape(rows, dim), j, kind, unit=unit, shape=shape)

    @property
    def shape(self) -> torch.Size:
        n_groups, batch, _ = self._prepared.shape
        return torch.Size((n_groups, batch, batch))

    @property
    def dtype(self) -> torch.dtype:
        return self._prepared.dtype

    @property
    def device(self) -> torch.device:
        return self._prepared.device

    @property
    def requires_grad(self) -> bool:
        return (self._prepared if self.embeddings is None else self.embeddings).requires_grad

    def sum(self) -> torch.Tensor:
        """A scalar connected to the embeddings' graph (what ``0.0 * dist.sum()`` is there for), O(B d)."""
        return (self._prepared if self.embeddings is None else self.embeddings).sum()


def anchor_values(dist: torch.Tensor | PairDistances, *index: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``dist[g, a, idx[g, a]]`` for each ``(G, B)`` index matrix ``idx``: one ``(G, B)`` tensor each."""
    if isinstance(dist, PairDistances):
        return dist.anchors(*index)
    return tuple(dist.gather(-1, i.unsqueeze(-1)).squeeze(-1) for i in index)


def _warn_if_no_positive(selection: AnchorSelection) -> None:
    """The index path's warning when no anchor has a positive, for eager CPU steps only: elsewhere the check would
    read a value back from the device on every step (or split a compiled graph), so it is left to ``.tuples``."""
    if selection.has_positive.device.type != "cpu" or torch.compiler.is_compiling():
        return
    if selection.batch_size and not bool(selection.has_positive.any()):
        n = selection.n_groups * selection.batch_size
        warnings.warn(
            f"no anchor in the batch has a valid positive ({n} anchors dropped); the loss is 0",
            RuntimeWarning,
            stacklevel=5,
        )


def triplet_layout(
    dist: torch.Tensor | PairDistances, selection: AnchorSelection
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
    """``(d_ap, d_an, group, (a, p, n), mask)`` of the triplets of a fixed-shape selection, broadcastable to one
    shape: ``(G, B)`` with one negative per anchor, ``(G, B, B)`` (every negative ``n`` of the last axis) with
    ``all``; ``dist`` is then the matrix."""
    s = selection
    g, a = s.group_index, s.anchor_index
    if s.per_pair:
        d_ap, d_an = anchor_values(dist, s.positive, s.negative)
        return d_ap, d_an, g, (a, s.positive, s.negative), s.kept
    (d_ap,) = anchor_values(dist, s.positive)
    shape = (*a.shape, s.batch_size)
    n = torch.arange(s.batch_size, device=a.device).expand(shape)
    idx = (a.unsqueeze(-1).expand(shape), s.positive.unsqueeze(-1).expand(shape), n)
    mask = s.negative_mask & s.has_positive.unsqueeze(-1)
    return d_ap.unsqueeze(-1), dist, g.unsqueeze(-1).expand(shape), idx, mask


class MetricLoss(nn.Module):
    """Base class. Subclasses set the defaults and implement :meth:`compute_terms`.

    Parameters
    ----------
    sampler : Sampler, optional
        Positive x negative selection; each loss has its own published default.
    distance : str or Distance
        ``"euclidean"`` (on the unit sphere), ``"sqeuclidean"`` or ``"cosine"``.
    reducer : str or Reducer, optional
        How terms become a scalar; each loss defaults to pytorch-metric-learning's choice.
    """

    default_positive = "all"
    default_negative = "all"
    default_distance = "euclidean"
    default_reducer = "avg_nonzero"
    #: ``compute_terms`` reads ``dist`` only as ``dist[g, i, j]`` at the tuples' indices whenever the sampler picks
    #: one negative per positive pair, so it may be handed a :class:`PairDistances` (see the module docstring).
    pairwise_terms = False

    def __init__(
        self,
        sampler: Sampler | None = None,
        distance: str | Distance | None = None,
        reducer: str | Reducer | None = None,
    ) -> None:
        super().__init__()
        self.sampler = sampler if sampler is not None else Sampler(self.default_positive, self.default_negative)
        self.distance = get_distance(distance if distance is not None else self.default_distance)
        reducer = reducer if reducer is not None else self.default_reducer
        self.reducer = reducer if isinstance(reducer, Reducer) else REDUCERS[reducer]()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, sampler: Sampler | None = None) -> LossOutput:
        emb, labels = as_groups(embeddings, labels)
        sampler = sampler or self.sampler
        if emb.shape[-2] and self._fixed_shape(sampler):
            return self._forward_fixed(emb, labels, sampler)
        if emb.shape[-2] > 1 and self._dense_pairs(sampler):  # one sample: no pair; the listed path says so
            return self._forward_dense(emb, labels, sampler)
        if not (self.pairwise_terms and sampler.negative.per_pair):
            return self.from_distances(self.distance(emb), labels, dim=emb.shape[-1], sampler=sampler)
        prepared = self.distance.prepare(emb)
        n_groups, batch, dim = emb.shape
        with torch.no_grad():
            detached = prepared.detach()
            scratch = self._scratch(n_groups, batch, detached)
            full = self.distance(detached, prepared=True, out=scratch)
            # A sampler subclass may redefine __call__ without the overwrite keyword; it gets its own matrix.
            own = type(sampler).__call__ is Sampler.__call__
            tuples = sampler(full, labels, dim=dim, overwrite=True) if own else sampler(full.clone(), labels, dim=dim)
        if len(tuples.triplets) * dim > n_groups * batch * max(batch, dim):
            # More pair rows (T x d) than the matrix and the embeddings hold (e.g. all positives of large classes):
            # the matrix with autograd takes less memory.
            return self._reduce(self.distance(emb), tuples, labels)
        return self._reduce(PairDistances(self.distance, prepared), tuples, labels)

    # ----------------------------------------------------------------------------------------- fixed-shape path

    def _fixed_shape(self, sampler: Sampler) -> bool:
        """Whether the step runs on a fixed-shape selection: the loss has :meth:`anchor_terms`, the sampler picks
        one positive per anchor, and neither is a subclass that redefines the listing (``__call__``)."""
        return (
            type(self).anchor_terms is not MetricLoss.anchor_terms
            and type(sampler).__call__ is Sampler.__call__
            and sampler.per_anchor
        )

    def _forward_fixed(self, emb: torch.Tensor, labels: torch.Tensor, sampler: Sampler) -> LossOutput:
        n_groups, batch, dim = emb.shape
        compiling = torch.compiler.is_compiling()
        if self.reads_matrix(sampler):
            prepared = self.distance.prepare(emb)
            # The terms read whole rows: one matrix with autograd, the selection on its detached values.
            sim = self.matrix_is_similarity
            matrix = self.distance.similarity_matrix(prepared) if sim else self.distance(prepared, prepared=True)
            with torch.no_grad():
                scratch = None if compiling else self._scratch(n_groups, batch, prepared)
                bound = self.distance.bound
                if sim and sampler.order_only:
                    dist, bound = self.distance.order_from_similarity(matrix.detach(), out=scratch)
                elif sim:
                    dist = self.distance.from_similarity(matrix.detach(), out=scratch)
                else:
                    dist = matrix.detach() if scratch is None else scratch.copy_(matrix.detach())
                selection = sampler.select(dist, labels, dim=dim, overwrite=scratch is not None, bound=bound)
            return self._reduce(matrix, selection, labels)
        with torch.no_grad():
            # The values only: the distances with autograd come from the raw embeddings (PairDistances).
            detached, norms = self.distance.prepare_detached(emb)
            scratch = None if compiling else self._scratch(n_groups, batch, detached)
            if sampler.order_only and self.distance.has_order_matrix:
                # The rules only compare a row's entries: one product, without the matrix's elementwise passes.
                full, bound = self.distance.order_matrix(detached, out=scratch), self.distance.order_bound
            else:
                full, bound = self.distance(detached, prepared=True, out=scratch), self.distance.bound
            selection = sampler.select(full, labels, dim=dim, overwrite=True, bound=bound)
        pairs = PairDistances(self.distance, detached, embeddings=emb, norms=norms)
        return self._reduce(pairs, selection, labels)

    # ---------------------------------------------------------------------------------------- dense all-pairs path

    def _dense_pairs(self, sampler: Sampler) -> bool:
        """Whether the step runs on the dense all-pairs layout: the loss has :meth:`all_pairs_terms` and the sampler
        is the plain all-positives x all-negatives one (every same-label pair, no duplicate tolerance)."""
        return (
            type(self).all_pairs_terms is not MetricLoss.all_pairs_terms
            and type(sampler).__call__ is Sampler.__call__
            and type(sampler.positive) is AllPositives
            and type(sampler.negative) is AllNegatives
            and sampler.exclude_duplicates is None
        )

    def _forward_dense(self, emb: torch.Tensor, labels: torch.Tensor, sampler: Sampler) -> LossOutput:
        n_groups, batch, dim = emb.shape
        pairs = AllPairsSelection(labels)
        if (
            type(self).pruned_pairs_terms is not MetricLoss.pruned_pairs_terms
            and self.reducer.skips_zero_terms
            and pairs.segments is not None  # eager CPU: the pruning reads the number of pairs kept back
        ):
            out = self._forward_pruned(emb, labels, sampler, pairs)
            if out is not None:
                return out
        prepared = self.distance.prepare(emb)
        sim = self.matrix_is_similarity
        # Similarity losses take the similarity matrix (for cosine, the Gram matrix with its one-product backward).
        matrix = self.distance.similarity_matrix(prepared) if sim else self.distance(prepared, prepared=True)
        if not torch.compiler.is_compiling():
            warn_if_no_positive(pairs.n_positive_pairs(), n_groups * batch, warn=True, stacklevel=3)
        terms = self.all_pairs_terms(matrix, pairs)

        def listed() -> Tuples:
            dist = self.distance.from_similarity(matrix.detach()) if sim else matrix.detach()
            return sampler(dist, labels, dim=dim, warn=False)

        return self._finish(terms, n_groups, matrix, listed, labels)

    def _forward_pruned(
        self, emb: torch.Tensor, labels: torch.Tensor, sampler: Sampler, pairs: AllPairsSelection
    ) -> LossOutput | None:
        """The dense step with only the pairs whose term can be non-zero (:meth:`pruned_pairs_terms`), their
        distances recomputed with autograd in O(T d) (:class:`PairDistances`); ``None`` where the loss declines."""
        distance = self.distance
        search = distance.radius_search
        if search is None:
            return None
        # Between unit rows the search is the cosine distance's (on -u_i.u_j: one product, no row terms), at the
        # cosine distance of the same pairs; else on this distance's own order matrix.
        searcher = _COSINE if search == "unit" else distance
        n_groups, batch, dim = emb.shape
        with torch.no_grad():
            detached, norms = distance.prepare_detached(emb)
            scratch = self._scratch(n_groups, batch, detached)
            order = searcher.order_matrix(detached, out=scratch)
            # A bound on the rounding of D^2 as the search computes it (a product of d terms: |dP| <= d eps |x||y|,
            # and unit rows' norms 1 up to about d eps) and as the recomputed distance does, for rows of squared norm
            # at most r2; then |D - D'| <= sqrt(err) for the Euclidean distance, err for the others.
            eps = torch.finfo(order.dtype).eps
            r2 = 1.0 if distance.normalize else float((detached * detached).sum(-1).max())
            err = 4.0 * (dim + 8) * eps * r2
            slack = max(math.sqrt(err), err)
        searched = False

        def within(radius: float, max_fraction: float) -> tuple[torch.Tensor, ...] | None:
            nonlocal searched
            if searched:
                raise RuntimeError("within() runs once per step: it overwrites the order matrix")
            searched = True
            radius = radius + slack
            if search == "unit":
                radius = 1.0 - distance.unit_similarity(radius)  # as a cosine distance
            limit = searcher.order_limit(radius, detached)
            members, has_positive = pairs.segments.members, pairs.has_positive
            return negatives_within(order, limit, members, has_positive, max_fraction * order.numel())

        dist = PairDistances(self.distance, detached, embeddings=emb, norms=norms)
        terms = self.pruned_pairs_terms(dist, within, pairs)
        if terms is None:
            return None
        warn_if_no_positive(pairs.n_positive_pairs(), n_groups * batch, warn=True, stacklevel=4)

        def listed() -> Tuples:
            with torch.no_grad():
                return sampler(self.distance(detached, prepared=True), labels, dim=dim, warn=False)

        return self._finish(terms, n_groups, dist, listed, labels)

    def pruned_pairs_terms(
        self,
        dist: PairDistances,
        within: Callable[[float, float], tuple[torch.Tensor, ...] | None],
        pairs: AllPairsSelection,
    ) -> dict[str, Terms] | None:
        """The all x all rule's terms without the pairs whose term is exactly 0, for reducers that skip zero terms,
        on eager CPU steps. ``dist`` gives distances with autograd (``dist[g, i, j]``, ``dist.anchors``);
        ``within(radius, max_fraction)``, callable once, lists the rule's negative pairs ``(g, a, n)`` that may lie
        closer than ``radius`` (:func:`~collapse.sampling.within.negatives_within`, with room for rounding), or gives
        ``None`` when they are more than ``max_fraction`` of the matrix. Return ``None`` to take the dense path
        instead. A loss that defines it keeps the full listing of its terms readable (:class:`PrunedTerms`)."""
        raise NotImplementedError

    def all_pairs_terms(self, matrix: torch.Tensor, pairs: AllPairsSelection) -> dict[str, Terms]:
        """The dense terms (:class:`Terms` with a mask) of the all x all rule: ``matrix`` is the ``(G, B, B)``
        distance matrix with autograd (the similarity matrix where :attr:`matrix_is_similarity`), and ``pairs`` the
        rule's pairs (:class:`~collapse.sampling.all_pairs.AllPairsSelection`: masks, label segments). A loss that
        defines it trains with that rule without listing its pairs (no index lists of O(B^2) pairs, no scatter in
        the backward pass); the listed view is derived on first read, as for the fixed-shape step."""
        raise NotImplementedError

    def reads_matrix(self, sampler: Sampler) -> bool:
        """Whether :meth:`anchor_terms` reads whole rows of the matrix (else only ``D[g, a, p(a)]``, ``D[g, a,
        n(a)]``, which :class:`PairDistances` computes in O(B d)); by default when the negatives are ``all``."""
        return not sampler.negative.per_pair

    #: :meth:`anchor_terms` gets the similarity matrix (:meth:`Distance.similarity_matrix`) instead of distances.
    matrix_is_similarity = False

    def anchor_terms(
        self, dist: torch.Tensor | PairDistances, selection: AnchorSelection, labels: torch.Tensor
    ) -> dict[str, Terms]:
        """The fixed-shape terms (:class:`Terms` with a mask) of a selection; computed by the same term functions as
        :meth:`compute_terms`. ``dist`` is the matrix with autograd, or :class:`PairDistances` (see
        :meth:`reads_matrix`), or the similarity matrix (:attr:`matrix_is_similarity`)."""
        raise NotImplementedError

    def _scratch(self, n_groups: int, batch: int, like: torch.Tensor) -> torch.Tensor | None:
        """The (G, B, B) buffer of the selection matrix, kept from step to step up to :data:`SCRATCH_ELEMENTS`.

        A fresh buffer of a few MB is zero-filled by the OS page by page on every step (page faults), which costs
        about as much as the selection itself at B of a few hundred; larger matrices are allocated per step, so no
        more than SCRATCH_ELEMENTS entries are kept between steps. It is a :func:`collapse._buffers.kept_buffer`
        (per thread, reused only when nothing holds it, one per ``torch.inference_mode`` state). The sampler
        receives this buffer as scratch space (``overwrite=True``): the matrix is valid during its call only.
        """
        if n_groups * batch * batch > SCRATCH_ELEMENTS:
            return None
        return kept_buffer("selection-matrix", (n_groups, batch, batch), like,
                           max_bytes=SCRATCH_ELEMENTS * like.element_size())  # fmt: skip

    def from_distances(
        self, dist: torch.Tensor, labels: torch.Tensor, *, dim: int, sampler: Sampler | None = None
    ) -> LossOutput:
        """The loss of a ``(G, B, B)`` distance matrix with ``(G, B)`` labels (``dim`` is the embedding dimension,
        which distance-weighted sampling needs). The theory module feeds exact mode distances through here."""
        sampler = sampler or self.sampler
        if dist.shape[-1] and self._fixed_shape(sampler):
            selection = sampler.select(dist, labels, dim=dim)
            values = self.distance.similarity(dist) if self.matrix_is_similarity else dist
            return self._reduce(values, selection, labels)
        return self._reduce(dist, sampler(dist, labels, dim=dim), labels)

    def _reduce(
        self, dist: torch.Tensor | PairDistances, tuples: Tuples | AnchorSelection, labels: torch.Tensor
    ) -> LossOutput:
        fixed = isinstance(tuples, AnchorSelection)
        if fixed:
            _warn_if_no_positive(tuples)
        if not tuples.batch_size:
            # An empty batch has no tuple and so no term (a loss's row-wise term code may assume one column).
            terms = {}
        elif fixed:
            terms = self.anchor_terms(dist, tuples, labels)
        else:
            terms = self.compute_terms(dist, tuples, labels)
        return self._finish(terms, tuples.n_groups, dist, tuples, labels)

    def _finish(
        self,
        terms: dict[str, Terms],
        n_groups: int,
        dist: torch.Tensor | PairDistances,
        tuples: Tuples | AnchorSelection | Callable[[], Tuples],
        labels: torch.Tensor,
    ) -> LossOutput:
        """Reduce the terms per group, add the regulariser, and wrap the result."""
        per_group = self.reducer(terms, n_groups, dist)
        if dist.requires_grad and not per_group.requires_grad:
            # No tuple was selected: a zero multiple keeps the graph connected, so backward() still works.
            per_group = per_group + 0.0 * dist.sum()
        if type(self).regularizer is not MetricLoss.regularizer:  # the base one adds zeros: two ops saved per step
            if callable(tuples) and not isinstance(tuples, (Tuples, AnchorSelection)):
                tuples = tuples()
            per_group = per_group + self.regularizer(tuples, labels, per_group)
        return LossOutput(loss=per_group.sum(), per_group=per_group, terms=terms, tuples=tuples)

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        raise NotImplementedError

    def regularizer(
        self, tuples: Tuples | AnchorSelection, labels: torch.Tensor, per_group: torch.Tensor
    ) -> torch.Tensor:
        return torch.zeros_like(per_group)

    def extra_repr(self) -> str:
        return f"sampler={self.sampler!r}, distance={self.distance!r}, reducer={self.reducer!r}"
