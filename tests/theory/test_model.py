import numpy as np
import pytest

from collapse.theory import ModeModel


def test_conditional_columns_are_laws():
    m = ModeModel.from_noise([2, 3, 1], 0.2, kind="pair_flip", weights=[1, 2, 1, 1, 3, 2])
    R = m.conditional
    assert np.allclose(R[:, m.labels_present].sum(0), 1.0)
    pm, py, pr = m.points()
    assert np.allclose(pr.numpy(), R[pm.numpy(), py.numpy()])
    assert (pr > 0).all()


def test_clean_model_has_one_point_per_mode():
    m = ModeModel.symmetric(3, 2, 0.0)
    pm, py, _ = m.points()
    assert len(pm) == 6 and (py.numpy() == m.mode_class[pm.numpy()]).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"mode_class": np.array([0, 1]), "weights": np.array([0.5, 0.5]), "transition": np.eye(3)[:2] * 2},
            "row-stochastic",
        ),
        ({"mode_class": np.array([0, 1]), "weights": np.array([0.7, 0.7]), "transition": np.eye(2)}, "summing to 1"),
        ({"mode_class": np.array([0, 5]), "weights": np.array([0.5, 0.5]), "transition": np.eye(2)}, "values in"),
        ({"mode_class": np.array([0.0, 1.0]), "weights": np.array([0.5, 0.5]), "transition": np.eye(2)}, "integer"),
    ],
)
def test_bad_models_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModeModel(**kwargs)


def test_from_noise_validates():
    with pytest.raises(ValueError, match="classes is required"):
        ModeModel.from_noise(3, 0.1)
    with pytest.raises(ValueError, match="eps"):
        ModeModel.symmetric(3, 2, 1.0)
    with pytest.raises(ValueError, match="kind"):
        ModeModel.from_noise(2, 0.1, classes=3, kind="nope")
