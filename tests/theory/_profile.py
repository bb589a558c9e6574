"""Example budgets for the expensive minimiser properties: bounded under the ``ci`` profile, larger under ``deep``."""

import os

from hypothesis import HealthCheck, settings

DEEP = os.environ.get("HYPOTHESIS_PROFILE", "ci") == "deep"


def minimiser_settings(ci: int, deep: int) -> settings:
    return settings(
        max_examples=deep if DEEP else ci,
        deadline=None,
        derandomize=not DEEP,
        suppress_health_check=[HealthCheck.too_slow],
    )
