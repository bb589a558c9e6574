r"""Pairwise distances between embeddings.

Every distance returns a matrix ``D[..., i, j]`` for inputs of shape ``(..., B, d)``, so one call
serves a single batch ``(B, d)`` or a stack of independent runs ``(G, B, d)``. Smaller is closer.

* ``euclidean``   : :math:`D_{ij} = \lVert \hat x_i - \hat x_j \rVert_2`, with :math:`\hat x = x/\lVert x\rVert`
  when ``normalize`` (the default: Euclidean distance on the unit sphere, values in [0, 2]).
* ``sqeuclidean`` : :math:`D_{ij} = \lVert \hat x_i - \hat x_j \rVert_2^2`.
* ``cosine``      : :math:`D_{ij} = 1 - \hat x_i^\top \hat x_j`, so that the cosine similarity is ``1 - D``.

Squared distances use :math:`\lVert x\rVert^2 + \lVert y\rVert^2 - 2x^\top y`, clamped at 0; that is one matrix
product, so memory is O(B^2) and never O(B^2 d). Its price is rounding: two bitwise-identical embeddings come out
at a residue of up to about 1e-8 (float64) or 5e-4 (float32) instead of 0, so tolerances such as the sampler's
``exclude_duplicates`` should sit above it. The square root has a zero (not infinite) gradient at 0 and the
gradient of an identical pair is exactly 0 (it is proportional to ``x - y``), which matters: tied embeddings
(two samples of one mode) must exert no force on each other.

``distance.pairs(x, g, i, j)`` returns only the entries ``D[g, i, j]`` of chosen pairs, computed directly from the
differences :math:`\hat x_i - \hat x_j` (O(T d) for T pairs, with autograd; see :mod:`collapse._fastgrad`). A loss
whose terms read a few entries per anchor uses it so that its backward pass is O(B d) instead of O(B^2 d). Those
values equal the matrix's up to rounding, and an identical pair is exactly 0 there (no residue).

Without autograd (``torch.no_grad()`` or inputs that do not require grad) the matrix is computed in place, with
one (B, B) buffer, and it is bitwise the matrix computed with autograd.

``distance.order_matrix(x)`` is for selection rules that only compare the entries of one row (nearest, farthest,
semi-hard: see :attr:`collapse.sampling.Sampler.order_only`). Its row ``i`` orders the candidates ``j`` as ``D[i]``
does, :math:`R_{ij} < R_{ik} \iff D_{ij} < D_{ik}` in exact arithmetic, and it is one matrix product with the
row terms folded in (``baddbmm``), without the matrix's elementwise passes (add, clamp, square root):

* ``euclidean``, ``sqeuclidean``: :math:`R_{ij} = \lVert \hat x_j\rVert^2 - 2\hat x_i^\top \hat x_j
  = D_{ij}^2 - \lVert \hat x_i\rVert^2` (the squared distance shifted by a constant per row);
* ``cosine``: :math:`R_{ij} = -\hat x_i^\top \hat x_j = D_{ij} - 1`.

The two can order a pair differently only where their values tie up to rounding (two candidates at distances
within about one unit in the last place), where either choice is as near as float arithmetic can tell.
"""

from __future__ import annotations

import torch

from collapse._buffers import kept_buffer
from collapse._fastgrad import gram, pair_distance, unit_rows, unit_rows_and_norms
from collapse._validation import check_choice

__all__ = ["DISTANCES", "CosineDistance", "Distance", "EuclideanDistance", "SquaredEuclideanDistance", "get_distance"]


class Distance:
    """Base class: ``distance(x, y=None)`` returns the pairwise distance matrix (``y=None`` means ``y = x``)."""

    name = "distance"
    #: The formula :func:`collapse._fastgrad.pair_distance` uses for :meth:`pairs`.
    pair_kind = "euclidean"

    def __init__(self, normalize: bool = True) -> None:
        self.normalize = bool(normalize)

    #: The largest value the matrix can take between unit rows (``None``: unbounded).
    unit_bound: float | None = None
    #: A bound on the magnitude of :meth:`order_matrix` between unit rows (3, resp. 1, with room for rounding).
    order_unit_bound: float | None = None

    @property
    def bound(self) -> float | None:
        """An upper bound on every entry of the matrix of finite embeddings, or ``None`` where there is none (the
        fused semi-hard selection then checks the matrix's range itself)."""
        return self.unit_bound if self.normalize else None

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *, prepared: bool = False, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The matrix; ``prepared=True`` says the inputs already went through :meth:`prepare` (no second normalising,
        so the values are bitwise those of the raw inputs). ``out``: a ``(..., B, B)`` tensor to write the matrix
        into, without autograd (a caller that computes one matrix per step can reuse one buffer)."""
        if out is not None and _tracks_grad(x, *(() if y is None else (y,))):
            raise ValueError("out= is for matrices computed without autograd; call under torch.no_grad()")
        if x.dim() < 2:
            raise ValueError(f"embeddings must have shape (..., B, d), got {tuple(x.shape)}")
        if not prepared:
            x = self._prepare(x)
            y = None if y is None else self._prepare(y)
        return self._pairwise(x, x if y is None else y, out)

    @property
    def order_bound(self) -> float | None:
        """An upper bound on the magnitude of every entry of :meth:`order_matrix` for finite embeddings, or ``None``."""
        return self.order_unit_bound if self.normalize else None

    @torch.no_grad()
    def order_matrix(self, prepared: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """A ``(..., B, B)`` matrix whose every row orders the candidates as the distance matrix's row does (see the
        module docstring), from :meth:`prepare`-d embeddings ``(..., B, d)``, without autograd. ``out``: a buffer."""
        if self._order_scale is None:
            raise NotImplementedError(f"{type(self).__name__} has no order matrix; use the distance matrix")
        if prepared.dim() < 2:
            raise ValueError(f"embeddings must have shape (..., B, d), got {tuple(prepared.shape)}")
        *lead, batch, dim = prepared.shape
        x = prepared.reshape(-1, batch, dim)
        flat_out = None if out is None else out.view(-1, batch, batch)
        if self._order_norms:
            shift = torch.mul(x, x, out=kept_buffer("order-squares", tuple(x.shape), x)).sum(-1).unsqueeze(-2)
            beta = 1.0
        else:
            shift, beta = x.new_empty(1, 1, 1), 0.0  # beta = 0: the input is not read
        # shift + scale * x x^T in one product: the row terms cost no pass over the matrix. (The scale is -1 or -2:
        # an exact multiple, so these are bitwise the entries of x (scale x)^T.)
        matrix = torch.baddbmm(shift, x, x.transpose(-1, -2), beta=beta, alpha=self._order_scale, out=flat_out)
        return matrix.view(*lead, batch, batch) if out is None else out

    def order_limit(self, radius: float, prepared: torch.Tensor) -> torch.Tensor:
        r"""``(..., B, 1)`` limits ``t`` with :math:`D_{ij} < r \iff R_{ij} < t_i` in exact arithmetic, for the
        :meth:`order_matrix` ``R`` of the same :meth:`prepare`-d embeddings ``(..., B, d)`` and a radius ``r``."""
        if self._order_scale is None:
            raise NotImplementedError(f"{type(self).__name__} has no order matrix; use the distance matrix")
        limit = self._order_value(float(radius))
        if not self._order_norms:
            return prepared.new_full((*prepared.shape[:-1], 1), limit)
        return (prepared * prepared).sum(-1, keepdim=True).neg_().add_(limit)

    def _order_value(self, radius: float) -> float:
        """The order matrix's value at distance ``radius`` before the row shift (see the module docstring)."""
        raise NotImplementedError

    @property
    def radius_search(self) -> str | None:
        """How pairs within a radius can be found without the distance matrix: ``"unit"`` (between unit rows, on
        the cosine similarity, :meth:`unit_similarity`), ``"order"`` (on :meth:`order_matrix` with
        :meth:`order_limit`) or ``None``. Only where the class that defines the matrix (``_pairwise``) also defines
        those: a subclass that changes the formula and not them gets ``None``, not a search that would miss pairs."""
        cls = type(self)
        matrix = _defined_by(cls, "_pairwise")
        if matrix is None:
            return None
        if self.normalize and _defined_by(cls, "unit_similarity") is matrix:
            return "unit"
        if self.has_order_matrix and _defined_by(cls, "_order_value") is matrix:
            return "order"
        return None

    def unit_similarity(self, radius: float) -> float:
        r"""The cosine similarity :math:`s` at which two unit rows lie at distance ``radius``: between unit rows,
        :math:`D < r \iff \hat x_i^\top \hat x_j > s` (``+inf``: no pair is closer than ``radius``)."""
        raise NotImplementedError(f"{type(self).__name__} does not define its distance through the cosine")

    @property
    def has_order_matrix(self) -> bool:
        """Whether :meth:`order_matrix` is defined (a custom distance has only its matrix)."""
        return self._order_scale is not None

    #: :meth:`order_matrix` is ``n_j + scale * x_i . x_j``, with ``n_j`` the squared norm of row ``j`` (or 0 without
    #: ``_order_norms``); ``None``: no order matrix.
    _order_scale: float | None = None
    _order_norms = False

    def pairs(
        self, x: torch.Tensor, g: torch.Tensor, i: torch.Tensor, j: torch.Tensor, *, prepared: bool = False
    ) -> torch.Tensor:
        """Entries ``D[g, i, j]`` for index vectors ``g, i, j`` into ``(G, B, d)`` embeddings ``x``.

        ``prepared=True`` says ``x`` is already :meth:`prepare`-d (normalised), so it is not normalised twice.
        """
        if x.dim() != 3:
            raise ValueError(f"embeddings must have shape (G, B, d) for pairs(), got {tuple(x.shape)}")
        x = x if prepared else self.prepare(x)
        batch = x.shape[1]
        return pair_distance(x.reshape(-1, x.shape[-1]), g * batch + i, g * batch + j, self.pair_kind)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The embeddings the distance is taken between (unit rows when ``normalize``)."""
        return self._prepare(x)

    def prepare_detached(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(prepare(x), norms)`` without autograd (the same values): the row norms (``(..., B, 1)``) when normalising,
        else ``None``. :class:`collapse.losses.base.PairDistances` takes both, to reach ``x`` in one backward node."""
        if self.normalize:
            return unit_rows_and_norms(x)
        return x.detach(), None

    def similarity(self, dist: torch.Tensor) -> torch.Tensor:
        """A similarity that decreases with the distance (used by similarity-based losses)."""
        return -dist

    def similarity_matrix(self, prepared: torch.Tensor) -> torch.Tensor:
        """``similarity(D)`` of :meth:`prepare`-d embeddings ``(..., B, d)``, with autograd."""
        return self.similarity(self(prepared, prepared=True))

    def from_similarity(self, sim: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """The distance matrix back from :meth:`similarity_matrix`'s values (no autograd; ``out``: a buffer)."""
        return torch.neg(sim, out=out)

    def order_from_similarity(
        self, sim: torch.Tensor, *, out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, float | None]:
        """``(matrix, bound)``: a matrix that orders every row as the distances do (see :meth:`order_matrix`) from
        :meth:`similarity_matrix`'s values (no autograd; ``out``: a buffer), and a bound on its entries' magnitude
        (``None``: unknown). Here the distance matrix itself; a distance whose similarity is an order matrix up to
        sign spares the pass that :meth:`from_similarity` adds."""
        return self.from_similarity(sim, out=out), self.bound

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        # F.normalize's values, with a closed-form backward (collapse._fastgrad).
        return unit_rows(x) if self.normalize else x

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize={self.normalize})"


def _defined_by(cls: type, name: str) -> type | None:
    """The class in ``cls``'s method resolution order that defines ``name`` (``Distance``'s stubs count as none)."""
    owner = next((k for k in cls.__mro__ if name in vars(k)), None)
    return None if owner is Distance else owner


def _squared(x: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    # -2 y is exact, so x @ (-2 y)^T is exactly -2 x y^T; the norms are then added in the same order on both
    # branches, so the matrix is bitwise the same with and without autograd.
    if _tracks_grad(x, y):
        # Two norm branches even when y is x: one shared branch would sum the two gradients in another order, and
        # change the results of every stored run at the last bit.
        prod = torch.matmul(x, (-2.0 * y).transpose(-1, -2))
        nx, ny = (x * x).sum(-1).unsqueeze(-1), (y * y).sum(-1).unsqueeze(-2)
        return (prod + nx + ny).clamp_min(0.0)
    # The same values, with the temporaries in kept buffers (collapse._buffers).
    twice = torch.mul(y, -2.0, out=kept_buffer("squared-2y", tuple(y.shape), y))
    prod = torch.matmul(x, twice.transpose(-1, -2), out=out)
    nx = torch.mul(x, x, out=kept_buffer("squared-xx", tuple(x.shape), x)).sum(-1).unsqueeze(-1)
    ny = nx.transpose(-1, -2) if y is x else torch.mul(y, y, out=twice).sum(-1).unsqueeze(-2)
    # Without autograd: in place, one (B, B) buffer.
    return prod.add_(nx).add_(ny).clamp_min_(0.0)


def _safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    if not _tracks_grad(sq):
        return sq.sqrt_()  # sq is the fresh output of _squared, clamped at 0
    # sqrt'(0) is infinite; at exact ties the gradient must be 0, as torch.cdist defines it.
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def _tracks_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


class EuclideanDistance(Distance):
    name = "euclidean"
    pair_kind = "euclidean"
    unit_bound = 2.0
    order_unit_bound = 4.0
    _order_scale = -2.0
    _order_norms = True

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return _safe_sqrt(_squared(x, y, out))

    def _order_value(self, radius: float) -> float:
        return radius * radius if radius > 0 else float("-inf")  # D < r <=> D^2 < r^2, for r > 0

    def unit_similarity(self, radius: float) -> float:
        return 1.0 - radius * radius / 2.0 if radius > 0 else float("inf")  # D^2 = 2 - 2 s


class SquaredEuclideanDistance(Distance):
    name = "sqeuclidean"
    pair_kind = "sqeuclidean"
    unit_bound = 4.0
    order_unit_bound = 4.0
    _order_scale = -2.0
    _order_norms = True

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return _squared(x, y, out)

    def _order_value(self, radius: float) -> float:
        return radius

    def unit_similarity(self, radius: float) -> float:
        return 1.0 - radius / 2.0  # D = 2 - 2 s


class CosineDistance(Distance):
    name = "cosine"
    pair_kind = "cosine"

    unit_bound = 2.0
    order_unit_bound = 2.0
    _order_scale = -1.0

    def __init__(self) -> None:
        super().__init__(normalize=True)

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        if out is None:
            return 1.0 - x @ y.transpose(-1, -2)
        # 1 - p is exactly (-p) + 1, so this is bitwise the matrix above.
        return torch.matmul(x, y.transpose(-1, -2), out=out).neg_().add_(1.0)

    def _order_value(self, radius: float) -> float:
        return radius - 1.0

    def unit_similarity(self, radius: float) -> float:
        return 1.0 - radius

    def similarity(self, dist: torch.Tensor) -> torch.Tensor:
        return 1.0 - dist

    def similarity_matrix(self, prepared: torch.Tensor) -> torch.Tensor:
        # U U^T itself (not 1 - (1 - U U^T)), with the one-product backward of collapse._fastgrad.gram.
        return gram(prepared)

    def from_similarity(self, sim: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        # (-P) + 1 is exactly 1 - P: bitwise the matrix this distance computes from the same embeddings.
        return torch.neg(sim, out=out).add_(1.0)

    def order_from_similarity(self, sim, *, out=None):
        # -P is the order matrix (order_matrix's -x_i.x_j, bitwise): one pass fewer than 1 - P.
        return torch.neg(sim, out=out), self.order_bound

    def __repr__(self) -> str:
        return "CosineDistance()"


DISTANCES = {"euclidean": EuclideanDistance, "sqeuclidean": SquaredEuclideanDistance, "cosine": CosineDistance}


def get_distance(distance: str | Distance) -> Distance:
    """Return a :class:`Distance` for a name in :data:`DISTANCES` (or pass an instance through)."""
    if isinstance(distance, Distance):
        return distance
    return DISTANCES[check_choice("distance", distance, DISTANCES)]()
