r"""Exact k-nearest-neighbour search in torch, chunked so that memory stays O(chunk_size * N).

Chunk size: unless given, the number of query rows per chunk is set from a memory budget (:func:`chunk_rows`):
a chunk's working memory is about ``rows * Nr * (2 * itemsize + 4)`` bytes (the distance block, its re-indexed
copy when rows are duplicated, or the integer keys of the tie pass), kept under :data:`MEMORY_BUDGET` on a CPU and
under a quarter of the free memory (at most 2 GiB) on a GPU.

Distances (on the vectors as given, no normalisation for ``"euclidean"``):

* ``"euclidean"``: :math:`d(x, y) = \lVert x - y \rVert_2`, computed as
  :math:`\sqrt{\max(0, \lVert x\rVert^2 + \lVert y\rVert^2 - 2 x^\top y)}` after subtracting the reference
  mean from both sets (translation leaves the distance unchanged and shrinks the norms, hence the
  cancellation error of the expansion).
* ``"cosine"``: :math:`d(x, y) = 1 - \hat x^\top \hat y` with :math:`\hat x = x / \max(\lVert x\rVert, 10^{-12})`,
  clamped to ``[0, 2]``; a zero vector therefore sits at distance 1 from every other vector.

Exact ties are exact: the rows are de-duplicated first, so bitwise-identical vectors are at distance
exactly 0 from each other and at bitwise-identical distances from every query. Without that, a matrix
product may round two copies of one vector differently and turn a tie into an arbitrary order. Other
distances that are equal in exact arithmetic tie only if the float computation is exact too (e.g. small
integer coordinates whose mean is a dyadic number); otherwise rounding decides their order.

Order: neighbours are sorted by ascending distance, ties broken by the lower reference index, so the
result is deterministic. With ``reference=None`` the query set is its own reference and each point's own
index is removed from its list (by index, not by distance: a duplicate of the query at distance 0 is kept),
which is what pytorch-metric-learning's ``return_results`` produces from a tie-stable search.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from collapse._validation import check_choice, check_int

__all__ = ["DISTANCES", "MEMORY_BUDGET", "chunk_rows", "iter_knn", "knn"]

DISTANCES = ("euclidean", "cosine")

#: Working memory (bytes) of one chunk on a CPU when neither ``chunk_size`` nor ``memory_budget`` is given.
MEMORY_BUDGET = 256 * 2**20
#: Largest budget on a GPU (where the default is a quarter of the free memory).
GPU_MEMORY_BUDGET = 2 * 2**30


def chunk_rows(
    n_query: int, n_ref: int, k: int, dtype: torch.dtype, device: torch.device | str, memory_budget: int | None = None
) -> int:
    """Query rows per chunk so that a chunk's working memory stays within ``memory_budget`` bytes (see the module
    docstring); at least 1 and at most ``n_query``."""
    device = torch.device(device)
    if memory_budget is None:
        if device.type == "cuda":
            memory_budget = min(GPU_MEMORY_BUDGET, torch.cuda.mem_get_info(device)[0] // 4)
        else:
            memory_budget = MEMORY_BUDGET
    itemsize = torch.empty((), dtype=dtype).element_size()
    per_row = n_ref * (2 * itemsize + 4) + 32 * (k + 1)
    return int(max(1, min(n_query, memory_budget // per_row)))

ArrayLike = torch.Tensor | np.ndarray


def knn(
    query: ArrayLike,
    reference: ArrayLike | None = None,
    k: int = 1,
    *,
    exclude_self: bool = True,
    chunk_size: int | None = None,
    distance: str = "euclidean",
    memory_budget: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours of every query row among the reference rows.

    Parameters
    ----------
    query : (Nq, d) tensor or array.
    reference : (Nr, d) tensor or array, or ``None`` to search the query set itself.
    k : number of neighbours, ``1 <= k <= Nr`` (``Nr - 1`` when the self-match is excluded).
    exclude_self : with ``reference=None``, drop each point's own index from its list. It has no effect
        when a separate reference is given (nothing there is "self"; pass ``reference=None`` instead).
    chunk_size : number of query rows handled at once; peak memory is O(chunk_size * Nr). ``None``: from
        ``memory_budget`` (:func:`chunk_rows`).
    distance : ``"euclidean"`` or ``"cosine"`` (see the module docstring).
    memory_budget : bytes of working memory per chunk when ``chunk_size`` is ``None`` (default
        :data:`MEMORY_BUDGET` on a CPU, a quarter of the free memory up to 2 GiB on a GPU).

    Returns
    -------
    distances : (Nq, k) tensor, float64 if the inputs are float64, float32 otherwise.
    indices : (Nq, k) int64 tensor into the reference rows, sorted by (distance, index).
    """
    q, r, self_search, k = _check_knn_args(query, reference, k, exclude_self, chunk_size, distance)
    chunk_size = _resolve_chunk(q, r, k, chunk_size, memory_budget)
    n_query = q.shape[0]
    dist_out = torch.empty((n_query, k), dtype=q.dtype, device=q.device)
    idx_out = torch.empty((n_query, k), dtype=torch.long, device=q.device)
    for start, stop, dist, idx in _iter_knn(q, r, k, self_search, chunk_size, distance):
        dist_out[start:stop] = dist
        idx_out[start:stop] = idx
    return dist_out, idx_out


def iter_knn(
    query: ArrayLike,
    reference: ArrayLike | None = None,
    k: int = 1,
    *,
    exclude_self: bool = True,
    chunk_size: int | None = None,
    distance: str = "euclidean",
    memory_budget: int | None = None,
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """Same search as :func:`knn`, yielded chunk by chunk as ``(start, stop, distances, indices)``.

    ``distances``/``indices`` hold rows ``start:stop`` of what :func:`knn` returns; consumers that reduce
    each chunk to per-query numbers never hold the full (Nq, k) result.
    """
    q, r, self_search, k = _check_knn_args(query, reference, k, exclude_self, chunk_size, distance)
    yield from _iter_knn(q, r, k, self_search, _resolve_chunk(q, r, k, chunk_size, memory_budget), distance)


def _resolve_chunk(
    q: torch.Tensor, r: torch.Tensor, k: int, chunk_size: int | None, memory_budget: int | None
) -> int:
    if chunk_size is not None:
        return chunk_size
    if memory_budget is not None:
        check_int("memory_budget", memory_budget, low=1)
    return chunk_rows(q.shape[0], r.shape[0], k, q.dtype, q.device, memory_budget)


def _check_knn_args(
    query: ArrayLike,
    reference: ArrayLike | None,
    k: int,
    exclude_self: bool,
    chunk_size: int | None,
    distance: str,
) -> tuple[torch.Tensor, torch.Tensor, bool, int]:
    check_choice("distance", distance, DISTANCES)
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, low=1)
    q = as_embeddings(query, "query", min_samples=1)
    if reference is None:
        r = q
        self_search = bool(exclude_self)
    else:
        r = as_embeddings(reference, "reference", min_samples=1)
        if r.shape[1] != q.shape[1]:
            raise ValueError(f"reference must have the same dimension as query ({q.shape[1]}), got {r.shape[1]}")
        if r.device != q.device:
            raise ValueError(f"reference must be on the same device as query ({q.device}), got {r.device}")
        # Mixed precisions: search in the wider one.
        dtype = torch.promote_types(q.dtype, r.dtype)
        q, r = q.to(dtype), r.to(dtype)
        self_search = False
    available = r.shape[0] - int(self_search)
    if available < 1:
        raise ValueError(
            "query must have at least 2 samples when it is its own reference and the self-match is excluded"
        )
    return q, r, self_search, check_int("k", k, low=1, high=available)


class _Engine:
    """Distances from query rows to a fixed reference set, with exact ties for duplicated vectors.

    The reference rows are de-duplicated: distances are computed to the M distinct rows ``self.cols``
    and spread back with ``ref_cols`` (the distinct row of each reference point), so copies of one vector
    get bitwise-identical distances. ``query_cols[i]`` is the column equal to query row ``i`` (-1 if none);
    that entry is set to exactly 0. Without duplicates the columns are the reference rows themselves.
    """

    def __init__(self, reference: torch.Tensor, distance: str, query: torch.Tensor | None = None) -> None:
        self.distance = distance
        if distance == "cosine":
            ref = torch.nn.functional.normalize(reference, dim=1, eps=1e-12)
            qry = None if query is None else torch.nn.functional.normalize(query, dim=1, eps=1e-12)
        else:
            center = reference.mean(dim=0, keepdim=True)
            ref = reference - center
            qry = None if query is None else query - center
        n_ref, device = ref.shape[0], ref.device
        uniq, inv = torch.unique(ref, dim=0, return_inverse=True)
        n_uniq = uniq.shape[0]
        if qry is None:
            query_uniq = inv
        else:
            # Which distinct reference row (if any) each query equals.
            joint, joint_inv = torch.unique(torch.cat([uniq, qry]), dim=0, return_inverse=True)
            lookup = torch.full((joint.shape[0],), -1, dtype=torch.long, device=device)
            lookup[joint_inv[:n_uniq]] = torch.arange(n_uniq, device=device)
            query_uniq = lookup[joint_inv[n_uniq:]]
        self.has_duplicates = n_uniq < n_ref
        if self.has_duplicates:
            self.cols, self.ref_cols, self.query_cols = uniq, inv, query_uniq
        else:
            first = torch.empty(n_uniq, dtype=torch.long, device=device)
            first[inv] = torch.arange(n_ref, device=device)
            found = query_uniq >= 0
            self.cols, self.ref_cols = ref, None
            self.query_cols = torch.where(found, first[query_uniq.clamp(min=0)], -1)
        self.cols_sq = (self.cols * self.cols).sum(dim=1)
        self.query = ref if qry is None else qry

    def block(self, start: int, stop: int, *, squared: bool = False) -> torch.Tensor:
        """Distances (stop - start, Nr) from query rows ``start:stop`` to every reference row.

        With ``squared`` the Euclidean distances are left squared (monotone, so the neighbour order is
        the same, and a full-matrix square root is saved); cosine distances ignore the flag.
        """
        q = self.query[start:stop]
        prod = q @ self.cols.T
        if self.distance == "cosine":
            d = prod.neg_().add_(1.0).clamp_(0.0, 2.0)
        else:
            d = prod.mul_(-2.0).add_(self.cols_sq).add_((q * q).sum(dim=1, keepdim=True)).clamp_(min=0.0)
            if not squared:
                d.sqrt_()
        cols = self.query_cols[start:stop]
        rows = torch.nonzero(cols >= 0).flatten()
        d[rows, cols[rows]] = 0.0
        if self.has_duplicates:
            d = d[:, self.ref_cols]
        return d

    def finish(self, d: torch.Tensor, squared: bool) -> torch.Tensor:
        """Map values from :meth:`block` to distances; ``+ 0.0`` turns a clamped ``-0.0`` into ``0.0``."""
        if squared and self.distance == "euclidean":
            d = d.sqrt()
        return d + 0.0


def _iter_knn(
    q: torch.Tensor, r: torch.Tensor, k: int, self_search: bool, chunk_size: int, distance: str
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    engine = _Engine(r, distance, None if (q is r) else q)
    n_query, n_ref = q.shape[0], r.shape[0]
    # One extra neighbour shows whether the k-th place is tied with the next one.
    kk = min(k + 1, n_ref)
    for start in range(0, n_query, chunk_size):
        stop = min(start + chunk_size, n_query)
        d = engine.block(start, stop, squared=True)
        rows = torch.arange(stop - start, device=q.device)
        if self_search:
            d[rows, rows + start] = torch.inf
        vals, sel = torch.topk(d, kk, dim=1, largest=False, sorted=True)
        sel = sel[:, :k]
        if kk > k:
            tied = torch.nonzero(vals[:, k] == vals[:, k - 1]).flatten()
            if tied.numel() > 0:
                sel[tied] = _select_tied(d[tied], k, None if not self_search else tied + start)
        # Ascending index first, then a stable sort by distance: (distance, index) order.
        sel = torch.sort(sel, dim=1).values
        dsel, order = torch.sort(d.gather(1, sel), dim=1, stable=True)
        yield start, stop, engine.finish(dsel, squared=True), sel.gather(1, order)


def _select_tied(d: torch.Tensor, k: int, self_cols: torch.Tensor | None) -> torch.Tensor:
    """Indices of the k smallest entries per row, equal values resolved in favour of the lower index.

    The k-th smallest value t splits a row into d < t (all kept), d == t (kept by lowest index) and
    d > t; one integer top-k over the key ``band * N + index`` picks exactly that set.
    """
    n_ref = d.shape[1]
    t = torch.topk(d, k, dim=1, largest=False, sorted=True).values[:, -1:]
    # int32 halves the traffic of this full-row pass; 3 * N must still fit.
    key_dtype = torch.int32 if 3 * n_ref < 2**31 else torch.int64
    key = (d > t).to(key_dtype)
    key += d >= t
    key *= n_ref
    key += torch.arange(n_ref, device=d.device, dtype=key_dtype)
    if self_cols is not None:
        key[torch.arange(d.shape[0], device=d.device), self_cols] = 3 * n_ref
    return torch.topk(key, k, dim=1, largest=False, sorted=True).indices


def as_embeddings(x: object, name: str = "embeddings", *, min_samples: int = 2) -> torch.Tensor:
    """Validate an (N, d) float array/tensor and return it as a floating torch tensor (no grad)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:
            raise TypeError(
                f"{name} must be a torch.Tensor or numpy array of shape (N, d), got {type(x).__name__}"
            ) from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{name} must be a numeric array of shape (N, d), got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (N, d), got shape {tuple(t.shape)}")
    if t.shape[0] < min_samples:
        raise ValueError(f"{name} must have at least {min_samples} samples, got {t.shape[0]}")
    if t.shape[1] < 1:
        raise ValueError(f"{name} must have at least 1 feature column, got shape {tuple(t.shape)}")
    if t.dtype != torch.float64:
        t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return t


def as_labels(y: object, n: int, name: str = "labels") -> torch.Tensor:
    """Validate a length-``n`` vector of integer labels and return it as an int64 CPU tensor."""
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have the same length as the embeddings ({n}), got {arr.shape[0]}")
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return torch.from_numpy(arr.astype(np.int64))
    if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return torch.from_numpy(arr.astype(np.int64))
    raise ValueError(f"{name} must contain integers, got dtype {arr.dtype}")
