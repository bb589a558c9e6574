"""``HYPOTHESIS_PROFILE=deep`` reaches every hypothesis test: each one's example budget is larger under ``deep``
than under ``ci`` (the default), including tests that set their own budget."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# Imports every test module and prints {test: max_examples} for the hypothesis tests (functions and methods).
_BUDGETS = """
import importlib, inspect, json, pathlib, sys
root = pathlib.Path(sys.argv[1])
importlib.import_module("tests.conftest")  # loads the profile first, as pytest does
out = {}
for path in sorted((root / "tests").rglob("test_*.py")):
    if "@given" not in path.read_text():
        continue
    name = ".".join(path.relative_to(root).with_suffix("").parts)
    module = importlib.import_module(name)
    for obj_name, obj in vars(module).items():
        for fn_name, fn in [(obj_name, obj)] + (list(vars(obj).items()) if inspect.isclass(obj) else []):
            s = getattr(fn, "_hypothesis_internal_use_settings", None)
            if s is not None and getattr(fn, "__module__", None) == name:
                out[f"{name}::{fn_name}"] = s.max_examples
print(json.dumps(out))
"""


def _budgets(profile: str) -> dict[str, int]:
    env = os.environ | {"HYPOTHESIS_PROFILE": profile, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _BUDGETS, str(ROOT)], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_deep_raises_the_example_count_of_every_hypothesis_test():
    ci, deep = _budgets("ci"), _budgets("deep")
    assert set(ci) == set(deep) and len(ci) >= 40  # the suite has many hypothesis tests; none was missed
    not_deeper = sorted(k for k in ci if deep[k] <= ci[k])
    assert not_deeper == [], not_deeper


def test_no_test_fixes_its_own_budget():
    # A literal max_examples in a test pins it under every profile; scaled_settings / minimiser_settings scale it.
    allowed = {TESTS / "conftest.py", TESTS / "theory" / "_profile.py", Path(__file__).resolve()}
    offenders = [
        str(p.relative_to(ROOT))
        for p in TESTS.rglob("*.py")
        if p not in allowed and re.search(r"max_examples\s*=", p.read_text())
    ]
    assert offenders == []
