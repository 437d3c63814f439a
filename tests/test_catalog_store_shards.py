"""Shard folders of vision extract --engine ray/lightning (vision.scale.shards): every malformed metadata field, column,
manifest or damaged file is an ExtractError naming the file (and the field), never a raw traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vision.features import ExtractError
from vision.scale.inputs import ImageRef, Shard
from vision.scale.shards import read_shards, shard_metadata, write_shard

IDENTITY = {"model": "brand_resnet10t", "model_sha256": "a" * 64, "output": "embedding"}
DIM = 4


def _good_folder(folder: Path) -> Path:
    folder.mkdir()
    refs = tuple(ImageRef(f"{i}.jpg", f"/x/{i}.jpg") for i in range(3))
    rows = {r.id: ("0" * 64, np.full(DIM, 0.5, np.float32)) for r in refs[:2]}
    write_shard(folder, Shard(0, refs), rows, {refs[2].id: "unreadable"}, IDENTITY, DIM, "test")
    (folder / "manifest.json").write_text(json.dumps({"shards": [{"file": "part-000000.parquet"}]}))
    return folder / "part-000000.parquet"


def _with_metadata(table: pa.Table, **edits) -> pa.Table:
    meta = dict(table.schema.metadata)
    for key, value in edits.items():
        key = f"vision.{key}".encode()
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value if isinstance(value, bytes) else str(value).encode()
    return table.replace_schema_metadata(meta)


def _cases(table: pa.Table) -> list:
    info = json.loads(table.schema.metadata[b"vision.shard"])
    cases = []
    for dim in ("x", "0", "-1", "4.0", "1e9", "", "99999999999999999999", "3", "5"):
        cases.append((f"dim={dim!r}", _with_metadata(table, dim=dim)))
    for key in ("model", "model_sha256", "output", "dim", "shard"):
        cases.append((f"no {key}", _with_metadata(table, **{key: None})))
    cases.append(("model empty", _with_metadata(table, model="")))
    cases.append(("not utf-8", _with_metadata(table, model=b"\xff\xfe")))
    for shard in ("{", "[]", "null", "1", '"x"', "[" * 100_000):
        cases.append((f"shard={shard[:10]!r}", _with_metadata(table, shard=shard)))
    for key in info:
        for value in (None, "x", -1, 1.5, [], {}, True, [1], [{"id": 1}]):
            cases.append((f"shard.{key}={value!r}", _with_metadata(table, shard=json.dumps(info | {key: value}))))
        cases.append((f"shard without {key}", _with_metadata(
            table, shard=json.dumps({k: v for k, v in info.items() if k != key}))))
    vectors = table.column("vector").combine_chunks().values.to_numpy()
    n = len(table)

    def with_column(name, array):
        i = table.schema.get_field_index(name)
        return table.set_column(i, pa.field(name, array.type), array)
    cases.append(("3 floats a row", with_column("vector", pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.reshape(n, DIM)[:, :3].reshape(-1)), 3))))
    cases.append(("ragged", with_column("vector", pa.array([[0.5] * DIM, [0.5] * 3], pa.list_(pa.float32())))))
    cases.append(("null vector", with_column("vector", pa.array([[0.5] * DIM, None], pa.list_(pa.float32())))))
    cases.append(("text vector", with_column("vector", pa.array([["a"] * DIM] * n, pa.list_(pa.string())))))
    cases.append(("int path", with_column("path", pa.array([1, 2], pa.int64()))))
    cases.append(("null path", with_column("path", pa.array(["a", None], pa.string()))))
    nan = vectors.copy()
    nan[5] = np.nan
    cases.append(("NaN", with_column("vector", pa.FixedSizeListArray.from_arrays(pa.array(nan), DIM))))
    cases.append(("no vector", table.drop_columns(["vector"])))
    cases.append(("no path", table.drop_columns(["path"])))
    return cases


def _check(folder: Path, what: str) -> None:
    for read in (lambda: read_shards(folder, key="path"), lambda: shard_metadata(folder / "part-000000.parquet")):
        try:
            read()
        except ExtractError as e:
            assert str(folder) in str(e) and len(str(e)) < 2000, (what, str(e))


def test_fuzzed_shard_metadata_columns_and_bytes_give_a_clean_result_or_extract_error(tmp_path):
    good = _good_folder(tmp_path / "good")
    table = pq.read_table(good)
    work = tmp_path / "work"
    shutil.copytree(good.parent, work)
    shard = work / good.name
    cases = _cases(table)
    for what, edited in cases:
        pq.write_table(edited, shard)
        _check(work, what)
    data = good.read_bytes()
    rng = np.random.default_rng(0)
    for pos in [*range(0, 16), *rng.integers(0, len(data), 20).tolist(), *range(len(data) - 16, len(data))]:
        shard.write_bytes(data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:])
        _check(work, f"flip@{pos}")
    for cut in (0, 4, len(data) // 2, len(data) - 1):
        shard.write_bytes(data[:cut])
        _check(work, f"cut@{cut}")
    shard.write_bytes(data)
    for manifest in (b"{", b"[]", b'{"shards": "x"}', b'{"shards": [{}]}', b'{"shards": [1]}', b"\xff", b"[" * 100_000):
        (work / "manifest.json").write_bytes(manifest)
        with pytest.raises(ExtractError, match=r"manifest.json: (not a readable manifest|field 'shards')"):
            read_shards(work)
    assert len(cases) > 60


@pytest.mark.parametrize("edit, message", [
    ({"dim": "x"}, r"metadata field 'vision.dim' must be a vector length"),
    ({"shard": "{"}, r"metadata field 'vision.shard'  must be a JSON object"),
    ({"shard": json.dumps({"index": 0})}, r"'vision.shard' field 'images' must be a whole number"),
    ({"shard": None}, r"metadata \['vision.shard'\] missing"),
])
def test_each_malformed_metadata_field_is_named(tmp_path, edit, message):
    shard = _good_folder(tmp_path / "s")
    pq.write_table(_with_metadata(pq.read_table(shard), **edit), shard)
    with pytest.raises(ExtractError, match=rf"part-000000.parquet: .*{message}"):
        read_shards(shard.parent)


def test_wrong_vector_width_and_nan_rows_are_named(tmp_path):
    shard = _good_folder(tmp_path / "s")
    table = pq.read_table(shard)
    pq.write_table(_with_metadata(table, dim="3"), shard)
    with pytest.raises(ExtractError, match=r"part-000000.parquet: column 'vector' must hold 3 floats per row"):
        read_shards(shard.parent)
    vectors = np.full((2, DIM), 0.5, np.float32)
    vectors[1, 2] = np.inf
    i = table.schema.get_field_index("vector")
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM)
    pq.write_table(table.set_column(i, table.schema.field(i), column), shard)
    with pytest.raises(ExtractError, match=r"part-000000.parquet: row 1 \('/x/1.jpg'\) holds inf or NaN"):
        read_shards(shard.parent, key="path")
