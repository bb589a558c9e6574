r"""Real-image experiments. ``python -m paper_repro.experiments collapse`` runs the class-collapse study.

Class-collapse study (claims C4, C7 of ``/work/shared/notes/claims.md``). Two data sets whose classes are unions of
visually distinct sub-classes, trained on the *coarse* labels only, the fine label kept as hidden ground truth:

* ``fashion-mnist-super``: tops {T-shirt, Pullover, Coat, Shirt}, footwear {Sandal, Sneaker, Ankle boot},
  other {Trouser, Dress, Bag};
* ``mnist-groups``: round {0, 6, 8, 9}, straight {1, 4, 7}, other {2, 3, 5}.

Each with the losses triplet, margin and multi-similarity, each once with random positives and once with easy
positives (EPS); the negative rule is the same for both positive rules: semi-hard for triplet, the loss's
published default for the others (distance-weighted for margin, all negatives for multi-similarity). Each cell
is trained with several seeds. If random positives collapse the coarse classes, the embedding forgets the
sub-classes: *fine Recall@1 within coarse* (is the nearest image of the same coarse class also of the same fine
class) falls towards its chance level, while coarse Recall@1 may stay high.

Zero-shot study (claim C8 in miniature): MNIST digits 0-4 train, unseen digits 5-9 test (labels = digits),
triplet loss with semi-hard negatives, random vs easy positives.

Label-noise study (``python -m paper_repro.experiments noisy``): the theory (``docs/theory.md``) says that class
collapse under random positives needs label noise: mislabelled images keep triplets active and pull the modes of a
class together, while easy positives keep them apart. So the same study, but the coarse *training* labels are
corrupted once per seed (``--label-noise``, default 0.3 symmetric; :mod:`paper_repro.label_noise`), the test labels
clean, trained longer (1200 steps, evaluated at 600 too, the clean study's length) so that collapse can develop, on
Fashion-MNIST superclasses by default. The rate 0.3 was chosen by a one-seed pilot over 0.1, 0.2, 0.3 (triplet): the
level where random positives lost the most fine structure relative to the clean study. With easy
positives the semi-hard negatives (farther than the positive) are nearly the hardest ones, so triplet runs both with
semi-hard negatives and with all negatives (:data:`NOISY_NEGATIVES`), a rule that does not depend on the positive.
Its rows have ``study`` = ``collapse-noise0.3`` (``collapse-noise0.3-pair_flip`` for other noise kinds).

Every run is a :class:`paper_repro.train_run.TrainRun` of the run layer (:mod:`collapse.runs`): trained by the
executor in its own directory under ``--out-dir`` and recorded in the result store (``--store``); finished runs are
skipped and interrupted ones resumed, so the command can be re-run at will. Each study's results table (mean +- std
over seeds of coarse Recall@1, fine Recall@1 within coarse, NMI, MAP@R, sub-mode NMI, and the paired easy - random
difference) is built from the records and written to ``<out-dir>/<study>_table_<hash>.{csv,json,md}``, ``<hash>``
naming the planned runs. ``--table-only`` trains nothing: it records run folders that already finished and rebuilds
the table. This command never writes ``figures/``: the full studies (>= 3 seeds, default settings) of an
``--out-dir`` are gathered into ``figures/paper_repro_table.{md,json}`` by ``python -m paper_repro.figures --only h``
(:func:`write_figure`), which ``python -m collapse.claims`` reads.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from collapse._validation import check_int, check_real
from collapse.cli import OneLineParser, parse_list
from collapse.data import NOISE_MODELS
from collapse.io import write_csv, write_json, write_text
from collapse.losses import default_negative
from collapse.runs import DEFAULT_STORE, ResultStore, check_writable_dir, execute, hashed_stem
from paper_repro.config import TrainConfig
from paper_repro.train_run import ReferenceRun, TrainRun, record_finished

__all__ = [
    "COLLAPSE_DATASETS",
    "COLLAPSE_LOSSES",
    "FULL",
    "NOISY",
    "NOISY_NEGATIVES",
    "QUICK",
    "Planned",
    "Settings",
    "collect",
    "main",
    "plan_collapse",
    "run_plan",
    "summarise",
    "write_figure",
    "write_tables",
]

COLLAPSE_DATASETS = ("fashion-mnist-super", "mnist-groups")
#: loss -> negative rule used with *both* positive rules (None = the loss's published default).
COLLAPSE_LOSSES: dict[str, str | None] = {"triplet": "semihard", "margin": None, "multisimilarity": None}
#: The label-noise study's negative rules per loss. With easy positives, semi-hard negatives (farther than the
#: positive) become nearly the hardest ones, so triplet also runs with all negatives, a rule that does not depend
#: on the positive: the random vs easy comparison is then about the positives alone.
NOISY_NEGATIVES: dict[str, tuple[str | None, ...]] = {
    "triplet": ("semihard", "all"),
    "margin": (None,),
    "multisimilarity": (None,),
}
NOISY_DATASETS = ("fashion-mnist-super",)
POSITIVES = ("random", "easy")
ZERO_SHOT = {"dataset": "mnist", "loss": "triplet", "negative": "semihard"}
METRICS = ("recall_at_1", "fine_recall_at_1_within_coarse", "fine_chance", "nmi", "map_at_r", "submode_nmi")
#: File names of the gathered table that ``python -m paper_repro.figures --only h`` writes into its ``--out``.
TABLE_MD = "paper_repro_table.md"
TABLE_JSON = "paper_repro_table.json"


@dataclass(frozen=True)
class Settings:
    """Training size of every run of a study (chosen for the 2-core CPU budget, see the README), and the noise
    on its coarse training labels (:mod:`paper_repro.label_noise`; 0 for the clean study)."""

    steps: int = 600
    batch_classes: int = 3
    samples_per_class: int = 12
    train_samples: int | None = None
    eval_samples: int | None = 3000
    lr: float = 1e-3
    dim: int = 128
    label_noise: float = 0.0
    noise_kind: str = "symmetric"
    #: Evaluate every this many steps as well as at the end (None: at the end only); the final row is the table's.
    eval_every: int | None = None

    @property
    def study(self) -> str:
        """``collapse`` without noise, e.g. ``collapse-noise0.2`` (``-pair_flip`` etc. appended for other kinds)."""
        if not self.label_noise:
            return "collapse"
        kind = "" if self.noise_kind == "symmetric" else f"-{self.noise_kind}"
        return f"collapse-noise{self.label_noise:g}{kind}"


FULL = Settings()
QUICK = Settings(steps=40, samples_per_class=8, train_samples=2000, eval_samples=600)
#: The label-noise study: longer training, so that collapse has time to develop (see the module docstring).
NOISY = Settings(steps=1200, label_noise=0.3, eval_every=600)


@dataclass(frozen=True)
class Planned:
    """One run of a study: its table cell (study, dataset, loss, positive, negative actually used) and config."""

    study: str
    dataset: str
    loss: str
    positive: str
    negative: str
    seed: int
    config: TrainConfig

    @property
    def cell(self) -> tuple[str, str, str, str, str]:
        return (self.study, self.dataset, self.loss, self.negative, self.positive)


def plan_collapse(
    settings: Settings = FULL,
    seeds: int = 3,
    *,
    out_dir: str | Path = "results/paper_repro",
    root: str = "data",
    datasets: Sequence[str] = COLLAPSE_DATASETS,
    losses: Sequence[str] = tuple(COLLAPSE_LOSSES),
    zero_shot: bool = True,
    negatives: dict[str, Sequence[str | None]] | None = None,
) -> list[Planned]:
    """Every run of the class-collapse study (and the zero-shot comparison), seeds innermost-but-one so that the
    random/easy pair of a seed finishes together and a partial table is already balanced.

    The study is ``settings.study`` (``collapse``, or ``collapse-noise0.2`` with label noise), its runs under
    ``<out_dir>/<study>/<dataset>/``. ``negatives`` maps a loss to the negative rules it runs with (each with
    both positive rules; None = the loss's default); default :data:`COLLAPSE_LOSSES`, one rule per loss. A run
    with the loss's rule of :data:`COLLAPSE_LOSSES` is named ``<loss>-<positive>-seed<s>``, one with another rule
    ``<loss>-<negative>-<positive>-seed<s>``.
    """
    seeds = check_int("seeds", seeds, low=1)
    out_dir = Path(out_dir)
    base = {k: v for k, v in asdict(settings).items() if k != "eval_every"}
    base |= {"root": root, "eval_every": min(settings.eval_every or settings.steps, settings.steps)}
    study = settings.study
    negatives = negatives if negatives is not None else {k: (v,) for k, v in COLLAPSE_LOSSES.items()}
    runs: list[Planned] = []
    for seed in range(seeds):
        for dataset in datasets:
            for loss in losses:
                if loss not in COLLAPSE_LOSSES or loss not in negatives:
                    allowed = [x for x in COLLAPSE_LOSSES if x in negatives]
                    raise ValueError(f"loss must be one of {', '.join(allowed)}; got {loss!r}")
                for neg in negatives[loss]:
                    used = neg or default_negative(loss)
                    tag = "" if neg == COLLAPSE_LOSSES[loss] else f"-{used}"
                    for pos in POSITIVES:
                        out = out_dir / study / dataset / f"{loss}{tag}-{pos}-seed{seed}"
                        cfg = TrainConfig(out=str(out), dataset=dataset, loss=loss, positive=pos, negative=neg,
                                          seed=seed, **base)  # fmt: skip
                        runs.append(Planned(study, dataset, loss, pos, used, seed, cfg))
        if zero_shot:
            z, zs_study = ZERO_SHOT, "zero-shot" + study.removeprefix("collapse")  # zero-shot-noise0.2 with noise
            for pos in POSITIVES:
                out = out_dir / zs_study / z["dataset"] / f"{z['loss']}-{pos}-seed{seed}"
                cfg = TrainConfig(out=str(out), dataset=z["dataset"], zero_shot=True, loss=z["loss"], positive=pos,
                                  negative=z["negative"], seed=seed, **base)  # fmt: skip
                runs.append(Planned(zs_study, z["dataset"], z["loss"], pos, z["negative"], seed, cfg))
    return runs


def reference_rows(runs: Sequence[Planned], store: ResultStore, *, compute: bool = True) -> list[dict]:
    """Untrained baselines on the same test images as the runs: raw pixels, and the network at initialisation.

    They show how much sub-class structure is there before any metric learning, i.e. what training kept or lost.
    One :class:`~paper_repro.train_run.ReferenceRun` per (study, data set), computed into the store (no training,
    seconds) when ``compute`` and read from its records.
    """
    firsts: dict[tuple[str, str], Planned] = {}
    for r in runs:
        firsts.setdefault((r.study, r.dataset), r)
    refs = {key: ReferenceRun(r.config) for key, r in firsts.items()}
    if compute:
        ex = execute(list(refs.values()), store, desc="references", progress=False)
        for e in ex.errors:
            print(f"no reference rows: {e}", file=sys.stderr)
    rows = []
    for (study, dataset), ref in refs.items():
        saved = store.result(ref)
        if saved is None:
            continue
        for name, metrics in saved.items():
            rows.append({"study": study, "dataset": dataset, "loss": f"({name})", "negative": "-",
                         "positive": "-", "label_noise": None, "seed": 0, "seconds": 0.0}
                        | {m: metrics.get(m, float("nan")) for m in METRICS})  # fmt: skip
    return rows


def train_runs(runs: Sequence[Planned], threads: int = 1) -> list[TrainRun]:
    """The run-layer runs of a plan (same order)."""
    return [TrainRun(r.config, threads=threads) for r in runs]


def run_plan(runs: Sequence[Planned], store: ResultStore | str, *, jobs: int = 1, threads: int = 1) -> list[str]:
    """Train every run without a finished record, ``jobs`` at a time (each with ``threads`` torch threads), through
    the executor; run folders that already finished are recorded without training. Returns the errors."""
    store = (store if isinstance(store, ResultStore) else ResultStore(store)).prepare()
    todo = train_runs(runs, threads)
    record_finished(todo, store)
    ex = execute(todo, store, backend="inline" if jobs == 1 else "processes", workers=jobs, desc="runs")
    print(f"{ex.skipped} of {len(todo)} runs already finished; trained {ex.computed}", file=sys.stderr)
    return ex.errors


def collect(runs: Sequence[Planned], store: ResultStore | str) -> tuple[list[dict], int]:
    """One row per run with a finished record (cell, seed and final metrics) and the number of planned runs
    without one."""
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    rows, missing = [], 0
    for r, tr in zip(runs, train_runs(runs)):
        saved = store.result(tr)
        if saved is None:
            missing += 1
            continue
        final = saved["final"]
        rows.append({"study": r.study, "dataset": r.dataset, "loss": r.loss, "negative": r.negative,
                     "positive": r.positive, "label_noise": r.config.label_noise, "seed": r.seed,
                     "seconds": saved["seconds"]}
                    | {m: final.get(m, float("nan")) for m in METRICS})  # fmt: skip
    return rows, missing


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(np.mean(v)), float(np.std(v, ddof=1)) if v.size > 1 else float("nan")


def summarise(rows: Sequence[dict]) -> list[dict]:
    """Mean and sample std over seeds of every metric per cell, plus the paired easy - random difference of
    fine Recall@1 within coarse (over the seeds that have both) and the number of seeds where easy is higher."""
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        cells[(row["study"], row["dataset"], row["loss"], row["negative"], row["positive"])].append(row)
    out = []
    order = {"random": 0, "easy": 1}
    # Within a data set: the untrained references first, then each loss with random before easy positives.
    for key in sorted(cells, key=lambda k: (k[0], k[1], k[4] != "-", k[2], k[3], order.get(k[4], 2))):
        group = cells[key]
        entry = dict(zip(("study", "dataset", "loss", "negative", "positive"), key))
        entry |= {"label_noise": group[0].get("label_noise"), "seeds": len(group)}
        for m in METRICS:
            entry[f"{m}_mean"], entry[f"{m}_std"] = _mean_std([g[m] for g in group])
        if key[4] == "easy":
            rnd = {g["seed"]: g for g in cells.get((*key[:4], "random"), [])}
            metric = "fine_recall_at_1_within_coarse" if key[0].startswith("collapse") else "recall_at_1"
            diffs = [g[metric] - rnd[g["seed"]][metric] for g in group if g["seed"] in rnd]
            if diffs:
                entry["easy_minus_random_metric"] = metric
                entry["easy_minus_random_mean"], entry["easy_minus_random_std"] = _mean_std(diffs)
                entry["easy_better_seeds"] = f"{sum(d > 0 for d in diffs)}/{len(diffs)}"
        out.append(entry)
    return out


def _pm(entry: dict, metric: str) -> str:
    mean, std = entry[f"{metric}_mean"], entry[f"{metric}_std"]
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def _settings_line(settings: Settings) -> str:
    if settings.label_noise:
        labels = (f"trained on the coarse labels with {settings.label_noise:.0%} {settings.noise_kind} label noise "
                  "(each training label drawn once per seed, the test labels clean)")  # fmt: skip
    else:
        labels = "trained on the coarse labels"
    return (
        f"Each run: small_cnn (width 32), embedding dim {settings.dim}, Adam lr {settings.lr}, {settings.steps} steps, "
        f"batches of {settings.batch_classes} classes x {settings.samples_per_class} images, {labels}; "
        f"scored on {settings.eval_samples or 'all'} test images (stratified, the same for every run). "
        "Mean ± std over seeds."
    )


def markdown(summary: Sequence[dict], settings: Settings, command: str, missing: int, *, level: int = 1) -> str:
    """The table of one study: a title at heading ``level``, how to regenerate it, the settings, its sections."""
    h1, h2 = "#" * level, "#" * (level + 1)
    study = settings.study
    if settings.label_noise:
        title = (f"Class collapse on real images with {settings.label_noise:.0%} {settings.noise_kind} label noise: "
                 "random vs easy positives")  # fmt: skip
        section = (f"Class-collapse study (trained on noisy coarse labels, ε = {settings.label_noise:g}; "
                   "fine labels hidden; test labels clean)")  # fmt: skip
    else:
        title = "Class collapse on real images: random vs easy positives"
        section = "Class-collapse study (trained on coarse labels; fine labels hidden)"
    lines = [
        f"{h1} {title}",
        "",
        f"Regenerate: `{command}` (add `--table-only` to rebuild this table from the saved runs without training).",
        _settings_line(settings),
        "",
        f"{h2} {section}",
        "",
        "| dataset | loss | negatives | positives | seeds | coarse R@1 | fine R@1 within coarse (chance) | "
        "NMI | MAP@R | sub-mode NMI | easy − random, fine R@1 (easy better) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in (e for e in summary if e["study"] == study):
        diff = (f"{e['easy_minus_random_mean']:+.3f} ± {e['easy_minus_random_std']:.3f} ({e['easy_better_seeds']})"
                if "easy_minus_random_mean" in e else "")  # fmt: skip
        lines.append(
            f"| {e['dataset']} | {e['loss']} | {e['negative']} | {e['positive']} | {e['seeds']} | "
            f"{_pm(e, 'recall_at_1')} | {_pm(e, 'fine_recall_at_1_within_coarse')} "
            f"({e['fine_chance_mean']:.3f}) | {_pm(e, 'nmi')} | {_pm(e, 'map_at_r')} | {_pm(e, 'submode_nmi')} | "
            f"{diff} |"
        )
    zs = [e for e in summary if e["study"] == "zero-shot" + study.removeprefix("collapse")]
    if zs:
        lines += [
            "",
            f"{h2} Zero-shot retrieval (train on digits 0-4, test on unseen digits 5-9)",
            "",
            "| dataset | loss | negatives | positives | seeds | R@1 | NMI | MAP@R | easy − random, R@1 (easy better) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in zs:
            diff = (f"{e['easy_minus_random_mean']:+.3f} ± {e['easy_minus_random_std']:.3f} "
                    f"({e['easy_better_seeds']})" if "easy_minus_random_mean" in e else "")  # fmt: skip
            lines.append(
                f"| {e['dataset']} | {e['loss']} | {e['negative']} | {e['positive']} | {e['seeds']} | "
                f"{_pm(e, 'recall_at_1')} | {_pm(e, 'nmi')} | {_pm(e, 'map_at_r')} | {diff} |"
            )
    if missing:
        lines += ["", f"**{missing} planned run(s) have not finished; the table covers the finished ones only.**"]
    return "\n".join(lines) + "\n"


def write_tables(
    rows: Sequence[dict], settings: Settings, out_dir: Path, command: str, missing: int, *, in_figure: bool = False,
    keys: Sequence[str] = (),
) -> str:
    """Write ``<out_dir>/<study>_table_<hash>.{csv,json,md}`` and ``<study>_runs_<hash>.csv`` for the study of
    ``settings``, ``<hash>`` naming the planned runs ``keys`` (so another plan never replaces them); return the
    markdown. ``in_figure`` marks the table as a full study, to be gathered by :func:`write_figure`."""
    summary = summarise(rows)
    md = markdown(summary, settings, command, missing)
    study = settings.study
    tag = hashed_stem("", keys or [json.dumps(asdict(settings), sort_keys=True)])
    write_csv(out_dir / f"{study}_table{tag}.csv", summary)
    write_json(out_dir / f"{study}_table{tag}.json", {"settings": asdict(settings), "command": command,
                                                      "missing": missing, "summary": summary, "runs": list(rows),
                                                      "study": study, "in_figure": in_figure,
                                                      "keys": list(keys)})  # fmt: skip
    write_csv(out_dir / f"{study}_runs{tag}.csv", rows)
    write_text(out_dir / f"{study}_table{tag}.md", md)
    return md


def _study_order(table: dict) -> tuple:
    s = table["settings"]
    return (s.get("label_noise", 0.0) > 0, s.get("label_noise", 0.0), s.get("noise_kind", "symmetric"))


def write_figure(out_dir: Path, md_path: Path, json_path: Path) -> str | None:
    """Gather the full-study tables of ``out_dir`` (``*_table_*.json`` marked ``in_figure``: the clean study first,
    then the label-noise ones by rate; the newest table of a study if it has several) into one markdown and one JSON
    file; return the markdown (None if none). Called by ``python -m paper_repro.figures`` only.

    The JSON has the keys of a study table: ``settings``, ``command``, ``missing`` (those of the first study, the
    clean one when present; ``missing`` summed over studies), ``summary`` and ``runs`` (the rows of every study,
    each with its ``study`` and ``label_noise``), plus ``studies``: each study's settings, command and missing.
    """
    newest: dict[str, tuple[float, dict]] = {}
    for path in sorted(Path(out_dir).glob("*_table_*.json")):
        table = json.loads(path.read_text())
        if table.get("in_figure"):
            stamp = path.stat().st_mtime
            if table["study"] not in newest or stamp > newest[table["study"]][0]:
                newest[table["study"]] = (stamp, table | {"source": str(path)})
    tables = [t for _, t in newest.values()]
    if not tables:
        return None
    tables.sort(key=_study_order)
    parts = []
    for i, t in enumerate(tables):
        settings = Settings(**t["settings"])
        parts.append(markdown(t["summary"], settings, t["command"], t["missing"], level=1 if i == 0 else 2))
    md = "\n".join(parts)
    first = tables[0]
    write_json(json_path, {
        "settings": first["settings"], "command": first["command"], "missing": sum(t["missing"] for t in tables),
        "summary": [e for t in tables for e in t["summary"]], "runs": [r for t in tables for r in t["runs"]],
        "studies": [{k: t[k] for k in ("study", "settings", "command", "missing", "source")} for t in tables],
    })  # fmt: skip
    write_text(md_path, md)
    return md


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m paper_repro.experiments",
        description="Real-image experiments. 'collapse': Fashion-MNIST superclasses and MNIST digit groups trained "
        "on coarse labels with triplet / margin / multi-similarity losses, random vs easy positives, several seeds, "
        "plus a zero-shot MNIST 0-4 -> 5-9 comparison. 'noisy': the same on coarse training labels with label "
        "noise (default: Fashion-MNIST superclasses, 30% symmetric noise, 1200 steps, triplet with semi-hard and "
        "with all negatives). Writes per-run JSON and one results table per study; full studies (>= 3 seeds) are "
        "gathered into figures/paper_repro_table.{md,json}.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("study", choices=("collapse", "noisy"), help="which experiment")
    p.add_argument("--quick", action="store_true", help="tiny settings (a smoke test of the pipeline, minutes)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell")
    p.add_argument(
        "--datasets",
        default=None,
        help=f"comma-separated subset of {','.join(COLLAPSE_DATASETS)} (default: both for collapse, "
        f"{','.join(NOISY_DATASETS)} for noisy)",
    )
    p.add_argument("--losses", default=",".join(COLLAPSE_LOSSES), help="comma-separated subset")
    p.add_argument("--no-zero-shot", action="store_true", help="skip the zero-shot comparison (collapse only)")
    p.add_argument("--steps", type=int, default=None, help="override the training steps of every run")
    p.add_argument(
        "--label-noise", type=float, default=None, metavar="EPS", help=f"noisy only: rate (default {NOISY.label_noise})"
    )
    p.add_argument("--noise-kind", default="symmetric", choices=NOISE_MODELS, help="noisy only: noise model")
    p.add_argument("--root", default="data", help="folder holding the data sets")
    p.add_argument("--out-dir", default=None, help="where runs and tables go (default results/paper_repro[/quick])")
    p.add_argument("--store", default=DEFAULT_STORE, help="result store: one record per run")
    p.add_argument("--jobs", type=int, default=2, help="runs trained in parallel")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--no-reference", action="store_true", help="leave out the untrained baselines")
    p.add_argument("--table-only", action="store_true", help="rebuild the table from saved runs, train nothing")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    noisy = args.study == "noisy"
    settings = QUICK if args.quick else (NOISY if noisy else FULL)
    try:
        if args.steps is not None:
            settings = replace(settings, steps=check_int("steps", args.steps, low=1))
        if noisy:
            eps = NOISY.label_noise if args.label_noise is None else args.label_noise
            eps = check_real("--label-noise", eps, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
            settings = replace(settings, label_noise=eps, noise_kind=args.noise_kind)
        elif args.label_noise is not None or args.noise_kind != "symmetric":
            raise ValueError("--label-noise and --noise-kind belong to the 'noisy' study; the 'collapse' one is clean")
        check_int("jobs", args.jobs, low=1)
        check_int("threads", args.threads, low=1)
        out_dir = Path(args.out_dir or ("results/paper_repro/quick" if args.quick else "results/paper_repro"))
        default_datasets = NOISY_DATASETS if noisy else COLLAPSE_DATASETS
        datasets = (parse_list("--datasets", args.datasets, COLLAPSE_DATASETS, all_word=None)
                    if args.datasets is not None else list(default_datasets))
        losses = parse_list("--losses", args.losses, tuple(COLLAPSE_LOSSES), all_word=None)
        runs = plan_collapse(settings, args.seeds, out_dir=out_dir, root=args.root, datasets=datasets, losses=losses,
                             zero_shot=not (noisy or args.no_zero_shot),
                             negatives=NOISY_NEGATIVES if noisy else None)  # fmt: skip
        # Where results go is checked before any compute.
        check_writable_dir(args.store, what="--store", create=False)  # both checked before either is created
        check_writable_dir(out_dir, what="--out-dir")
        store = ResultStore(args.store).prepare()
    except (ValueError, TypeError) as exc:
        parser.fail(exc)
    if args.table_only:
        record_finished(train_runs(runs), store)
        errors = []
    else:
        errors = run_plan(runs, store, jobs=args.jobs, threads=args.threads)
    rows, missing = collect(runs, store)
    if not args.no_reference:
        rows = reference_rows(runs, store) + rows
    command = "python -m paper_repro.experiments " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    command = command.replace(" --table-only", "")
    default_settings = settings == (NOISY if noisy else FULL) or (noisy and args.steps is None)
    full_study = (not args.quick and args.seeds >= 3 and default_settings
                  and (noisy or tuple(datasets) == COLLAPSE_DATASETS) and tuple(losses) == tuple(COLLAPSE_LOSSES))
    md = write_tables(rows, settings, out_dir, command, missing, in_figure=full_study,
                      keys=[r.key for r in train_runs(runs)])
    print(md)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
