"""Input validation shared by every public entry point.

The habits follow scikit-learn: every check raises ``ValueError`` (or ``TypeError``)
with one line naming the parameter, the value received and what is allowed, and
``random_state`` may be ``None``, an ``int`` or an existing generator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from numbers import Integral, Real

import numpy as np
import torch

__all__ = [
    "check_choice",
    "check_generator",
    "check_int",
    "check_random_state",
    "check_real",
]


def check_int(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` with ``low <= value <= high``; raise a one-line error otherwise."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer in {_interval(low, high, True, True)}, got {value}")
    return value


def check_real(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite ``float`` inside the stated interval; raise a one-line error otherwise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    ok = np.isfinite(value)
    if low is not None:
        ok = ok and (value >= low if low_inclusive else value > low)
    if high is not None:
        ok = ok and (value <= high if high_inclusive else value < high)
    if not ok:
        raise ValueError(f"{name} must be in {_interval(low, high, low_inclusive, high_inclusive)}, got {value}")
    return value


def check_choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; raise a one-line error listing the choices otherwise."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return str(value)


def check_fields(cls: type, data: Mapping, what: str) -> None:
    """One-line ``ValueError`` naming the keys of ``data`` that are not fields of the dataclass ``cls``."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; allowed: {', '.join(sorted(names))}")


def check_random_state(random_state: None | int | np.random.Generator) -> np.random.Generator:
    """Turn ``None``, an ``int`` seed or a ``numpy.random.Generator`` into a ``numpy.random.Generator``."""
    if random_state is None or isinstance(random_state, Integral):
        return np.random.default_rng(None if random_state is None else int(random_state))
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise TypeError(f"random_state must be None, an int or a numpy.random.Generator, got {type(random_state).__name__}")


def check_generator(
    random_state: None | int | torch.Generator, device: torch.device | str | None = None
) -> torch.Generator:
    """Turn ``None``, an ``int`` seed or a ``torch.Generator`` into a ``torch.Generator`` on ``device``.

    ``None`` draws a fresh seed from numpy's entropy, so runs differ unless a seed is given.
    """
    if isinstance(random_state, torch.Generator):
        return random_state
    if random_state is None:
        seed = int(np.random.default_rng().integers(2**63 - 1))
    elif isinstance(random_state, Integral) and not isinstance(random_state, bool):
        seed = int(random_state)
    else:
        raise TypeError(f"random_state must be None, an int or a torch.Generator, got {type(random_state).__name__}")
    gen = torch.Generator(device=device if device is not None else "cpu")
    gen.manual_seed(seed)
    return gen


def _interval(low: float | None, high: float | None, low_inc: bool, high_inc: bool) -> str:
    left = "(-inf" if low is None else ("[" if low_inc else "(") + f"{low:g}"
    right = "inf)" if high is None else f"{high:g}" + ("]" if high_inc else ")")
    return f"{left}, {right}"
