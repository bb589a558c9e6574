r"""Figure (a): the seed's Figure 1 on a real 2-D simulation: where does the positive pull an anchor?

A 2-D embedding (the unit circle) of 3 classes x 3 Gaussian modes is trained as a :class:`collapse.runs.SimRun`
(MLP embedding, triplet loss with easy positives and hard negatives, no label noise; its snapshots are read from the
result store). At two moments of that training (an early snapshot and the end) we take one anchor :math:`a`
and evaluate the real triplet loss of :mod:`collapse.losses` on the whole data set as one batch, once with a
random positive and once with the easy positive (the nearest same-class sample), with all negatives:

.. math:: \ell_a = \frac{1}{|\mathcal N_a|}\sum_{n \in \mathcal N_a} [D_{ap} - D_{an} + \alpha]_+ .

Autograd splits its gradient with respect to :math:`z_a` by the chain rule into the part through :math:`D_{ap}`
(the *pull* toward the positive) and the part through the :math:`D_{an}` (the *push* from the negatives); the
arrows are :math:`-\nabla_{z_a}` of each part, on one scale in every panel. On the circle every gradient is
tangent to it. A random positive usually lies in another mode of the class and pulls the anchor across the circle
toward it; the easy positive lies in the anchor's own mode, and once that mode is tight its triplets are
inactive and nothing pulls the anchor out of it. The forces are :func:`collapse.theory.anchor_forces.anchor_forces`;
this module only draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from collapse.experiment import SimConfig, make_data
from collapse.io import write_json
from collapse.runs import DEFAULT_STORE, ResultStore, SimRun, execute
from collapse.theory.anchor_forces import anchor_forces, pick_anchor
from paper_repro.figures.common import (
    BLACK,
    GREEN,
    MARKERS,
    POSITIVE_NAMES,
    VERMILLION,
    WIDTH,
    FigureResult,
    class_palette,
    figure_style,
    local_modes,
    params_dict,
    plt,
    resolve_params,
    save_figure,
)

__all__ = ["FULL", "Params", "anchor_forces", "draw"]  # anchor_forces re-exported from collapse.theory

KEY, NAME = "a", "pull_arrows"


@dataclass(frozen=True)
class Params:
    """Simulation and display settings of figure (a)."""

    classes: int = 3
    modes: int = 3
    samples_per_mode: int = 20
    steps: int = 400
    #: Training steps at which the forces are shown (0 = the untrained network); the last must be ``steps``.
    moments: tuple[int, ...] = (10, 400)
    margin: float = 0.2
    #: Class searched first for the anchor: its first sample (data order) whose random positive, as drawn by the
    #: sampler with ``seed``, lies in another mode, and whose easy positive lies in its own mode at every moment.
    anchor_class: int = 0
    seed: int = 0
    #: The result store of the training run.
    store: str = DEFAULT_STORE


FULL = {"samples_per_mode": 30, "steps": 1000, "moments": (10, 100, 1000)}


def _config(p: Params) -> SimConfig:
    return SimConfig(classes=p.classes, modes=p.modes, dim=2, model="mlp", noise=0.0, layout="circle",
                     samples_per_mode=p.samples_per_mode, steps=p.steps, seeds=1, seed=p.seed)


def draw(out: str | Path, params: Params | None = None, *, full: bool = False, progress: bool = False) -> FigureResult:
    """Train the 2-D simulation, measure the forces on one anchor and write ``a_pull_arrows.{png,json}``."""
    p = resolve_params(Params, params, full, FULL)
    if p.moments[-1] != p.steps or any(m < 0 or m > p.steps for m in p.moments):
        raise ValueError(f"moments must lie in [0, steps={p.steps}] and end at steps, got {p.moments}")
    out = Path(out)
    cfg = _config(p)
    run = SimRun(cfg, "triplet", "easy", "hard", snapshot_steps=tuple(p.moments))
    store = ResultStore(p.store)
    ex = execute([run], store, progress=progress, desc="pull arrows")
    if not ex.ok:
        raise RuntimeError(f"the simulation of figure (a) failed: {ex.errors[0]}")
    (result,) = ex.results()
    data = make_data(cfg)
    y = torch.as_tensor(data.y)
    snaps = {m: torch.tensor(result["snapshots"][str(m)], dtype=torch.float32) for m in p.moments}
    anchor = pick_anchor([snaps[m] for m in p.moments], data.y, data.modes, anchor_class=p.anchor_class,
                         margin=p.margin, seed=p.seed)
    # How often does a random positive land in another mode? (K-1)/K of the class's samples are elsewhere.
    same = np.flatnonzero((data.y == data.y[anchor]) & (np.arange(len(data.y)) != anchor))
    other_mode_rate = float((data.modes[same] != data.modes[anchor]).mean())

    rows = []
    for m in p.moments:
        for rule in ("random", "easy"):
            f = anchor_forces(snaps[m], y, anchor, rule, margin=p.margin, seed=p.seed)
            rows.append({"step": m, "positive_rule": rule, "anchor": anchor, "positive": f["positive"],
                         "anchor_mode": int(data.modes[anchor]), "positive_mode": int(data.modes[f["positive"]]),
                         "pull": f["pull"].tolist(), "push": f["push"].tolist(),
                         "pull_norm": float(np.linalg.norm(f["pull"])), "push_norm": float(np.linalg.norm(f["push"])),
                         "anchor_loss": f["loss"], "active_fraction": f["active"]})

    colours = class_palette(data.n_classes)
    lm = local_modes(data.mode_class)
    biggest = max(max(r["pull_norm"], r["push_norm"]) for r in rows)
    scale = 0.8 / biggest if biggest > 0 else 1.0  # the longest arrow is 0.8 units on the unit circle

    def scatter(ax, emb, size):
        t = np.linspace(0, 2 * np.pi, 400)
        ax.plot(np.cos(t), np.sin(t), color="0.85", lw=0.8, zorder=0)
        for mode in range(len(data.mode_class)):
            sel = data.modes == mode
            ax.scatter(emb[sel, 0], emb[sel, 1], s=size, c=colours[data.mode_class[mode]], alpha=0.6,
                       marker=MARKERS[lm[mode] % len(MARKERS)], edgecolors="none", zorder=1)

    def arrows(ax, a, r, factor, width):
        for part, colour in (("pull", GREEN), ("push", VERMILLION)):
            vec = np.asarray(r[part]) * factor
            if np.linalg.norm(r[part]) > 1e-9:
                ax.annotate("", xy=a + vec, xytext=a, zorder=5, arrowprops={
                    "arrowstyle": "-|>", "color": colour, "lw": width * (1.0 if part == "pull" else 0.65),
                    "mutation_scale": 6 * width})

    def marks(ax, a, q, size):
        ax.scatter(*a, s=size, facecolors=colours[data.y[anchor]], edgecolors=BLACK, linewidths=2.0, zorder=4)
        ax.scatter(*q, s=size, facecolors="none", edgecolors=GREEN, linewidths=2.0, zorder=4)

    zooms = {}
    with figure_style():
        n = len(p.moments)
        fig, axes = plt.subplots(n, 2, figsize=(WIDTH * 0.72, 3.7 * n), squeeze=False)
        for i, m in enumerate(p.moments):
            emb = snaps[m].numpy()
            for j, rule in enumerate(("random", "easy")):
                ax = axes[i, j]
                r = rows[2 * i + j]
                a, q = emb[anchor], emb[r["positive"]]
                scatter(ax, emb, 16)
                ax.plot([a[0], q[0]], [a[1], q[1]], ls=":", color=GREEN, lw=1.2, zorder=2)
                marks(ax, a, q, 100)
                arrows(ax, a, r, scale, 2.6)
                where = "its own mode" if r["positive_mode"] == r["anchor_mode"] else "another mode"
                ax.set_title(f"{POSITIVE_NAMES[rule]}, step {m}: positive in {where}\n"
                             f"|pull| = {r['pull_norm']:.3f}, |push| = {r['push_norm']:.3f}, "
                             f"{r['active_fraction']:.0%} of triplets active", fontsize=8.5)
                ax.set_aspect("equal")
                ax.set_xlim(-1.3, 1.3)
                ax.set_ylim(-1.3, 1.3)
                ax.set_xlabel("embedding x")
                ax.set_ylabel("embedding y")
                if rule == "easy":
                    # The easy positive is a close neighbour: zoom in around the anchor so its pull can be seen.
                    radius = max(0.12, 1.6 * float(np.linalg.norm(q - a)))
                    ins = ax.inset_axes((0.3, 0.3, 0.4, 0.4))
                    scatter(ins, emb, 30)
                    marks(ins, a, q, 110)
                    longest = max(r["pull_norm"], r["push_norm"])
                    if longest > 1e-9:
                        factor = 0.7 * radius / longest
                        arrows(ins, a, r, factor, 2.2)
                        label = f"zoom; arrows x{factor / scale:.2g}"
                    else:
                        label = "zoom: no pull,\nno active triplet"
                    zooms[str(m)] = {"radius": radius,
                                     "arrow_magnification": factor / scale if longest > 1e-9 else None}
                    ins.set_xlim(a[0] - radius, a[0] + radius)
                    ins.set_ylim(a[1] - radius, a[1] + radius)
                    ins.set_aspect("equal")
                    ins.set_xticks([])
                    ins.set_yticks([])
                    for spine in ins.spines.values():
                        spine.set_visible(True)
                    ins.set_title(label, fontsize=7.5, pad=2)
                    ax.indicate_inset_zoom(ins, edgecolor="0.4")
        handles = [plt.Line2D([], [], ls="", marker="o", color=colours[c], label=f"class {c}")
                   for c in range(data.n_classes)]
        handles += [plt.Line2D([], [], ls="", marker=MARKERS[k], color="0.4", label=f"mode {k}")
                    for k in range(int(lm.max()) + 1)]
        handles += [
            plt.Line2D([], [], ls="", marker="o", mfc="0.7", mec=BLACK, mew=2, ms=9, label="anchor"),
            plt.Line2D([], [], ls="", marker="o", mfc="none", mec=GREEN, mew=2, ms=9, label="its positive"),
            plt.Line2D([], [], color=GREEN, lw=2.4, label="pull (through D_ap)"),
            plt.Line2D([], [], color=VERMILLION, lw=1.6, label="push (through D_an)"),
        ]
        fig.legend(handles=handles, loc="lower center", ncol=5, frameon=False)
        fig.suptitle("Where the positive pulls its anchor: minus the autograd gradient of the triplet loss")
        fig.tight_layout(rect=(0, 0.07, 1, 0.98))
        png = save_figure(fig, out / f"{KEY}_{NAME}.png")

    json_path = write_json(out / f"{KEY}_{NAME}.json", {
        "config": cfg.to_dict(), "training": {"loss": "triplet", "positive": "easy", "negative": "hard"},
        "force_loss": {"loss": "triplet", "negative": "all", "margin": p.margin, "reducer": "mean over the anchor"},
        "mode_separation_final": result["mode_separation"], "anchor": anchor,
        "other_mode_fraction_of_class": other_mode_rate, "arrow_scale": scale, "zoom": zooms, "rows": rows,
        "embeddings": {str(m): snaps[m].numpy().round(5).tolist() for m in p.moments},
        "labels": data.y.tolist(), "modes": data.modes.tolist(),
    })
    caption = (
        f"A real 2-D simulation ({p.classes} classes x {p.modes} modes, MLP embedding on the unit circle, trained "
        f"{p.steps} steps with easy positives, no label noise). One anchor (dark ring) and the positive the real "
        "sampler gives it (green ring): a random same-class sample (left) or the nearest one (right). Arrows are "
        "minus the autograd gradient of the anchor's triplet loss (margin "
        f"{p.margin}, all negatives), split into the pull through D_ap (green) and the push through D_an "
        f"(vermillion), one scale in all panels. {other_mode_rate:.0%} of the anchor's class-mates lie in another "
        "mode, so a random positive usually pulls the anchor across the circle (toward collapse); the easy "
        "positive pulls it only within its own mode, and not at all once the mode is tight. The anchor shown is the "
        "first whose random positive lies in another mode and whose mode stays distinct (see the module docstring)."
    )
    return FigureResult(KEY, NAME, png, [json_path], caption,
                        source="collapse.runs.SimRun (snapshots) + collapse.theory.anchor_forces (autograd)",
                        seed=p.seed, params=params_dict(p),
                        extra={"mode_separation_final": result["mode_separation"]})
