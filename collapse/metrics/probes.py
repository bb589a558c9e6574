r"""Sub-class (fine-label) structure inside each coarse class, measured on standardised features, train and test.

Setting: embeddings of a *fit* split (usually the training images) and of an *evaluation* split (the test images),
each with coarse labels :math:`y` (what the network was trained on; pass the clean ones) and fine labels
:math:`m` (hidden sub-classes). For every coarse class :math:`c` with two or more fine labels:

1. **Standardise.** :math:`z = (x - \mu_c) / s_c`, with the per-feature mean :math:`\mu_c` and standard deviation
   :math:`s_c` of class :math:`c`'s *fit* embeddings (features with :math:`s_c = 0` carry nothing and get
   :math:`s_c = 1`). The measures below are then invariant to any per-class shift and per-feature scale: they ask
   whether fine labels are *separable*, not how far apart they sit. Absolute scale (spread against the margin) is
   the collapse instrument's question, not this module's.
2. **Measure**, on each split, weighted over classes by their number of images:

   * ``linear_probe``: accuracy of a multinomial logistic regression of :math:`m` on :math:`z`
     (``sklearn.linear_model.LogisticRegression``, L2, ``C``), fitted on the fit split; on the fit split it is the
     training accuracy, on the evaluation split the held-out accuracy;
   * ``ncm``: nearest-class-mean accuracy, :math:`\hat m(z) = \arg\min_k \lVert z - \bar z_k \rVert` with the
     fine means :math:`\bar z_k` of the fit split;
   * ``eta2``: the share of variance between fine labels,
     :math:`\eta^2_c = \sum_k n_k \lVert \bar z_k - \bar z \rVert^2 / \sum_i \lVert z_i - \bar z \rVert^2`
     (means of the split itself; 0 when the fine means coincide, 1 when each fine label is a point);
   * ``kmeans_nmi`` / ``kmeans_ari``: k-means with as many clusters as fine labels against :math:`m`
     (:func:`collapse.metrics.submode_recovery`);
   * ``fine_r1``: fine-label precision at 1 among same-class neighbours, ties split
     (:func:`collapse.metrics.fine_precision_at_1`), with its chance ``fine_r1_chance``;
   * ``majority``: the accuracy of always predicting the most frequent fine label of the fit split (the chance
     level of ``linear_probe`` and ``ncm``).

A class-collapsed embedding, whose fine means coincide, gives ``linear_probe`` and ``ncm`` near ``majority``,
``eta2`` near 0 and ``kmeans_nmi`` near 0, whatever the scale of its spread.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from collapse._validation import check_int, check_real
from collapse.metrics.collapse_measures import fine_precision_at_1, submode_recovery
from collapse.metrics.knn import ArrayLike, as_embeddings, as_labels
from collapse.metrics.retrieval import sklearn_seed

__all__ = ["PROBE_KEYS", "eta_squared", "standardise_within", "subclass_probes"]

PROBE_KEYS = ("linear_probe", "ncm", "eta2", "kmeans_nmi", "kmeans_ari", "fine_r1", "fine_r1_chance", "majority")


def _arrays(x: ArrayLike, y: ArrayLike, m: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = as_embeddings(x, f"{name} embeddings")
    return (
        t.to(dtype=t.dtype).cpu().double().numpy(),
        as_labels(y, t.shape[0], f"{name} labels").numpy(),
        as_labels(m, t.shape[0], f"{name} fine labels").numpy(),
    )


def standardise_within(x_fit: np.ndarray, y_fit: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x`` standardised per coarse class with the mean and standard deviation of that class in ``x_fit``.

    Rows of a class absent from ``y_fit`` are standardised with their own statistics.
    """
    out = np.empty_like(x, dtype=np.float64)
    for c in np.unique(y):
        ref = x_fit[y_fit == c] if np.any(y_fit == c) else x[y == c]
        mu, sd = ref.mean(axis=0), ref.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        out[y == c] = (x[y == c] - mu) / sd
    return out


def eta_squared(x: np.ndarray, groups: np.ndarray) -> float:
    r""":math:`\eta^2 = \sum_k n_k \lVert \bar x_k - \bar x \rVert^2 / \sum_i \lVert x_i - \bar x \rVert^2` (0 when
    every row is the same point)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    total = float(((x - mean) ** 2).sum())
    if total == 0.0:
        return 0.0
    between = sum(float((groups == k).sum()) * float(((x[groups == k].mean(axis=0) - mean) ** 2).sum())
                  for k in np.unique(groups))  # fmt: skip
    return between / total


def _probe(zf: np.ndarray, mf: np.ndarray, zs: list[np.ndarray], c: float, seed: int) -> list[np.ndarray]:
    if np.unique(mf).size < 2:
        return [np.full(z.shape[0], mf[0]) for z in zs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # sklearn guesses "regression target?" when most fit rows have their own fine label (glyphs: a few designs
        # per character); these are class ids by construction, so the guess is noise in every study log.
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than", category=UserWarning)
        clf = LogisticRegression(C=c, max_iter=300, random_state=seed).fit(zf, mf)
    return [clf.predict(z) for z in zs]


def _ncm(zf: np.ndarray, mf: np.ndarray, zs: list[np.ndarray]) -> list[np.ndarray]:
    ks = np.unique(mf)
    means = np.stack([zf[mf == k].mean(axis=0) for k in ks])
    return [ks[np.argmin(((z[:, None, :] - means[None]) ** 2).sum(-1), axis=1)] for z in zs]


def subclass_probes(
    fit_embeddings: ArrayLike,
    fit_labels: ArrayLike,
    fit_fine: ArrayLike,
    eval_embeddings: ArrayLike,
    eval_labels: ArrayLike,
    eval_fine: ArrayLike,
    *,
    C: float = 1.0,
    max_fit: int | None = 5000,
    random_state: int = 0,
) -> dict[str, dict[str, float]]:
    """Every measure of the module docstring, ``{"train": {...}, "test": {...}}`` (fit split, evaluation split).

    ``max_fit`` caps the images of the fit split the probes are fitted on (a stratified-by-fine-label random
    subset, seeded by ``random_state``; the measures of the fit split are then computed on that subset too).
    """
    C = check_real("C", C, low=0.0, low_inclusive=False)
    seed = sklearn_seed(random_state)
    xf, yf, mf = _arrays(fit_embeddings, fit_labels, fit_fine, "fit")
    xe, ye, me = _arrays(eval_embeddings, eval_labels, eval_fine, "eval")
    if xf.shape[1] != xe.shape[1]:
        raise ValueError(f"fit and eval embeddings must have one dimension, got {xf.shape[1]} and {xe.shape[1]}")
    if max_fit is not None and xf.shape[0] > check_int("max_fit", max_fit, low=2):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(xf.shape[0], size=max_fit, replace=False))
        xf, yf, mf = xf[keep], yf[keep], mf[keep]
    zf, ze = standardise_within(xf, yf, xf, yf), standardise_within(xf, yf, xe, ye)
    multi = [c for c in np.unique(yf) if np.unique(mf[yf == c]).size >= 2]
    if not multi:
        raise ValueError("fine labels must give at least one coarse class 2 or more fine labels in the fit split")
    acc: dict[str, dict[str, list[float]]] = {s: {"linear_probe": [], "ncm": [], "eta2": [], "majority": []}
                                             for s in ("train", "test")}  # fmt: skip
    weights: dict[str, list[int]] = {"train": [], "test": []}
    for c in multi:
        fit_rows, ev_rows = yf == c, ye == c
        zc, mc = zf[fit_rows], mf[fit_rows]
        values, counts = np.unique(mc, return_counts=True)
        top = values[np.argmax(counts)]
        splits = {"train": (zc, mc), "test": (ze[ev_rows], me[ev_rows])}
        probe = _probe(zc, mc, [s[0] for s in splits.values()], C, seed)
        ncm = _ncm(zc, mc, [s[0] for s in splits.values()])
        for k, (name, (z, m)) in enumerate(splits.items()):
            if m.size == 0:
                continue
            acc[name]["linear_probe"].append(float(np.mean(probe[k] == m)))
            acc[name]["ncm"].append(float(np.mean(ncm[k] == m)))
            acc[name]["eta2"].append(eta_squared(z, m))
            acc[name]["majority"].append(float(np.mean(m == top)))
            weights[name].append(m.size)
    out: dict[str, dict[str, float]] = {}
    for name, (z, y, m) in {"train": (zf, yf, mf), "test": (ze, ye, me)}.items():
        row = {k: float(np.average(v, weights=weights[name])) for k, v in acc[name].items()}
        sr = submode_recovery(z, y, m, tol=0.0, random_state=seed)
        fp = fine_precision_at_1(z, y, m)
        row |= {"kmeans_nmi": sr["submode_nmi"], "kmeans_ari": sr["submode_ari"]}
        row |= {"fine_r1": fp["fine_precision_at_1"], "fine_r1_chance": fp["fine_chance"]}
        out[name] = {k: row[k] for k in PROBE_KEYS}
    return out
