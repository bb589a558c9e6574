"""Load a local checkpoint (``.pt``/``.pth``) into a backbone or an embedding network. No downloads, ever.

Accepted files hold a ``state_dict`` (name -> tensor), or a dict with that under ``"state_dict"`` or ``"model"``
(nested at most twice, e.g. a training checkpoint ``{"model": {...}, "epoch": 3}``). Names are tidied before
matching: the prefixes ``module.`` (DataParallel / DistributedDataParallel) and ``_orig_mod.`` (torch.compile)
are stripped, and ``fc.*`` (the ImageNet classifier) is dropped when the model has no ``fc``. When the model is
an :class:`~paper_repro.models.head.EmbeddingNet` and no name starts with ``backbone.``, the file is taken to be
a backbone checkpoint (torchvision's layout) and goes into ``model.backbone``.

Every check runs before a single tensor is copied, so a failed load leaves the model as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

__all__ = ["LoadReport", "load_pretrained"]

_WRAPPER_KEYS = ("state_dict", "model")
_PREFIXES = ("module.", "_orig_mod.")
_SHOW = 5  # how many names an error message lists before "..."


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_pretrained` did.

    ``loaded``: names copied; ``missing``: model names the file lacks (left at their initialisation);
    ``unexpected``: file names the model lacks (ignored); ``dropped``: classifier names removed on purpose;
    ``skipped``: ``(name, file shape, model shape)`` left at their initialisation (``skip_mismatched=True``).
    """

    path: str
    target: str
    loaded: tuple[str, ...]
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    skipped: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = field(default=())

    @property
    def complete(self) -> bool:
        """Every tensor of the model came from the file."""
        return not (self.missing or self.skipped)

    def __str__(self) -> str:
        return (
            f"{self.path} -> {self.target}: {len(self.loaded)} loaded, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.dropped)} dropped, {len(self.skipped)} skipped"
            + (f" (missing: {_names(self.missing)})" if self.missing else "")
            + (f" (unexpected: {_names(self.unexpected)})" if self.unexpected else "")
        )


def _names(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(names[:_SHOW]) + (f", ... ({len(names)} in all)" if len(names) > _SHOW else "")


def _read(path: Path) -> dict[str, torch.Tensor]:
    try:
        # weights_only: a checkpoint is data; never run code from a file (and torch 2.6+ defaults to it anyway).
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any reading failure becomes one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"could not read {path} as a torch checkpoint: {first}") from exc
    for _ in range(2):
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, Mapping):
        raise TypeError(f"{path} holds a {type(obj).__name__}, not a state_dict (a dict of tensors)")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f"{path} is not a state_dict: these entries are not name -> tensor: {_names(bad)}")
    state = {}
    for key, value in obj.items():
        name = key
        while name.startswith(_PREFIXES):
            name = name.split(".", 1)[1]
        if name in state:
            raise ValueError(f"{path}: two entries become {name!r} once the module./_orig_mod. prefixes are stripped")
        state[name] = value
    return state


def load_pretrained(
    model: nn.Module, path: str | Path, *, strict: bool = False, skip_mismatched: bool = False
) -> LoadReport:
    """Copy the tensors of the checkpoint at ``path`` into ``model`` (in place) and report what happened.

    Parameters
    ----------
    model : nn.Module
        A backbone or an :class:`~paper_repro.models.head.EmbeddingNet` (see the module docstring).
    path : str or Path
        A local file written by ``torch.save``.
    strict : bool
        Raise if any name is missing from the file or unexpected in it (after prefix stripping and the drop of
        ``fc.*``); otherwise those are only reported.
    skip_mismatched : bool
        Leave tensors whose shapes differ (e.g. ``conv1`` under the small-input stem, or a grey-image stem with
        RGB weights) at their initialisation and report them; by default a shape mismatch raises.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Unreadable file, shape mismatch, ``strict`` violation, or a file sharing no name with the model.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}" + (" (it is a directory)" if path.is_dir() else ""))
    state = _read(path)

    target, target_name = model, "model"
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module) and not any(k.startswith("backbone.") for k in state):
        target, target_name = backbone, "model.backbone"
    own = target.state_dict()

    dropped = tuple(k for k in state if k.startswith("fc.") and not any(o.startswith("fc.") for o in own))
    state = {k: v for k, v in state.items() if k not in dropped}
    missing = tuple(k for k in own if k not in state)
    unexpected = tuple(k for k in state if k not in own)
    mismatched = tuple(
        (k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and v.shape != own[k].shape
    )
    if mismatched and not skip_mismatched:
        detail = "; ".join(f"{k}: file {s} vs model {m}" for k, s, m in mismatched[:_SHOW])
        more = f"; ... ({len(mismatched)} in all)" if len(mismatched) > _SHOW else ""
        raise ValueError(
            f"{path}: {len(mismatched)} tensor(s) do not fit {target_name}: {detail}{more}; "
            "pass skip_mismatched=True to keep them at their initialisation"
        )
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path} does not match {target_name} exactly (strict=True): "
            f"missing {_names(missing) if missing else 'none'}; "
            f"unexpected {_names(unexpected) if unexpected else 'none'}"
        )
    skip = {k for k, _, _ in mismatched}
    loadable = {k: v for k, v in state.items() if k in own and k not in skip}
    if not loadable:
        raise ValueError(
            f"{path}: no tensor fits {target_name} (file names start {_names(sorted(state))}; "
            f"model names start {_names(list(own))})"
        )
    target.load_state_dict(loadable, strict=False)
    return LoadReport(
        path=str(path),
        target=target_name,
        loaded=tuple(loadable),
        missing=missing,
        unexpected=unexpected,
        dropped=dropped,
        skipped=mismatched,
    )
