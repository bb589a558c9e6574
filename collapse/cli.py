"""What every command line of the project shares."""

from __future__ import annotations

import argparse

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``prog: error: ...``, exit status 2), no usage dump: the
    message names the flag and what is allowed."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")
