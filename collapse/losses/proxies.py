r"""The shared skeleton of proxy losses: each class owns K learnable centres (proxies) on the unit sphere, and every
sample is compared with the proxies, not with the other samples of the batch.

``loss(embeddings, labels)`` computes the cosine similarity of every sample to every proxy,
:math:`c_{i,(y,k)} = \hat x_i^\top \hat w_{y,k}`, and hands the ``(G, B, C, K)`` array to
:meth:`ProxyLoss.sample_terms`, which returns one term per sample (an ``"anchor"``
:class:`~collapse.losses.terms.Terms`, the shape every loss returns); the reducer averages them
(pytorch-metric-learning's default ``MeanReducer`` for these losses).

The proxies are an ``nn.Parameter`` of shape ``(G, C * K, d)``: one set per independent run when G runs train in one
tensor program, column ``y * K + k`` for centre k of class y (pytorch-metric-learning's layout, transposed). Being
parameters of the loss module, they are trained by every trainer that optimises ``loss.parameters()`` and saved in
``loss.state_dict()`` (``collapse.optimize.train_embeddings``; ``paper_repro.train`` and its checkpoints).

Positive and negative rules have no meaning here (there are no sample pairs): the sampler must be the default
``all``/``all``; anything else is an error rather than silently ignored.
"""

from __future__ import annotations

import torch
from torch import nn

from collapse._fastgrad import unit_rows
from collapse._validation import check_generator, check_int
from collapse.losses.base import MetricLoss, as_groups
from collapse.losses.terms import LossOutput, Terms
from collapse.sampling.sampler import Sampler
from collapse.sampling.tuples import Pairs, Tuples

__all__ = ["ProxyLoss"]

#: Added to an integer seed (or a generator's initial seed) so that proxies do not reuse the model's random stream.
_PROXY_SEED_OFFSET = 7919


class ProxyLoss(MetricLoss):
    """Parameters: ``num_classes`` (C), ``embedding_dim`` (d), ``centers_per_class`` (K), ``num_groups`` (G) and
    ``random_state`` for the initial proxies (Gaussian, i.e. uniform directions on the sphere)."""

    default_distance = "cosine"
    default_reducer = "mean"
    #: Tells :func:`collapse.losses.make_loss` to pass ``num_classes``, ``num_groups`` and ``embedding_dim``.
    uses_proxies = True

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        centers_per_class: int = 1,
        *,
        num_groups: int = 1,
        random_state: None | int | torch.Generator = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        if self.sampler.positive.name != "all" or self.sampler.negative.name != "all":
            raise ValueError(
                f"positive/negative: {name} compares samples with class proxies and takes no sampling rule; "
                f"got positive={self.sampler.positive.name!r}, negative={self.sampler.negative.name!r} "
                "(leave them unset or 'all')"
            )
        if self.distance.name != "cosine":
            raise ValueError(f"distance: {name} is defined on cosine similarity; got {self.distance.name!r}")
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, low=1)
        self.centers_per_class = check_int("centers_per_class", centers_per_class, low=1)
        n_groups = check_int("num_groups", num_groups, low=1)
        gen = torch.Generator().manual_seed(_proxy_seed(random_state))
        init = torch.randn(n_groups, self.num_classes * self.centers_per_class, self.embedding_dim, generator=gen)
        self.proxies = nn.Parameter(init)

    # --------------------------------------------------------------------------------------------- interface
    def sample_terms(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(G, B) loss of each sample from its (G, B, C, K) proxy cosines and (G, B) labels."""
        raise NotImplementedError

    def proxy_regularizer(self, unit_proxies: torch.Tensor) -> torch.Tensor:
        """(G,) penalty on the (G, C, K, d) unit proxies, added to each group's reduced loss (none by default)."""
        return torch.zeros(unit_proxies.shape[0], dtype=unit_proxies.dtype, device=unit_proxies.device)

    # --------------------------------------------------------------------------------------------- pipeline
    def unit_proxies(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(G, C, K, d) proxies on the unit sphere."""
        w = self.proxies if dtype is None else self.proxies.to(dtype)
        return unit_rows(w).reshape(w.shape[0], self.num_classes, self.centers_per_class, self.embedding_dim)

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(G, B, C, K) cosine similarity of every sample of (G, B, d) embeddings to every proxy."""
        n_groups, batch, dim = embeddings.shape
        if dim != self.embedding_dim:
            raise ValueError(f"embeddings must have dimension embedding_dim={self.embedding_dim}, got {dim}")
        w = self._group_proxies(n_groups, embeddings.dtype)
        cos = torch.matmul(unit_rows(embeddings), unit_rows(w).transpose(-1, -2))
        return cos.reshape(n_groups, batch, self.num_classes, self.centers_per_class)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, sampler: Sampler | None = None) -> LossOutput:
        emb, labels = as_groups(embeddings, labels)
        n_groups, batch, _ = emb.shape
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must be in [0, num_classes={self.num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
            )
        losses = self.sample_terms(self.cosines(emb), labels)
        g = torch.arange(n_groups, device=emb.device).repeat_interleave(batch)
        a = torch.arange(batch, device=emb.device).repeat(n_groups)
        terms = {"loss": Terms(losses.reshape(-1), g, (a,), "anchor")}
        per_group = self.reducer(terms, n_groups, emb)
        w = self._group_proxies(n_groups, emb.dtype)
        unit = unit_rows(w).reshape(n_groups, self.num_classes, self.centers_per_class, self.embedding_dim)
        per_group = per_group + self.proxy_regularizer(unit)
        if not per_group.requires_grad and (emb.requires_grad or self.proxies.requires_grad):
            per_group = per_group + 0.0 * emb.sum()  # an empty batch still has a graph to call backward() on
        empty = torch.zeros(0, dtype=torch.long, device=emb.device)
        tuples = Tuples(Pairs(empty, empty, empty), Pairs(empty, empty, empty), n_groups, batch, 0, 0)
        return LossOutput(loss=per_group.sum(), per_group=per_group, terms=terms, tuples=tuples)

    def _group_proxies(self, n_groups: int, dtype: torch.dtype) -> torch.Tensor:
        w = self.proxies.to(dtype)
        if w.shape[0] == n_groups:
            return w
        if w.shape[0] == 1:
            return w.expand(n_groups, -1, -1)
        raise ValueError(f"embeddings have {n_groups} groups but the loss holds proxies for num_groups={w.shape[0]}")

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, "
            f"centers_per_class={self.centers_per_class}, num_groups={self.proxies.shape[0]}"
        )


def _proxy_seed(random_state: None | int | torch.Generator) -> int:
    """An integer seed for the proxies that does not consume a caller's generator (so every loss, with or without
    proxies, leaves the model's initialisation stream unchanged)."""
    if isinstance(random_state, torch.Generator):
        return (random_state.initial_seed() + _PROXY_SEED_OFFSET) % (2**63)
    return (int(check_generator(random_state).initial_seed()) + _PROXY_SEED_OFFSET) % (2**63)
