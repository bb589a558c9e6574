"""Fixtures shared by the paper_repro tests."""

from __future__ import annotations

import pytest

from paper_repro.datasets import get_dataset, merge_classes

PARITY = {"even": (0, 2, 4, 6, 8), "odd": (1, 3, 5, 7, 9)}


@pytest.fixture(scope="module")
def digits():
    """Digits merged into even/odd coarse classes, the digit kept as fine label (a real multi-mode task)."""
    tr = merge_classes(get_dataset("digits", split="train"), PARITY, name="digits-parity")
    te = merge_classes(get_dataset("digits", split="test"), PARITY, name="digits-parity")
    return tr, te
