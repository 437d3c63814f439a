"""Deployment exports of zoo models: a table of formats, each a function ``(model, path, **options) -> Path``.

Example::

    from vision.export import export_onnx
    export_onnx(vision.load_model("grocery_resnet10t"), "export/grocery.onnx", output="features")
"""

from vision.export.onnx import (ExportError, OUTPUT_KINDS, export_onnx, parity_report,  # noqa: F401
                                read_onnx_metadata)

__all__ = ["ExportError", "OUTPUT_KINDS", "export_onnx", "parity_report", "read_onnx_metadata"]
