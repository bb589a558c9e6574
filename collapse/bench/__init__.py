"""Performance of collapse against pytorch-metric-learning, with correctness checked in the same run.

``python -m collapse.bench`` (see :mod:`collapse.bench.__main__`) runs three sections:

* ``loss`` (:mod:`collapse.bench.loss_cases`): forward + backward of a loss with its sampler at batch sizes
  128 ... 8192, d = 128, against the closest PML miner + loss, with the value, the gradient and (where the selection
  is deterministic) the mined tuples checked in float64;
* ``eval`` (:mod:`collapse.bench.eval_cases`): Recall@K, P@1, R-precision, MAP@R and NMI at N = 10k and 100k
  against PML's ``AccuracyCalculator``;
* ``sweep`` (:mod:`collapse.bench.sweep_case`): runs per second of the batched phase-diagram sweep.

Timing and memory are in :mod:`collapse.bench.measure`, the checks in :mod:`collapse.bench.checks`, the table,
files and README section in :mod:`collapse.bench.report`, the loop in :mod:`collapse.bench.runner`.
"""

from collapse.bench.runner import BenchConfig, run_benchmark

__all__ = ["BenchConfig", "run_benchmark"]
