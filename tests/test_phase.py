"""Batched phase diagrams: per-group noise inside one program, the grid of rows, and what the diagram shows."""

import json
from itertools import product

import numpy as np
import pytest
import torch

from collapse.data import LabelNoise
from collapse.experiment import SimConfig, make_data, run_simulation, train_configuration, verdict
from collapse.phase import count_runs, phase_blocks, phase_diagram, train_block

TINY = SimConfig(steps=25, samples_per_mode=8, seeds=2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("loss", "positive", "negative"),
    [("triplet", "random", "hard"), ("multisimilarity", "easy", "hard"), ("margin-learned", "random", "random")],
)
def test_group_of_a_mixed_block_is_the_run_with_that_noise_alone(loss, positive, negative):
    """Exact: group g trained among other noise levels is bitwise group g of a run where every group has eps_g.

    For eps_g > 0 that run is run_simulation's own scalar noise; for eps_g = 0 it is a stack of zero rates (a
    scalar zero rate draws no uniforms, a stack does, so only the distribution is the same there).
    """
    rates = (0.1, 0.0, 0.3)
    mixed, _, _ = train_configuration(TINY, loss, positive, negative, noise=LabelNoise(eps=rates), n_groups=3)
    for g, e in enumerate(rates):
        noise = LabelNoise(eps=e) if e > 0 else LabelNoise(eps=(0.0,) * 3)
        alone, _, _ = train_configuration(TINY, loss, positive, negative, noise=noise, n_groups=3)
        assert torch.equal(mixed.embeddings[g], alone.embeddings[g]), (g, e)
        assert torch.equal(mixed.labels[g], alone.labels[g])
        assert torch.equal(mixed.loss_history[:, g], alone.loss_history[:, g])
    clean = torch.as_tensor(make_data(TINY).y)
    assert torch.equal(mixed.labels[1], clean)  # the zero-rate group kept every true label


@pytest.mark.slow
def test_block_rows_equal_run_simulation_groups():
    """A block of E noise levels x S seeds is run_simulation with seeds = E*S, group i*S + s, for each eps > 0."""
    eps, S = (0.05, 0.2), 2
    cfg = SimConfig(steps=25, samples_per_mode=8, seeds=S)
    rows = train_block(cfg, "triplet", "random", "hard", eps, measures="full")
    assert [r["noise"] for r in rows] == list(eps)
    for i, (e, row) in enumerate(zip(eps, rows)):
        ref = run_simulation(SimConfig(steps=25, samples_per_mode=8, seeds=len(eps) * S, noise=e), "triplet", "random",
                             "hard")
        assert row["per_seed"] == ref.per_seed[i * S : (i + 1) * S]
        assert row["mode_separation"] == pytest.approx(np.mean([r["mode_separation"] for r in row["per_seed"]]))
        assert row["seeds"] == S and row["block_runs"] == len(eps) * S


def test_one_level_block_is_run_simulation():
    cfg = SimConfig(steps=25, samples_per_mode=8, seeds=2, noise=0.0)
    (row,) = train_block(cfg, "contrastive", "easy", "hard", [0.0], measures="full")
    ref = run_simulation(cfg, "contrastive", "easy", "hard")
    assert row["per_seed"] == ref.per_seed
    assert row["verdict"] == ref.verdict and row["seeds_collapsed"] == ref.summary["seeds_collapsed"]


@pytest.mark.parametrize("axis, field, values", [("M", "samples_per_class", (3, 5)), ("K", "modes", (2, 4))])
def test_rows_cover_the_grid(tmp_path, axis, field, values):
    eps = (0.0, 0.25)
    rows = phase_diagram(
        axis, losses=("triplet", "margin"), positives=("random", "easy"), eps_grid=eps, m_grid=values,
        k_grid=values, seeds=2, base=TINY, n_jobs=1, progress=False, out=tmp_path,
    )
    keys = [(r[field], r["loss"], r["positive"], r["noise"]) for r in rows]
    assert keys == list(product(values, ("triplet", "margin"), ("random", "easy"), eps))
    assert count_runs(rows) == len(keys) * 2
    other = "modes" if axis == "M" else "samples_per_class"
    for r in rows:
        assert r["axis"] == axis and r["negative"] == "hard" and r[other] == getattr(TINY, other)
        seps = [s["mode_separation"] for s in r["per_seed"]]
        assert r["frac_collapsed"] == np.mean([s["state_collapsed"] for s in r["per_seed"]])
        assert r["mode_separation"] == pytest.approx(np.mean(seps))
        assert r["verdict"] == verdict(r)
    (json_path,) = tmp_path.glob(f"phase_{axis}_*.json")  # the name carries the hash of the runs
    saved = json.loads(json_path.read_text())
    assert saved["runs"] == count_runs(rows) and saved["values"] == list(values) and saved["eps_grid"] == list(eps)
    assert saved["rows"] == json.loads(json.dumps(rows))
    # frac_collapsed is the instrument's verdict (above), so the file names that rule, not a fixed distance.
    assert saved["verdict_rule"].startswith("collapse.metrics.collapse_verdict") and "collapse_threshold" not in saved
    csv_lines = json_path.with_suffix(".csv").read_text().splitlines()
    assert len(csv_lines) == len(rows) + 1 and "per_seed" not in csv_lines[0]


def test_worker_processes_give_the_same_rows():
    kw = dict(losses=("triplet",), eps_grid=(0.0, 0.3), m_grid=(3, 4), seeds=2, base=TINY, progress=False)
    a, b = phase_diagram("M", n_jobs=2, **kw), phase_diagram("M", n_jobs=1, **kw)
    for r in a + b:
        assert r.pop("seconds") > 0  # wall time is the one field that may differ
    assert a == b


def test_blocks_put_eps_and_seeds_together():
    blocks = phase_blocks("M", ("triplet", "margin"), ("random", "easy"), m_grid=(3, 6, 12), seeds=5)
    assert len(blocks) == 3 * 2 * 2
    assert {(c.samples_per_class, c.seeds, c.modes) for c, _, _ in blocks} == {(3, 5, 3), (6, 5, 3), (12, 5, 3)}


@pytest.mark.slow
def test_the_diagram_shows_a_boundary():
    """Triplet loss, default simulation (500 steps): random positives keep the modes without noise and lose them at
    eps >= 0.3 whatever M (separation ~0, the instrument's state is no longer "kept"); easy positives keep the modes
    apart at every noise level once the batch holds enough of each class (M = 12: no merged or shrunk state), and lose
    them with M = 3 (a mode-mate is often missing from the batch) under heavy noise. (Issue 11's instrument calls the
    M = 12 EPS runs at eps >= 0.3 "no class structure": the modes stay apart, the classes do not.)"""
    rows = phase_diagram("M", losses=("triplet",), eps_grid=(0.0, 0.3, 0.4), m_grid=(3, 12), seeds=2, progress=False)
    cell = {(r["samples_per_class"], r["positive"], r["noise"]): r for r in rows}
    merged = ("state_collapsed", "state_partly", "state_shrunk")
    for M in (3, 12):
        assert cell[M, "random", 0.0]["state_kept"] == 1.0
        for eps in (0.3, 0.4):
            assert cell[M, "random", eps]["state_kept"] == 0.0 and cell[M, "random", eps]["mode_separation"] < 0.01
    for eps in (0.3, 0.4):
        assert sum(cell[12, "easy", eps][k] for k in merged) == 0.0
        assert cell[12, "easy", eps]["mode_separation"] > 5 * max(cell[12, "random", eps]["mode_separation"], 0.05)
    assert cell[3, "easy", 0.4]["state_kept"] == 0.0 and cell[3, "easy", 0.4]["mode_separation"] < 0.05


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"axis": "N"}, ValueError, r"axis must be one of M, K; got 'N'"),
        ({"eps_grid": (0.1, 1.0)}, ValueError, r"eps_grid\[1\] must be in \[0, 1\), got 1"),
        ({"eps_grid": ()}, ValueError, r"eps_grid must hold at least one value, got none"),
        ({"eps_grid": (0.1, 0.1)}, ValueError, r"eps_grid must hold distinct values"),
        ({"m_grid": (1, 4)}, ValueError, r"m_grid\[0\] must be an integer in \[2, inf\), got 1"),
        ({"axis": "K", "k_grid": (1,)}, ValueError, r"k_grid\[0\] must be an integer in \[2, inf\), got 1"),
        ({"losses": ("triplet", "hinge")}, ValueError, r"losses must be one of .*; got 'hinge'"),
        ({"positives": ("near",)}, ValueError, r"positives must be one of all, random, easy, hard; got 'near'"),
        ({"seeds": 0}, ValueError, r"seeds must be an integer in \[1, inf\), got 0"),
        ({"negative": "soft"}, ValueError, r"negative must be one of .*; got 'soft'"),
        ({"measures": "all"}, ValueError, r"measures must be one of separation, full; got 'all'"),
        ({"base": {"steps": 3}}, TypeError, r"base must be a SimConfig, got dict"),
        ({"n_jobs": 0}, ValueError, r"n_jobs must be an integer in \[1, inf\), got 0"),
    ],
)
def test_bad_input_is_one_line(kwargs, exc, match):
    with pytest.raises(exc, match=match) as info:
        phase_diagram(**{"progress": False, "base": TINY, **kwargs})
    assert "\n" not in str(info.value)


def test_one_grid_serves_blocks_runs_and_the_diagram():
    """The diagram's grid is stated once (PhaseGrid); phase_blocks / phase_runs / phase_diagram take its fields."""
    from collapse.phase import PhaseGrid, phase_runs

    grid = PhaseGrid("K", ("triplet",), ("random", "easy"), (0.0, 0.2), k_grid=(2, 3), seeds=2, negative="all")
    assert phase_runs("K", ("triplet",), ("random", "easy"), (0.0, 0.2), k_grid=(2, 3), seeds=2,
                      negative="all") == grid.runs()
    assert phase_blocks("K", ("triplet",), ("random", "easy"), k_grid=(2, 3), seeds=2) == grid.blocks()
    assert [r.config.modes for r in grid.runs()] == [2, 2, 2, 2, 3, 3, 3, 3]
    with pytest.raises(ValueError, match="measures"):
        PhaseGrid(measures="nope").runs()
