"""vision.scale: no image lost or doubled by the Ray and Lightning engines, across an actor kill, a driver kill and
a rerun; one model per shard folder; unreadable images listed. Local mode on 2 CPUs, the small brand embedder."""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from vision.features import ExtractError
from vision.scale.inputs import ImageRef, Shard, list_image_refs, plan_shards
from vision.scale.shards import MixedModelsError, pending_shards, read_shards, shard_metadata, write_shard

from .conftest import REPO, SAMPLE

pytest.importorskip("pyarrow")
MODEL = "brand_resnet10t"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "RAY_DEDUP_LOGS": "0"}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """12 sample photos in two folders and one unreadable file: ids are paths relative to the folder."""
    root = tmp_path_factory.mktemp("images")
    for i, src in enumerate(sorted((SAMPLE / "val").rglob("*.jpg"))[:12]):
        dest = root / ("a" if i % 2 else "b") / f"{i:02d}.jpg"
        dest.parent.mkdir(exist_ok=True)
        dest.write_bytes(src.read_bytes())
    (root / "a" / "05_broken.jpg").write_bytes(b"not a jpeg")
    return root


def _all_ids(root):
    return {p.relative_to(root).as_posix() for p in root.rglob("*.jpg")}


def _check_output(out, root):
    """Vectors for every readable image and a listed failure for the broken one: together exactly the inputs."""
    ids, vectors, meta = read_shards(out)
    manifest = json.loads((out / "manifest.json").read_text())
    failed = {u["id"]: u["reason"] for u in manifest["unreadable"]}
    assert len(ids) == len(set(ids))  # nothing doubled
    assert set(ids) | set(failed) == _all_ids(root) and not set(ids) & set(failed)  # nothing lost
    assert list(failed) == ["a/05_broken.jpg"] and "not an image" in failed["a/05_broken.jpg"]
    assert manifest["images"] == 13 and manifest["vectors"] == 12 and manifest["unreadable_count"] == 1
    assert meta["model"] == MODEL and meta["output"] == "embedding" and vectors.shape == (12, meta["dim"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    return ids, vectors


def _shard_stamps(out):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.glob("part-*.parquet")}


# --- driver killed mid-run, then the command rerun (a subprocess, so SIGKILL is real). First in the file: no other
# local Ray of this module is up yet.
KILLABLE = """
import sys, time
from vision.scale.ray_extract import EmbedActor, extract_with_ray

class Slow(EmbedActor):  # slow enough that the driver can be killed between two shards
    def __call__(self, batch):
        time.sleep(0.4)
        return super().__call__(batch)

extract_with_ray(sys.argv[1], sys.argv[2], sys.argv[3], backend="torch", shard_size=2, batch_size=2, num_cpus=2,
                 actor_cls=Slow, progress=False)
"""


@pytest.mark.slow
def test_ray_driver_killed_and_rerun_loses_and_doubles_nothing(images, tmp_path):
    out = tmp_path / "vectors"
    run = subprocess.Popen([sys.executable, "-c", KILLABLE, MODEL, str(images), str(out)], cwd=REPO, env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("part-*.parquet")) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the driver and the local Ray it started (its own session)
            os.killpg(run.pid, signal.SIGKILL)
        _, err = run.communicate()
    kept = _shard_stamps(out)
    assert 0 < len(kept) < 7, err.decode()[-3000:]  # killed between the first and the last of 7 shards
    assert not (out / "manifest.json").exists()

    rerun = subprocess.run([sys.executable, "tools/extract.py", "--engine", "ray", "--model", MODEL, "--backend",
                            "torch", "--images", str(images), "--out", str(out), "--shard-size", "2",
                            "--batch-size", "2", "--num-cpus", "2"], cwd=REPO, env=ENV, capture_output=True,
                           text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = _report(rerun.stdout)
    assert summary["skipped"] == len(kept) and len(summary["written"]) == 7 - len(kept)
    assert not set(summary["written"]) & set(kept)
    after = _shard_stamps(out)
    assert {name: after[name] for name in kept} == kept  # finished shards were not rewritten
    _check_output(out, images)


# --- Ray Data in this process
@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_ids_equal_inputs_with_unreadable_listed(ray_local, images, tmp_path):
    from vision.scale import extract_with_ray

    out = tmp_path / "vectors"
    summary = extract_with_ray(MODEL, images, out, backend="torch", shard_size=4, batch_size=3, progress=False)
    assert summary["written"] == [f"part-{i:06d}.parquet" for i in range(4)] and summary["skipped"] == 0
    ids, _ = _check_output(out, images)
    import pyarrow.parquet as pq

    table = pq.read_table(out / "part-000000.parquet")
    assert table.column_names == ["id", "path", "sha256", "vector"]
    row = table.slice(0, 1).to_pylist()[0]
    assert row["sha256"] == hashlib.sha256((images / row["id"]).read_bytes()).hexdigest()
    meta = shard_metadata(out / "part-000000.parquet")  # sorted ids: a/01 a/03 a/05 a/05_broken | a/07 ...
    assert meta["model_sha256"] == summary["model_sha256"] and meta["shard"]["unreadable"][0]["id"] == "a/05_broken.jpg"
    again = extract_with_ray(MODEL, images, out, backend="torch", shard_size=4, progress=False)
    assert again["written"] == [] and again["skipped"] == 4  # a finished run is not redone


@pytest.mark.slow
def test_ray_actor_killed_mid_run_is_restarted_and_its_batch_retried(ray_local, images, tmp_path):
    from vision.scale.ray_extract import EmbedActor, extract_with_ray

    killed, calls = tmp_path / "killed", tmp_path / "calls"

    class DiesOnce(EmbedActor):
        def __call__(self, batch):
            with open(calls, "a") as f:
                f.write(f"{os.getpid()}\n")
            if sum(1 for _ in open(calls)) == 2 and not killed.exists():  # the second batch of the run
                killed.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            return super().__call__(batch)

    out = tmp_path / "vectors"
    extract_with_ray(MODEL, images, out, backend="torch", shard_size=3, batch_size=2, actor_cls=DiesOnce,
                     progress=False)
    assert killed.exists() and len(set(calls.read_text().split())) == 2  # a second actor process finished the run
    _check_output(out, images)


# --- Lightning: 2 DDP processes (gloo, CPU), each writing its own shards
def _lightning(images, out, *extra):
    result = subprocess.run([sys.executable, "tools/extract.py", "--engine", "lightning", "--model", MODEL,
                             "--images", str(images), "--out", str(out), "--shard-size", "3", "--batch-size", "2",
                             *extra], cwd=REPO, env={k: v for k, v in ENV.items() if k != "LOCAL_RANK"},
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return _report(result.stdout)


def _report(stdout: str) -> dict:
    """The JSON report vision extract prints last on stdout (results and reports on stdout, notes on stderr)."""
    return json.loads(next(line for line in reversed(stdout.strip().splitlines()) if line.startswith("{")))


def test_lightning_two_ranks_ids_equal_inputs_and_rerun_redoes_only_missing(images, tmp_path):
    out = tmp_path / "vectors"
    summary = _lightning(images, out, "--devices", "2")
    assert summary["shards"] == 5 and sorted(summary["written"]) == ["part-000000.parquet", "part-000002.parquet",
                                                                     "part-000004.parquet"]  # rank 0's share
    assert {shard_metadata(p)["shard"]["engine"] for p in out.glob("part-*.parquet")} == {"lightning"}
    ids, vectors = _check_output(out, images)

    (out / "part-000003.parquet").unlink()
    before = _shard_stamps(out)
    summary = _lightning(images, out)
    assert summary["written"] == ["part-000003.parquet"] and summary["skipped"] == 4
    after = _shard_stamps(out)
    assert {name: after[name] for name in before} == before
    ids_again, vectors_again = _check_output(out, images)
    assert ids_again == ids and (vectors * vectors_again).sum(1).min() > 0.9999


# --- format: one model per folder, a plan that only fits its own input
IDENTITY = {"model": "brand_resnet10t", "model_sha256": "a" * 64, "output": "embedding"}


def _fake_shard(out, index, identity, dim=4):
    shard = Shard(index, (ImageRef(f"{index}.jpg", f"/x/{index}.jpg"),))
    write_shard(out, shard, {f"{index}.jpg": ("0" * 64, np.ones(dim, np.float32) / 2)}, {}, identity, dim, "test")


def test_read_shards_refuses_shards_of_two_models_naming_both(tmp_path):
    _fake_shard(tmp_path, 0, IDENTITY)
    _fake_shard(tmp_path, 1, {**IDENTITY, "model_sha256": "b" * 64})
    with pytest.raises(MixedModelsError, match=r"part-000001.*sha256 bbbbbbbbbbbb.*brand_resnet10t \(sha256 aaaaaaaa"):
        read_shards(tmp_path, partial=True)
    with pytest.raises(ExtractError, match="no manifest.json"):
        read_shards(tmp_path)


def test_rerun_refuses_other_model_or_other_plan(images, tmp_path):
    plan = plan_shards(images, shard_size=4)
    _fake_shard(tmp_path, 0, IDENTITY)
    with pytest.raises(MixedModelsError, match="grocery_resnet10t"):
        pending_shards(plan, tmp_path, {**IDENTITY, "model": "grocery_resnet10t"})
    with pytest.raises(ExtractError, match="holds other images than this run plans"):
        pending_shards(plan, tmp_path, IDENTITY)


def test_folder_manifest_and_parquet_inputs_give_one_plan(images, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    refs, _ = list_image_refs(images)
    manifest = images / "list.txt"
    lines = [f"{r.id}, 0" for r in reversed(refs)]
    manifest.write_text("\n".join(lines + lines[:2]) + "\n")  # any order; repeated lines are extracted once
    table = images / "list.parquet"
    pq.write_table(pa.table({"path": [r.id for r in refs]}), table)
    try:
        plans = [plan_shards(s, shard_size=5) for s in (images, manifest, table)]
    finally:
        manifest.unlink()
        table.unlink()
    assert [[s.refs for s in p.shards] for p in plans[1:]] == [[s.refs for s in plans[0].shards]] * 2
    assert [len(s.refs) for s in plans[0].shards] == [5, 5, 3] and plans[1].duplicates == 2
    with pytest.raises(ExtractError, match="no images"):
        plan_shards(tmp_path, shard_size=5)
