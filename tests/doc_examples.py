"""Run every Python example of README.md and docs/*.md as written, from a folder outside the checkout.

``python tests/doc_examples.py [--workspace DIR]`` (``.ci/run`` runs it against the installed wheel, from a temporary
folder): it fills a workspace with the files the examples name (``photos/``, ``shelf.jpg``, ``catalog/``, ... made
from the committed samples), defines the few placeholders the examples leave to the reader (``pil_image``,
``numpy_array``, ``known_crops``, ``impostor_crops``), runs the steps a page tells its reader to run first (an export
with the ``vision`` command), then executes each block in a fresh namespace. Exit status 1 names every block that
failed. Only the standard library and ``vision`` are imported, so any environment with the wheel can run it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]

# what a page tells its reader to run before its Python example (the same commands, in the installed environment)
PRELUDES = {
    "docs/predict.md": [["export", "--model", "logo_yolo11n", "--format", "onnx",
                         "--out", "logo_yolo11n.predictions.onnx"]],
}
# a page whose example is a client: the server its reader starts first (`vision serve`, the page's ports), stopped
# with Ctrl-C after the page's blocks
SERVERS = {
    "docs/serving.md": (["serve", "--model", "grocery_resnet10t", "--http-port", "8000", "--grpc-port", "8001",
                         "--metrics-port", "8002"], "http://127.0.0.1:8000/v2/health/ready"),
}
SERVER_START_S = 900  # the first vision serve prepares Triton's folder (pip, ~60 MB) and exports the model


def python_blocks(page: str) -> list[str]:
    """The ```python blocks of ``page`` (a path relative to the checkout)."""
    return re.findall(r"^```python\n(.*?)^```", (REPO / page).read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)


def make_workspace(root: Path) -> None:
    """The files the examples name, from the committed samples (grocery photos, logo shelf photos, rendered icons)."""
    from vision.synth.catalog import list_brands
    from vision.synth.render import render_logo

    grocery = sorted((REPO / "data" / "grocery_sample" / "val").rglob("*.jpg"))
    shelves = sorted((REPO / "data" / "logo_sample" / "images" / "val").glob("*.jpg"))
    fruit = [p for p in grocery if "/Fruit/" in p.as_posix()]
    for folder, photos in {"photos": grocery[:2], "catalog": grocery[:6], "runs/impostors/train": fruit[:6]}.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for photo in photos:
            shutil.copy(photo, root / folder / photo.name)
    shutil.copy(grocery[0], root / "catalog" / f"copy_of_{grocery[0].name}")  # one duplicate to group
    banana = next(p for p in grocery if "/Banana/" in p.as_posix())
    juice = next(p for p in grocery if "/Juice/" in p.as_posix())
    for name, source in {"shelf.jpg": shelves[0], "my_cocacola_shelf.jpg": shelves[1], "a.jpg": grocery[2],
                         "photo.jpg": grocery[3], "banana.jpg": banana, "juice.jpg": juice}.items():
        shutil.copy(source, root / name)
    from PIL import Image

    def save(brand, path: Path, size: int, color=None) -> None:  # a rendered icon on white, as a photo would be
        rgba = Image.fromarray(render_logo(brands[brand], size, color=color))
        plate = Image.new("RGB", rgba.size, (255, 255, 255))
        plate.paste(rgba, mask=rgba.split()[3])
        path.parent.mkdir(parents=True, exist_ok=True)
        plate.save(path)

    brands = {b.slug: b for b in list_brands()}
    for brand in ("cocacola", "redbull"):  # folders of a brand's own logos and query photos
        save(brand, root / "my_logos" / brand / "1.png", 128)
        save(brand, root / "my_query_photos" / brand / "1.png", 96, color=(0, 0, 0))
    save("github", root / "newco_logo.png", 128)


def placeholders(root: Path) -> dict:
    """The names the examples use without defining them, as a reader would have them."""
    import numpy as np
    from PIL import Image

    return {"pil_image": Image.open(root / "photo.jpg").convert("RGB"),
            "numpy_array": np.asarray(Image.open(root / "a.jpg").convert("RGB")),
            "known_crops": sorted(str(p) for p in (root / "my_query_photos").rglob("*.png")),
            "impostor_crops": sorted(str(p) for p in (root / "runs" / "impostors" / "train").glob("*.jpg"))}


def start_server(args: list[str], ready_url: str, log: Path) -> subprocess.Popen:
    """``vision <args>`` in the background, once ``ready_url`` answers 200; its output goes to ``log``."""
    import urllib.error
    import urllib.request

    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "vision", *args], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"vision {' '.join(args)} exited with {server.returncode}: "
                               f"{log.read_text(errors='replace')[-800:]}")
        try:
            with urllib.request.urlopen(ready_url, timeout=5) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(2)
    stop_server(server)
    raise RuntimeError(f"vision {' '.join(args)}: {ready_url} not ready after {SERVER_START_S} s")


def stop_server(server: subprocess.Popen) -> None:
    """Ctrl-C, as the page's reader would stop it; killed if it does not stop within a minute."""
    import signal

    server.send_signal(signal.SIGINT)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def run(workspace: Path, pages: list[str] | None = None) -> list[str]:
    """Run the examples in ``workspace``; the failures as ``page block N: error`` lines."""
    workspace.mkdir(parents=True, exist_ok=True)
    os.chdir(workspace)
    make_workspace(workspace)
    failures = []
    for page in pages or PAGES:
        blocks = python_blocks(page)
        if not blocks:
            continue
        for args in PRELUDES.get(page, []):
            done = subprocess.run([sys.executable, "-m", "vision", *args], capture_output=True, text=True)
            if done.returncode:
                failures.append(f"{page} prelude vision {' '.join(args)}: {done.stderr.strip()[-500:]}")
        server = None
        if page in SERVERS:
            try:
                server = start_server(*SERVERS[page], workspace / f"{Path(page).stem}.server.log")
            except RuntimeError as e:
                failures.append(f"{page} server: {e}")
                continue
        try:
            for i, block in enumerate(blocks, 1):
                start = time.perf_counter()
                try:
                    exec(compile(block, f"{page} block {i}", "exec"), placeholders(workspace))  # noqa: S102 - docs
                except Exception as e:  # every failing block is reported, not only the first
                    traceback.print_exc()
                    failures.append(f"{page} block {i}: {type(e).__name__}: {e}")
                else:
                    print(f"doc example ok: {page} block {i} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
        finally:
            if server is not None:
                stop_server(server)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="run here (default: a new temporary folder)")
    parser.add_argument("pages", nargs="*", help="pages to run (default: README.md and docs/*.md)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="vision-doc-examples-"))
    failures = run(workspace.resolve(), args.pages or None)
    for line in failures:
        print(f"doc example FAILED: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
