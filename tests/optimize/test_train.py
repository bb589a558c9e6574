import pytest
import torch

from collapse.data import LabelNoise
from collapse.experiment import SimConfig, make_data, run_simulation
from collapse.losses import make_loss
from collapse.optimize import make_model, train_embeddings
from collapse.sampling import PKBatchSampler


def _setup(seed=0, steps=20, lr=0.05, groups=2):
    data = make_data(SimConfig(samples_per_mode=8))
    gen = torch.Generator().manual_seed(seed)
    model = make_model("tied", X=torch.as_tensor(data.X), modes=torch.as_tensor(data.modes), n_modes=data.n_modes,
                       dim=4, n_groups=groups, generator=gen)
    loss = make_loss("triplet", "easy", "hard", random_state=gen)
    kw = dict(modes=torch.as_tensor(data.modes), mode_class=torch.as_tensor(data.mode_class), n_classes=4,
              n_groups=groups, noise=LabelNoise(eps=0.1), batch_sampler=PKBatchSampler(4, 6), steps=steps, lr=lr,
              generator=gen)
    return model, loss, kw


def test_training_is_deterministic_for_a_seed():
    a = train_embeddings(*_setup()[:2], **_setup()[2])
    m, loss, kw = _setup()
    b = train_embeddings(m, loss, **kw)
    assert torch.equal(a.embeddings, b.embeddings)
    assert a.embeddings.shape == (2, len(kw["modes"]), 4)
    assert torch.allclose(a.embeddings.norm(dim=-1), torch.ones(()).double())  # on the unit sphere


def test_groups_train_independently():
    """Training 2 groups at once must not couple them: each group's loss moves only its own parameters."""
    m, loss, kw = _setup(groups=2)
    before = m.weight.detach().clone()
    emb = m(torch.tensor([[0, 8, 16, 24, 32]] * 2))  # five different modes
    out = loss(emb, torch.tensor([[0, 0, 1, 1, 0]] * 2))
    out.per_group[0].backward()
    assert torch.all(m.weight.grad[1] == 0) and torch.any(m.weight.grad[0] != 0)
    assert torch.equal(before, m.weight.detach())


def test_nan_embeddings_raise_with_the_step_number():
    m, loss, kw = _setup(steps=5)
    with torch.no_grad():
        m.weight[0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="step 1"):
        train_embeddings(m, loss, **kw)


@pytest.mark.parametrize("noise", [0.1, 0.0])
def test_default_simulation_shows_collapse_under_noise_and_eps_keeps_modes(noise):
    """The acceptance behaviour of ``python -m collapse.simulate`` at its defaults, for the triplet loss, as the
    instrument reads it: with noise, random positives merge the modes (and shrink the whole space with hard
    negatives) while EPS keeps every mode apart; without noise both keep modes and classes."""
    cfg = SimConfig(noise=noise)
    rand = run_simulation(cfg, "triplet", "random", "hard")
    easy = run_simulation(cfg, "triplet", "easy", "hard")
    assert easy.summary["merges"] == 0.0, easy.verdict
    if noise:
        assert rand.verdict in ("collapsed", "degenerate (whole space shrunk)"), rand.verdict
        assert rand.summary["merges"] >= 0.8 * rand.summary["merges_possible"]
        assert easy.summary["submode_separation"] > 5 * rand.summary["submode_separation"]
    else:
        assert rand.verdict == easy.verdict == "modes kept"


def test_contrastive_collapses_without_noise():
    res = run_simulation(SimConfig(noise=0.0), "contrastive", "random", "hard")
    assert res.verdict == "collapsed"
    assert res.summary["seeds_collapsed"] == 3
