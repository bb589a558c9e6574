"""The acceptance probe of the real-image study: the small CNN on Fashion-MNIST superclasses, triplet loss, all
negatives, batches of 3 classes x 18 images, 2000 steps, trained clean and with 30 % symmetric label noise.

Runs (one tensor program, :func:`paper_repro.multiseed.train_grouped`): ``clean-random`` (no noise, random
positives) and ``noisy-random`` (noise 0.3, random positives: the run reported to collapse). Easy positives are
compared in the head study (:mod:`paper_repro.study`), which fits the CPU budget.
``python -m paper_repro.study_probe --out DIR`` trains them (or reuses ``DIR/models.pt``) and writes
``DIR/embeddings.npz`` (train subset and test embeddings with clean coarse and fine labels) and
``DIR/history.json`` (training curves); :func:`paper_repro.study.judge_embeddings` then measures them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from collapse.cli import OneLineParser
from collapse.io import write_json
from paper_repro.builders import eval_transform_for, load_test, load_train, stratified_subset
from paper_repro.config import TrainConfig
from paper_repro.evaluate import embed_dataset

__all__ = ["PROBE_RUNS", "probe_configs", "run_probe"]

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
        tmp = models_path.with_suffix(".tmp")
        torch.save({"configs": [c.to_dict() for c in cfgs], "models": [m.state_dict() for m in models],
                    "history": history, "seconds": res["seconds"]}, tmp)  # fmt: skip
        tmp.replace(models_path)
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
    tmp = out / "embeddings.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out / "embeddings.npz")
    return {"embeddings": str(out / "embeddings.npz"), "history": history}


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m paper_repro.study_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/study/probe", help="folder for models.pt, embeddings.npz, history.json")
    p.add_argument("--steps", type=int, default=2000, help="training steps")
    p.add_argument("--root", default="data", help="folder holding fashion-mnist")
    p.add_argument("--seed", type=int, default=0, help="seed of the three runs")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    try:
        res = run_probe(args.out, steps=args.steps, root=args.root, seed=args.seed, progress=not args.no_progress)
    except (ValueError, OSError) as exc:
        print(f"python -m paper_repro.study_probe: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {res['embeddings']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
