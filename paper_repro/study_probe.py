"""The acceptance probe of the real-image study: the small CNN on Fashion-MNIST superclasses, triplet loss, all
negatives, batches of 3 classes x 18 images, 2000 steps, trained clean and with 30 % symmetric label noise.

Runs (one tensor program, :func:`paper_repro.multiseed.train_grouped`): ``clean-random`` (no noise, random
positives) and ``noisy-random`` (noise 0.3, random positives: the run reported to collapse). Easy positives are
compared in the head study (:mod:`paper_repro.study`), which fits the CPU budget.
``python -m paper_repro.study_probe --out DIR`` trains them (or reuses ``DIR/models.pt``) and writes
``DIR/embeddings.npz`` (train subset and test embeddings with clean coarse and fine labels) and
``DIR/history.json`` (training curves); ``--judge`` then measures them (:func:`judge_probe`): both runs and
controls on the clean run's embedding, written to ``DIR/judgement.json`` / ``.md`` (and ``--figures DIR``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from collapse.cli import OneLineParser
from collapse.io import atomic_path, write_json, write_text
from collapse.runs.outputs import check_writable_dir
from paper_repro.builders import eval_transform_for, load_test, load_train, stratified_subset
from paper_repro.config import TrainConfig
from paper_repro.evaluate import embed_dataset

__all__ = ["PROBE_CONTROLS", "PROBE_RUNS", "judge_probe", "probe_configs", "run_probe"]

#: name -> (label noise, positive rule)
PROBE_RUNS = {"clean-random": (0.0, "random"), "noisy-random": (0.3, "random")}


def probe_configs(out: str | Path, *, steps: int = 2000, root: str = "data", seed: int = 0) -> list[TrainConfig]:
    base = dict(dataset="fashion-mnist-super", root=root, loss="triplet", negative="all", batch_classes=3,
                samples_per_class=18, steps=steps, eval_every=max(1, steps // 4), lr=1e-3, eval_samples=3000,
                seed=seed)  # fmt: skip
    return [TrainConfig(out=str(Path(out) / name), label_noise=eps, positive=pos, **base)
            for name, (eps, pos) in PROBE_RUNS.items()]  # fmt: skip


def run_probe(
    out: str | Path, *, steps: int = 2000, root: str = "data", seed: int = 0, n_train: int = 3000, progress=True
) -> dict:
    """Train (or reload) the probe runs and write their embeddings; return ``{"embeddings": path, "history": ...}``."""
    from paper_repro.multiseed import train_grouped

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfgs = probe_configs(out, steps=steps, root=root, seed=seed)
    models_path = out / "models.pt"
    if models_path.is_file():
        saved = torch.load(models_path, map_location="cpu", weights_only=False)
        if saved["configs"] != [c.to_dict() for c in cfgs]:
            raise ValueError(f"{models_path} holds other probe runs; use another --out")
        from paper_repro.builders import build_model

        models = []
        for state in saved["models"]:
            m = build_model(cfgs[0], load_train(cfgs[0]))
            m.load_state_dict(state)
            models.append(m)
        history = saved["history"]
    else:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        res = train_grouped(cfgs, progress=progress)
        models = res["models"]
        history = {name: r["history"] for name, r in zip(PROBE_RUNS, res["runs"])}
        with atomic_path(models_path) as tmp:
            torch.save({"configs": [c.to_dict() for c in cfgs], "models": [m.state_dict() for m in models],
                        "history": history, "seconds": res["seconds"]}, tmp)  # fmt: skip
        write_json(out / "history.json", {"history": history, "seconds": res["seconds"]})
    clean_train = load_train(cfgs[0])
    keep = stratified_subset(clean_train.fine_labels, n_train, seed)
    train_sub = clean_train.subset(keep)
    test = load_test(cfgs[0])
    tf = eval_transform_for(cfgs[0], test)
    arrays: dict[str, np.ndarray] = {
        "train_labels": train_sub.labels, "train_fine": train_sub.fine_labels,
        "test_labels": test.labels, "test_fine": test.fine_labels,
    }  # fmt: skip
    for name, m in zip(PROBE_RUNS, models):
        arrays[f"{name}_train"] = embed_dataset(m, train_sub, transform=tf).numpy()
        arrays[f"{name}_test"] = embed_dataset(m, test, transform=tf).numpy()
        arrays[f"{name}_final_loss"] = np.array(history[name][-1]["train_loss"])
    with atomic_path(out / "embeddings.npz", suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return {"embeddings": str(out / "embeddings.npz"), "history": history}


#: Controls on the clean probe's embedding: transform, what the verdict must be (stated before computing).
PROBE_CONTROLS = {
    "shrink_classes": ("each class x0.1 about its centroid", "collapsed"),
    "merge_submodes": ("sub-class means moved onto the class mean, spread kept", "collapsed"),
    "rotate": ("random orthogonal transform", "same as the clean run"),
}
#: What the acceptance of issue 12 asks of the two runs.
PROBE_EXPECT = {"clean-random": "not collapsed", "noisy-random": "collapsed"}


def judge_probe(out: str | Path, *, margin: float = 0.2, null_permutations: int = 30) -> list[dict]:
    """Judge the probe runs saved under ``out`` (train subset and test split, every study measure and the collapse
    verdict at the triplet margin) and the :data:`PROBE_CONTROLS` on the clean run; write ``judgement.json`` and
    ``judgement.md`` under ``out``; return the rows. Each row says whether it held what it was expected to."""
    from collapse.metrics import controls as ctl
    from paper_repro.study import judge_embeddings

    out = Path(out)
    path = out / "embeddings.npz"
    if not path.is_file():
        raise ValueError(f"{path} does not exist; train the probe first: python -m paper_repro.study_probe --out {out}")
    z = np.load(path)
    split = {"train": (z["train_labels"], z["train_fine"]), "test": (z["test_labels"], z["test_fine"])}

    def judge(train: np.ndarray, test: np.ndarray, loss: float | None) -> dict:
        return judge_embeddings(train, *split["train"], test, *split["test"], margin=margin, loss=loss,
                                null_permutations=null_permutations)  # fmt: skip

    rows = []
    for name in PROBE_RUNS:
        j = judge(z[f"{name}_train"], z[f"{name}_test"], float(z[f"{name}_final_loss"]))
        want = PROBE_EXPECT[name]
        held = (j["verdict"] == "collapsed") == (want == "collapsed")
        rows.append({"row": name, "expect": want, "held": held} | j)
    clean = rows[0]
    rng = np.random.default_rng(0)
    n_train = z["clean-random_train"].shape[0]
    joint = tuple(np.concatenate([a, b]) for a, b in zip((z["clean-random_train"], *split["train"]),
                                                         (z["clean-random_test"], *split["test"])))  # fmt: skip
    for name, (what, want) in PROBE_CONTROLS.items():
        x, _, _ = getattr(ctl, name)(joint, rng)
        j = judge(x[:n_train], x[n_train:], None)
        target = clean["verdict"] if want.startswith("same") else want
        rows.append({"row": f"clean-random, {what}", "expect": want, "held": j["verdict"] == target} | j)
    write_json(out / "judgement.json", {"margin": margin, "rows": rows})
    write_text(out / "judgement.md", probe_markdown(rows, margin))
    return rows


#: (column, row key, format) of the judgement table.
_COLUMNS = (
    ("verdict (instrument)", "verdict", "{}"),
    ("merges", "instrument_merges", "{:.0f}"),
    ("pairs overlapping", "instrument_pairs_overlapping", "{:.0f}"),
    ("class radius / margin", "instrument_class_radius_over_margin", "{:.2f}"),
    ("sub-class separation / margin", "instrument_submode_separation_over_margin", "{:.2f}"),
    ("loss / margin", "instrument_loss_over_margin", "{:.3f}"),
    ("test fine linear probe", "test_linear_probe", "{:.3f}"),
    ("test NCM", "test_ncm", "{:.3f}"),
    ("test eta2", "test_eta2", "{:.3f}"),
    ("fine R@1", "test_fine_r1", "{:.3f}"),
    ("coarse MAP@R", "coarse_map_at_r", "{:.3f}"),
)


def probe_markdown(rows: list[dict], margin: float) -> str:
    """The judgement rows as a markdown table (instrument on the test split, margin ``margin``)."""
    head = ["row", "expected", "held", *(c for c, _, _ in _COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["row"], r["expect"], "yes" if r["held"] else "**no**"]
        cells += [fmt.format(r[k]) if k in r else "" for _, k, fmt in _COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return (f"Acceptance probe of issue 12 (test split; instrument at margin {margin:g}, resolution {margin / 2:g}; "
            "`python -m paper_repro.study_probe --judge`).\n\n" + "\n".join(lines) + "\n")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m paper_repro.study_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/study/probe", help="folder for models.pt, embeddings.npz, history.json")
    p.add_argument("--steps", type=int, default=2000, help="training steps")
    p.add_argument("--root", default="data", help="folder holding fashion-mnist")
    p.add_argument("--seed", type=int, default=0, help="seed of the three runs")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--judge", action="store_true", help="also judge the runs and controls (judgement.json / .md)")
    p.add_argument("--figures", default=None, help="with --judge: also write probe_judgement.{json,md} in this folder")
    args = p.parse_args(argv)
    try:
        if args.figures is not None:
            check_writable_dir(args.figures, what="--figures")
        res = run_probe(args.out, steps=args.steps, root=args.root, seed=args.seed, progress=not args.no_progress)
        print(f"wrote {res['embeddings']}")
        if args.judge:
            rows = judge_probe(args.out)
            text = (Path(args.out) / "judgement.md").read_text()
            print(text)
            if args.figures is not None:
                history = json.loads((Path(args.out) / "history.json").read_text())
                write_json(Path(args.figures) / "probe_judgement.json", {"rows": rows, "training": history})
                write_text(Path(args.figures) / "probe_judgement.md", text)
    except (ValueError, OSError) as exc:
        print(f"python -m paper_repro.study_probe: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
