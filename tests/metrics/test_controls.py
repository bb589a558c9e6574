"""The controls table holds: every verdict measure moves, or stays, as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collapse.metrics.controls import (
    BEGIN,
    END,
    EXPECTED,
    MEASURES,
    TRANSFORMS,
    check_cell,
    controls_markdown,
    run_controls,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "measures.md"


@pytest.fixture(scope="module")
def seed0_rows():
    return run_controls(0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"random_state": 1, "classes": 3, "modes": 4, "dim": 10},
        {"random_state": 2, "classes": 5, "modes": 2, "samples_per_mode": 12, "spread": 0.04},
    ],
)
def test_every_control_holds(kwargs):
    _assert_all_hold(run_controls(**kwargs))


def test_every_control_holds_on_the_documented_reference(seed0_rows):
    _assert_all_hold(seed0_rows)


def _assert_all_hold(rows):
    failed = [(r["transform"], k) for r in rows for k, ok in r["checks"].items() if not ok]
    assert not failed, failed


def test_every_transform_has_expectations_for_the_verdict_measures():
    assert set(EXPECTED) == set(TRANSFORMS)
    for name, exp in EXPECTED.items():
        assert "verdict" in exp and "merges" in exp, name
        assert set(exp) <= {"verdict", *MEASURES}, name


def test_check_cell_can_fail():
    assert not check_cell("same", 1.0, 1.5, bounded=False, possible=8, classes=4)
    assert not check_cell("down", 1.0, 0.9, bounded=False, possible=8, classes=4)
    assert not check_cell("all", 0.0, 7.0, bounded=False, possible=8, classes=4)
    assert not check_cell("nan", 1.0, 1.0, bounded=True, possible=8, classes=4)
    assert check_cell("down", 1.0, 0.5, bounded=True, possible=8, classes=4)


def test_docs_table_is_the_computed_one(seed0_rows):
    """docs/measures.md shows the table computed by ``python -m collapse.metrics.controls`` (seed 0)."""
    text = DOC.read_text()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == controls_markdown(seed0_rows)
    assert "**FAILS**" not in table
    assert re.search(r"\| shrink each class x0\.1", table)
