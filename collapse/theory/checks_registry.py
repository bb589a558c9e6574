"""Every proposition's numerical check by name (the claims ledger and the notebooks run them from here)."""

from __future__ import annotations

from collections.abc import Callable

from collapse.theory.checks import Check
from collapse.theory.force import check_t1
from collapse.theory.t0_clean import check_t0
from collapse.theory.t2_noise_collapse import check_t2
from collapse.theory.t3_eps import check_t3
from collapse.theory.t4_finite_batch import check_t4
from collapse.theory.t5_margin import check_t5
from collapse.theory.t6_supcon import check_t6
from collapse.theory.t7_proxies import check_t7

__all__ = ["CHECKS"]

CHECKS: dict[str, Callable[[], Check]] = {
    "T0": check_t0,
    "T1": check_t1,
    "T2": check_t2,
    "T3": check_t3,
    "T4": check_t4,
    "T5": check_t5,
    "T6": check_t6,
    "T7": check_t7,
}
