"""Serving zoo models and the brand recogniser on Triton Inference Server: image bytes in, ``vision predict``'s
JSON out (``vision serve``; docs/serving.md).

- :mod:`vision.serving.runtime`: Triton's own server from the ``nvidia-pytriton`` wheel, prepared once;
- :mod:`vision.serving.repository`: the model repository (ensembles of Python pre/post-processing around the
  network step, the recogniser);
- :mod:`vision.serving.server`: a ``tritonserver`` process as a context manager;
- :mod:`vision.serving.models`: the Python-backend models (the library's heads, run inside Triton).

Names resolve on first use: the Python-backend stubs import :mod:`vision.serving.models` alone.
"""

import importlib

_NAMES = {"RECOGNIZER": "repository", "build_repository": "repository", "write_served_model": "repository",
          "ServingError": "runtime", "TritonRuntime": "runtime", "find_runtime": "runtime",
          "prepare_runtime": "runtime", "TritonServer": "server"}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'vision.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vision.serving.{_NAMES[name]}"), name)
