r"""Ways to prevent class collapse on real images: EPS and its rivals, side by side, under the study's protocol.

Every method of :data:`collapse.rivals.METHODS` named in :data:`REAL_METHODS` (the same (loss, positive, negative)
and published hyper-parameters as the simulation table) trains an MLP head on the *fixed* PCA features of one
data set, as in :mod:`paper_repro.study`: coarse labels trained, fine labels hidden; the same seeds, steps, batch
(P classes x M samples) and learning-rate grid for every method; the learning rate chosen per method by the best mean
*validation* coarse MAP@R over the seeds (a split carved from the training images; the test images never choose).
Each seed's chosen head is judged on the test split by :func:`paper_repro.study.judge_embeddings` (coarse MAP@R and
R@1, the sub-class probes, the collapse instrument at :func:`collapse.experiment.instrument_margin` of the loss).

Data sets: ``glyphs`` (coarse = script, hidden fine = character; a proxy for Omniglot, not Omniglot) with the
``designs`` protocol (test = held-out font designs of seen characters, Omniglot's second split: the sub-class probes
are fitted on the fit split's characters and need them in the test split too), 6000 / 3000 images; and
``fashion-mnist-super`` (3 superclasses of the 10 fine labels), 2000 / 1000 images (:data:`SIZES`). Glyph scripts
with fewer than M fit images leave the fit split (a batch needs M of a class); the record lists them.

Label noise (:data:`NOISES`: 0 and 0.3): symmetric noise on the *fit* split's coarse labels, drawn once per seed by
:func:`paper_repro.label_noise.noisy_labels` exactly as the study draws it (same seed stream); the validation split
that chooses the learning rate and the test split that judges keep their clean labels, as in the study. The noise
rate is a field of the run, so of its key; the methods of one (data set, noise level, plan) form one block.

A method on one data set and plan is a :class:`RealMethodRun` of the run layer (:mod:`collapse.runs`); the methods
of one (data set, plan) form one block (one tensor program, one feature computation) and each is stored under its
own key. ``python -m paper_repro.sidebyside`` runs the grid through :func:`collapse.runs.execute` into the store
and prints the table built from the stored records (``--readme README.md`` rewrites the marked table there).
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from collapse.cli import OneLineParser
from collapse.runs import Kind, ResultStore, Run, execute, register_kind

__all__ = ["REAL_METHODS", "RealMethodRun", "grid", "main", "measure_real_block", "rerun_differences",
           "sidebyside_markdown"]

#: The methods compared on real images (names of :data:`collapse.rivals.METHODS`).
REAL_METHODS = ("triplet", "triplet-eps", "ephn", "supcon", "supcon-eps", "supcon-weps", "spread", "softtriple",
                "subcenter-arcface")  # fmt: skip
DATASETS = ("glyphs", "fashion-mnist-super")
#: Symmetric label-noise rates of the fit split's coarse labels (0: the clean labels themselves).
NOISES = (0.0, 0.3)
MARKERS = ("<!-- sidebyside-real:begin -->", "<!-- sidebyside-real:end -->")


@dataclass(frozen=True)
class RealMethodRun(Run):
    """One method trained on one data set's fixed PCA features under one plan (every field its result depends on)."""

    KIND = "real-method"
    #: 2: the collapse instrument's merge rule of main a469953 (half the margin or the sampling noise floor) judges
    #: each seed; the verdicts of schema-1 records (the earlier rule) no longer match, so they are recomputed.
    SCHEMA = 2
    dataset: str = "glyphs"
    method: str = "triplet"
    noise: float = 0.0
    root: str = "data"
    n_train: int = 2000
    n_test: int = 1000
    val_fraction: float = 0.2
    pca_dim: int = 64
    batch_classes: int = 3
    M: int = 18
    seeds: int = 3
    lrs: tuple[float, ...] = (1e-3, 3e-3)
    steps: int = 400
    window: int = 100
    dim: int = 64
    hidden: int = 256
    null_permutations: int = 5

    def __post_init__(self) -> None:
        from collapse._validation import check_choice, check_real
        from collapse.rivals import METHODS

        check_choice("method", self.method, METHODS)
        check_choice("dataset", self.dataset, DATASETS)
        # A plain float in the key: 0.3 and np.float64(0.3) are one run.
        object.__setattr__(self, "noise", check_real("noise", self.noise, low=0.0, high=1.0, high_inclusive=False))

    def describe(self) -> str:
        return (f"{self.method} on {self.dataset}, noise {self.noise:g} ({self.seeds} seeds, {self.steps} steps, "
                f"M {self.M})")  # fmt: skip

    def plan(self):
        """The :class:`paper_repro.study.StudyPlan` whose split and PCA features this run uses."""
        from paper_repro.study import StudyPlan

        options = (("protocol", "designs"),) if self.dataset == "glyphs" else ()
        return StudyPlan(dataset=self.dataset, root=self.root, dataset_options=options, n_train=self.n_train,
                         n_test=self.n_test, val_fraction=self.val_fraction, features=("pca",),
                         pca_dim=self.pca_dim)  # fmt: skip


def _block_key(run: RealMethodRun) -> str:
    return repr(replace(run, method="triplet"))


def measure_real_block(runs: Sequence[RealMethodRun]) -> list[dict]:
    """Train every run's method (its seeds x learning rates) as the heads of one program; return per run the chosen
    learning rate, the validation scores, and each seed's measures on the test split."""
    import torch

    from collapse.experiment import instrument_margin
    from collapse.metrics import map_at_r
    from collapse.rivals import METHODS
    from paper_repro.label_noise import noisy_labels
    from paper_repro.multiseed import train_heads
    from paper_repro.study import _split_data, build_features, converged, judge_embeddings, study_loss

    r0 = runs[0]
    t0 = time.perf_counter()
    cfg, fit, val, test = _split_data(r0.plan())
    # A class needs M images of its own in a batch: rarer classes (small glyph scripts) leave the fit split, stated.
    counts = np.bincount(fit.labels)
    dropped = [int(c) for c in np.flatnonzero((counts > 0) & (counts < r0.M))]
    if dropped:
        fit = fit.subset(np.flatnonzero(~np.isin(fit.labels, dropped)))
    ff, fv, ft = build_features(r0.plan(), cfg, fit, val, test, progress=False)["pca"]
    C = int(fit.labels.max()) + 1
    heads = [(i, s, lr) for i in range(len(runs)) for s in range(r0.seeds) for lr in r0.lrs]
    # The fit labels each head trains on: the study's noisy draw per seed (a pure function of labels and seed), the
    # clean labels themselves at rate 0. Validation and test labels stay clean.
    train_labels = {s: noisy_labels(fit.labels, fit.fine_labels, r0.noise, seed=s) if r0.noise else fit.labels
                    for s in range(r0.seeds)}  # fmt: skip
    losses = []
    for i, s, _lr in heads:
        m = METHODS[runs[i].method]
        losses.append(study_loss(m.loss, m.positive, m.negative, seed=s, num_classes=C, dim=r0.dim))
    fv_t = torch.as_tensor(fv)

    def on_window(step, net):
        with torch.no_grad():
            emb = net(fv_t).numpy()
        return [{"val_coarse_map_at_r": map_at_r(e, val.labels)} for e in emb]

    res = train_heads(torch.as_tensor(ff), [train_labels[h[1]] for h in heads], losses=losses,
                      lrs=[h[2] for h in heads],
                      seeds=[h[1] for h in heads], batch_classes=min(r0.batch_classes, int(np.unique(fit.labels).size)),
                      samples_per_class=r0.M, steps=r0.steps, dim=r0.dim, hidden=r0.hidden, window=r0.window,
                      on_window=on_window, own_streams=True, progress=False)  # fmt: skip
    with torch.no_grad():
        e_fit, e_test = res["net"](torch.as_tensor(ff)).numpy(), res["net"](torch.as_tensor(ft)).numpy()
    seconds = time.perf_counter() - t0
    out = []
    for i in range(len(runs)):
        val_by_lr = {lr: float(np.mean([res["curves"][g][-1]["val_coarse_map_at_r"] for g, h in enumerate(heads)
                                        if h[0] == i and h[2] == lr])) for lr in r0.lrs}  # fmt: skip
        best = max(r0.lrs, key=lambda lr: val_by_lr[lr])
        per_seed = []
        for g, (j, s, lr) in enumerate(heads):
            if j != i or lr != best:
                continue
            curve = res["curves"][g]
            jd = judge_embeddings(e_fit[g], fit.labels, fit.fine_labels, e_test[g], test.labels, test.fine_labels,
                                  margin=instrument_margin(losses[g]), loss=curve[-1]["train_loss"],
                                  null_permutations=r0.null_permutations, random_state=s)  # fmt: skip
            per_seed.append({"seed": s, "final_train_loss": curve[-1]["train_loss"],
                             "converged": converged(curve, 0.02), **jd})  # fmt: skip
        out.append({"lr": best, "val_coarse_map_at_r_by_lr": {f"{k:g}": v for k, v in val_by_lr.items()},
                    "margin": instrument_margin(losses[heads.index((i, 0, best))]), "per_seed": per_seed,
                    "n_fit": len(fit), "n_val": len(val), "n_test": len(test),
                    "classes_fit": int(np.unique(fit.labels).size),
                    "classes_test": int(np.unique(test.labels).size), "classes_dropped_from_fit": dropped,
                    "block_seconds": seconds})  # fmt: skip
    return out


register_kind(Kind("real-method", RealMethodRun, measure_real_block, block_key=_block_key))


#: (train images incl. validation, test images) per data set: glyphs have 1,202 characters, so more images.
SIZES = {"glyphs": (6000, 3000), "fashion-mnist-super": (2000, 1000)}


def grid(datasets: Sequence[str] = DATASETS, methods: Sequence[str] = REAL_METHODS, noises: Sequence[float] = NOISES,
         **plan) -> list[RealMethodRun]:  # fmt: skip
    """Every (data set, noise level, method) of the side by side with the plan's fields (:class:`RealMethodRun`),
    the data set's :data:`SIZES` unless ``n_train`` / ``n_test`` are given."""
    return [RealMethodRun(dataset=d, method=m, noise=float(e),
                          **({"n_train": SIZES[d][0], "n_test": SIZES[d][1]} | plan))
            for d in datasets for e in noises for m in methods]  # fmt: skip


def _mean(per_seed: list[dict], key: str) -> tuple[float, float]:
    v = np.array([float(r[key]) for r in per_seed], dtype=float)
    return float(np.nanmean(v)), float(np.nanstd(v))


def method_summary(result: dict) -> dict:
    """Means and standard deviations over seeds of the table's measures, and the per-seed verdict counts."""
    ps = result["per_seed"]
    out = {k: _mean(ps, k) for k in ("coarse_map_at_r", "coarse_r1", "test_linear_probe", "test_ncm", "test_eta2",
                                     "test_fine_r1", "test_majority")}  # fmt: skip
    counts: dict[str, int] = {}
    for r in ps:
        v = str(r.get("verdict", "n/a")).split(" ")[0]  # collapse.metrics.Verdict.short without the merge count
        counts[v] = counts.get(v, 0) + 1
    out["verdicts"] = ", ".join(f"{k} {c}/{len(ps)}" for k, c in sorted(counts.items(), key=lambda kv: -kv[1]))
    out["merged_fraction"] = _mean(ps, "instrument_merged_fraction")
    return out


def command_of(run: RealMethodRun, store: str | None = None) -> str:
    """The command that recomputes (or, from the store, reprints) one run's record: same fields, same key, and the
    same result store (``store``, named when it is not the default one)."""
    from collapse.runs import DEFAULT_STORE

    return (f"python -m paper_repro.sidebyside --datasets {run.dataset} --methods {run.method} --noise {run.noise:g}"
            + (f" --steps {run.steps}" if run.steps != RealMethodRun.steps else "")
            + (f" --root {shlex.quote(run.root)}" if run.root != RealMethodRun.root else "")
            + (f" --store {shlex.quote(str(store))}" if store is not None and str(store) != str(DEFAULT_STORE)
               else ""))  # fmt: skip


def sidebyside_markdown(
    runs: Sequence[RealMethodRun], results: Sequence[dict | None], store: str | None = None
) -> str:
    """The real-image side-by-side table from stored results (mean ± std over seeds of each seed's test measures);
    a run whose result is ``None`` (not in the store) gets a row saying so, with the command that computes it
    (into ``store``, see :func:`command_of`)."""
    r0 = runs[0]
    lines = [f"MLP head on fixed {r0.pca_dim}-d PCA features (`paper_repro.study` protocol); {r0.seeds} seeds, "
             f"{r0.steps} steps, batches of {r0.batch_classes} classes x {r0.M}, lr in {list(r0.lrs)} chosen per "
             f"method on validation coarse MAP@R; train (incl. {r0.val_fraction:.0%} validation) / test images: "
             + ", ".join(f"{d} {a} / {b}" for d, (a, b) in SIZES.items()) + ". Glyphs (coarse = script, fine = "
             "character): test = held-out designs of seen characters; a proxy for Omniglot, not Omniglot. "
             "Cells: mean ± std over seeds; probe = linear probe accuracy of the hidden fine label within a class "
             "(test; majority baseline in brackets); eta2 = fine-label share of within-class variance; merged "
             "fraction = the instrument's merges (fine labels not distinct from a sibling) over the merges "
             "possible. Noise ε: symmetric label noise on the fit split's coarse labels (validation and test "
             "labels clean).", "",
             "| data set | ε | method | verdicts (instrument, per seed) | merged fraction | coarse MAP@R | "
             "coarse R@1 | fine probe (majority) | eta2 | fine R@1 | lr | command |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for run, res in zip(runs, results):
        if res is None:
            lines.append(f"| {run.dataset} | {run.noise:g} | {run.method} | not computed (no record in the store) |"
                         f" | | | | | | | `{command_of(run, store)}` |")  # fmt: skip
            continue
        s = method_summary(res)

        def f(k, s=s):
            return f"{s[k][0]:.3f} ± {s[k][1]:.3f}"

        lines.append(f"| {run.dataset} | {run.noise:g} | {run.method} | {s['verdicts']} | {f('merged_fraction')} | "
                     f"{f('coarse_map_at_r')} | {f('coarse_r1')} | {f('test_linear_probe')} "
                     f"({s['test_majority'][0]:.2f}) | {f('test_eta2')} | {f('test_fine_r1')} | {res['lr']:g} | "
                     f"`{command_of(run, store)}` |")  # fmt: skip
    return "\n".join(lines) + "\n"


#: The per-seed measures a rerun is compared on (every number of the table).
RERUN_MEASURES = ("coarse_map_at_r", "coarse_r1", "test_linear_probe", "test_eta2", "test_fine_r1",
                  "instrument_merged_fraction", "final_train_loss")  # fmt: skip


def rerun_differences(runs: Sequence[RealMethodRun], first: Sequence[dict], rerun: Sequence[dict]) -> list[dict]:
    """Per run: whether the rerun's record equals the first (everything but the block's wall time), whether the
    per-seed verdicts and chosen learning rate agree, and per measure of :data:`RERUN_MEASURES` the largest
    per-seed absolute difference next to the first record's standard deviation over seeds."""
    out = []
    for run, a, b in zip(runs, first, rerun):
        same = {k: v for k, v in a.items() if k != "block_seconds"} == {k: v for k, v in b.items()
                                                                          if k != "block_seconds"}  # fmt: skip
        row = {"run": run.describe(), "command": command_of(run), "bitwise": same, "lr_same": a["lr"] == b["lr"],
               "verdicts_same": [r["verdict"] for r in a["per_seed"]] == [r["verdict"] for r in b["per_seed"]]}
        for key in RERUN_MEASURES:
            x = np.array([float(r[key]) for r in a["per_seed"]])
            y = np.array([float(r[key]) for r in b["per_seed"]])
            row[key] = {"max_abs_diff": float(np.nanmax(np.abs(x - y))), "seed_std": float(np.nanstd(x))}
        out.append(row)
    return out


def _rerun_text(rows: Sequence[dict]) -> str:
    lines = []
    for r in rows:
        worst = max(RERUN_MEASURES, key=lambda k: r[k]["max_abs_diff"])
        lines.append(f"{r['run']}: " + ("bitwise equal" if r["bitwise"] else
                     f"largest difference {r[worst]['max_abs_diff']:.3g} ({worst}; seed std "
                     f"{r[worst]['seed_std']:.3g}), lr {'same' if r['lr_same'] else 'DIFFERENT'}, verdicts "
                     f"{'same' if r['verdicts_same'] else 'DIFFERENT'}"))  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from collapse.runs import DEFAULT_STORE
    from collapse.runs.outputs import check_marked_file

    p = OneLineParser(prog="python -m paper_repro.sidebyside", description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {', '.join(DATASETS)}")
    p.add_argument("--methods", default=",".join(REAL_METHODS), help="comma-separated methods of collapse.rivals")
    p.add_argument("--noise", default=",".join(f"{e:g}" for e in NOISES),
                   help="comma-separated symmetric label-noise rates of the fit labels, in [0, 1)")
    p.add_argument("--steps", type=int, default=RealMethodRun.steps, help="training steps of every head")
    p.add_argument("--root", default="data", help="folder holding the data sets")
    p.add_argument("--store", default=str(DEFAULT_STORE), help="result store folder")
    p.add_argument("--backend", default="inline", help="inline, processes or dask")
    p.add_argument("--readme", default=None, help="rewrite the marked side-by-side table in this file")
    p.add_argument("--from-store", action="store_true", help="compute nothing: the table from the records already "
                   "in the store, runs without one marked 'not computed'")  # fmt: skip
    p.add_argument("--against", default=None, help="another result store holding the same runs: print how this "
                   "store's records differ from its records (a rerun's reproducibility)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        from collapse.cli import parse_list

        noises = parse_list("--noise", args.noise, convert=float, what="rates")
        runs = grid(args.datasets.split(","), args.methods.split(","), noises, steps=args.steps, root=args.root)
        store = ResultStore(args.store)
        # The records to compare a rerun with must exist before anything is computed.
        first = ResultStore(args.against).results(runs) if args.against else None
        if args.from_store:
            text = sidebyside_markdown(runs, [store.result(r) for r in runs], args.store)
        else:
            execution = execute(runs, store, backend=args.backend, progress=not args.no_progress)
            if not execution.ok:
                raise ValueError("some blocks failed; see the store's records")
            text = sidebyside_markdown(runs, store.results(runs), args.store)
        if first is not None:
            rerun = _rerun_text(rerun_differences(runs, first, store.results(runs)))
            print(f"Rerun in {store.root} against the records in {args.against}:\n{rerun}\n")
        if args.readme:
            path = check_marked_file(args.readme, MARKERS)
            doc = path.read_text()
            a, b = doc.index(MARKERS[0]) + len(MARKERS[0]), doc.index(MARKERS[1])
            from collapse.io import write_text

            write_text(path, doc[:a] + "\n" + text + doc[b:])
    except (ValueError, OSError, KeyError) as exc:
        print(f"python -m paper_repro.sidebyside: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
