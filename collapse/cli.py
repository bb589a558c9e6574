"""What every command line of the project shares: one-line errors and list flags.

Every ``python -m ...`` entry point of ``collapse`` and ``paper_repro`` builds its parser with
:class:`OneLineParser`, so a bad flag, from argparse or from validation after parsing (:meth:`OneLineParser.fail`),
ends the command with ``prog: error: <one line naming the flag and what is allowed>`` and exit status 2, before any
work and before any file is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = ["OneLineParser", "parse_list"]


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``prog: error: ...``, exit status 2), no usage dump: the
    message names the flag and what is allowed."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message.splitlines()[0] if message else message}\n")

    def fail(self, problem: BaseException | str) -> NoReturn:
        """End the command with ``problem`` (an exception from validating the flags, or a message) as one line."""
        self.error(str(problem))


def parse_list(
    flag: str,
    value: str,
    allowed: Sequence[str] | None = None,
    *,
    convert: Callable[[str], object] = str,
    what: str = "values",
    all_word: str | None = "all",
) -> list:
    """The items of a comma-separated list flag, validated.

    ``all_word`` (when ``allowed`` is given) means every allowed value. An empty list (``""``, ``","``), an item not
    in ``allowed``, a value ``convert`` rejects or a repeated item raises a one-line ``ValueError`` naming ``flag``.
    """
    text = str(value).strip()
    if allowed is not None and all_word is not None and text == all_word:
        return list(allowed)
    items = [v.strip() for v in text.split(",") if v.strip()]
    choices = f" of {', '.join(map(str, allowed))}" if allowed is not None else ""
    if not items:
        raise ValueError(f"{flag} must name at least one value{choices} (comma-separated), got {value!r}")
    out = []
    for item in items:
        if allowed is not None and item not in allowed:
            raise ValueError(f"{flag} must be one{choices}; got {item!r}")
        try:
            out.append(convert(item))
        except (TypeError, ValueError):
            raise ValueError(f"{flag} must be comma-separated {what}, got {value!r}") from None
    if len(set(map(repr, out))) != len(out):
        raise ValueError(f"{flag} names a value twice: {value!r}")
    return out
