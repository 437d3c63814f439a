#!/usr/bin/env python
"""The first GPU check, in one call: environment, TensorRT API, plans of a classifier and the detector against torch.

On a machine with an NVIDIA GPU (a few minutes)::

    python -m benchmarks.gpu_check --out runs/gpu_check            # --install: pip install '.[tensorrt]' first

1. Environment: GPU, driver, CUDA, torch / onnxruntime / tensorrt versions, a ``tritonserver`` binary (on the
   path or inside nvidia-pytriton), each recorded also when absent; with ``tensorrt`` importable, every TensorRT
   call of ``vision/export/tensorrt.py`` checked against the installed bindings' signatures.
2. The classifier (``grocery_resnet10t``): an fp16 plan, an fp32 plan (TF32 cleared: the default, gated at 1e-4)
   and an fp32 plan with TF32 left on (built without the gate, to show what it costs), each compared with torch
   fp32 run without TF32 (max relative difference on the network output, top-1 agreement through
   :func:`vision.predictor` on the committed sample) and timed at batch 1, 7 and 32 (profile 1,8,32: 7 is off
   the optimum) against torch eager fp32 and fp16. With ``--calib-dir``, an INT8 plan too.
3. The detector (``logo_yolo11n``): an fp16 plan, box agreement after NMS, the same timings.
4. ``gpu_check.json`` and ``gpu_check.md`` in ``--out``.

Every step that fails is recorded with its error and the others still run, so one call reports everything.
Without CUDA the report holds the environment and says so (exit 0); without TensorRT the torch rows still run.
``--cpu`` is the dry run the tests use: ONNX Runtime fp32 takes TensorRT's place, small batches.
``--api-only`` runs step 1 alone (no torch needed), e.g. in a venv holding only the TensorRT bindings.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SAMPLE_PHOTOS = sorted((REPO / "data" / "grocery_sample" / "val").rglob("*.jpg"))[:16]
SAMPLE_COMPOSITES = sorted((REPO / "data" / "logo_sample" / "images" / "val").glob("*.jpg"))[:8]
DEFAULT_MODELS = ("grocery_resnet10t", "logo_yolo11n")
GPU_BATCHES = (1, 7, 32)
GPU_PROFILE = "1,8,32"
CPU_BATCHES = (1, 4)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/gpu_check"))
    ap.add_argument("--install", action="store_true", help="pip install the [tensorrt] extra if it is missing")
    ap.add_argument("--wheels", type=Path, help="install TensorRT from this folder of wheels (no index)")
    ap.add_argument("--calib-dir", type=Path, help="images for an INT8 classifier plan (skipped without)")
    ap.add_argument("--models", help=f"comma-separated zoo names (default: {','.join(DEFAULT_MODELS)})")
    ap.add_argument("--seconds", type=float, default=2.0, help="timing per (batch, runtime) cell")
    ap.add_argument("--cpu", action="store_true", help="dry run without a GPU: ONNX Runtime instead of TensorRT")
    ap.add_argument("--api-only", action="store_true",
                    help="environment and TensorRT API check only (with --fp16-graphs: and the graphs)")
    ap.add_argument("--fp16-graphs", action="store_true",
                    help="also check the fp16 ONNX graph TensorRT 11 builds from, per model, on ONNX Runtime CPU")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    command = " ".join(["python -m benchmarks.gpu_check", *(argv if argv is not None else sys.argv[1:])])
    if not args.cpu and not args.api_only and (args.install or args.wheels):
        install_tensorrt(args.wheels)
    report: dict = {"environment": environment(light=args.api_only), "models": {}, "notes": [],
                    "command": command}
    env = report["environment"]
    names = args.models.split(",") if args.models else list(DEFAULT_MODELS)
    if args.api_only:
        if args.fp16_graphs:  # graphs only: no plans, no timing
            with tempfile.TemporaryDirectory(prefix="vision-gpu-check-") as scratch:
                for name in names:
                    report["models"][name] = {"fp16_graph": fp16_graph_check(name, Path(scratch)), "parity": {},
                                              "timing": []}
    elif not args.cpu and not env.get("cuda"):
        report["notes"].append("no CUDA device in this process: nothing was built or timed; --cpu runs the "
                               "ONNX Runtime dry run")
    else:
        device = "cpu" if args.cpu else "cuda"
        if device == "cuda" and "tensorrt" not in env["versions"]:
            report["notes"].append("TensorRT is not installed: no plans, torch rows only (pass --install, or "
                                   "--wheels DIR where there is no package index)")
        from vision.benchmarking import time_cell

        with tempfile.TemporaryDirectory(prefix="vision-gpu-check-") as scratch:
            for name in names:
                report["models"][name] = check_model(name, Path(scratch), device, args, time_cell, report["notes"])
                if args.fp16_graphs:
                    report["models"][name]["fp16_graph"] = fp16_graph_check(name, Path(scratch))
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(report) + "\n")
    print(markdown(report))
    return report


def install_tensorrt(wheels: Path | None) -> None:
    if import_tensorrt() is not None:
        return
    cmd = [sys.executable, "-m", "pip", "install", "-q"]
    cmd += ["--no-index", "--find-links", str(wheels), "tensorrt"] if wheels else ["-e", f"{REPO}[tensorrt]"]
    if subprocess.run(cmd).returncode:
        print("gpu_check: installing TensorRT failed; going on without it", file=sys.stderr)
    importlib.invalidate_caches()


def _run(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"failed: {e}"
    return (done.stdout or done.stderr).strip()[:500]


def environment(light: bool = False) -> dict:
    """What this machine has, absent things included (``light``: without importing torch)."""
    env: dict = {"python": sys.version.split()[0], "versions": {}, "absent": {}}
    env["nvidia_smi"] = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                              "--format=csv,noheader"]) if shutil.which("nvidia-smi") else None
    trt = import_tensorrt()
    if trt is None:
        env["absent"]["tensorrt"] = "neither tensorrt nor tensorrt_bindings imports"
    else:
        env["versions"]["tensorrt"] = trt.__version__
        try:
            env["tensorrt_api"] = check_tensorrt_api(trt)
        except Exception as e:  # noqa: BLE001 - a checker failure is a finding, not a reason to stop
            env["tensorrt_api"] = {"error": f"{type(e).__name__}: {e}"}
    server = shutil.which("tritonserver")
    try:
        import pytriton

        bundled = Path(pytriton.__file__).parent / "tritonserver" / "bin" / "tritonserver"
        env["versions"]["nvidia-pytriton"] = getattr(pytriton, "__version__", "?")
        server = server or (str(bundled) if bundled.is_file() else None)
    except ImportError:
        env["absent"]["nvidia-pytriton"] = "not installed"
    if server:
        env["tritonserver"] = server
    else:
        env["absent"]["tritonserver"] = "no tritonserver on PATH or in nvidia-pytriton"
    if light:
        return env
    import torch

    from vision.benchmarking import hardware, versions

    env["versions"].update(versions())
    env["hardware"] = hardware()
    env["cuda"] = torch.cuda.is_available()
    env["torch_cuda"] = torch.version.cuda
    env["torch_tf32_default"] = {"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                                 "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    if env["cuda"]:
        env["gpu"] = {"name": torch.cuda.get_device_name(0),
                      "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0)))}
    return env


def build_artifacts(model, task: str, scratch: Path, device: str, calib_dir: Path | None,
                    notes: list[str]) -> dict[str, Path]:
    """``{runtime label: artifact}``: TensorRT plans on a GPU, an fp32 ONNX file in the dry run; a build that
    fails is a note."""
    from vision.export import export

    stem = scratch / model.card.name
    if device == "cpu":
        return {"ort-fp32": export(model, "onnx", stem.with_suffix(".onnx"))}
    if import_tensorrt() is None:
        return {}
    builds = {"trt-fp16": lambda: export(model, "tensorrt", stem.with_suffix(".fp16.plan"), precision="fp16",
                                         batch=GPU_PROFILE)}
    if task != "detection":
        builds["trt-fp32"] = lambda: export(model, "tensorrt", stem.with_suffix(".fp32.plan"), precision="fp32",
                                            batch=GPU_PROFILE)
        builds["trt-fp32-tf32"] = lambda: fp32_tf32_plan(model, stem.with_suffix(".fp32-tf32.plan"))
        if calib_dir is not None:
            builds["trt-int8"] = lambda: export(model, "tensorrt", stem.with_suffix(".int8.plan"), precision="int8",
                                                batch=GPU_PROFILE, calib_dir=calib_dir)
    built = {}
    for label, build in builds.items():
        try:
            built[label] = build()
        except Exception as e:  # noqa: BLE001 - report every failed build in the one call
            notes.append(f"{model.card.name} {label} build: {type(e).__name__}: {e}"[:600])
    return built


def fp32_tf32_plan(model, path: Path) -> Path:
    """An fp32 plan with TF32 allowed, built without the parity gate (it misses 1e-4 by design: measured here)."""
    from vision.export.onnx import default_output, export_onnx
    from vision.export.tensorrt import build_engine, full_fp32, parse_batch

    output = default_output(model.card)
    with full_fp32():
        onnx_path = export_onnx(model, path.with_suffix(".onnx"), output=output)
    return build_engine(onnx_path, path, precision="fp32", batch=parse_batch(GPU_PROFILE), tf32=True)


def fp16_graph_check(name: str, scratch: Path) -> dict:
    """The fp16 graph of TensorRT 11's fp16 build (:func:`vision.export.tensorrt.fp16_onnx`): checked by onnx,
    which ops stay fp32, and its outputs on ONNX Runtime CPU against the fp32 export (an estimate: TensorRT's
    fp16 kernels are not ONNX Runtime's), beside the plain converter's graph (Resize converted)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from vision.export import export
    from vision.export.onnx import compare_outputs, parity_inputs, read_onnx_metadata
    from vision.export.tensorrt import FP32_OPS, fp16_onnx
    from vision.zoo import load_model

    model = load_model(name, zoo_dir=REPO / "weights")
    source = export(model, "onnx", scratch / f"{name}.fp16check.onnx")
    _, output = read_onnx_metadata(source)
    plain = scratch / f"{name}.plain-fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(plain))
    ours = fp16_onnx(source, scratch / f"{name}.ours-fp16.onnx")
    x = parity_inputs(model.card.data_config, [str(p) for p in SAMPLE_COMPOSITES[:4] + SAMPLE_PHOTOS[:4]]).numpy()

    def run(path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    ref = run(source)
    result: dict = {"kept_fp32": list(FP32_OPS)}
    for label, path in (("ours", ours), ("plain_converter", plain)):
        graph = onnx.load(str(path))
        try:
            onnx.checker.check_model(graph, full_check=True)
            result[f"{label}_onnx_check"] = "ok"
        except onnx.checker.ValidationError as e:
            result[f"{label}_onnx_check"] = str(e).splitlines()[0][:200]
        numbers = compare_outputs(ref, np.asarray(run(path), np.float32), output)
        result[label] = {k: v for k, v in numbers.items() if k in ("max_rel_diff", "min_cosine", "top1_agreement",
                                                                  "box_agreement") and v is not None}
    return result


def check_model(name: str, scratch: Path, device: str, args, time_cell, notes: list[str]) -> dict:
    import numpy as np
    import torch

    from vision.export.onnx import compare_outputs
    from vision.export.tensorrt import full_fp32
    from vision.predictors import TorchRuntime, predictor
    from vision.zoo import load_model

    model = load_model(name, zoo_dir=REPO / "weights")
    task = model.card.task
    images = [str(p) for p in (SAMPLE_COMPOSITES if task == "detection" else SAMPLE_PHOTOS)]
    t0 = time.perf_counter()
    artifacts = build_artifacts(model, task, scratch, device, args.calib_dir, notes)
    entry: dict = {"task": task, "build_seconds": round(time.perf_counter() - t0, 1), "parity": {}, "timing": []}

    with full_fp32():
        reference = predictor(name, backend="torch", device=device, zoo_dir=REPO / "weights")(images)
    runtimes = {"torch-fp32": reference_runtime(model, device, half=False, cls=TorchRuntime)}
    if device == "cuda":
        runtimes["torch-fp16"] = reference_runtime(load_model(name, zoo_dir=REPO / "weights"), device, half=True,
                                                   cls=TorchRuntime)
    for label, path in artifacts.items():
        try:
            loaded = predictor(path, device=device)
            entry["parity"][label] = parity(reference, loaded(images))
            runtimes[label] = loaded.runtime
        except Exception as e:  # noqa: BLE001
            notes.append(f"{name} {label} load/run: {type(e).__name__}: {e}"[:600])

    size = model.card.data_config.input_size
    output = runtimes["torch-fp32"].output
    for batch in CPU_BATCHES if device == "cpu" else GPU_BATCHES:
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32))
        with full_fp32():
            ref = runtimes["torch-fp32"](x)
        for label, run in runtimes.items():
            if label != "torch-fp32":
                try:  # the network alone against IEEE fp32 torch: where TF32 and fp16 show
                    diff = compare_outputs(ref, np.asarray(run(x)), output)
                    entry["parity"].setdefault(label, {})[f"max_rel_diff_b{batch}"] = diff["max_rel_diff"]
                except Exception as e:  # noqa: BLE001
                    notes.append(f"{name} {label} batch {batch}: {type(e).__name__}: {e}"[:300])
        # time_cell takes numpy batches and measures ratios against the runner called "torch"
        runners = {("torch" if label == "torch-fp32" else label): (lambda r: lambda a: r(torch.from_numpy(a)))(r)  # noqa: B023
                   for label, r in runtimes.items()}
        try:
            with full_fp32():  # torch fp32 is timed in IEEE fp32, as it is compared
                rows = time_cell(runners, x.numpy(), args.seconds, rounds=2)
        except Exception as e:  # noqa: BLE001 - e.g. out of memory: report it, keep the other cells
            notes.append(f"{name} batch {batch}: {type(e).__name__}: {e}"[:300])
            continue
        for row in rows:
            backend = row.pop("backend")
            row["runtime"] = "torch-fp32" if backend == "torch" else backend
        entry["timing"] += rows
    return entry


def reference_runtime(model, device: str, half: bool, cls):
    from vision.export.onnx import default_output

    return cls(model, default_output(model.card), device, half)


def parity(reference: list, results: list) -> dict:
    """Agreement of an artifact's results with torch's on the same images, by result type."""
    import numpy as np

    from vision.results import Classification, Detections

    first = reference[0]
    if isinstance(first, Classification):
        return {"top1_agreement": float(np.mean([a.topk[0]["index"] == b.topk[0]["index"]
                                                 for a, b in zip(reference, results)]))}
    if isinstance(first, Detections):
        from vision.export.onnx import DETECTION_CONF

        kept = [sum(1 for d in r.boxes if d["score"] >= DETECTION_CONF) for r in reference]
        matched = [_matched_boxes(a, b) for a, b in zip(reference, results)]
        return {"boxes": int(sum(kept)), "box_agreement": float(sum(matched) / max(1, sum(kept)))}
    cosine = [float(a.vector @ b.vector) for a, b in zip(reference, results)]
    return {"min_cosine": float(min(cosine)), "mean_cosine": float(np.mean(cosine))}


def _matched_boxes(a, b, iou: float = 0.9) -> int:
    import torch

    if not a.boxes or not b.boxes:
        return 0
    from torchvision.ops import box_iou

    ious = box_iou(torch.tensor([d["box"] for d in a.boxes]), torch.tensor([d["box"] for d in b.boxes]))
    return int((ious.max(1).values >= iou).sum())


def markdown(report: dict) -> str:
    env = report["environment"]
    where = (env.get("gpu") or {}).get("name") or (env.get("hardware") or {}).get("cpu", "?")
    lines = [f"GPU check on {where}, wall {report.get('wall_seconds', '?')} s: `{report['command']}`", "",
             f"versions: {env['versions']}", f"absent: {env['absent'] or 'nothing'}",
             f"nvidia-smi: {env.get('nvidia_smi') or 'absent'}; tritonserver: {env.get('tritonserver', 'absent')}"]
    api = env.get("tensorrt_api")
    if api:
        lines.append(f"TensorRT API ({api.get('tensorrt', '?')}): {len(api.get('checked', []))} names and "
                     f"{api.get('calls', 0)} calls checked, "
                     f"problems: {api.get('problems') or api.get('error') or 'none'}; absent, used only below "
                     f"TensorRT 11: {api.get('absent_guarded') or 'none'}")
    if any(entry["parity"] for entry in report["models"].values()):
        lines += ["", "| model | runtime | parity | build s |", "|---|---|---|---|"]
    for name, entry in report["models"].items():
        for label, numbers in entry["parity"].items():
            text = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items())
            lines.append(f"| {name} | {label} | {text} | {entry['build_seconds']} |")
    if any(entry["timing"] for entry in report["models"].values()):
        lines += ["", "| model | batch | runtime | images/s | p50 ms | vs torch fp32 |", "|---|---|---|---|---|---|"]
    for name, entry in report["models"].items():
        for row in entry["timing"]:
            ratio = f"{row['vs_torch']:.2f}x" if row.get("vs_torch") else "-"
            lines.append(f"| {name} | {row['batch']} | {row['runtime']} | {row['images_per_s']:.1f} | "
                         f"{row['p50_ms']:.2f} | {ratio} |")
    for name, entry in report["models"].items():
        if "fp16_graph" in entry:
            lines.append(f"fp16 graph of {name} (ONNX Runtime CPU vs fp32): {entry['fp16_graph']}")
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)


# --- the TensorRT calls of vision/export/tensorrt.py against the installed bindings' own signatures
TENSORRT_SOURCE = REPO / "vision" / "export" / "tensorrt.py"
# used only where TensorRT < 11 (guarded by strongly_typed / major < 11): must exist on 10.x, may be gone on 11
TENSORRT_10_ONLY = {"BuilderFlag.FP16", "BuilderFlag.INT8", "IInt8EntropyCalibrator2",
                    "IBuilderConfig.set_calibration_profile", "IBuilderConfig.int8_calibrator"}
# function parameters that hold TensorRT objects (everything else is followed from trt.X(...) and return types)
TENSORRT_PARAMETERS = {"config": "IBuilderConfig", "logger": "Logger"}


def import_tensorrt():
    """``tensorrt``, or the standalone bindings wheel (``tensorrt_bindings``, the module the former re-exports)."""
    for name in ("tensorrt", "tensorrt_bindings"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def pybind_signatures(obj) -> list[list[tuple[str, bool]]]:
    """The overloads of a pybind11 function from its docstring: per overload, ``(parameter, has_default)`` without
    ``self``; ``[]`` when the docstring gives none."""
    import re

    overloads = []
    for line in (getattr(obj, "__doc__", None) or "").splitlines():
        match = re.match(r"^(?:\d+\. )?[A-Za-z_]\w*\((.*)\) -> .+$", line.strip())
        if not match or match.group(1) == "*args, **kwargs":
            continue
        params, depth, part = [], 0, ""
        for ch in match.group(1) + ",":
            depth += ch in "[(<{"
            depth -= ch in "])>}"
            if ch == "," and depth == 0:
                params.append(part.strip())
                part = ""
            else:
                part += ch
        parsed = [(p.split(":")[0].split("=")[0].strip(), "=" in p) for p in params if p]
        overloads.append([p for p in parsed if p[0] != "self"])
    return overloads


def _return_class(trt, obj) -> str | None:
    import re

    for line in (getattr(obj, "__doc__", None) or "").splitlines():
        match = re.match(r"^(?:\d+\. )?[A-Za-z_]\w*\(.*\) -> ([\w.]+)$", line.strip())
        if match:
            name = match.group(1).rsplit(".", 1)[-1]
            if isinstance(getattr(trt, name, None), type):
                return name
    return None


def _call_fits(overloads, positional: int | None, keywords: set[str]) -> bool:
    for params in overloads:
        names = [n for n, _ in params]
        if "*args" in names or "**kwargs" in names:
            return True
        if positional is not None and positional > len(params):
            continue
        covered = set(names[:positional or 0]) | keywords
        if keywords - set(names) or keywords & set(names[:positional or 0]):
            continue
        if positional is None or all(default or name in covered for name, default in params):
            return True
    return False


def tensorrt_api_uses(trt, source: Path = TENSORRT_SOURCE) -> list[dict]:
    """Every ``trt.X...`` attribute and every method or property of a TensorRT object that ``source`` uses, with
    its line, the owner's TensorRT class (followed through the bindings' return types: ``builder =
    trt.Builder(...)`` then ``builder.create_network(...)`` is ``Builder.create_network``), and for calls the
    number of positional arguments (None with ``*args``) and the keyword names."""
    import ast

    tree = ast.parse(source.read_text(encoding="utf-8"))
    uses: list[dict] = []

    class Walker(ast.NodeVisitor):
        def __init__(self):
            self.scopes: list[dict] = [{}]
            self.members: dict = {}  # self.X of the class being walked
            self.called: set[int] = set()  # Attribute nodes already recorded as the function of a call

        def type_of(self, node):
            if isinstance(node, ast.Name):
                return ("module", None) if node.id == "trt" else self.scopes[-1].get(node.id)
            if isinstance(node, ast.Attribute):
                if isinstance(node.value, ast.Name) and node.value.id == "self":
                    return self.members.get(node.attr)
                owner = self.type_of(node.value)
                if owner and owner[0] == "module" and isinstance(getattr(trt, node.attr, None), type):
                    return ("class", node.attr)
                return None
            if isinstance(node, ast.Call):
                func = self.type_of(node.func)
                if func and func[0] == "class":
                    return ("instance", func[1])
                if isinstance(node.func, ast.Attribute):
                    owner = self.type_of(node.func.value)
                    if owner and owner[0] == "instance":
                        found = _return_class(trt, getattr(getattr(trt, owner[1]), node.func.attr, None))
                        return ("instance", found) if found else None
            return None

        def visit_ClassDef(self, node):
            saved, self.members = self.members, {}
            self.generic_visit(node)
            self.members = saved

        def visit_FunctionDef(self, node):
            self.scopes.append({a.arg: ("instance", TENSORRT_PARAMETERS[a.arg]) for a in node.args.args
                                if a.arg in TENSORRT_PARAMETERS})
            self.generic_visit(node)
            self.scopes.pop()

        def visit_Assign(self, node):
            self.visit(node.value)
            kind = self.type_of(node.value)
            for target in node.targets:
                self.visit(target)
                if isinstance(target, ast.Name) and kind:
                    self.scopes[-1][target.id] = kind
                elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and \
                        target.value.id == "self" and kind:
                    self.members[target.attr] = kind

        def visit_Call(self, node):
            if isinstance(node.func, ast.Attribute):  # trt.X(...) or obj.method(...)
                self.record(node.func, node)
                self.called.add(id(node.func))
            self.generic_visit(node)

        def visit_Attribute(self, node):
            if id(node) not in self.called:
                self.record(node, None)
            self.generic_visit(node)

        def record(self, node, call):
            owner = self.type_of(node.value)
            if owner is None or owner[0] == "module" and node.attr == "__version__":
                return
            if owner[0] == "module":
                name = node.attr
            elif isinstance(node.value, ast.Attribute) and self.type_of(node.value.value) == ("module", None) \
                    and owner[0] != "class":  # trt.X.MEMBER where X is not a class: not ours to follow
                return
            else:
                name = f"{owner[1]}.{node.attr}"
            use = {"name": name, "line": node.lineno, "owner": owner[0]}
            if call is not None:
                starred = any(isinstance(a, ast.Starred) for a in call.args)
                use["call"] = {"positional": None if starred else len(call.args),
                               "keywords": sorted(k.arg for k in call.keywords if k.arg)}
            uses.append(use)

    Walker().visit(tree)
    return uses


def check_tensorrt_api(trt, source: Path = TENSORRT_SOURCE) -> dict:
    """Each TensorRT attribute and call in ``source`` looked up in ``trt`` (the installed bindings): missing names
    and calls that fit none of the signatures are problems; :data:`TENSORRT_10_ONLY` names are problems only on
    TensorRT < 11."""
    major = int(trt.__version__.split(".")[0])
    checked, problems, absent_guarded, calls = [], [], [], 0
    for use in tensorrt_api_uses(trt, source):
        owner = trt
        for part in use["name"].split("."):
            owner = getattr(owner, part, None)
            if owner is None:
                break
        where = f"tensorrt.py:{use['line']}"
        if owner is None:
            if use["name"] in TENSORRT_10_ONLY and major >= 11:
                absent_guarded.append(use["name"])
            else:
                problems.append(f"{where}: {use['name']} does not exist in TensorRT {trt.__version__}")
            continue
        checked.append(use["name"])
        if "call" not in use:
            continue
        calls += 1
        target = owner.__init__ if isinstance(owner, type) else owner
        overloads = pybind_signatures(target)
        if overloads and not _call_fits(overloads, use["call"]["positional"], set(use["call"]["keywords"])):
            shown = " | ".join("(" + ", ".join(n + ("=..." if d else "") for n, d in o) + ")" for o in overloads)
            problems.append(f"{where}: {use['name']} called with {use['call']['positional']} positional and "
                            f"keywords {use['call']['keywords']}; its signatures: {shown}")
    return {"tensorrt": trt.__version__, "module": trt.__name__, "checked": sorted(set(checked)), "calls": calls,
            "absent_guarded": sorted(set(absent_guarded)), "problems": problems}


if __name__ == "__main__":
    main()
