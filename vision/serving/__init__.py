"""Serving zoo models and the brand recogniser on Triton Inference Server: image bytes in, ``vision predict``'s
JSON out (``vision serve``; docs/serving.md).

- :mod:`vision.serving.runtime`: Triton's own server from the ``nvidia-pytriton`` wheel, prepared once;
- :mod:`vision.serving.repository`: the model repository (ensembles of Python pre/post-processing around the
  network step, the recogniser);
- :mod:`vision.serving.server`: a ``tritonserver`` process as a context manager;
- :mod:`vision.serving.models`: the Python-backend models (the library's heads, run inside Triton).
"""

from vision.serving.repository import RECOGNIZER, build_repository
from vision.serving.runtime import ServingError, TritonRuntime, find_runtime, prepare_runtime
from vision.serving.server import TritonServer

__all__ = ["RECOGNIZER", "ServingError", "TritonRuntime", "TritonServer", "build_repository", "find_runtime",
           "prepare_runtime"]
