"""Runs, kinds and blocks: what the executor is given.

A *run* is a frozen dataclass (subclass of :class:`Run`) holding everything its result depends on. Its
:meth:`Run.key` is a stable hash of ``(kind, schema, fields)``: the same configuration gives the same key in every
process and on every machine, two configurations never share one.

A *kind* (:class:`Kind`) says how runs of one type are computed: its ``measure`` function takes the runs of one
block and returns one JSON-ready result per run, in order. ``block_key`` groups runs that share one tensor program
(for simulations: the same configuration except the noise level, trained as the groups of one batch).

A *block* (:class:`Block`) is the unit of work sent to a worker: runs of one kind with equal block keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

__all__ = ["KINDS", "Block", "Kind", "Run", "config_hash", "get_kind", "make_blocks", "plain", "register_kind"]

#: Length of a key in hex digits (80 bits: no collision in any realistic store).
KEY_LENGTH = 20


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses to dicts, tuples to lists, floats kept exact (repr round-trips)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            return plain(to_dict())
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN/inf; keep them distinct and hashable
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return plain(value.item())
    return value


def config_hash(kind: str, schema: int, identity: dict) -> str:
    """``sha256`` of the canonical JSON of ``(kind, schema, identity)``, first :data:`KEY_LENGTH` hex digits."""
    text = json.dumps({"kind": kind, "schema": schema, "run": plain(identity)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


class Run:
    """Base of every run type: subclass it as a ``@dataclass(frozen=True)`` and set :attr:`KIND` and :attr:`SCHEMA`.

    Bump ``SCHEMA`` when the measurement changes what it returns for the same fields: old records then no longer
    match and are recomputed.
    """

    KIND: ClassVar[str] = ""
    SCHEMA: ClassVar[int] = 1

    def identity(self) -> dict:
        """Every field the result depends on, JSON-ready."""
        return plain(self)

    @cached_property
    def key(self) -> str:
        """Stable hash of the kind, schema and :meth:`identity`."""
        return config_hash(self.KIND, self.SCHEMA, self.identity())

    def describe(self) -> str:
        """One short line for progress bars and error messages."""
        return f"{self.KIND} {self.key}"


@dataclass(frozen=True)
class Kind:
    """How runs of one type are computed.

    ``measure(runs)`` computes one block and returns one JSON-ready dict per run, in order; it must be a pure
    function of the runs (a retried or duplicated block is harmless) and importable by name (workers receive it by
    reference). ``block_key(run)`` is equal for runs that share one program (default: every run alone); ``cost``
    estimates a block's work so the costliest start first.
    """

    name: str
    run_type: type
    measure: Callable[[Sequence[Run]], list[dict]]
    block_key: Callable[[Run], Hashable] | None = None
    cost: Callable[[Sequence[Run]], float] | None = None

    def key_of(self, run: Run) -> Hashable:
        return run.key if self.block_key is None else self.block_key(run)


KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    """Add ``kind`` to :data:`KINDS` (re-registering the same run type under its name is allowed)."""
    if not kind.name or kind.name != getattr(kind.run_type, "KIND", None):
        raise ValueError(f"kind name {kind.name!r} must equal {kind.run_type.__name__}.KIND")
    old = KINDS.get(kind.name)
    if old is not None and old.run_type.__qualname__ != kind.run_type.__qualname__:
        raise ValueError(f"kind {kind.name!r} is already registered for {old.run_type.__name__}")
    KINDS[kind.name] = kind
    return kind


def get_kind(run_or_name: Run | str) -> Kind:
    """The registered :class:`Kind` of a run (or of a kind name); one-line ``ValueError`` if unknown."""
    name = run_or_name if isinstance(run_or_name, str) else type(run_or_name).KIND
    if name not in KINDS:
        raise ValueError(f"unknown run kind {name!r}; registered: {', '.join(sorted(KINDS)) or 'none'}")
    return KINDS[name]


@dataclass(frozen=True)
class Block:
    """Runs of one kind that share one program; :meth:`compute` runs the kind's measurement on them."""

    kind: str
    runs: tuple[Run, ...]

    def compute(self) -> list[dict]:
        results = get_kind(self.kind).measure(self.runs)
        if len(results) != len(self.runs):
            raise RuntimeError(f"kind {self.kind!r} returned {len(results)} results for {len(self.runs)} runs")
        return results

    @property
    def cost(self) -> float:
        kind = get_kind(self.kind)
        return float(kind.cost(self.runs)) if kind.cost is not None else float(len(self.runs))

    def __len__(self) -> int:
        return len(self.runs)


def make_blocks(runs: Iterable[Run]) -> list[Block]:
    """Group ``runs`` into blocks (first appearance order), dropping repeated runs (same key)."""
    groups: dict[tuple, list[Run]] = {}
    seen: set[str] = set()
    for run in runs:
        if not isinstance(run, Run):
            raise TypeError(f"a run must be a collapse.runs.Run, got {type(run).__name__}")
        if run.key in seen:
            continue
        seen.add(run.key)
        kind = get_kind(run)
        groups.setdefault((kind.name, kind.key_of(run)), []).append(run)
    return [Block(name, tuple(rs)) for (name, _), rs in groups.items()]
