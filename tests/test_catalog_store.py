"""The catalog index as a versioned, locked, self-checking store (vision.dedup.index on vision.store): concurrent
``--add`` runs keep every entry, a SIGKILL at each commit point leaves a loadable index, mixed or damaged parts are a
DedupError naming the file and the field (or both versions), and hostile faiss headers are refused before faiss
allocates what they claim."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import struct
from pathlib import Path

import numpy as np
import pytest

from vision.dedup import Catalog, CatalogIndex, DedupError, ModelId

MODEL = ModelId("m", "a" * 64)
FORK = multiprocessing.get_context("fork")


def synth(n: int, start: int = 0, dim: int = 8, vectors: bool = True) -> Catalog:
    """``n`` made-up images ``start``.. with random unit vectors (no model, no image files)."""
    rng = np.random.default_rng(start)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = [f"/imgs/{start + i}.jpg" for i in range(n)]
    return Catalog(ids, [hashlib.sha256(i.encode()).hexdigest() for i in ids],
                   rng.integers(0, 2**62, n).astype(np.uint64), rng.integers(0, 2**62, n).astype(np.uint64),
                   np.full(n, 100, np.int64), np.full(n, 1000, np.int64), v if vectors else None,
                   MODEL if vectors else None)


def _in_child(fn, *args) -> int:
    """Run ``fn(*args)`` in a forked process; its exit code (negative: killed by that signal)."""
    p = FORK.Process(target=fn, args=args)
    p.start()
    p.join(60)
    return p.exitcode


# --- concurrency: 2 x 5 concurrent `vision dedup --index I --query ... --add`


def _cli_add(index: str, image: str) -> None:
    from vision.commands.dedup import main

    os._exit(main(["--index", index, "--query", image, "--add", "--verify", "off", "--workers", "1",
                   "--out", image + ".out"]))


def test_concurrent_cli_adds_keep_every_entry(tmp_path):
    from PIL import Image

    from vision.commands.dedup import main

    rng = np.random.default_rng(0)
    images = []
    for i in range(12):  # noise images: pHashes far apart, so no upload matches another
        images.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images[-1])
    (tmp_path / "cat").mkdir()
    for p in images[:2]:
        shutil.copy(p, tmp_path / "cat" / p.name)
    index = tmp_path / "idx"
    assert main(["--images", str(tmp_path / "cat"), "--save-index", str(index), "--workers", "1"]) == 0
    for round_ in range(2):
        procs = [FORK.Process(target=_cli_add, args=(str(index), str(p)))
                 for p in images[2 + 5 * round_:7 + 5 * round_]]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 5
    loaded = CatalogIndex.load(index)
    assert sorted(Path(i).name for i in loaded.catalog.ids) == sorted(p.name for p in images)
    assert len(loaded) == 12


def _locked_add(folder: str, start: int) -> None:
    with CatalogIndex.update(folder) as index:
        index.add(synth(3, start))
    os._exit(0)


def test_concurrent_updates_with_vectors_keep_every_entry(tmp_path):
    CatalogIndex.build(synth(4)).save(tmp_path / "idx")
    for round_ in range(2):
        procs = [FORK.Process(target=_locked_add, args=(str(tmp_path / "idx"), 100 * (1 + i + 5 * round_)))
                 for i in range(5)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 5
    index = CatalogIndex.load(tmp_path / "idx")
    assert len(index) == 4 + 30 and index.index.ntotal == 34 and len(set(index.catalog.ids)) == 34


# --- a SIGKILL at each commit point leaves the previous good version (or the new one, once CURRENT switched)

def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def _add_killed_at(folder: str, point: str) -> None:
    import faiss

    import vision.dedup.index as index_module
    from vision.store import VersionedStore

    real_replace = os.replace
    if point == "after catalog.npz":  # the first part is in the temporary folder, the faiss index not yet
        faiss.write_index = lambda *a: _kill()
    elif point == "after vectors.faiss":  # before catalog.json is written
        class Json:
            loads = staticmethod(json.loads)

            @staticmethod
            def dumps(*a, **k):
                _kill()
        index_module.json = Json
    elif point in ("before version rename", "before CURRENT"):
        def replace(src, dst, *a, **k):
            name = Path(dst).name
            if (point == "before CURRENT" and name == "CURRENT") or \
                    (point == "before version rename" and name.startswith("v0")):
                _kill()
            return real_replace(src, dst, *a, **k)
        os.replace = replace
    elif point == "after CURRENT":  # before old versions and pre-versioning files are removed
        VersionedStore._prune = lambda *a, **k: _kill()
    with CatalogIndex.update(folder) as index:
        index.add(synth(2, 500))
    os._exit(0)


@pytest.mark.parametrize("point", ["after catalog.npz", "after vectors.faiss", "before version rename",
                                   "before CURRENT", "after CURRENT"])
def test_sigkill_at_each_commit_point_leaves_a_loadable_index(tmp_path, point):
    folder = tmp_path / "idx"
    CatalogIndex.build(synth(4)).save(folder)
    with CatalogIndex.update(folder) as index:
        index.add(synth(3, 100))
    assert _in_child(_add_killed_at, str(folder), point) == -signal.SIGKILL
    expected = 9 if point == "after CURRENT" else 7
    index = CatalogIndex.load(folder)
    assert len(index) == expected and index.index.ntotal == expected
    with CatalogIndex.update(folder) as index:  # the next writer is not blocked by the dead one's leftovers
        index.add(synth(1, 900))
    assert len(CatalogIndex.load(folder)) == expected + 1
    assert not list(folder.glob(".new.*"))


def test_sigkill_while_converting_an_old_index_keeps_it(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    CatalogIndex.build(synth(4))._write_parts(folder)  # the layout before versioning: three top-level files
    assert len(CatalogIndex.load(folder)) == 4
    assert _in_child(_add_killed_at, str(folder), "before CURRENT") == -signal.SIGKILL
    assert len(CatalogIndex.load(folder)) == 4
    with CatalogIndex.update(folder) as index:
        index.add(synth(2, 100))
    assert len(CatalogIndex.load(folder)) == 6
    assert not (folder / "catalog.json").exists() and (folder / "CURRENT").is_file()


# --- parts of two versions, edited parts


def test_parts_of_two_versions_are_refused_naming_both(tmp_path):
    folder = tmp_path / "idx"
    CatalogIndex.build(synth(5, 0)).save(folder)
    CatalogIndex.build(synth(5, 50)).save(folder)  # same count, other vectors
    shutil.copyfile(folder / "v000001" / "vectors.faiss", folder / "v000002" / "vectors.faiss")
    with pytest.raises(DedupError, match=r"v000002/vectors.faiss.*version v000002.*it is vectors.faiss of "
                                         r"version v000001"):
        CatalogIndex.load(folder)
    shutil.copyfile(folder / "v000001" / "catalog.npz", folder / "v000002" / "catalog.npz")
    with pytest.raises(DedupError, match="v000001"):
        CatalogIndex.load(folder)


def _flat_faiss(ntotal: int, d: int, data: bytes = b"") -> bytes:
    return struct.pack("<4siqqq?i", b"IxFI", d, ntotal, 1 << 20, 1 << 20, True, 0) + \
        struct.pack("<Q", ntotal * d) + data


def test_faiss_header_claiming_a_million_vectors_is_refused_before_reading(tmp_path):
    from vision.dedup.index import _read_faiss

    path = tmp_path / "vectors.faiss"
    path.write_bytes(_flat_faiss(1_000_000, 8, bytes(25_000)))  # 25 KB claiming 32 MB (the probe's 2 GB case)
    with pytest.raises(DedupError, match=r"vectors.faiss: its header claims 1000000 vectors.*'count' and 'dim'"):
        _read_faiss(path, {"count": 12, "dim": 8})
    with pytest.raises(DedupError, match=r"vectors.faiss: a flat index of 1000000 x 8 vectors takes 32000045 bytes"):
        _read_faiss(path, {"count": 1_000_000, "dim": 8})
    # the length field faiss allocates from, edited alone
    good = _flat_faiss(3, 8, bytes(3 * 8 * 4))
    path.write_bytes(good[:37] + struct.pack("<Q", 1 << 39) + good[45:])
    with pytest.raises(DedupError, match="records 549755813888"):
        _read_faiss(path, {"count": 3, "dim": 8})


def test_faiss_memory_bomb_stays_small(tmp_path):
    """The probe's case: 25 KB claiming 1M x 512 vectors (2 GB), even with catalog.json agreeing on the count:
    refused from the header, the process grows by far less than the claim."""
    import resource

    from vision.dedup.index import _read_faiss

    path = tmp_path / "vectors.faiss"
    path.write_bytes(_flat_faiss(1_000_000, 512, bytes(25_000)))

    def load():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            _read_faiss(path, {"count": 1_000_000, "dim": 512})
        except DedupError:
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB
            os._exit(0 if grown < 50_000 else 3)
        os._exit(4)
    assert _in_child(load) == 0


# --- every damaged catalog.json / catalog.npz / vectors.faiss: a clean load or a DedupError naming the file


def _json_edits(meta: dict) -> list:
    edits = []
    for key in list(meta):
        for value in (None, "x", -1, 1.5, [], {}, True, 10**12, float("nan")):
            edits.append((f"{key}={value!r}", meta | {key: value}))
        edits.append((f"no {key}", {k: v for k, v in meta.items() if k != key}))
    edits.append(("unknown field", meta | {"extra": 1}))
    for key, value in (("k", "x"), ("k", 0), ("k", 2.5), ("similarity", float("inf")), ("nope", 1),
                       ("verify", True)):
        edits.append((f"thresholds.{key}", meta | {"thresholds": meta["thresholds"] | {key: value}}))
    for model in ({"name": 1, "sha256": ""}, {"name": "m"}, {"name": "m", "sha256": "", "x": 1}, ["m"], "m"):
        edits.append((f"model={model!r}", meta | {"model": model}))
    return edits


def _npz_edits(arrays: dict) -> list:
    edits = []
    for name in arrays:
        edits.append((f"no {name}", {k: v for k, v in arrays.items() if k != name}))
        edits.append((f"{name} short", arrays | {name: arrays[name][:-1]}))
        edits.append((f"{name} 2-D", arrays | {name: np.stack([arrays[name]] * 2)}))
        edits.append((f"{name} float", arrays | {name: np.zeros(len(arrays[name]), np.float32)}))
        edits.append((f"{name} text", arrays | {name: np.asarray(["x"] * len(arrays[name]))}))
    return edits


def _mutations(data: bytes, rng) -> list:
    out = [("empty", b""), ("half", data[:len(data) // 2]), ("one byte short", data[:-1]), ("extra", data + b"x")]
    for pos in sorted(set(rng.integers(0, len(data), 24).tolist()) | set(range(0, min(len(data), 48), 4))):
        out.append((f"flip@{pos}", data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]))
    return out


def _check_load(folder: Path, what: str) -> None:
    try:
        index = CatalogIndex.load(folder)
    except DedupError as e:
        message = str(e)
        assert str(folder) in message, (what, message)
        assert "Traceback" not in message and len(message) < 2000, (what, message)
        return
    assert len(index.catalog.ids) == len(index.paths)
    if index.index is not None:
        assert index.index.ntotal == len(index) and index.index.d == 8


def test_fuzzed_catalog_parts_load_cleanly_or_raise_dedup_error(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "good"
    good.mkdir()
    CatalogIndex.build(synth(5)).save(good)
    version = good / "v000001"
    originals = {name: (version / name).read_bytes() for name in ("catalog.json", "catalog.npz", "vectors.faiss")}
    legacy = tmp_path / "legacy"
    cases = []
    for name, data in originals.items():
        cases += [(name, what, new) for what, new in _mutations(data, rng)]
    meta = json.loads(originals["catalog.json"])
    for what, edited in _json_edits(meta):
        cases.append(("catalog.json", what, json.dumps(edited).encode()))
    cases += [("catalog.json", "not JSON", b"{"), ("catalog.json", "a list", b"[]"), ("catalog.json", "latin-1",
                                                                                       b"\xff\xfe")]
    import io

    with np.load(version / "catalog.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for what, edited in _npz_edits(arrays):
        buf = io.BytesIO()
        np.savez(buf, **edited)
        cases.append(("catalog.npz", what, buf.getvalue()))
    buf = io.BytesIO()
    np.savez(buf, ids=np.asarray([object()] * 5, dtype=object), allow_pickle=True)
    cases.append(("catalog.npz", "pickled ids", buf.getvalue()))
    cases.append(("vectors.faiss", "claims a million", _flat_faiss(10**6, 8, bytes(25_000))))
    assert len(cases) > 200
    for name, what, new in cases:
        # the legacy layout has no digests: every parser sees the damage
        shutil.rmtree(legacy, ignore_errors=True)
        legacy.mkdir()
        for part, data in originals.items():
            (legacy / part).write_bytes(new if part == name else data)
        _check_load(legacy, f"{name}: {what}")
    # the versioned layout: the digest check refuses every edited part before any parser runs
    for name, _what, new in cases[::7]:
        (version / name).write_bytes(new)
        with pytest.raises(DedupError, match=rf"{name}: does not match the record of catalog index version v000001"):
            CatalogIndex.load(good)
        (version / name).write_bytes(originals[name])
    CatalogIndex.load(good)


def test_current_record_naming_no_catalog_part_is_refused(tmp_path):
    folder = tmp_path / "idx"
    CatalogIndex.build(synth(3)).save(folder)
    record = json.loads((folder / "CURRENT").read_text())
    del record["parts"]["catalog.npz"]
    (folder / "CURRENT").write_text(json.dumps(record))
    with pytest.raises(DedupError, match="CURRENT: field 'parts' has no catalog.npz"):
        CatalogIndex.load(folder)
    (folder / "CURRENT").write_text("{")
    with pytest.raises(DedupError, match="CURRENT: not a valid version record"):
        CatalogIndex.load(folder)
    with pytest.raises(DedupError, match="not a catalog index"):
        CatalogIndex.load(tmp_path / "none")


def test_index_without_vectors_round_trips(tmp_path):
    folder = tmp_path / "idx"
    CatalogIndex.build(synth(3, vectors=False)).save(folder)
    with CatalogIndex.update(folder) as index:
        index.add(synth(2, 10, vectors=False))
    index = CatalogIndex.load(folder)
    assert len(index) == 5 and index.index is None and index.catalog.model is None
