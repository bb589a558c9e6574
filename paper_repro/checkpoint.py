"""Run directories and atomic checkpoints.

A run directory holds ``config.json`` (written first), ``checkpoint.pt`` (the latest state; replaced atomically:
written to a temporary file in the same directory, flushed to disk, then ``os.replace``-d over the old one, so a
crash leaves either the old or the new checkpoint, never a torn one) and ``metrics.json`` (history and, once the
run is done, its final metrics).

A checkpoint holds the model, optimiser and loss states (the loss may have learnable parameters), the step, the
metric history, and every random state the run draws from after that step: torch's CPU (and CUDA) generators,
numpy's and Python's global generators, and the loss sampler's generator (random positives, distance-weighted
negatives). The P x M batch sampler needs no saved state: its draws are a function of ``(seed, step)``
(:mod:`paper_repro.batches`). Everything is stored as tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import glob
import os
import random
from pathlib import Path

import numpy as np
import torch

from collapse.io import atomic_path

__all__ = [
    "CHECKPOINT",
    "capture_rng",
    "load_checkpoint",
    "prepare_run_dir",
    "remove_stale_temporaries",
    "restore_rng",
    "save_checkpoint",
]

CHECKPOINT = "checkpoint.pt"
#: Written into every run directory this module creates: ``--overwrite`` deletes only folders holding it.
RUN_MARKER = ".paper_repro-run"


def prepare_run_dir(out: str | Path, *, resume: bool, overwrite: bool) -> bool:
    """Make ``out`` ready; return True when there is a checkpoint to resume from.

    A missing or empty directory is created. An existing non-empty one is an error unless ``resume`` (continue it;
    a directory that never reached its first checkpoint restarts from step 0) or ``overwrite`` (delete it first,
    only if it holds :data:`RUN_MARKER`: a folder that is not a run is never deleted).
    """
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run or replace it, not both")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"run directory {out} exists and is a file")
    if out.is_dir() and any(out.iterdir()):
        if resume:
            return (out / CHECKPOINT).is_file()
        if not overwrite:
            raise FileExistsError(
                f"run directory {out} already exists and is not empty; pass --resume to continue it or --overwrite "
                "to replace it"
            )
        from collapse.runs.outputs import remove_marked_dir

        remove_marked_dir(out, RUN_MARKER, what="run directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_MARKER).touch()
    return False


def capture_rng() -> dict:
    """Global random states as tensors / plain values (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # a live process of another user (or a platform without signals): leave its file alone
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporary files that interrupted saves of ``path`` left behind; return what was deleted.

    A save writes ``.<name>.<pid>.<random>.tmp`` next to ``path``; a process killed mid-save (SIGKILL, power loss)
    cannot remove it, and it can be as large as the checkpoint. A temporary is stale when the process that wrote it
    is gone (or is this process: saves here are sequential) or when it has no pid (written before pids were
    recorded). Files of a live process are kept, so a concurrent save is never broken.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid_text = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        pid = int(pid_text) if pid_text.isdigit() else None
        if pid is None or pid == os.getpid() or not _pid_alive(pid):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """``torch.save(payload)`` to ``path`` atomically (temporary file, fsync, ``os.replace``); first removes the
    temporaries of earlier saves that were killed (:func:`remove_stale_temporaries`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    with atomic_path(path, tag=str(os.getpid()), fsync=True) as tmp:
        torch.save(payload, tmp)
    return path


#: What :func:`paper_repro.train.train` stores; a file without these keys is not a checkpoint of a training run.
REQUIRED_KEYS = ("config", "step", "history", "model", "optimizer", "loss", "rng")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_checkpoint(path: str | Path, map_location: torch.device | str = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only``).

    Raises ``FileNotFoundError`` when it is missing and a one-line ``ValueError`` naming the file when it cannot be
    read (truncated, corrupt, another format) or lacks the keys of a training checkpoint. The file is left as it is.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch.load raises many types for bad bytes (UnpicklingError, RuntimeError, EOFError)
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {_first_line(exc)}); it is corrupt or truncated. "
            "It was left in place: delete it, or train again with --overwrite"
        ) from exc
    missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not a paper_repro.train checkpoint: it lacks {', '.join(missing)}")
    return ckpt
