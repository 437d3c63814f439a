"""Features files and one-per-line lists (issue 29 items 4, 5 and the inf weak point): a crash at any point of a
features commit never leaves vectors labelled with another model; inf/NaN rows are refused naming file and row;
an image whose name holds a line break is skipped with a counted reason, so keep.txt and ids files never split."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import types
from pathlib import Path

import numpy as np
import pytest

from vision.dedup import DedupError, ModelId, find_duplicates, load_feature_files, scan_images, write_report
from vision.features import ExtractError, NpyWriter, load_features, model_sidecar, read_features

FORK = multiprocessing.get_context("fork")
A = {"model": "model_a", "model_sha256": "a" * 64}
B = {"model": "model_b", "model_sha256": "b" * 64}


def _write(path: Path, identity: dict, fill: float, rows: int = 3) -> None:
    with NpyWriter(path, identity) as w:
        w.write([f"/imgs/{fill}_{i}.jpg" for i in range(rows)], np.full((rows, 4), fill, np.float32))


def _write_killed_before(path: str, name: str) -> None:
    """Rewrite ``path`` with model B, SIGKILLed just before the rename that commits the file ending in ``name``."""
    real = os.replace

    def replace(src, dst, *a, **k):
        if str(dst).endswith(name):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **k)
    os.replace = replace
    _write(Path(path), B, 2.0, rows=5)
    os._exit(0)


@pytest.mark.parametrize("point", [".model.json", ".ids.txt", "f.npy", "nothing"])
def test_sigkill_during_a_features_commit_never_mislabels_vectors(tmp_path, point):
    f = tmp_path / "f.npy"
    _write(f, A, 1.0)
    p = FORK.Process(target=_write_killed_before, args=(str(f), point))
    p.start()
    p.join(60)
    assert p.exitcode == (0 if point == "nothing" else -signal.SIGKILL)
    try:
        ids, vectors, model = read_features(f)
    except ExtractError as e:  # a detectably incomplete new triple: named, never read
        assert point in (".ids.txt", "f.npy") and "no such features file" in str(e), e  # the old .npy is gone
        return
    # either the old triple or the new one, each labelled with its own model
    expected = {"model_a": (3, 1.0), "model_b": (5, 2.0)}[model["name"]]
    assert (len(ids), float(vectors[0, 0])) == expected
    assert point in (".model.json", "nothing")


def test_a_sidecar_of_another_pair_is_refused_naming_both_files(tmp_path):
    f = tmp_path / "f.npy"
    _write(f, A, 1.0)
    old_sidecar = model_sidecar(f).read_text()
    _write(f, B, 2.0, rows=3)  # same shape, other vectors and model
    model_sidecar(f).write_text(old_sidecar)  # what a crash between the .npy and the sidecar left before
    with pytest.raises(ExtractError, match=r"f\.npy\.model\.json: describes a features file .* but .*f\.npy has"):
        read_features(f)
    g = tmp_path / "g.npy"
    _write(g, A, 1.0)
    with pytest.raises(ExtractError, match="not written together"):
        load_feature_files([f, g])
    # a sidecar written before digests were recorded still names the model (nothing to check it against)
    model_sidecar(f).write_text(json.dumps({"name": "model_b", "sha256": "b" * 64}))
    assert read_features(f)[2]["name"] == "model_b"


def test_writer_without_identity_removes_a_stale_sidecar(tmp_path):
    from vision.dedup import write_model_sidecar

    f = tmp_path / "f.npy"
    _write(f, A, 1.0)
    with NpyWriter(f) as w:
        w.write(["/x.jpg"], np.ones((1, 4), np.float32))
    assert not model_sidecar(f).exists()
    with pytest.raises(DedupError, match="which model made these features is unknown"):
        load_feature_files([f])
    write_model_sidecar(f, ModelId("model_b", "b" * 64))  # records the digest of the file present
    assert read_features(f)[2]["name"] == "model_b"


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_features_are_refused_naming_file_and_row(tmp_path, bad):
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ones((4, 3), np.float32)
    vectors[2, 1] = bad
    ids = [f"/imgs/{i}.jpg" for i in range(4)]
    f = tmp_path / "f.npy"
    with NpyWriter(f, A) as w:
        w.write(ids, vectors)
    with pytest.raises(ExtractError, match=r"f\.npy: row 2 \('/imgs/2\.jpg'\) holds inf or NaN"):
        load_features(f)
    with pytest.raises(ExtractError, match=r"f\.npy: row 2"):
        load_feature_files([f])
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"path": ids, "features": pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.reshape(-1)), 3)}), table)
    with pytest.raises(ExtractError, match=r"t\.parquet: row 2 \('/imgs/2\.jpg'\)"):
        read_features(table)


def test_features_npy_with_a_lying_header_is_refused(tmp_path):
    f = tmp_path / "f.npy"
    _write(f, None, 1.0)
    data = f.read_bytes().replace(b"(3, 4)", b"(3000000, 4)")
    f.write_bytes(data)
    with pytest.raises(ExtractError, match=r"f\.npy: its header claims an array of shape \(3000000, 4\)"):
        load_features(f)


# --- item 5: a line break in an image file name

def _images_with_a_newline_name(folder: Path) -> list[Path]:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    names = ["a.png", "evil\nkeep_me.png", "c\rd.png", "z.png"]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / name, format="PNG")
    (folder / "keep_me.png").write_bytes((folder / "z.png").read_bytes())  # what a split line would name
    return [folder / n for n in names]


def test_dedup_skips_a_name_with_a_line_break_and_keep_txt_never_splits(tmp_path):
    _images_with_a_newline_name(tmp_path / "imgs")
    catalog = scan_images(tmp_path / "imgs")
    skipped = {Path(p).name: why for p, why in catalog.skipped}
    assert set(skipped) == {"evil\nkeep_me.png", "c\rd.png"} and all("line break" in w for w in skipped.values())
    result = find_duplicates(catalog)
    write_report(result, tmp_path / "rep")
    keep = (tmp_path / "rep" / "keep.txt").read_text(encoding="utf-8").splitlines()
    assert all(Path(line).is_file() for line in keep) and len(keep) == 2  # z.png and keep_me.png: one group
    unreadable = (tmp_path / "rep" / "unreadable.txt").read_text(encoding="utf-8").splitlines()
    assert len(unreadable) == 2 and sorted(json.loads(line.split("\t")[0]) for line in unreadable) == \
        sorted(str(tmp_path / "imgs" / n) for n in skipped)
    assert result.summary()["unreadable"] == 2


def test_keep_txt_refuses_a_name_with_a_line_break_that_reached_it(tmp_path):
    from vision.dedup import Catalog

    catalog = Catalog(["a\nb.png"], ["0" * 64], np.zeros(1, np.uint64), np.zeros(1, np.uint64),
                      np.ones(1, np.int64), np.ones(1, np.int64))
    with pytest.raises(DedupError, match="keep.txt: image path 'a\\\\nb.png' contains a line break"):
        write_report(find_duplicates(catalog), tmp_path / "rep")


def test_extract_skips_a_name_with_a_line_break_and_its_ids_round_trip(tmp_path):
    from vision.features import FeatureExtractor

    paths = _images_with_a_newline_name(tmp_path / "imgs")
    fx = object.__new__(FeatureExtractor)  # the extraction loop without a model: one made-up vector per image
    fx.card = types.SimpleNamespace(name="m", sha256="a" * 64, task="embedding")
    fx._embed = lambda arrays: np.ones((len(arrays), 4), np.float32)
    fx.predictor = types.SimpleNamespace(max_batch_pixels=None, reads_ahead=lambda: True)
    out = tmp_path / "f.npy"
    with pytest.warns(UserWarning, match=r"skipped 2 of 5 .*line break"):
        summary = fx.extract_folder(tmp_path / "imgs", out, batch_size=2, progress=False)
    assert summary["count"] == 3 and len(summary["skipped"]) == 2
    ids, vectors = load_features(out)
    assert sorted(ids) == sorted(str(p) for p in tmp_path.joinpath("imgs").iterdir()
                                 if "\n" not in p.name and "\r" not in p.name)
    assert len(vectors) == 3 and all(Path(i).is_file() for i in ids) and paths[0].name in map(os.path.basename, ids)
    with NpyWriter(tmp_path / "g.npy") as w, pytest.raises(ExtractError, match="contains a line break"):
        w.write(["a\nb.png"], np.ones((1, 4), np.float32))
