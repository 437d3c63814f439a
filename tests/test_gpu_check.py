"""The benchmark scripts on CPU: gpu_check.py without a GPU (--cpu: everything but the TensorRT build), and
tools/benchmark.py over every task through the predictor."""

import json

import pytest

import benchmarks.gpu_check as gpu_check

from .conftest import REPO


def test_gpu_check_dry_run_writes_parity_and_timing_reports(tmp_path):
    report = gpu_check.main(["--cpu", "--seconds", "0.2", "--models", "brand_resnet10t,logo_yolo11n",
                             "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["models"].keys() == report["models"].keys() == {"brand_resnet10t", "logo_yolo11n"}
    assert saved["models"]["brand_resnet10t"]["parity"]["ort-fp32"]["min_cosine"] > 0.9999
    assert saved["models"]["logo_yolo11n"]["parity"]["ort-fp32"]["box_agreement"] > 0.95
    runtimes = {(r["batch"], r["runtime"]) for r in saved["models"]["logo_yolo11n"]["timing"]}
    assert runtimes == {(b, rt) for b in gpu_check.CPU_BATCHES for rt in ("torch-fp32", "ort-fp32")}
    assert "| logo_yolo11n | 4 | ort-fp32 |" in (tmp_path / "gpu_check.md").read_text()


def test_benchmark_tool_times_every_task_through_the_predictor(tmp_path):
    import vision.commands.benchmark as benchmark

    result = benchmark.main(["--model", "brand_resnet10t,logo_yolo11n", "--backends", "torch,ort-fp32",
                             "--batch", "1,2", "--seconds", "0.1", "--rounds", "1",
                             "--end-to-end", str(REPO / "data" / "logo_sample" / "images" / "val"),
                             "--out", str(tmp_path / "bench.json")])
    by_model = {m["model"]: m for m in result["models"]}
    assert {(r["backend"], r["batch"]) for r in by_model["logo_yolo11n"]["rows"]} == {
        (b, n) for b in ("torch", "ort-fp32") for n in (1, 2)}
    e2e = by_model["logo_yolo11n"]["end_to_end"]
    assert e2e and all(r["images"] == 8 and r["images_per_s"] > 0 for r in e2e)
    assert json.loads((tmp_path / "bench.json").read_text())["models"][0]["task"] == "embedding"


def test_benchmark_workers_add_end_to_end_rows_for_the_onnx_runtime_backends(tmp_path):
    import vision.commands.benchmark as benchmark
    from vision.benchmarking import BenchmarkError

    result = benchmark.main(["--model", "logo_yolo11n", "--backends", "torch,ort-fp32", "--batch", "1",
                             "--seconds", "0.1", "--rounds", "1", "--workers", "2",
                             "--images", str(REPO / "data" / "logo_sample" / "images" / "val"),
                             "--out", str(tmp_path / "bench.json")])
    model = result["models"][0]
    assert {r["backend"] for r in model["rows"]} == {"torch", "ort-fp32"}   # the network rows: unchanged
    e2e = {r["backend"]: r for r in model["end_to_end"]}
    assert set(e2e) == {"torch", "ort-fp32", "ort-fp32, 2 workers"}
    assert e2e["ort-fp32, 2 workers"]["images"] == 8 and e2e["ort-fp32, 2 workers"]["images_per_s"] > 0
    with pytest.raises(BenchmarkError, match="--workers times the end-to-end rows: give --images too"):
        benchmark.main(["--model", "logo_yolo11n", "--backends", "ort-fp32", "--workers", "2",
                        "--out", str(tmp_path / "b.json")])
    with pytest.raises(BenchmarkError, match="--workers must be 1 or more"):
        benchmark.main(["--model", "logo_yolo11n", "--workers", "0", "--out", str(tmp_path / "b.json")])
