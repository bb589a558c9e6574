import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.data import NOISE_MODELS, LabelNoise, draw_labels, transition_matrix
from tests.conftest import scaled_settings

counts_st = st.lists(st.integers(1, 4), min_size=2, max_size=5)
eps_st = st.floats(0.0, 0.999)


def _mode_class(counts):
    return np.repeat(np.arange(len(counts)), counts).astype(np.int64)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@scaled_settings(25)
@given(counts=counts_st, kind=st.sampled_from(NOISE_MODELS), eps=eps_st)
def test_rows_are_distributions(counts, kind, eps):
    mc = _mode_class(counts)
    T = transition_matrix(kind, eps, mc, len(counts))
    assert T.shape == (len(mc), len(counts)) and T.dtype == torch.float64
    assert torch.all(T >= 0)
    torch.testing.assert_close(T.sum(1), torch.ones(len(mc), dtype=torch.float64))


@scaled_settings(25)
@given(counts=counts_st, kind=st.sampled_from(NOISE_MODELS))
def test_zero_noise_is_one_hot_on_class(counts, kind):
    mc = _mode_class(counts)
    T = transition_matrix(kind, 0.0, mc, len(counts))
    expected = torch.nn.functional.one_hot(torch.as_tensor(mc), len(counts)).double()
    assert torch.equal(T, expected)


@scaled_settings(25)
@given(counts=counts_st, eps=eps_st)
def test_symmetric_entries(counts, eps):
    mc, n_classes = _mode_class(counts), len(counts)
    T = transition_matrix("symmetric", eps, mc, n_classes).numpy()
    for m, c in enumerate(mc):
        for y in range(n_classes):
            assert T[m, y] == pytest.approx(1 - eps if y == c else eps / (n_classes - 1))


@scaled_settings(25)
@given(counts=counts_st, eps=eps_st)
def test_pair_flip_entries(counts, eps):
    mc, n_classes = _mode_class(counts), len(counts)
    T = transition_matrix("pair_flip", eps, mc, n_classes).numpy()
    for m, c in enumerate(mc):
        expected = np.zeros(n_classes)
        expected[c] += 1 - eps
        expected[(c + 1) % n_classes] += eps
        np.testing.assert_allclose(T[m], expected)


def test_mode_confusion_default_is_last_mode_of_each_class():
    mc = _mode_class([2, 3, 1])  # modes 0-1 class 0, 2-4 class 1, 5 class 2
    T = transition_matrix("mode_confusion", 0.25, mc, 3).numpy()
    expected = np.array(
        [
            [1, 0, 0],
            [0.75, 0.25, 0],
            [0, 1, 0],
            [0, 1, 0],
            [0, 0.75, 0.25],
            [0.25, 0, 0.75],
        ]
    )
    np.testing.assert_allclose(T, expected)


def test_mode_confusion_with_given_modes():
    mc = _mode_class([2, 2])
    T = transition_matrix("mode_confusion", 0.4, mc, 2, confused_modes=[0]).numpy()
    np.testing.assert_allclose(T, [[0.6, 0.4], [1, 0], [0, 1], [0, 1]])
    T = transition_matrix("mode_confusion", 0.4, mc, 2, confused_modes=()).numpy()
    np.testing.assert_allclose(T, [[1, 0], [1, 0], [0, 1], [0, 1]])


def test_dtype_and_tensor_input():
    mc = torch.tensor([0, 0, 1, 2])
    T32 = transition_matrix("symmetric", 0.3, mc, 3, dtype=torch.float32)
    T64 = transition_matrix("symmetric", 0.3, mc.numpy(), 3)
    assert T32.dtype == torch.float32 and T32.device == mc.device
    torch.testing.assert_close(T32.double(), T64, atol=1e-7, rtol=0)
    # A class with no mode is allowed: its column only receives noise.
    assert T64.shape == (4, 3)


@pytest.mark.parametrize("kind", NOISE_MODELS)
def test_draw_frequencies_match_T(kind):
    mc = _mode_class([2, 3, 1])
    T = transition_matrix(kind, 0.3, mc, 3)
    n_per_mode = 200_000 // len(mc)
    modes = torch.arange(len(mc)).repeat_interleave(n_per_mode)
    y = draw_labels(modes, T, _gen(0))
    assert y.dtype == torch.int64 and y.shape == modes.shape
    counts = torch.zeros(len(mc), 3, dtype=torch.float64)
    counts.index_put_((modes, y), torch.ones_like(y, dtype=torch.float64), accumulate=True)
    freq = counts / n_per_mode
    se = torch.sqrt(T * (1 - T) / n_per_mode)
    assert torch.all((freq - T).abs() <= 5 * se + 1e-12)
    # Zero-probability labels never come out.
    assert torch.all(counts[T == 0] == 0)


def test_draw_keeps_any_shape_and_is_deterministic():
    mc = _mode_class([3, 3, 3])
    T = transition_matrix("symmetric", 0.5, mc, 3)
    modes = torch.randint(0, 9, (16, 32), generator=_gen(1))
    a = draw_labels(modes, T, _gen(2))
    b = draw_labels(modes, T, _gen(2))
    c = draw_labels(modes, T, _gen(3))
    assert a.shape == (16, 32) and a.dtype == torch.int64
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(draw_labels(modes, T, 2), a)  # an int seeds a fresh generator
    # Each entry is drawn independently: a (G, B) draw equals the flattened one.
    assert torch.equal(draw_labels(modes.flatten(), T, _gen(2)).view(16, 32), a)
    scalar = draw_labels(torch.tensor(4), T, _gen(0))
    assert scalar.shape == () and 0 <= int(scalar) < 3
    assert draw_labels(torch.zeros(0, 5, dtype=torch.long), T, _gen(0)).shape == (0, 5)


def test_draw_advances_the_generator():
    T = transition_matrix("symmetric", 0.5, _mode_class([2, 2]), 2)
    modes = torch.zeros(1000, dtype=torch.long)
    g = _gen(0)
    assert not torch.equal(draw_labels(modes, T, g), draw_labels(modes, T, g))


def test_draw_zero_noise_is_exact():
    mc = _mode_class([2, 3, 1])
    for kind in NOISE_MODELS:
        T = transition_matrix(kind, 0.0, mc, 3)
        modes = torch.randint(0, 6, (50, 40), generator=_gen(0), dtype=torch.int32)
        assert torch.equal(draw_labels(modes, T, _gen(0)), torch.as_tensor(mc)[modes.long()])


def test_draw_tolerates_rows_rounding_below_one():
    # float32 rows whose cumulative sum falls short of 1 must still give labels in range.
    T = torch.full((1, 7), 1 / 7, dtype=torch.float32)
    y = draw_labels(torch.zeros(100_000, dtype=torch.long), T, _gen(0))
    assert int(y.min()) >= 0 and int(y.max()) <= 6


def test_label_noise_object():
    noise = LabelNoise("pair_flip", 0.2, resample="step")
    mc = _mode_class([2, 2, 2])
    torch.testing.assert_close(noise.matrix(mc, 3), transition_matrix("pair_flip", 0.2, mc, 3))
    modes = torch.randint(0, 6, (4, 8), generator=_gen(0))
    assert torch.equal(noise.draw(modes, mc, 3, _gen(5)), draw_labels(modes, noise.matrix(mc, 3), _gen(5)))
    assert LabelNoise().kind == "symmetric" and LabelNoise().eps == 0.0 and LabelNoise().resample == "once"
    confused = LabelNoise("mode_confusion", 0.5, confused_modes=[1, 3])
    assert confused.confused_modes == (1, 3)
    np.testing.assert_allclose(confused.matrix(mc, 3).numpy()[[1, 3], :].max(1), 0.5)
    with pytest.raises(AttributeError):
        noise.eps = 0.5


@pytest.mark.parametrize("kind", NOISE_MODELS)
def test_label_noise_zero_eps_is_exact_and_consumes_nothing(kind):
    mc = _mode_class([1, 2, 3])
    modes = torch.randint(0, 6, (7, 9), generator=_gen(0))
    g = _gen(11)
    state = g.get_state()
    y = LabelNoise(kind, 0.0).draw(modes, mc, 3, g)
    assert torch.equal(y, torch.as_tensor(mc)[modes]) and y.dtype == torch.int64
    assert torch.equal(g.get_state(), state)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_draw_on_gpu_matches_frequencies():
    mc = _mode_class([2, 2])
    T = transition_matrix("symmetric", 0.3, torch.as_tensor(mc, device="cuda"), 2)
    assert T.device.type == "cuda"
    modes = torch.zeros(64, 4096, dtype=torch.long, device="cuda")
    y = draw_labels(modes, T, torch.Generator(device="cuda").manual_seed(0))
    assert y.device.type == "cuda" and y.shape == modes.shape
    assert abs(y.double().mean().item() - 0.3) < 0.01
    y0 = LabelNoise("symmetric", 0.0).draw(modes + 2, mc, 2, None)
    assert y0.device.type == "cuda" and bool((y0 == 1).all())
    with pytest.raises(ValueError, match="generator must be on the device of modes"):
        draw_labels(modes, T, torch.Generator().manual_seed(0))


MC = np.array([0, 0, 1, 1])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"kind": "uniform"}, ValueError, r"kind must be one of symmetric, pair_flip, mode_confusion; got 'uniform'"),
        ({"eps": 1.5}, ValueError, r"eps must be in \[0, 1\), got 1.5"),
        ({"eps": 1.0}, ValueError, r"eps must be in \[0, 1\), got 1"),
        ({"eps": -0.1}, ValueError, r"eps must be in \[0, 1\), got -0.1"),
        ({"eps": "0.1"}, TypeError, r"eps must be a real number, got '0.1'"),
        ({"n_classes": 1, "mode_class": np.zeros(2, dtype=int)}, ValueError, r"n_classes must be an integer in \[2"),
        ({"mode_class": [0, 1]}, TypeError, r"mode_class must be a numpy array or torch.Tensor, got list"),
        ({"mode_class": np.array([0.0, 1.0])}, ValueError, r"mode_class must be a non-empty 1-D integer array"),
        (
            {"mode_class": np.zeros((2, 2), dtype=int)},
            ValueError,
            r"mode_class must be a non-empty 1-D .*shape \(2, 2\)",
        ),
        ({"mode_class": np.zeros(0, dtype=int)}, ValueError, r"mode_class must be a non-empty 1-D"),
        (
            {"mode_class": np.array([0, 2])},
            ValueError,
            r"mode_class must have values in \[0, 2\), got values in \[0, 2\]",
        ),
        ({"mode_class": np.array([-1, 1])}, ValueError, r"mode_class must have values in \[0, 2\)"),
        ({"confused_modes": [0]}, ValueError, r"confused_modes is only used with kind='mode_confusion'"),
        (
            {"kind": "mode_confusion", "confused_modes": [4]},
            ValueError,
            r"confused_modes\[0\] must be .*\[0, 3\], got 4",
        ),
        ({"kind": "mode_confusion", "confused_modes": [1, 1]}, ValueError, r"confused_modes must be distinct"),
        ({"kind": "mode_confusion", "confused_modes": 1}, TypeError, r"confused_modes must be a sequence"),
        ({"kind": "mode_confusion", "confused_modes": [0.5]}, TypeError, r"confused_modes\[0\] must be an integer"),
        ({"dtype": torch.int64}, TypeError, r"dtype must be a floating torch.dtype, got torch.int64"),
        ({"dtype": "float64"}, TypeError, r"dtype must be a floating torch.dtype"),
    ],
)
def test_transition_matrix_bad_input(kwargs, exc, match):
    args = {"kind": "symmetric", "eps": 0.1, "mode_class": MC, "n_classes": 2, **kwargs}
    with pytest.raises(exc, match=match):
        transition_matrix(args.pop("kind"), args.pop("eps"), args.pop("mode_class"), args.pop("n_classes"), **args)


T_OK = transition_matrix("symmetric", 0.1, MC, 2)


@pytest.mark.parametrize(
    ("modes", "T", "gen", "exc", "match"),
    [
        (torch.tensor([0.0, 1.0]), T_OK, 0, TypeError, r"modes must be an integer torch.Tensor, got a tensor of dtype"),
        (torch.tensor([True]), T_OK, 0, TypeError, r"modes must be an integer torch.Tensor"),
        ([0, 1], T_OK, 0, TypeError, r"modes must be an integer torch.Tensor, got list"),
        (torch.tensor([0, 4]), T_OK, 0, ValueError, r"modes must lie in \[0, 4\) .*got values in \[0, 4\]"),
        (torch.tensor([-1, 0]), T_OK, 0, ValueError, r"modes must lie in \[0, 4\)"),
        (torch.tensor([0]), T_OK.long(), 0, TypeError, r"T must be a floating torch.Tensor, got a tensor of dtype"),
        (torch.tensor([0]), T_OK.numpy(), 0, TypeError, r"T must be a floating torch.Tensor, got ndarray"),
        (torch.tensor([0]), T_OK[0], 0, ValueError, r"T must have shape \(N, C\) with N, C >= 1, got \(2,\)"),
        (torch.tensor([0]), T_OK * 2, 0, ValueError, r"T must be row-stochastic"),
        (torch.tensor([0]), T_OK - 0.5, 0, ValueError, r"T must be row-stochastic"),
        (torch.tensor([0]), T_OK, "seed", TypeError, r"random_state must be None, an int or a torch.Generator"),
    ],
)
def test_draw_labels_bad_input(modes, T, gen, exc, match):
    with pytest.raises(exc, match=match):
        draw_labels(modes, T, gen)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"kind": "gaussian"}, ValueError, r"kind must be one of symmetric, pair_flip, mode_confusion; got 'gaussian'"),
        ({"eps": 1.5}, ValueError, r"eps must be in \[0, 1\), got 1.5"),
        ({"eps": None}, TypeError, r"eps must be a real number, got None"),
        ({"resample": "epoch"}, ValueError, r"resample must be one of once, step; got 'epoch'"),
        ({"confused_modes": (0,)}, ValueError, r"confused_modes is only used with kind='mode_confusion'"),
        ({"kind": "mode_confusion", "confused_modes": (-1,)}, ValueError, r"confused_modes\[0\] must be an integer in"),
    ],
)
def test_label_noise_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LabelNoise(**kwargs)


def test_label_noise_checks_modes_against_data():
    noise = LabelNoise("mode_confusion", 0.1, confused_modes=(9,))
    with pytest.raises(ValueError, match=r"confused_modes\[0\] must be an integer in \[0, 3\], got 9"):
        noise.matrix(MC, 2)
    with pytest.raises(ValueError, match=r"modes must lie in \[0, 4\)"):
        LabelNoise().draw(torch.tensor([5]), MC, 2, 0)
