"""The package root is light: ``import vision`` loads no heavy dependency; public names resolve on first use."""

import subprocess
import sys

import vision

HEAVY = ("torch", "timm", "pytorch_lightning", "lightning", "ultralytics", "albumentations", "faiss", "resvg_py",
         "simple_icons_pack", "onnxruntime", "cv2")


def test_import_vision_loads_no_heavy_dependency():
    code = ("import sys, json, vision; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_public_names_resolve_lazily_and_unknown_names_fail_clearly():
    for name in vision.__all__:
        assert getattr(vision, name) is not None
    assert set(vision.__all__) <= set(dir(vision))
    try:
        _ = vision.no_such_name
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("expected AttributeError")
