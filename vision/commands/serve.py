"""``vision serve``: zoo models and the brand recogniser on a real Triton Inference Server: image bytes in, what
``vision predict`` / ``vision recognize`` write out (docs/serving.md).

    vision serve --model grocery_resnet10t --model logo_yolo11n --recognizer --http-port 8000 --grpc-port 8001
    vision serve --repository triton_repo          # a repository written by vision export --format triton
    vision serve --prepare                         # only prepare the Triton runtime (once; needs PyPI)

The repository is built on the fly (in a temporary folder, or ``--out DIR`` to keep it) and served by Triton's own
``tritonserver`` from the ``nvidia-pytriton`` wheel, prepared once under ``$VISION_TRITON_HOME`` (default
``$VISION_HOME/serve``). Where it listens goes to stdout as one JSON line once ``/v2/health/ready`` answers 200;
Ctrl-C stops the server and its stub processes (exit 130). Each model takes ``IMAGE`` (``BYTES [batch, 1]``: the
bytes of a JPEG/PNG/WebP file) and answers ``RESULT`` (one JSON document per image).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import tempfile
from pathlib import Path

from vision.commands import UsageError, command_parser, note


def parser() -> argparse.ArgumentParser:
    ap = command_parser("vision serve", __doc__)
    ap.add_argument("--model", action="append", default=[], help="zoo model to serve (repeat for several)")
    ap.add_argument("--recognizer", action="store_true",
                    help="also serve brand_recognizer (vision recognize's defaults: logo_yolo11n, brand_ensemble, "
                         "simple_icons_gallery)")
    ap.add_argument("--repository", type=Path, help="serve this repository (checked against its vision.sha256 "
                                                    "records) instead of building one")
    ap.add_argument("--out", type=Path, help="build the repository here and keep it (default: a temporary folder)")
    ap.add_argument("--network", default="python", choices=["python", "onnxruntime", "tensorrt"],
                    help="the network step: python (ONNX Runtime in the Python backend: what the bundled server "
                         "runs), or Triton's onnxruntime/tensorrt backends (a full Triton build; --out only)")
    ap.add_argument("--instances", type=int, default=1, help="instances of each step (default 1)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    ap.add_argument("--http-port", type=int, default=8000)
    ap.add_argument("--grpc-port", type=int, default=8001)
    ap.add_argument("--metrics-port", type=int, default=8002)
    ap.add_argument("--prepare", action="store_true", help="prepare the Triton runtime and exit")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.prepare and not args.model and not args.recognizer and args.repository is None:
        raise UsageError("nothing to serve; give --model NAME (repeatable), --recognizer or --repository DIR")
    if args.repository is not None and (args.model or args.recognizer or args.out):
        raise UsageError("--repository serves a repository as it is; give it alone, or --model/--recognizer to "
                         "build one")
    if args.instances < 1:
        raise UsageError(f"--instances must be at least 1, got {args.instances}")
    from vision.serving import TritonServer, build_repository, prepare_runtime

    if args.network != "python":  # for a full Triton build elsewhere: written, not served, no local environment
        if args.out is None or args.prepare or args.repository is not None:
            raise UsageError(f"--network {args.network} needs a Triton build with that backend, which the bundled "
                             "server has not; write the repository with --out DIR and serve it there")
        build_repository(args.model, args.out, recognizer=args.recognizer, network=args.network,
                         instances=args.instances, log=note)
        note(f"wrote {args.out} for a Triton build with the {args.network} backend; not started here")
        return 0
    runtime = prepare_runtime(log=note)
    if args.prepare:
        print(json.dumps({"runtime": str(runtime.root), "server": str(runtime.binary)}))
        return 0
    scratch, server = None, None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM ends the server as Ctrl-C does
    try:
        if args.repository is not None:
            from vision.export import verify_artifact

            verify_artifact(args.repository)
            repository = args.repository
        else:
            from vision.serving.runtime import runtime_home

            if args.out is None:
                runtime_home().mkdir(parents=True, exist_ok=True)
                scratch = Path(tempfile.mkdtemp(prefix="repository-", dir=runtime_home()))
            repository = args.out or scratch
            build_repository(args.model, repository, recognizer=args.recognizer, env=runtime.env,
                             instances=args.instances, log=note)
        server = TritonServer(repository, http_port=args.http_port, grpc_port=args.grpc_port,
                              metrics_port=args.metrics_port, host=args.host, runtime=runtime, on_event=note)
        note(f"starting tritonserver on {repository} (log: {server.log_file})")
        server.start()
        models = sorted(p.name for p in Path(repository).iterdir() if (p / "config.pbtxt").is_file())
        print(json.dumps({"http": f"http://{server.http_url}", "grpc": server.grpc_url,
                          "metrics": server.metrics_url, "repository": str(repository), "models": models}), flush=True)
        note("ready; Ctrl-C stops the server")
        code = server.process.wait()
        raise UsageError(f"tritonserver exited by itself with code {code}: {server.log_tail()}; full log: "
                         f"{server.log_file}")
    except KeyboardInterrupt:
        if server is not None:
            note(f"stopped tritonserver (exit code {server.stop()})")
        return 130
    finally:
        if server is not None:
            server.stop()
        signal.signal(signal.SIGTERM, previous)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
