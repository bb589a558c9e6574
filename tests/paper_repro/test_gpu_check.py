"""python -m paper_repro.gpu_check: the dry run (CPU, tiny sizes) goes through every part of the GPU check, so the
command cannot rot while no GPU is available; no test reads a verdict's value (it is about a GPU)."""

from __future__ import annotations

import json

import pytest
import torch

from paper_repro import gpu_check


@pytest.mark.slow
def test_dry_run_writes_the_json_and_prints_every_target(tmp_path, capsys):
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["dry_run"] and not result["failures"]
    sections = {r["section"] for r in result["bench"]["rows"]}
    assert sections == {"loss", "compiled"}
    compiled = [r for r in result["bench"]["rows"] if r["section"] == "compiled"]
    # Every loss case with a check: one compiled row (a fixed-shape step, 0 graph breaks) and 3 GPU targets.
    n_cases = len(gpu_check.CHECKED_CASES)
    assert n_cases >= 6
    assert len(compiled) == n_cases and all("0 graph breaks" in r["check_detail"] for r in compiled)
    assert result["throughput"]["model"] == "resnet18" and result["throughput"]["images_per_s"] > 0
    names = {t["target"].split(":")[1].strip() for t in result["targets"]}
    assert len(result["targets"]) == 3 * n_cases and len(names) == 3
    assert all(t["verdict"] in ("met", "missed") for t in result["targets"])
    assert out.count("target: GPU") == 3 * n_cases and "dry run" in out
    assert (tmp_path / "bench.json").exists() and (tmp_path / "bench.csv").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without a GPU")
def test_without_a_gpu_the_real_check_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--out", "unused"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no CUDA device here" in err and len(err.strip().splitlines()) == 1
