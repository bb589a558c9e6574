"""Figures drawn from computed embeddings: one panel per (loss, positive rule), colour = class, marker = mode."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from collapse.io import atomic_path  # noqa: E402

__all__ = ["MARKERS", "class_palette", "embedding_panels", "project_2d"]

MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*", "<", ">")


def class_palette(n: int) -> list:
    """Okabe-Ito colours (colour-blind safe), cycled beyond eight classes."""
    base = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
    return [base[i % len(base)] for i in range(n)]


def project_2d(emb: np.ndarray) -> np.ndarray:
    """Embeddings in 2-D: unchanged if already 2-D, else the first two principal components."""
    if emb.shape[1] <= 2:
        return emb if emb.shape[1] == 2 else np.c_[emb, np.zeros(len(emb))]
    centred = emb - emb.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def embedding_panels(
    panels: Sequence[tuple[str, np.ndarray]],
    labels: np.ndarray,
    modes: np.ndarray,
    mode_class: np.ndarray,
    path: str,
    *,
    ncols: int = 2,
    suptitle: str = "",
) -> str:
    """Write a PNG with one scatter per ``(title, embeddings)`` panel and return its path (written atomically)."""
    n = len(panels)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.8 * nrows), squeeze=False)
    colours = class_palette(int(labels.max()) + 1)
    local_mode = np.zeros_like(mode_class)
    for c in np.unique(mode_class):
        idx = np.flatnonzero(mode_class == c)
        local_mode[idx] = np.arange(len(idx))
    for ax, (title, emb) in zip(axes.flat, panels):
        xy = project_2d(np.asarray(emb, dtype=float))
        for m in range(len(mode_class)):
            sel = modes == m
            if not sel.any():
                continue
            ax.scatter(
                xy[sel, 0], xy[sel, 1], s=28, alpha=0.75, c=colours[mode_class[m]],
                marker=MARKERS[local_mode[m] % len(MARKERS)], edgecolors="none",
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("PC 1" if emb.shape[1] > 2 else "x")
        ax.set_ylabel("PC 2" if emb.shape[1] > 2 else "y")
        ax.set_aspect("equal", adjustable="datalim")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles = [plt.Line2D([], [], ls="", marker="o", color=colours[c], label=f"class {c}") for c in range(len(colours))]
    handles += [
        plt.Line2D([], [], ls="", marker=MARKERS[k], color="grey", label=f"mode {k}")
        for k in range(int(local_mode.max()) + 1)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path
