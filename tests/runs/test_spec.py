"""Run keys and blocks: stable, distinct, canonical."""

import dataclasses
import subprocess
import sys

import pytest

from collapse.experiment import SimConfig
from collapse.runs import Block, SimRun, config_hash, get_kind, make_blocks
from tests.runs.toy_kind import ToyRun


def test_keys_are_stable_across_processes_and_distinct():
    run = SimRun(SimConfig(steps=30, seeds=2), "triplet", "easy", "hard")
    code = ("from collapse.experiment import SimConfig; from collapse.runs import SimRun; "
            "print(SimRun(SimConfig(steps=30, seeds=2), 'triplet', 'easy', 'hard').key)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == run.key and len(run.key) == 20
    variants = [
        dataclasses.replace(run, positive="random"),
        dataclasses.replace(run, loss="margin"),
        dataclasses.replace(run, measures="separation"),
        dataclasses.replace(run, trace=True),
        run.with_noise(0.2),
        dataclasses.replace(run, config=dataclasses.replace(run.config, seed=1)),
        dataclasses.replace(run, block_noise=(0.0, 0.1)),
    ]
    assert len({run.key, *(v.key for v in variants)}) == len(variants) + 1


def test_equivalent_spellings_are_one_run():
    a = SimRun(SimConfig(modes=3), "triplet", "random", None)
    b = SimRun(SimConfig(modes=(3, 3, 3, 3)), "triplet", "random", "all")  # triplet's published rule is "all"
    assert a.negative == "all" and a.key == b.key
    assert config_hash("sim", SimRun.SCHEMA, a.identity()) == a.key
    assert config_hash("sim", SimRun.SCHEMA + 1, a.identity()) != a.key  # a schema bump invalidates old records


def test_noise_levels_of_one_block_train_together():
    base = SimRun(SimConfig(steps=30, seeds=2), block_noise=(0.0, 0.1, 0.2))
    runs = [base.with_noise(e) for e in (0.0, 0.1, 0.2)] + [dataclasses.replace(base, positive="easy")]
    blocks = make_blocks(runs + runs[:1])  # the repeated run is dropped
    assert [len(b) for b in blocks] == [3, 1]
    assert all(isinstance(b, Block) and b.kind == "sim" for b in blocks)
    alone = [SimRun(SimConfig(noise=e)) for e in (0.0, 0.1)]  # block_noise () = its own rate only
    assert [len(b) for b in make_blocks(alone)] == [1, 1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "hinge"}, r"loss must be one of"),
        ({"positive": "near"}, r"positive must be one of"),
        ({"negative": "soft"}, r"negative must be one of"),
        ({"measures": "all"}, r"measures must be one of separation, full"),
        ({"block_noise": (0.0, 0.2)}, r"the run's noise 0.1 must be one of block_noise \[0.0, 0.2\]"),
        ({"block_noise": (0.1, 0.1)}, r"block_noise must hold distinct rates"),
        ({"snapshot_steps": (600,)}, r"snapshot_steps must be an integer in \[0, 500\], got 600"),
    ],
)
def test_bad_runs_are_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        SimRun(SimConfig(), **kwargs)
    assert "\n" not in str(info.value)


def test_unknown_kind_and_foreign_objects():
    with pytest.raises(ValueError, match="unknown run kind 'nope'; registered: .*sim"):
        get_kind("nope")
    with pytest.raises(TypeError, match="a run must be a collapse.runs.Run, got dict"):
        make_blocks([{"x": 1}])
    assert get_kind(ToyRun(1)).name == "toy"
