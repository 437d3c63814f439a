"""vision.cluster: product clusters on tiny synthetic catalogs (photos as random images, features designed so the
products are known), the chaining guard, incremental assignment vs re-clustering, outputs and bad inputs."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vision
from vision.clustering import ClusterError, ClusterIndex, ClusterSettings, cluster_catalog, write_cluster_report
from vision.dedup import DedupError, ModelId, scan_images
from vision.dedup.catalog import select
from vision.features import NpyWriter

DIM = 32
MODEL = {"model": "synthetic_feats", "model_sha256": "ab" * 32}


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def shots(centre, n, rng, noise=0.15):
    return unit(centre + noise * rng.standard_normal((n, DIM)))


def write_images(folder: Path, names, seed=0) -> list[str]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        p = folder / name
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def write_features(path: Path, ids, vectors) -> Path:
    with NpyWriter(path, MODEL) as w:
        w.write(list(ids), np.asarray(vectors, np.float32))
    return path


@pytest.fixture()
def catalog_two_products(tmp_path):
    """Products A and B, five shots each, plus an exact copy of A's first shot (same bytes)."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(DIM), rng.standard_normal(DIM)
    paths = write_images(tmp_path / "photos", [f"a{i}.png" for i in range(5)] + [f"b{i}.png" for i in range(5)])
    copy = tmp_path / "photos" / "a0_copy.png"
    shutil.copy(paths[0], copy)
    vectors = np.concatenate([shots(a, 5, rng), shots(b, 5, rng)])
    vectors = np.concatenate([vectors, vectors[:1]])
    paths.append(str(copy))
    feats = write_features(tmp_path / "feats.npy", paths, vectors)
    return tmp_path, paths, feats


def test_two_products_with_copies_cluster_right(catalog_two_products):
    folder, paths, feats = catalog_two_products
    result = vision.cluster(features=feats, settings=ClusterSettings(similarity=0.6))
    rows = {Path(r["id"]).name: r for r in result.rows()}
    assert len(rows) == 11
    a = {rows[f"a{i}.png"]["cluster"] for i in range(5)} | {rows["a0_copy.png"]["cluster"]}
    b = {rows[f"b{i}.png"]["cluster"] for i in range(5)}
    assert len(a) == 1 and len(b) == 1 and a != b
    # the copy is merged by the exact stage first and reported as such
    assert rows["a0_copy.png"]["reason"] == "exact"
    s = result.summary()
    assert s["clusters"] == 2 and s["copies_merged"]["exact"] == 1 and s["model"]["name"] == "synthetic_feats"
    # the cluster id is stable: the same photos in another order give the same ids
    again = vision.cluster(paths[::-1], features=feats, settings=ClusterSettings(similarity=0.6))
    assert {Path(r["id"]).name: r["cluster"] for r in again.rows()} == {k: r["cluster"] for k, r in rows.items()}


def chain_catalog():
    """Two tight products A (rows 0-3) and B (rows 4-7) with cosine ~0.2 between them, and a chain of 6 photos
    (rows 8-13) bending from A to B whose consecutive links are just above the threshold."""
    e0, e1 = np.eye(DIM)[0], np.eye(DIM)[1]
    rng = np.random.default_rng(3)
    angle_b = np.deg2rad(80)
    centre_b = np.cos(angle_b) * e0 + np.sin(angle_b) * e1
    tight_a = unit(e0 + 0.01 * rng.standard_normal((4, DIM)))
    tight_b = unit(centre_b + 0.01 * rng.standard_normal((4, DIM)))
    chain = unit(np.stack([np.cos(t) * e0 + np.sin(t) * e1 for t in np.linspace(angle_b / 7, 6 * angle_b / 7, 6)]))
    vectors = np.concatenate([tight_a, tight_b, chain]).astype(np.float32)
    n = len(vectors)
    import hashlib

    shas = [hashlib.sha256(bytes([i])).hexdigest() for i in range(n)]
    hashes = np.arange(n, dtype=np.uint64) * np.uint64(0x0F0F0F0F0F0F0F0F)
    from vision.dedup import Catalog

    return Catalog(shas, shas, hashes, hashes, np.ones(n, np.int64), np.ones(n, np.int64), vectors,
                   ModelId("synthetic_feats"))


def test_chain_of_borderline_links_does_not_merge_two_products():
    cat = chain_catalog()
    link = float(cat.vectors[8] @ cat.vectors[9])  # cos(80/7 deg) ~ 0.98
    t = link - 0.01
    assert float(cat.vectors[0] @ cat.vectors[4]) < 0.4
    plain = cluster_catalog(cat, ClusterSettings(similarity=t, method="components", phash_distance=None, dba=1))
    assert plain.labels[0] == plain.labels[4], "the plain baseline chains A and B together (the case to guard)"
    for method in ("average", "guarded"):  # the default and dedup's guard
        guarded = cluster_catalog(cat, ClusterSettings(similarity=t, phash_distance=None, method=method, dba=1))
        assert len(set(guarded.labels[:4])) == 1 and len(set(guarded.labels[4:8])) == 1, method
        assert guarded.labels[0] != guarded.labels[4], method
        assert guarded.summary()["guarded_edges"] >= 1


def test_incremental_assignment_equals_reclustering(tmp_path):
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((3, DIM))
    names = [f"p{p}_{i}.png" for p in range(3) for i in range(5)]
    paths = write_images(tmp_path / "all", names, seed=7)
    vectors = np.concatenate([shots(c, 5, rng, 0.12) for c in centres])
    feats = write_features(tmp_path / "all.npy", paths, vectors)
    settings = ClusterSettings(similarity=0.6)
    full = scan_images(None, features=feats)
    whole = cluster_catalog(full, settings)
    # the catalog: products 0 and 1 minus two shots of product 1; uploads: those two shots and all of product 2
    base_rows = [i for i in range(15) if i < 8]
    new_rows = [i for i in range(15) if i >= 8]
    base = cluster_catalog(select(full, base_rows), settings)
    ClusterIndex.build(base).save(tmp_path / "index")
    with ClusterIndex.update(tmp_path / "index") as index:
        rows = index.assign(select(full, new_rows), add=True)
    labels = base.labels + [r["cluster"] for r in rows]

    def partition(ls):
        groups = {}
        for i, label in enumerate(ls):
            groups.setdefault(label, set()).add(i)
        return sorted(map(sorted, groups.values()))

    order = base_rows + new_rows
    assert partition(labels) == partition([whole.labels[i] for i in order])
    assert [r["new_cluster"] for r in rows] == [False, False] + [True] * 5
    assert rows[0]["cluster"] == base.labels[5] and rows[0]["reason"] == "embedding"
    reloaded = ClusterIndex.load(tmp_path / "index")
    assert len(reloaded) == 15 and reloaded.labels[8:] == [r["cluster"] for r in rows]
    assert reloaded.model == ModelId("synthetic_feats", MODEL["model_sha256"])


def test_outputs_keep_the_contract_and_escape_html(tmp_path):
    rng = np.random.default_rng(2)
    names = ["plain.png", "x<b>&'\".png", "y.png"]
    paths = write_images(tmp_path / "p", names)
    c = rng.standard_normal(DIM)
    feats = write_features(tmp_path / "f.npy", paths, shots(c, 3, rng, 0.05))
    result = vision.cluster(features=feats, settings=ClusterSettings(similarity=0.5))
    written = write_cluster_report(result, tmp_path / "out")
    with open(written["csv"], newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [r["id"] for r in table] == paths and list(table[0])[:3] == ["id", "cluster", "score"]
    assert len({r["cluster"] for r in table}) == 1 and table[0]["cluster"].startswith("c")
    page = Path(written["html"]).read_text()
    assert "x<b>" not in page and "x&lt;b&gt;&amp;&#x27;&quot;.png" in page
    summary = json.loads(Path(written["summary"]).read_text())
    assert summary["images"] == 3 and summary["settings"]["similarity"] == 0.5
    if "parquet" in written:
        import pyarrow.parquet as pq

        assert pq.read_table(written["parquet"]).column_names[:3] == ["id", "cluster", "score"]


def test_cli_cluster_then_assign(catalog_two_products, tmp_path, capsys):
    from vision.commands.cluster import main

    folder, paths, feats = catalog_two_products
    assert main(["--features", str(feats), "--similarity", "0.6", "--out", str(tmp_path / "r"),
                 "--save-index", str(tmp_path / "idx"), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clusters"] == 2 and (tmp_path / "r" / "clusters.csv").is_file()
    # an index whose model is not a zoo model cannot scan uploads: a clear error naming it
    with pytest.raises(SystemExit, match="synthetic_feats"):
        main(["--index", str(tmp_path / "idx"), "--query", paths[0], "--no-progress"])


def test_bad_inputs_give_clear_errors(tmp_path, catalog_two_products):
    folder, paths, feats = catalog_two_products
    cat = scan_images(paths)  # no model: no vectors
    with pytest.raises(ClusterError, match="needs feature vectors"):
        cluster_catalog(cat)
    assert issubclass(ClusterError, DedupError) and issubclass(ClusterError, ValueError)
    with pytest.raises(ClusterError, match="needs feature vectors"):
        vision.cluster(paths)
    with pytest.raises(DedupError, match="no images"):
        vision.cluster(str(tmp_path / "empty.txt"), model="grocery_lite0") if (tmp_path / "empty.txt").write_text(
            "") is not None else None
    with pytest.raises(ClusterError, match="method"):
        ClusterSettings(method="kmeans")
    with pytest.raises(ClusterError, match="'k'"):
        ClusterSettings.from_dict({"k": 0})
    with pytest.raises(ClusterError, match="unknown setting"):
        ClusterSettings.from_dict({"threshold": 0.5})
    with pytest.raises(ClusterError, match="not a cluster index"):
        ClusterIndex.load(tmp_path / "nothing")
    # a damaged part is refused by its digest; a wrong field by name
    result = vision.cluster(features=feats, settings=ClusterSettings(similarity=0.6))
    ClusterIndex.build(result).save(tmp_path / "idx")
    version = next(p for p in (tmp_path / "idx").iterdir() if p.name.startswith("v"))
    meta = json.loads((version / "cluster.json").read_text())
    (version / "cluster.json").write_text(json.dumps(meta | {"count": 99}))
    with pytest.raises(ClusterError, match="cluster.json"):
        ClusterIndex.load(tmp_path / "idx")
    # uploads from another model are refused, naming both
    other = scan_images(paths[:2], features=feats, features_model=None)
    other.model = ModelId("another_model", "cd" * 32)
    ClusterIndex.build(result).save(tmp_path / "idx2")
    with pytest.raises(DedupError, match="another_model"):
        ClusterIndex.load(tmp_path / "idx2").assign(other)
