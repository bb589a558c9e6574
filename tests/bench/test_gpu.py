"""The CUDA path of the benchmark and of the fused selection (runs only where a GPU is present: ``-m gpu``)."""

import json

import pytest
import torch

from collapse.bench import __main__ as cli
from collapse.sampling import Sampler
from tests.sampling.test_fused import _generic, _same_tuples

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]


def test_fused_selection_on_cuda_equals_cpu():
    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(2, 300, 8, generator=gen, dtype=torch.float64), dim=-1)
    D = torch.cdist(x, x)
    labels = torch.randint(0, 20, (2, 300), generator=gen)
    for positive in ("easy", "hard"):
        for negative in ("hard", "semihard", "all"):
            cpu = Sampler(positive, negative)(D, labels, dim=8)
            gpu = Sampler(positive, negative)(D.cuda(), labels.cuda(), dim=8)
            _same_tuples(gpu, cpu)
            _same_tuples(_generic(positive, negative)(D.cuda(), labels.cuda(), dim=8), cpu)


@pytest.mark.parametrize("extra", [[], ["--compile"]])
def test_tiny_cuda_run(tmp_path, extra):
    argv = ["--device", "cuda", "--batch-sizes", "64", "--eval-sizes", "500", "--nmi-sizes", "", "--repeats", "2",
            "--budget", "1", "--sections", "loss,eval", "--no-progress", "--out", str(tmp_path), *extra]
    assert cli.main(argv) == 0
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert all(r["device"] == "cuda" and r["check"] in ("ok", "n/a") for r in rows)
    assert all(r["ours_peak_mb"] is not None for r in rows if r["section"] == "loss")
