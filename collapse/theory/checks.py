"""What a numerical check of a proposition returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["Check"]


@dataclass
class Check:
    """The outcome of checking one proposition numerically.

    ``holds`` is the verdict, ``evidence`` the measured numbers behind it, ``conditions`` the regime in which the
    statement was checked (and, where it fails outside it, where).
    """

    name: str
    statement: str
    holds: bool
    evidence: dict = field(default_factory=dict)
    conditions: str = ""

    def to_dict(self) -> dict:
        return asdict(self)
