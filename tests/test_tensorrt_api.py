"""The TensorRT calls of vision/export/tensorrt.py checked against bindings' signatures (benchmarks/gpu_check.py):
the checker on a fake module with pybind11-style docstrings, the real bindings when they import, and gpu_check's
report on a machine without CUDA."""

import json
import types

import pytest
import torch

import benchmarks.gpu_check as gpu_check

SOURCE = '''
def build(trt, config):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1, 2)
    network.gone()
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(flag=trt.BuilderFlag.TF32)
    if trt.__version__ < "11":
        base = trt.IInt8EntropyCalibrator2
'''


def _method(doc):
    def method(self, *args, **kwargs):
        pass
    method.__doc__ = doc
    return method


def fake_tensorrt(version: str) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": _method(
        "__init__(self: tensorrt.Logger, min_severity: tensorrt.ILogger.Severity = <Severity.WARNING: 2>) -> None")})
    trt.INetworkDefinition = type("INetworkDefinition", (), {})
    trt.Builder = type("Builder", (), {
        "__init__": _method("__init__(self: tensorrt.Builder, logger: tensorrt.ILogger) -> None"),
        "create_network": _method("create_network(self: tensorrt.Builder, flags: typing.SupportsInt = 0) -> "
                                  "tensorrt.INetworkDefinition\n\n    Create a network.")})
    trt.IBuilderConfig = type("IBuilderConfig", (), {"set_flag": _method(
        "set_flag(self: tensorrt.IBuilderConfig, flag: tensorrt.BuilderFlag) -> None")})
    trt.BuilderFlag = type("BuilderFlag", (), {"TF32": 7})
    return trt


def test_checker_follows_return_types_and_finds_missing_names_and_bad_calls(tmp_path):
    source = tmp_path / "tensorrt.py"
    source.write_text(SOURCE)
    report = gpu_check.check_tensorrt_api(fake_tensorrt("11.4.0.106"), source)
    assert report["problems"] == [
        "tensorrt.py:5: Builder.create_network called with 2 positional and keywords []; its signatures: "
        "(flags=...)",
        "tensorrt.py:6: INetworkDefinition.gone does not exist in TensorRT 11.4.0.106"]
    assert {"Logger", "Logger.WARNING", "Builder", "Builder.create_network", "IBuilderConfig.set_flag",
            "BuilderFlag.TF32"} <= set(report["checked"])
    assert report["absent_guarded"] == ["BuilderFlag.FP16", "IInt8EntropyCalibrator2"]
    older = gpu_check.check_tensorrt_api(fake_tensorrt("10.8.0.43"), source)  # there they must exist
    assert "tensorrt.py:7: BuilderFlag.FP16 does not exist in TensorRT 10.8.0.43" in older["problems"]


def test_every_tensorrt_call_of_the_exporter_fits_the_installed_bindings():
    trt = gpu_check.import_tensorrt()
    if trt is None:
        pytest.skip("TensorRT bindings are not installed (benchmarks/results/export.md: checked in a throwaway venv)")
    report = gpu_check.check_tensorrt_api(trt)
    assert report["problems"] == [] and report["calls"] >= 30
    assert "IExecutionContext.execute_async_v3" in report["checked"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the report of a machine without CUDA")
def test_gpu_check_without_cuda_reports_the_environment_and_why(tmp_path):
    report = gpu_check.main(["--out", str(tmp_path)])
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["models"] == report["models"] == {}
    assert saved["environment"]["cuda"] is False and "torch" in saved["environment"]["versions"]
    assert "tritonserver" in saved["environment"]["absent"] or saved["environment"]["tritonserver"]
    assert "no CUDA device" in (tmp_path / "gpu_check.md").read_text()
