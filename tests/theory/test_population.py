"""The population objective against a naive loop oracle and against Monte Carlo over real sampled batches."""

import itertools

import numpy as np
import pytest
import torch

from collapse.losses import make_loss
from collapse.theory import ModeModel, monte_carlo_loss, population_loss
from collapse.theory.selection import nearest_of_m_law


def naive_triplet_random_all(Z: torch.Tensor, m: ModeModel, alpha: float) -> float:
    """Loop over (anchor label, anchor mode, positive mode, negative label, negative mode)."""
    z = torch.nn.functional.normalize(Z, dim=-1).numpy()
    D = np.linalg.norm(z[:, None] - z[None], axis=-1)
    R = m.conditional
    labels = list(m.labels_present)
    C = len(labels)
    total = 0.0
    for y in labels:
        for a in range(m.n_modes):
            for p in range(m.n_modes):
                for y2 in labels:
                    if y2 == y:
                        continue
                    for n in range(m.n_modes):
                        w = R[a, y] / C * R[p, y] * R[n, y2] / (C - 1)
                        total += w * max(D[a, p] - D[a, n] + alpha, 0.0)
    return total


@pytest.mark.parametrize("seed", range(3))
def test_triplet_population_equals_naive_loop(seed):
    gen = torch.Generator().manual_seed(seed)
    m = ModeModel.from_noise([2, 3, 1], 0.25, kind="pair_flip", weights=[1, 2, 1, 2, 1, 3])
    Z = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    got = population_loss(Z, m, "triplet", "random", "all", margin=0.5).loss.item()
    assert got == pytest.approx(naive_triplet_random_all(Z, m, 0.5), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(
    "loss, positive",
    [
        ("triplet", "random"),
        ("triplet", "easy"),
        ("triplet", "hard"),
        ("contrastive", "random"),
        ("margin", "easy"),
        ("margin-learned", "random"),
    ],
)
def test_exact_finite_batch_matches_monte_carlo(loss, positive):
    gen = torch.Generator().manual_seed(1)
    m = ModeModel.from_noise([2, 3, 2], 0.2)
    Z = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    kw = {"num_classes": 3} if loss == "margin-learned" else {}
    exact = population_loss(Z, m, loss, positive, "all", batch=(3, 4), **kw).loss.item()
    _, mc = monte_carlo_loss(Z, m, loss, positive, "all", batch=(3, 4), n_batches=6000, generator=gen, **kw)
    assert abs(exact - mc.mean) < 4.5 * mc.stderr + 1e-9, (exact, mc)


def test_monte_carlo_detects_a_wrong_expectation():
    """The MC comparison has power: the infinite-batch EPS value differs from the M = 3 one by many errors."""
    m = ModeModel.symmetric(3, 3, 0.2)
    Z = torch.randn(9, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    inf = population_loss(Z, m, "triplet", "easy", "all").loss.item()
    _, mc = monte_carlo_loss(Z, m, "triplet", "easy", "all", batch=(3, 3), n_batches=4000)
    assert abs(inf - mc.mean) > 10 * mc.stderr


def test_infinite_batch_is_the_large_m_limit():
    m = ModeModel.symmetric(3, 2, 0.1)
    Z = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    inf = population_loss(Z, m, "triplet", "easy", "all").loss.item()
    big = population_loss(Z, m, "triplet", "easy", "all", batch=(3, 2000)).loss.item()
    assert big == pytest.approx(inf, abs=1e-8)


def test_merged_and_point_level_tuples_agree():
    """Margin with a per-class beta reads labels (point-level tuples); with equal betas it must equal the fixed-beta
    loss, which is evaluated on tuples merged to modes."""
    m = ModeModel.from_noise([2, 2, 3], 0.3)
    Z = torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    fixed = population_loss(Z, m, "margin", "random", "all").loss
    per_class = population_loss(
        Z, m, make_loss("margin-learned", "random", "all", num_classes=3, reducer="mean"), "random", "all"
    ).loss
    assert per_class.item() == pytest.approx(fixed.item(), rel=1e-12)


@pytest.mark.parametrize("M", [2, 3, 5])
def test_nearest_of_m_law_matches_enumeration(M):
    dist = torch.tensor([0.3, 0.1, 0.3, 0.7], dtype=torch.float64)
    mass = torch.tensor([0.2, 0.1, 0.4, 0.3], dtype=torch.float64)
    law = nearest_of_m_law(dist, mass, M - 1)
    brute = np.zeros(4)
    for draw in itertools.product(range(4), repeat=M - 1):
        p = np.prod([mass[i].item() for i in draw])
        best = min(draw, key=lambda i: (dist[i].item(), i))
        brute[best] += p
    assert np.allclose(law.numpy(), brute, atol=1e-12)


def test_population_errors_are_one_line():
    m = ModeModel.symmetric(3, 2, 0.1)
    Z = torch.randn(6, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="loss must be one of"):
        population_loss(Z, m, "nope")
    with pytest.raises(ValueError, match="modes but the model has"):
        population_loss(torch.randn(5, 4, dtype=torch.float64), m)
    with pytest.raises(ValueError, match="monte_carlo_loss"):
        population_loss(Z, m, "triplet", "easy", "semihard", batch=(3, 4))
    with pytest.raises(ValueError, match="batch"):
        population_loss(Z, m, "multisimilarity", "all", "all")


# ------------------------------------------------------------------------------------------------ every combination
# What population_loss does for each loss x positive x negative x batch model: "exact" (a closed form, checked
# against Monte Carlo over real sampled batches where the batch is finite), or a one-line ValueError naming the
# way out. NCA with all negatives is a log-sum over the batch's negatives (no closed form; unbounded as the batch
# grows), like multi-similarity; SupCon and L_spread sum over the batch for every rule; proxy losses have proxies.
POSITIVES = ("random", "easy", "hard", "all")
NEGATIVES = ("all", "random", "semihard", "hard")
POINT_LOSSES = ("contrastive", "triplet", "triplet-sq", "margin", "margin-learned", "nca")


def _expected(loss: str, negative: str, batch) -> str | None:
    """None when population_loss has a closed form, else a fragment of the error it must give."""
    if loss in ("softtriple", "subcenter-arcface"):
        return "proxy_population_loss"
    if loss in ("supcon", "spread"):
        return "monte_carlo_loss"
    if loss == "multisimilarity":
        return "batch=" if batch is None else (None if negative in ("all", "random") else "negatives all/random")
    if loss == "nca" and negative == "all":
        return "monte_carlo_loss"
    if batch is not None and negative in ("semihard", "hard"):
        return "monte_carlo_loss"
    return None


_LOSS_NAMES = (*POINT_LOSSES, "multisimilarity", "supcon", "spread", "softtriple", "subcenter-arcface")


@pytest.mark.parametrize("batch", [None, (3, 4)], ids=["infinite", "3x4"])
@pytest.mark.parametrize("negative", NEGATIVES)
@pytest.mark.parametrize("positive", POSITIVES)
@pytest.mark.parametrize("loss", _LOSS_NAMES)
def test_every_combination_is_finite_or_refused_in_one_line(loss, positive, negative, batch):
    m = ModeModel.symmetric(3, 2, 0.1)
    Z = torch.randn(6, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64, requires_grad=True)
    kw = {"num_classes": 3} if loss == "margin-learned" else {}
    expected = _expected(loss, negative, batch)
    if expected is not None:
        with pytest.raises(ValueError, match=expected) as info:
            population_loss(Z, m, loss, positive, negative, batch=batch, **kw)
        assert "\n" not in str(info.value)
        return
    out = population_loss(Z, m, loss, positive, negative, batch=batch, **kw)
    assert out.per_group.shape == (1,) and torch.isfinite(out.loss)
    out.loss.backward()
    assert torch.isfinite(Z.grad).all()


@pytest.mark.parametrize("positive", ["random", "easy", "hard", "all"])
def test_nca_random_negative_matches_monte_carlo(positive):
    """NCA with one random negative per positive pair: softplus((S_an - S_ap)/tau) averaged over the triplet law
    (the cross product of positives and negatives, weighted per triplet) equals sampled batches."""
    gen = torch.Generator().manual_seed(5)
    m = ModeModel.from_noise([2, 3, 2], 0.2)
    Z = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    exact = population_loss(Z, m, "nca", positive, "random", batch=(3, 4)).loss.item()
    _, mc = monte_carlo_loss(Z, m, "nca", positive, "random", batch=(3, 4), n_batches=6000, generator=gen)
    assert abs(exact - mc.mean) < 4.5 * mc.stderr + 1e-9, (exact, mc)
