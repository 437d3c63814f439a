"""A real ``tritonserver`` process on a model repository, as a context manager.

Example::

    with TritonServer("triton_repo", http_port=8000, grpc_port=8001, metrics_port=8002) as server:
        print(server.http_url, server.grpc_url)   # ready: every model loaded
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from vision.serving.runtime import ServingError, TritonRuntime, prepare_runtime

READY_TIMEOUT_S = 600   # loading is CPU bound: each Python model imports torch in its own stub process
STOP_TIMEOUT_S = 30
WATCH_INTERVAL_S = 2.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (for tests and ``--http-port 0``)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class TritonServer:
    """``tritonserver`` on ``repository``, listening on ``host`` (loopback by default); ``start`` returns when
    ``/v2/health/ready`` answers 200 (every model loaded) and raises :class:`ServingError` with the end of the
    server's log when it exits or times out first. ``stop`` ends the server and its stub processes (SIGINT, then
    SIGKILL of its process group after :data:`STOP_TIMEOUT_S`). A port of 0 picks a free one.

    ``watch``: a thread looks for the Python-backend stub processes every :data:`WATCH_INTERVAL_S` s and reloads a
    model whose stub died (Triton 2.51 only reports ``Stub process ... is not healthy`` for every later request);
    ``on_event`` gets one line per reload. Models are loaded in explicit mode (all of them at start), which is what
    lets a model be reloaded."""

    def __init__(self, repository: str | os.PathLike, *, http_port: int = 8000, grpc_port: int = 8001,
                 metrics_port: int = 8002, host: str = "127.0.0.1", runtime: TritonRuntime | None = None,
                 log_file: str | os.PathLike | None = None, ready_timeout: float = READY_TIMEOUT_S,
                 extra_args: tuple[str, ...] = (), watch: bool = True, on_event=None):
        self.repository = Path(repository).resolve()
        if not self.repository.is_dir():
            raise ServingError(f"{repository}: no such Triton repository folder; build one with vision export "
                               "--format triton or give zoo models to vision serve")
        self.host = host
        self.http_port, self.grpc_port, self.metrics_port = (p or free_port(host)
                                                             for p in (http_port, grpc_port, metrics_port))
        self.runtime, self.ready_timeout, self.extra_args = runtime, ready_timeout, tuple(extra_args)
        self.log_file = Path(log_file) if log_file else self.repository.parent / f"{self.repository.name}.triton.log"
        self.process: subprocess.Popen | None = None
        self.watch, self.on_event = watch, on_event
        self.reloads: list[str] = []
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        rt = self.runtime
        return [str(rt.binary), f"--model-repository={self.repository}", f"--backend-directory={rt.backends}",
                f"--http-address={self.host}", f"--grpc-address={self.host}", f"--metrics-address={self.host}",
                f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}",
                f"--metrics-port={self.metrics_port}", "--exit-timeout-secs=5",
                # our configs are complete: no extra stub launch per model to complete them
                "--disable-auto-complete-config",
                "--model-control-mode=explicit", "--load-model=*",
                *self.extra_args]

    def start(self) -> "TritonServer":
        self.runtime = self.runtime or prepare_runtime()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "wb") as log:
            # its own process group: stop() can end the stubs too if the server does not
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.runtime.environ(),
                                            start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServingError(f"tritonserver exited with code {self.process.returncode} before it was ready: "
                                   f"{self.log_tail()}; full log: {self.log_file}")
            if self.ready():
                if self.watch:
                    self._stopping.clear()
                    self._watcher = threading.Thread(target=self._watch, name="triton-stub-watch", daemon=True)
                    self._watcher.start()
                return self
            time.sleep(0.25)
        self.stop()
        raise ServingError(f"tritonserver was not ready after {self.ready_timeout:.0f} s: {self.log_tail()}; full "
                           f"log: {self.log_file}")

    def ready(self) -> bool:
        """``GET /v2/health/ready`` answers 200."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def reload(self, model: str) -> None:
        """Load ``model`` again (new stub processes for a Python model) through the repository API."""
        request = urllib.request.Request(f"http://{self.http_url}/v2/repository/models/{model}/load", data=b"{}",
                                         method="POST")
        with urllib.request.urlopen(request, timeout=STOP_TIMEOUT_S * 4) as answer:
            answer.read()

    def stubs(self) -> dict[str, set[int]]:
        """``{model: stub process ids}`` of this server's Python models, from ``/proc``."""
        found: dict[str, set[int]] = {}
        prefix = str(self.repository).encode() + b"/"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(args) > 1 and args[0].endswith(b"triton_python_backend_stub") and args[1].startswith(prefix):
                found.setdefault(Path(os.fsdecode(args[1])).parent.parent.name, set()).add(int(entry.name))
        return found

    def _watch(self) -> None:
        known = self.stubs()
        while not self._stopping.wait(WATCH_INTERVAL_S):
            process = self.process
            if process is None or process.poll() is not None:
                return
            now = self.stubs()
            for model in [m for m, pids in known.items() if pids - now.get(m, set())]:
                try:
                    self.reload(model)
                    line = f"{model}: a stub process died; the model was reloaded"
                    self.reloads.append(model)
                except (urllib.error.URLError, OSError) as e:
                    line = f"{model}: a stub process died and reloading the model failed ({e})"
                if self.on_event is not None:
                    self.on_event(line)
            known = self.stubs()

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        wanted = [t for t in text if t[:1] in "EW" or "error" in t.lower() or "UNAVAILABLE" in t]
        return " | ".join((wanted or text)[-lines:])

    def stop(self) -> int | None:
        """End the server (SIGINT: Triton unloads its models and stops its stubs), then anything left of its
        process group; returns the server's exit code."""
        self._stopping.set()
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # stubs that outlived the server; the group is ours
        except ProcessLookupError:
            pass
        process.wait()
        return process.returncode

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
