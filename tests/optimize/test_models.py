import pytest
import torch

from collapse.optimize import FreeSampleEmbedding, MLPEmbedding, TiedModeEmbedding, make_model


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_tied_model_gives_one_point_per_mode():
    modes = torch.tensor([0, 0, 1, 1, 2])
    m = TiedModeEmbedding(modes, 3, 4, 2, generator=_gen(), dtype=torch.float64)
    idx = torch.tensor([[0, 1, 4], [2, 3, 0]])
    out = m(idx)
    assert out.shape == (2, 3, 4)
    assert torch.equal(out[0, 0], out[0, 1])  # same mode, same group
    assert torch.equal(out[1, 0], m.weight[1, 1]) and torch.equal(out[0, 2], m.weight[0, 2])


def test_sample_model_and_mlp_shapes_and_group_independence():
    X = torch.randn(10, 3, generator=_gen(1))
    for model in (
        FreeSampleEmbedding(10, 5, 3, generator=_gen(), dtype=torch.float64),
        MLPEmbedding(X, 5, 3, generator=_gen(), dtype=torch.float64),
    ):
        idx = torch.randint(0, 10, (3, 7), generator=_gen(2))
        out = model(idx)
        assert out.shape == (3, 7, 5)
        # the gradient of group 0's output reaches group 0's parameters only
        out[0].sum().backward()
        for p in model.parameters():
            if p.grad is not None:
                assert torch.all(p.grad[1:] == 0)


def test_make_model_is_deterministic_for_a_seed_and_validates():
    kw = dict(X=torch.zeros(6, 2), modes=torch.arange(6) // 2, n_modes=3, dim=4, n_groups=2)
    a = make_model("tied", generator=_gen(7), **kw)
    b = make_model("tied", generator=_gen(7), **kw)
    assert torch.equal(a.weight, b.weight)
    with pytest.raises(ValueError, match="model must be one of"):
        make_model("cnn", generator=_gen(), **kw)
    with pytest.raises(ValueError, match="dim"):
        make_model("tied", generator=_gen(), **{**kw, "dim": 0})
