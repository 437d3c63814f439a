"""``vision dedup --features`` reads every output of ``vision extract``: ``.npy`` (its ``.model.json`` names the
model), ``.parquet`` (the model in the schema metadata) and a folder of Lightning/Ray shards; the groups equal those
of the images read directly, and a file that does not name its model is refused unless the model is given."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.test_dedup import MODEL, build_set
from vision.commands import dedup as dedup_command
from vision.commands import extract as extract_command
from vision.features import ExtractError, read_features


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dedup_inputs") / "catalog"
    truth = build_set(folder)
    for name in [n for n in truth if n.startswith(("g2", "g3"))]:  # two products are enough here
        (folder / name).unlink()
        del truth[name]
    out = tmp_path_factory.mktemp("reports")
    assert dedup_command.main(["--images", str(folder), "--model", MODEL, "--out", str(out / "direct"),
                               "--no-progress"]) == 0
    return folder, out


def groups(report: Path) -> set[frozenset[str]]:
    import csv

    by_group: dict[str, set[str]] = {}
    with open(report / "groups.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_group.setdefault(row["group"], set()).add(Path(row["id"]).name)
    return {frozenset(m) for m in by_group.values()}


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_extract_file_names_its_model_and_dedup_reads_it(catalog, tmp_path, suffix):
    folder, out = catalog
    feats = tmp_path / f"f{suffix}"
    assert extract_command.main(["--model", MODEL, "--images", str(folder), "--out", str(feats),
                                 "--no-progress"]) == 0
    ids, vectors, model = read_features(feats)
    assert model["name"] == MODEL and len(model["sha256"]) == 64
    assert len(ids) == len(vectors) == len(list(folder.iterdir())) and vectors.dtype == np.float32
    assert dedup_command.main(["--features", str(feats), "--out", str(tmp_path / "rep"), "--no-progress"]) == 0
    assert groups(tmp_path / "rep") == groups(out / "direct")


def test_shard_folder_of_the_lightning_engine(catalog, tmp_path):
    folder, out = catalog
    shards = tmp_path / "shards"
    assert extract_command.main(["--engine", "lightning", "--model", MODEL, "--images", str(folder), "--out",
                                 str(shards), "--shard-size", "7", "--no-progress"]) == 0
    assert len(list(shards.glob("part-*.parquet"))) > 1
    assert dedup_command.main(["--features", str(shards), "--out", str(tmp_path / "rep"), "--no-progress"]) == 0
    assert groups(tmp_path / "rep") == groups(out / "direct")


def test_parquet_without_model_needs_one_and_bad_tables_name_the_file(catalog, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder, _ = catalog
    paths = sorted(str(p) for p in folder.iterdir())
    vectors = np.random.default_rng(0).normal(size=(len(paths), 8)).astype(np.float32)
    bare = tmp_path / "bare.parquet"
    pq.write_table(pa.table({"path": paths, "features": pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.reshape(-1)), 8)}), bare)
    with pytest.raises(SystemExit, match="bare.parquet.*--features-model"):
        dedup_command.main(["--features", str(bare), "--out", str(tmp_path / "rep")])
    assert dedup_command.main(["--features", str(bare), "--features-model", MODEL, "--out", str(tmp_path / "rep"),
                               "--no-progress"]) == 0
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["images"] == len(paths)
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"name": paths}), wrong)
    with pytest.raises(ExtractError, match=r"wrong.parquet: a features table needs a 'path' column"):
        read_features(wrong)
    garbage = tmp_path / "garbage.parquet"
    shutil.copyfile(folder / sorted(p.name for p in folder.iterdir())[0], garbage)
    with pytest.raises(SystemExit, match="garbage.parquet: not a readable Parquet"):
        dedup_command.main(["--features", str(garbage), "--features-model", MODEL, "--out", str(tmp_path / "r3")])


def test_reading_threads_keep_the_input_order_and_the_skips(catalog, tmp_path):
    from vision.dedup import scan_images

    folder, _ = catalog
    paths = sorted(str(p) for p in folder.iterdir())
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths.insert(3, str(broken))
    one, four = scan_images(paths, workers=1), scan_images(paths, workers=4)
    assert one.ids == four.ids == [p for p in paths if p != str(broken)]
    assert one.sha256 == four.sha256 and (one.hashes == four.hashes).all() and (one.pixels == four.pixels).all()
    assert [p for p, _ in four.skipped] == [str(broken)]
