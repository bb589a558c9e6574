"""Shared test set-up: hypothesis profiles and random batches.

Profiles: ``ci`` (default; 30 derandomized examples) and ``deep`` (500 examples), chosen with the environment
variable ``HYPOTHESIS_PROFILE``, e.g. ``HYPOTHESIS_PROFILE=deep pytest tests``.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("deep", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
