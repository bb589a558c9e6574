"""python -m paper_repro.bench_throughput: a tiny CPU run writes its JSON; bad flags give one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from paper_repro.bench_throughput import main
from paper_repro.models import make_model


@pytest.mark.slow
def test_tiny_cpu_run_prints_and_writes_json(tmp_path, capsys):
    argv = ["--model", "small_cnn", "--size", "8", "--batch", "8", "--per-class", "4", "--steps", "2"]
    argv += ["--warmup", "1", "--device", "cpu", "--amp", "bf16", "--channels-last", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    line = capsys.readouterr().out
    assert "img/s" in line and "peak memory" in line
    files = list(tmp_path.glob("*.json"))
    assert [f.name for f in files] == ["small_cnn_8px_b8_bf16_cl_cpu.json"]
    result = json.loads(files[0].read_text())
    assert result["images_per_s"] > 0 and result["peak_memory_mib"] > 0
    assert result["steps"] == 2 and result["in_channels"] == 1 and result["amp"] == "bf16"
    assert result["parameters"] == sum(p.numel() for p in make_model("small_cnn", in_channels=1).parameters())
    assert torch.isfinite(torch.tensor(result["final_loss"]))
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary left behind


@pytest.mark.parametrize("model,size", [("small_cnn", 8), ("mlp-head", 16)])
def test_several_runs_in_one_program_count_every_runs_images(tmp_path, capsys, model, size):
    argv = ["--model", model, "--size", str(size), "--batch", "8", "--per-class", "4", "--steps", "2", "--runs", "3",
            "--warmup", "1", "--device", "cpu", "--dim", "8", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "runs 3" in capsys.readouterr().out
    (f,) = tmp_path.glob("*_g3_cpu.json")
    result = json.loads(f.read_text())
    assert result["runs"] == 3 and result["images_per_s"] > 0 and torch.isfinite(torch.tensor(result["final_loss"]))


def test_speedup_table_rows_and_roofline(tmp_path, capsys):
    argv = ["--model", "small_cnn", "--size", "8", "--batch", "8", "--per-class", "4", "--steps", "1", "--warmup",
            "0", "--speedup", "2", "--repeats", "1", "--device", "cpu", "--dim", "8", "--out", str(tmp_path),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "speed-up vs one run" in capsys.readouterr().out
    (f,) = tmp_path.glob("speedup_small_cnn_*.json")
    res = json.loads(f.read_text())
    assert [(r["runs"], r["channels_last"]) for r in res["rows"]] == [(1, False), (1, True), (1, False), (2, True),
                                                                      (2, True)]  # fmt: skip
    assert res["rows"][0]["speedup"] == 1.0 and all(r["images_per_s"] > 0 for r in res["rows"])
    assert res["flops_per_image"] > 0 and res["matmul_gflop_per_s"] > 0
    assert f.with_suffix(".md").read_text().count("| ") >= 4


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "vgg"], "--model must be one of small_cnn, resnet18, resnet50, mlp-head; got 'vgg'"),
        (["--model", "resnet18", "--runs", "2"], "--runs > 1 supports --model small_cnn or mlp-head"),
        (["--batch", "10", "--per-class", "4"], "--batch must be a multiple of --per-class (4)"),
        (["--amp", "fp8"], "--amp must be one of none, bf16; got 'fp8'"),
        (["--steps", "0"], "--steps must be an integer in [1, inf)"),
        (["--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
        (["--model", "small_cnn", "--speedup", "1,x"], "--speedup must be comma-separated integers >= 2"),
        (["--model", "resnet18", "--speedup", "2"], "--speedup supports --model small_cnn or mlp-head"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when no GPU is present")
def test_cuda_without_gpu_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        main(["--device", "cuda"])
    assert "torch sees no CUDA device" in capsys.readouterr().err
