"""benchmarks/gpu_check.py without a GPU (--cpu): everything but the TensorRT build runs on every commit."""

import json
import sys

from .conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402


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
