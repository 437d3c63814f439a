"""The Triton Inference Server runtime ``vision serve`` runs: Triton's own ``tritonserver`` binary and Python
backend from the ``nvidia-pytriton`` wheel (Apache-2.0), prepared once under :func:`runtime_home`.

Why a prepared folder and not ``pip install nvidia-pytriton`` beside the project: the wheel pins ``numpy<2``, and its
Python-backend stub mis-reads ``BYTES`` tensors with numpy 2.x (each byte of a request became its first byte, here,
2026-12-06). So the folder holds:

- ``server/``: the wheel's files (``pip install --no-deps --target``): ``tritonserver``, its libraries, the Python
  backend, with the stub for this Python copied into ``backends/python/`` where the backend looks for it;
- ``env/``: a virtual environment of this Python whose site-packages hold ``numpy<2`` first and then, through a
  ``.pth`` file, this environment's site-packages (torch, onnxruntime, PIL, OpenCV and vision itself import and work
  under numpy 1.26); ``env/lib`` links this Python's ``libpython`` (the stub embeds it). Served Python models name
  it as their ``EXECUTION_ENV_PATH`` (the Python backend's own way to give a model an environment);
- ``ready.json``: written last; a folder without it is prepared again.

Preparing needs PyPI (or the pip index configured) once; afterwards serving needs no network.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

TRITON_WHEEL = "nvidia-pytriton==0.7.0"
# the stub reads BYTES tensors correctly with numpy 1.x only (see the module docstring)
STUB_NUMPY = "numpy>=1.26,<2"
READY = "ready.json"


class ServingError(RuntimeError):
    """The Triton runtime cannot be prepared or started, or a served model is misconfigured."""


@dataclass(frozen=True)
class TritonRuntime:
    """A prepared runtime folder (:func:`prepare_runtime`)."""

    root: Path

    @property
    def server_dir(self) -> Path:
        return self.root / "server" / "pytriton" / "tritonserver"

    @property
    def binary(self) -> Path:
        return self.server_dir / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.server_dir / "backends"

    @property
    def libraries(self) -> Path:
        return self.root / "server" / "nvidia_pytriton.libs"

    @property
    def env(self) -> Path:
        """The Python backend's execution environment (``EXECUTION_ENV_PATH`` of served Python models)."""
        return self.root / "env"

    def environ(self) -> dict[str, str]:
        """The server's environment: its bundled libraries first (the Python backend refuses an execution
        environment unless ``LD_LIBRARY_PATH`` holds a colon)."""
        env = dict(os.environ)
        # env/lib (this Python's libpython) and env/bin first: a Python model without EXECUTION_ENV_PATH (a
        # repository written for a Triton container) gets the prepared environment too, as the stub finds its
        # Python's prefix from the first python3 on PATH
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (str(self.env / "lib"), str(self.libraries), str(self.server_dir),
                                                     env.get("LD_LIBRARY_PATH", "")) if p)
        env["PATH"] = ":".join(p for p in (str(self.env / "bin"), env.get("PATH", "")) if p)
        return env


def runtime_home() -> Path:
    """``$VISION_TRITON_HOME``, else ``$VISION_HOME/serve`` (``~/.local/share/vision/serve``)."""
    if os.environ.get("VISION_TRITON_HOME"):
        return Path(os.environ["VISION_TRITON_HOME"]).expanduser()
    from vision.zoo import vision_home

    return vision_home() / "serve"


def runtime_dir(home: str | os.PathLike | None = None) -> Path:
    """The runtime folder for this Python (one per wheel version and Python version)."""
    version = TRITON_WHEEL.partition("==")[2]
    return Path(home or runtime_home()) / f"triton-{version}-py{sys.version_info.major}.{sys.version_info.minor}"


def find_runtime(home: str | os.PathLike | None = None) -> TritonRuntime | None:
    """The prepared runtime, or ``None`` when it has not been prepared (completely)."""
    root = runtime_dir(home)
    return TritonRuntime(root) if (root / READY).is_file() else None


def prepare_runtime(home: str | os.PathLike | None = None, log=None) -> TritonRuntime:
    """The runtime, prepared first when it is missing (a download of about 60 MB through pip, once); ``log``
    takes one line per step. Concurrent callers wait for one another."""
    found = find_runtime(home)
    if found is not None:
        return found
    from vision.store import file_lock

    root = runtime_dir(home)
    root.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(root.parent / f".{root.name}.lock", f"Triton runtime {root}", ServingError):
        if (root / READY).is_file():
            return TritonRuntime(root)
        libpython = _libpython()
        if root.exists():  # left without ready.json by an interrupted preparation
            shutil.rmtree(root)
        # built in place: a virtual environment's scripts name its own path, so it cannot be moved afterwards
        _say(log, f"preparing the Triton runtime in {root} (once; pip downloads {TRITON_WHEEL})")
        _pip(["--target", str(root / "server"), TRITON_WHEEL])
        server = TritonRuntime(root).server_dir
        stub = server / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" \
            / "triton_python_backend_stub"
        if not stub.is_file():
            raise ServingError(f"{TRITON_WHEEL} has no Python-backend stub for Python "
                               f"{sys.version_info.major}.{sys.version_info.minor}; serve from Python 3.8-3.13")
        shutil.copy2(stub, server / "backends" / "python" / stub.name)
        _make_env(root / "env", libpython)
        ready = root / f".{READY}.tmp"
        ready.write_text(json.dumps({"wheel": TRITON_WHEEL, "numpy": STUB_NUMPY, "python": sys.version.split()[0],
                                     "libpython": str(libpython)}) + "\n")
        os.replace(ready, root / READY)
    _say(log, f"Triton runtime ready in {root}")
    return TritonRuntime(root)


def _make_env(env: Path, libpython: Path) -> None:
    """A virtual environment of this Python: numpy<2 first, then this environment's site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, capture_output=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    packages = env / "lib" / version / "site-packages"
    _pip(["--target", str(packages), STUB_NUMPY])
    ours = [p for p in site.getsitepackages() + [site.getusersitepackages()] if Path(p).is_dir()]
    # addsitedir, not a plain path line: it runs the .pth files there too (an editable install's finder)
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in ours)
    (packages / "zz_vision_site.pth").write_text(lines)
    (env / "lib" / libpython.name).symlink_to(libpython)


def _libpython() -> Path:
    """This Python's shared library, which the Python-backend stub embeds (an interpreter of another patch release
    mis-reads tensors)."""
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY") or ""
    folder = sysconfig.get_config_var("LIBDIR") or ""
    path = Path(folder) / name
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not name.endswith(tuple(".so" + s for s in ("", ".1.0"))) \
            or not path.is_file():
        raise ServingError(f"this Python ({sys.executable}) has no shared libpython ({path}), which Triton's Python "
                           "backend embeds; serve from a Python built with --enable-shared (python.org and distro "
                           "builds are; pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared)")
    return path


def _pip(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ServingError(f"preparing the Triton runtime: '{' '.join(cmd[2:])}' failed ({' | '.join(tail)}); "
                           "it needs pip and PyPI (or your pip index) once")


def _say(log, line: str) -> None:
    if log is not None:
        log(line)
