"""Shared test set-up: hypothesis profiles and random batches.

Profiles: ``ci`` (default; 30 derandomized examples) and ``deep`` (500 examples), chosen with the environment
variable ``HYPOTHESIS_PROFILE``, e.g. ``HYPOTHESIS_PROFILE=deep pytest tests``. A test that needs its own budget
uses :func:`scaled_settings` (never ``@settings(max_examples=...)``, which the deep profile could not raise).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

CI_EXAMPLES, DEEP_EXAMPLES = 30, 500
settings.register_profile(
    "ci", max_examples=CI_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("deep", max_examples=DEEP_EXAMPLES, deadline=None)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def scaled_settings(ci_examples: int, **kwargs) -> settings:
    """``@settings`` for a test that needs a budget other than the profile's: ``ci_examples`` under ``ci``, scaled
    by the profile's own ratio under ``deep`` (500 / 30), so ``HYPOTHESIS_PROFILE=deep`` deepens it too. Other
    keyword arguments go to :class:`hypothesis.settings` (``deadline=None`` by default)."""
    kwargs.setdefault("deadline", None)
    scale = settings.default.max_examples / CI_EXAMPLES
    return settings(max_examples=max(1, round(ci_examples * scale)), **kwargs)


def pytest_configure(config) -> None:
    # The commands' default result store is results/store of the working directory; the suite (and the notebooks it
    # runs, which inherit the environment) keeps its records in a temporary folder instead.
    os.environ.setdefault("COLLAPSE_STORE", tempfile.mkdtemp(prefix="collapse-test-store-"))


def random_batch(
    seed: int,
    n_classes: int = 4,
    per_class: int | tuple[int, int] = (2, 4),
    dim: int = 8,
    groups: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian embeddings with shuffled labels in which every label has at least 2 members.

    ``per_class`` is a fixed size or an inclusive ``(low, high)`` range (low >= 2) drawn per class. Returns
    ``(B, d)``/``(B,)`` tensors, or ``(G, B, d)``/``(G, B)`` when ``groups`` is given (the same class sizes in every
    group, independent embeddings and label orders).
    """
    rng = np.random.default_rng(seed)
    if isinstance(per_class, int):
        sizes = [per_class] * n_classes
    else:
        sizes = rng.integers(per_class[0], per_class[1] + 1, size=n_classes).tolist()
    if min(sizes) < 2:
        raise ValueError("every class needs at least 2 members")
    base = np.repeat(np.arange(n_classes), sizes)
    n_g = 1 if groups is None else groups
    labels = np.stack([rng.permutation(base) for _ in range(n_g)])
    emb = rng.standard_normal((n_g, base.size, dim))
    emb_t, lab_t = torch.tensor(emb, dtype=dtype), torch.tensor(labels, dtype=torch.long)
    return (emb_t[0], lab_t[0]) if groups is None else (emb_t, lab_t)


@pytest.fixture(scope="session")
def make_batch():
    """The :func:`random_batch` factory (session-scoped, so hypothesis tests may use it too)."""
    return random_batch


@pytest.fixture(autouse=True)
def _sigint_disposition_is_restored(request):
    """Every test leaves Ctrl-C handling as it found it. A test (or a library it drives in-process) that leaves
    SIGINT ignored would make every later subprocess of this worker ignore Ctrl-C too (an ignored signal survives
    exec), so the Ctrl-C tests would fail far from the cause: restore it, and warn with the culprit's name."""
    import signal
    import threading
    import warnings

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        warnings.warn(f"{request.node.nodeid} left the SIGINT handler as {after!r} (was {before!r}); restored",
                      stacklevel=1)  # fmt: skip
