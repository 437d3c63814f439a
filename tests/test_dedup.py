"""Catalog dedup (vision.dedup, tools/dedup.py): a tiny set of real sample photos with known copies.

Four originals from different products, each with edited copies (and one byte-identical copy), plus other photos of
the same products (not duplicates); the grocery classifier's features give the k-NN candidates.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLE
from vision.dedup import (
    CatalogIndex,
    DedupError,
    Edge,
    ModelId,
    Pair,
    Thresholds,
    calibrate_threshold,
    candidate_pairs,
    find_duplicates,
    group_edges,
    scan_images,
    write_model_sidecar,
    write_report,
)
from vision.dedup.edits import apply_edit
from vision.dedup.hashing import hamming_distance, phash

MODEL = "grocery_resnet10t"
ORIGINALS = ["Fruit/Apple/Granny-Smith/Granny-Smith_001.jpg", "Fruit/Banana/Banana_001.jpg",
             "Packages/Juice/Bravo-Orange-Juice/Bravo-Orange-Juice_001.jpg",
             "Packages/Oat-Milk/Oatly-Oat-Milk/Oatly-Oat-Milk_001.jpg"]
NEGATIVES = ["Fruit/Banana/Banana_002.jpg", "Packages/Oat-Milk/Oatly-Oat-Milk/Oatly-Oat-Milk_003.jpg"]
EDITS = ["jpeg", "crop", "mirror", "rotate", "greyscale", "text", "border", "letterbox+downscale"]


def build_set(folder: Path) -> dict[str, int]:
    """Images under ``folder``; returns file name -> true group (-1: no duplicate)."""
    from PIL import Image

    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for g, rel in enumerate(ORIGINALS):
        shutil.copyfile(SAMPLE / "val" / rel, folder / f"g{g}_orig.jpg")
        truth[f"g{g}_orig.jpg"] = g
        image = Image.open(SAMPLE / "val" / rel).convert("RGB")
        for edit in EDITS:
            name = f"g{g}_{edit}.jpg"
            apply_edit(image, edit, rng).save(folder / name, quality=92)
            truth[name] = g
    shutil.copyfile(folder / "g0_orig.jpg", folder / "g0_bytecopy.jpg")
    truth["g0_bytecopy.jpg"] = 0
    for n, rel in enumerate(NEGATIVES):
        shutil.copyfile(SAMPLE / "val" / rel, folder / f"neg{n}.jpg")
        truth[f"neg{n}.jpg"] = -1
    return truth


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dedup") / "catalog"
    truth = build_set(folder)
    catalog = scan_images(folder, model=MODEL, backend="torch")
    return folder, truth, catalog


def group_of(result, name: str) -> int:
    return result.grouping.root[[Path(i).name for i in result.catalog.ids].index(name)]


def reason_of(result, name: str) -> str:
    return {Path(r["id"]).name: r["reason"] for r in result.rows()}[name]


def test_default_stages_find_every_copy_and_no_other_photo(dataset):
    _, truth, catalog = dataset
    result = find_duplicates(catalog)
    for name, g in truth.items():
        same = [n for n, h in truth.items() if group_of(result, n) == group_of(result, name)]
        expected = [n for n, h in truth.items() if (h == g and g >= 0) or n == name]
        assert sorted(same) == sorted(expected), name
    assert reason_of(result, "g0_bytecopy.jpg") == "exact"
    assert result.summary()["groups"] == len(ORIGINALS)
    assert len(result.keep()) == len(ORIGINALS) + len(NEGATIVES)


def test_each_stage_alone(dataset):
    _, truth, catalog = dataset
    exact_only = find_duplicates(catalog, Thresholds(phash_distance=None, similarity=None, verify=None))
    assert [len(g) for g in exact_only.groups()] == [2]
    phash_only = find_duplicates(catalog, Thresholds(phash_distance=6, similarity=None, verify=None))
    for edit in ("jpeg", "mirror", "greyscale"):  # the mirror pHash finds mirrored copies
        assert group_of(phash_only, f"g1_{edit}.jpg") == group_of(phash_only, "g1_orig.jpg")
        assert reason_of(phash_only, f"g1_{edit}.jpg") == "phash"
    assert group_of(phash_only, "g1_letterbox+downscale.jpg") != group_of(phash_only, "g1_orig.jpg")
    embed_only = find_duplicates(catalog, Thresholds(phash_distance=None, similarity=0.95, verify=None))
    assert group_of(embed_only, "g2_crop.jpg") == group_of(embed_only, "g2_orig.jpg")
    assert reason_of(embed_only, "g2_crop.jpg") == "embedding"


def test_mirror_hash_and_verification_scores(dataset):
    folder, _, catalog = dataset
    ids = [Path(i).name for i in catalog.ids]
    a, m = ids.index("g3_orig.jpg"), ids.index("g3_mirror.jpg")
    assert hamming_distance(catalog.mirrored[a], catalog.hashes[m]) <= 2
    pairs = candidate_pairs(catalog, Thresholds(), verify_all=True)
    by_name = {(ids[p.i], ids[p.j]): p for p in pairs}
    crop = by_name.get(("g3_crop.jpg", "g3_orig.jpg")) or by_name[("g3_orig.jpg", "g3_crop.jpg")]
    assert crop.ncc > 0.98 and crop.containment > 0.8
    other = [p for (x, y), p in by_name.items() if {x, y} == {"g3_orig.jpg", "neg1.jpg"}]
    assert not other or other[0].edge(Thresholds()) is None  # same product, other photo: candidate at most


def test_verifier_local_score_tells_an_edited_copy_from_another_shot(tmp_path):
    """Two real shots of one banana display a moment apart align with NCC 0.99 over most of the frame (the old check
    accepted them); the local edge agreement rejects them but keeps edited copies of one of the shots."""
    from PIL import Image

    from vision.dedup.verify import Verifier

    shot = SAMPLE / "train/Fruit/Banana/Banana_006.jpg"
    other = SAMPLE / "train/Fruit/Banana/Banana_011.jpg"
    t = Thresholds()
    verifier = Verifier()
    neighbour = verifier.score(str(shot), str(other))
    assert neighbour.ncc >= t.verify and neighbour.inliers >= t.min_inliers
    assert neighbour.containment >= t.min_containment
    assert neighbour.local < t.min_local
    image, rng = Image.open(shot).convert("RGB"), random.Random(0)
    for edit in ("jpeg", "downscale", "crop", "rotate", "mirror", "text", "letterbox", "colour+text"):
        path = tmp_path / f"{edit}.jpg"
        apply_edit(image, edit, rng).save(path, quality=92)
        copy = verifier.score(str(shot), str(path))
        assert copy.local >= t.min_local + 0.02, (edit, copy)
        assert Pair(0, 1, inliers=copy.inliers, ncc=copy.ncc, containment=copy.containment,
                    local=copy.local).edge(t) is not None, (edit, copy)


def test_min_local_is_a_stored_threshold():
    from dataclasses import asdict

    assert Thresholds.from_dict(asdict(Thresholds()), "card") == Thresholds()
    off = Thresholds.from_dict({"min_local": None}, "card")
    checked = Pair(0, 1, inliers=50, ncc=0.99, containment=0.9)            # local not measured
    assert checked.edge(off) is not None and checked.edge(Thresholds()) is None
    with pytest.raises(DedupError, match="'min_local' must be a number or null"):
        Thresholds.from_dict({"min_local": "high"}, "card")


def test_mirror_margin_is_a_stored_threshold_and_a_flag(monkeypatch):
    import vision.commands.dedup as command

    assert Thresholds.from_dict({"mirror_margin": None}, "card").mirror_margin is None
    assert Thresholds.from_dict({}, "card").mirror_margin == 0
    with pytest.raises(DedupError, match="'mirror_margin' must be a whole number"):
        Thresholds.from_dict({"mirror_margin": 1.5}, "card")
    seen = []
    monkeypatch.setattr(command, "report", lambda args: seen.append(command.thresholds_from(args)) or 0)
    for flag, margin in (("off", None), ("3", 3)):
        command.main(["--images", "x", "--out", "y", "--mirror-margin", flag])
        assert seen[-1].mirror_margin == margin


def clique(members):
    return [Edge(a, b, 0.99, "verified") for x, a in enumerate(members) for b in members[x + 1:]]


def test_chaining_guard_one_bad_edge_cannot_merge_two_groups():
    left, right = list(range(5)), list(range(5, 10))
    bad = Edge(4, 5, 0.999, "verified", mutual=True)
    grouping = group_edges(10, clique(left) + clique(right) + [bad])
    assert sorted(map(sorted, grouping.groups)) == [left, right]
    assert grouping.guarded == [bad]
    # a single image still joins a group by one edge
    assert group_edges(3, [Edge(0, 1, 0.99, "verified"), Edge(1, 2, 0.99, "verified")]).groups == [[0, 1, 2]]
    # many mutual cross edges: the two groups are one set of copies, merged
    cross = [Edge(a, b, 0.99, "verified", mutual=True) for a in left[:3] for b in right[:3]]
    assert group_edges(10, clique(left) + clique(right) + cross).groups == [list(range(10))]
    # ... but not when the joining edge is one-sided (not a mutual k-NN edge) and support is thin
    weak = [Edge(4, 5, 0.99, "embedding", mutual=False), Edge(3, 6, 0.98, "embedding", mutual=False)]
    assert len(group_edges(10, clique(left) + clique(right) + weak).groups) == 2


def test_report_files_and_contact_sheet(dataset, tmp_path):
    _, _, catalog = dataset
    result = find_duplicates(catalog)
    written = write_report(result, tmp_path / "report")
    with open(written["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "group", "representative", "reason", "score"] and len(rows) == len(catalog)
    kept = (tmp_path / "report" / "keep.txt").read_text().split()
    assert len(kept) == len(result.keep()) and all(r["representative"] in kept for r in rows)
    sheet = Path(written["html"]).read_text()
    assert sheet.count("data:image/jpeg;base64,") >= 2 * len(ORIGINALS) and "verified" in sheet
    assert "Most uncertain" in sheet
    if "parquet" in written:
        import pyarrow.parquet as pq

        assert pq.read_table(written["parquet"]).num_rows == len(catalog)


def test_unreadable_counted_and_empty_input_refused(dataset, tmp_path):
    folder, _, _ = dataset
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copyfile(folder / "g0_orig.jpg", mixed / "a.jpg")
    shutil.copyfile(folder / "g0_jpeg.jpg", mixed / "b.jpg")
    (mixed / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    catalog = scan_images(mixed)
    assert len(catalog) == 2 and [Path(p).name for p, _ in catalog.skipped] == ["broken.jpg"]
    result = find_duplicates(catalog)
    assert result.summary()["unreadable"] == 1 and result.summary()["groups"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DedupError, match="no images"):
        scan_images(empty)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.jpg").write_bytes(b"")
    with pytest.raises(DedupError, match="none of its 1"):
        scan_images(only_bad)


def test_features_of_two_models_are_refused(dataset, tmp_path):
    from vision.features import NpyWriter

    _, _, catalog = dataset
    files = []
    for n, name in enumerate(["grocery_resnet10t", "brand_resnet10t"]):
        path = tmp_path / f"f{n}.npy"
        with NpyWriter(path) as w:
            w.write(catalog.ids[n::2], catalog.vectors[n::2])
        write_model_sidecar(path, ModelId(name, f"{n}" * 64))
        files.append(path)
    with pytest.raises(DedupError, match="grocery_resnet10t.*brand_resnet10t"):
        scan_images(None, features=files)
    same = scan_images(None, features=files[:1])
    assert same.model.name == "grocery_resnet10t" and len(same) == len(catalog.ids[0::2])


def test_incremental_query_against_saved_index(dataset, tmp_path):
    folder, truth, catalog = dataset
    originals = [str(folder / f"g{g}_orig.jpg") for g in range(len(ORIGINALS))]
    base = scan_images(originals, model=MODEL, backend="torch")
    CatalogIndex.build(base).save(tmp_path / "index")
    index = CatalogIndex.load(tmp_path / "index")
    assert index.catalog.model == base.model and len(index) == len(ORIGINALS)
    uploads = [str(folder / n) for n in ("g0_bytecopy.jpg", "g1_greyscale.jpg", "g2_crop.jpg", "g3_rotate.jpg",
                                         "neg0.jpg")]
    rows = index.query(scan_images(uploads, model=MODEL, backend="torch"))
    assert [Path(r["match"]).name if r["match"] else None for r in rows] == \
        ["g0_orig.jpg", "g1_orig.jpg", "g2_orig.jpg", "g3_orig.jpg", None]
    assert rows[0]["reason"] == "exact" and rows[-1]["reason"] == "new"
    other = scan_images(uploads[:1], model="brand_resnet10t", backend="torch")
    with pytest.raises(DedupError, match="grocery_resnet10t.*brand_resnet10t"):
        index.query(other)


def test_cli_report_index_and_query(dataset, tmp_path):

    import vision.commands.dedup as cli

    folder, _, _ = dataset
    catalog_dir = tmp_path / "cat"
    catalog_dir.mkdir()
    for g in range(2):
        shutil.copyfile(folder / f"g{g}_orig.jpg", catalog_dir / f"g{g}_orig.jpg")
    shutil.copyfile(folder / "g0_jpeg.jpg", catalog_dir / "g0_jpeg.jpg")
    assert cli.main(["--images", str(catalog_dir), "--model", MODEL, "--out", str(tmp_path / "rep"),
                     "--save-index", str(tmp_path / "idx")]) == 0
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["groups"] == 1 and summary["model"]["name"] == MODEL
    assert summary["stages"]["read"]["images_per_s"] > 0 and summary["pairs_decided_by"]["phash"] == 1
    uploads = tmp_path / "up"
    uploads.mkdir()
    shutil.copyfile(folder / "g1_mirror.jpg", uploads / "m.jpg")
    assert cli.main(["--index", str(tmp_path / "idx"), "--query", str(uploads), "--out", str(tmp_path / "q")]) == 0
    with open(tmp_path / "q" / "query.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert Path(row["match"]).name == "g1_orig.jpg"
    with pytest.raises(SystemExit, match="brand_resnet10t.*grocery_resnet10t"):
        cli.main(["--index", str(tmp_path / "idx"), "--query", str(uploads), "--model", "brand_resnet10t"])
    with pytest.raises(SystemExit, match="no image files .* in folder"):  # the shared --images resolver's words
        empty = tmp_path / "empty"
        empty.mkdir()
        cli.main(["--images", str(empty), "--out", str(tmp_path / "x")])


def test_calibrate_threshold_meets_precision():
    scores = [0.99, 0.98, 0.97, 0.96, 0.95, 0.90]
    labels = [1, 1, 1, 0, 1, 0]
    cal = calibrate_threshold(scores, labels, min_precision=0.98)
    assert cal["threshold"] == 0.97 and cal["precision"] == 1.0 and cal["recall"] == 0.75
    assert calibrate_threshold(scores, labels, min_precision=0.7)["threshold"] == 0.95
    with pytest.raises(ValueError):
        calibrate_threshold([0.5], [0])


def test_phash_pair_is_imagehash_on_the_image_and_its_mirror():
    import imagehash
    from PIL import Image

    from vision.data.io import load_image

    for rel in ORIGINALS + NEGATIVES:
        image = load_image(SAMPLE / "val" / rel, draft_size=256)
        pil = Image.fromarray(image)
        expected = [int(str(imagehash.phash(x)), 16) for x in (pil, pil.transpose(Image.FLIP_LEFT_RIGHT))]
        assert list(phash(image)) == expected, rel


def test_phash_is_stable_under_reencoding(dataset):
    folder, _, _ = dataset
    from vision.data.io import load_image

    a = phash(load_image(folder / "g2_orig.jpg"))
    b = phash(load_image(folder / "g2_jpeg.jpg"))
    assert int(hamming_distance(a[0], b[0])) <= 4 and np.uint64(a[0]) != np.uint64(a[1])


def test_cli_features_file_round_trip(dataset, tmp_path):

    import vision.commands.dedup as cli

    folder, _, _ = dataset
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("g2_orig.jpg", "g2_jpeg.jpg", "neg0.jpg"):
        shutil.copyfile(folder / name, images / name)
    feats = tmp_path / "f.npy"
    assert cli.main(["--images", str(images), "--model", MODEL, "--save-features", str(feats),
                     "--save-index", str(tmp_path / "idx")]) == 0
    assert json.loads((tmp_path / "f.npy.model.json").read_text())["name"] == MODEL
    assert cli.main(["--features", str(feats), "--out", str(tmp_path / "rep")]) == 0
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["groups"] == 1
    (tmp_path / "f.npy.model.json").unlink()
    with pytest.raises(SystemExit, match="--features-model"):
        cli.main(["--features", str(feats), "--out", str(tmp_path / "rep2")])


def test_query_then_add_grows_the_index(dataset, tmp_path):
    folder, _, _ = dataset
    base = scan_images([str(folder / "g0_orig.jpg")], model=MODEL, backend="torch")
    CatalogIndex.build(base).save(tmp_path / "index")
    index = CatalogIndex.load(tmp_path / "index")
    new = scan_images([str(folder / "g1_orig.jpg")], model=MODEL, backend="torch")
    assert index.query(new)[0]["match"] is None
    index.add(new)
    index.save(tmp_path / "index")
    again = CatalogIndex.load(tmp_path / "index")
    assert len(again) == 2 and again.index.ntotal == 2
    copy = scan_images([str(folder / "g1_crop.jpg")], model=MODEL, backend="torch")
    assert Path(again.query(copy)[0]["match"]).name == "g1_orig.jpg"


class RecordingVerifier:
    """The keypoint check, recording which pairs reach it."""

    def __init__(self):
        from vision.dedup.verify import Verifier

        self.verifier, self.asked = Verifier(), []

    def score_pairs(self, pairs, workers=1, mirror=None):
        self.asked += [tuple(sorted(Path(p).name for p in pair)) for pair in pairs]
        return self.verifier.score_pairs(pairs, workers, mirror)


def test_cascade_decides_each_pair_at_the_cheapest_stage(dataset):
    _, _, catalog = dataset
    verifier = RecordingVerifier()
    result = find_duplicates(catalog, verifier=verifier)
    ids = [Path(i).name for i in catalog.ids]
    by_name = {tuple(sorted((ids[p.i], ids[p.j]))): p for p in result.pairs}
    exact = by_name["g0_bytecopy.jpg", "g0_orig.jpg"]
    assert exact.decided_by == "exact" and exact.ncc is None
    assert ("g0_bytecopy.jpg", "g0_orig.jpg") not in verifier.asked
    gated = [k for k, p in by_name.items() if p.decided_by == "similarity_gate"]
    assert gated and not set(gated) & set(verifier.asked)          # the cosine gate settles them: no keypoints
    assert all(by_name[k].cosine < Thresholds().verify_similarity and by_name[k].ncc is None for k in gated)
    checked = {k for k, p in by_name.items() if p.decided_by == "keypoints"}
    assert checked == set(verifier.asked) and ("g3_crop.jpg", "g3_orig.jpg") in checked   # a hard pair
    assert by_name["g3_crop.jpg", "g3_orig.jpg"].ncc > 0.98
    # the gate off: every undecided candidate reaches the keypoint check, with the same groups here
    everything = RecordingVerifier()
    ungated = find_duplicates(catalog, Thresholds(verify_similarity=None), verifier=everything)
    assert set(gated) <= set(everything.asked) and len(everything.asked) > len(verifier.asked)
    assert sorted(map(sorted, ungated.groups())) == sorted(map(sorted, result.groups()))


def test_summary_reports_each_stage(dataset):
    _, _, catalog = dataset
    summary = find_duplicates(catalog).summary()
    stages = summary["stages"]
    assert list(stages) == ["read", "embed", "candidates", "similarity_gate", "keypoints", "grouping"]
    for name, stage in stages.items():
        assert stage["seconds"] >= 0 and (stage["images_per_s"] is None or stage["images_per_s"] > 0), name
    assert stages["embed"]["backend"] == "torch" and stages["keypoints"]["pairs"] > 0
    assert stages["similarity_gate"]["rejected"] + stages["keypoints"]["pairs"] == stages["similarity_gate"]["pairs"]
    decided = summary["pairs_decided_by"]
    assert sum(decided.values()) == stages["candidates"]["pairs"] and decided["exact"] == 1
    assert decided["similarity_gate"] == stages["similarity_gate"]["rejected"]


def test_keypoint_threads_and_matcher_agree_with_one_thread_and_opencv(dataset):
    import cv2

    from vision.dedup.verify import Verifier

    folder, _, _ = dataset
    pairs = [(str(folder / "g1_orig.jpg"), str(folder / f"g1_{e}.jpg")) for e in ("crop", "rotate", "mirror")]
    pairs.append((str(folder / "g3_orig.jpg"), str(folder / "neg1.jpg")))
    one = Verifier()
    assert Verifier().score_pairs(pairs, workers=2) == [one.score(a, b) for a, b in pairs]
    _, da, *_ = one._features(pairs[0][0], False)
    _, db, *_ = one._features(pairs[0][1], False)
    opencv = sorted((m[0].queryIdx, m[0].trainIdx) for m in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(da, db, k=2)
                    if len(m) == 2 and m[0].distance < one.ratio * m[1].distance)
    assert sorted(zip(*(x.tolist() for x in one._matches(da, db)))) == opencv


def test_threads_compute_each_images_keypoints_once(dataset):
    """One thread scores the pairs while the others compute keypoints ahead of it (and it computes later pairs'
    keypoints rather than wait for one in progress): each image's keypoints are computed once, and the checks are
    those of one thread."""
    import threading

    from vision.dedup.verify import Verifier

    folder, _, _ = dataset
    pairs = [(str(folder / "g1_orig.jpg"), str(folder / f"g1_{e}.jpg")) for e in ("crop", "rotate", "mirror")]
    pairs += [(b, a) for a, b in pairs] + [(str(folder / "g1_orig.jpg"), str(folder / "neg1.jpg"))] * 3

    class Counting(Verifier):
        def __init__(self):
            super().__init__()
            self.computed, self.guard = [], threading.Lock()

        def _compute(self, key):
            with self.guard:
                self.computed.append(key)
            return super()._compute(key)

    threaded = Counting()
    assert threaded.score_pairs(pairs, workers=4) == [Verifier().score(a, b) for a, b in pairs]
    assert len(threaded.computed) == len(set(threaded.computed))   # no image's keypoints computed twice


def test_an_error_while_scoring_pairs_reaches_the_caller(dataset):
    """An error in the scoring thread reaches the caller (the keypoints still queued for later pairs are cancelled,
    not computed first), and no image's keypoints were computed twice meanwhile."""
    from vision.dedup.verify import Verifier

    folder, _, _ = dataset
    images = sorted(str(p) for p in folder.glob("*.jpg"))
    pairs = [(a, b) for a in images[:8] for b in images[8:16]]

    class Failing(Verifier):
        def __init__(self):
            super().__init__()
            self.computed, self.scored = [], 0

        def _compute(self, key):
            self.computed.append(key)
            return super()._compute(key)

        def score(self, a, b, mirror=True):
            self.scored += 1
            if self.scored == 3:
                raise RuntimeError("broken pair")
            return super().score(a, b, mirror=mirror)

    failing = Failing()
    with pytest.raises(RuntimeError, match="broken pair"):
        failing.score_pairs(pairs, workers=2)
    assert len(failing.computed) == len(set(failing.computed))


def test_index_query_applies_the_cosine_gate(dataset, tmp_path):
    from dataclasses import replace

    from vision.dedup.verify import Verifier

    folder, _, catalog = dataset
    names = [Path(i).name for i in catalog.ids]
    base = [i for i, n in zip(catalog.ids, names) if n.endswith("_orig.jpg") or n.startswith("neg")]
    index = CatalogIndex.build(scan_images(base, model=MODEL, backend="torch"))
    uploads = scan_images([str(folder / f"g{g}_{e}.jpg") for g in range(4) for e in ("crop", "rotate")],
                          model=MODEL, backend="torch")

    class Counting(Verifier):
        calls = 0

        def score(self, a, b):
            Counting.calls += 1
            return super().score(a, b)

    gated = index.query(uploads, verifier=Counting())
    calls, Counting.calls = Counting.calls, 0
    checked = index.query(uploads, replace(index.thresholds, verify_similarity=None), verifier=Counting())
    assert [r["match"] for r in gated] == [r["match"] for r in checked]
    assert all(Path(r["match"]).name == Path(r["id"]).name.split("_")[0] + "_orig.jpg" for r in gated)
    assert calls < Counting.calls


def test_close_phash_pairs_pass_the_cosine_gate(dataset):
    """A greyscale copy with a caption is a few pHash bits from its original but far from it in the (colour-seeing)
    features: the gate lets close pHash pairs through to the keypoint check whatever their cosine."""
    from dataclasses import replace

    _, _, catalog = dataset
    ids = [Path(i).name for i in catalog.ids]
    a, b = ids.index("g1_orig.jpg"), ids.index("g1_greyscale.jpg")
    vectors, hashes = catalog.vectors.copy(), catalog.hashes.copy()
    vectors[b] = -vectors[a]                      # features that see the copy as another product
    hashes[b] = hashes[a] ^ np.uint64(0xFF)       # 8 bits from the original, as a caption would put it
    colour_blind = replace(catalog, vectors=vectors, hashes=hashes)
    t = Thresholds(phash_distance=None)           # no direct pHash acceptance: the pair must be checked
    (pair,) = [p for p in candidate_pairs(colour_blind, t) if {p.i, p.j} == {a, b}]
    assert pair.distance == 8 <= t.gate_distance and pair.cosine < t.verify_similarity
    assert pair.decided_by == "keypoints" and pair.edge(t) is not None
    (gated,) = [p for p in candidate_pairs(colour_blind, replace(t, gate_distance=4)) if {p.i, p.j} == {a, b}]
    assert gated.decided_by == "similarity_gate" and gated.edge(t) is None


def test_mirror_alignment_only_where_the_mirrored_phash_is_closer(dataset):
    """A mirrored copy is closer to its original mirrored than direct in pHash; the keypoint check tries the
    mirrored alignment only for such pairs (``mirror_margin``) and still accepts the copy."""
    from dataclasses import replace

    from vision.dedup.verify import Verifier

    folder, _, catalog = dataset
    ids = [Path(i).name for i in catalog.ids]
    a, m = ids.index("g3_orig.jpg"), ids.index("g3_mirror.jpg")
    assert hamming_distance(catalog.mirrored[a], catalog.hashes[m]) < hamming_distance(catalog.hashes[a],
                                                                                        catalog.hashes[m])
    verifier = Verifier()
    orig, mirror = str(folder / "g3_orig.jpg"), str(folder / "g3_mirror.jpg")
    assert verifier.score(orig, mirror, mirror=False).ncc < 0.9 < verifier.score(orig, mirror).ncc
    t = Thresholds(phash_distance=None, verify_similarity=None)   # every candidate to the keypoint check
    timings: dict = {}
    pairs = {tuple(sorted((ids[p.i], ids[p.j]))): p for p in candidate_pairs(catalog, t, timings=timings)}
    assert pairs["g3_mirror.jpg", "g3_orig.jpg"].edge(t) is not None
    skipped = timings["keypoints"]["mirror_skipped"]
    assert 0 < skipped < timings["keypoints"]["pairs"]
    # the same groups as with the mirror always tried (an edge between two copies may go: rotate vs mirror)
    always = find_duplicates(catalog, replace(t, mirror_margin=None))
    assert sorted(map(sorted, find_duplicates(catalog, t).groups())) == sorted(map(sorted, always.groups()))


def test_verifier_floors_change_no_decision(dataset):
    """Under find_duplicates' thresholds the verifier leaves out the signals that cannot change a decision (the NCC
    under min_inliers, the local score under verify): every pair is decided as with every signal measured."""
    from vision.dedup.verify import Verifier

    folder, _, catalog = dataset
    t = Thresholds()
    pairs = [(catalog.ids[p.i], catalog.ids[p.j]) for p in candidate_pairs(catalog, Thresholds(verify=None))
             if not p.exact]
    full = Verifier().score_pairs(pairs, workers=2)
    floored = Verifier(min_inliers=t.min_inliers, local_from=t.verify).score_pairs(pairs, workers=2)

    def accepted(c):
        return c.ncc >= t.verify and c.inliers >= t.min_inliers and c.local >= t.min_local

    assert [accepted(c) for c in full] == [accepted(c) for c in floored] and any(map(accepted, full))
    assert all(c.ncc == -1 for c in floored if c.inliers < t.min_inliers)
    assert all(c.local == -1 for c in floored if c.ncc < t.verify)
    assert sum(c.local != -1 for c in floored) < sum(c.local != -1 for c in full) or \
        all(c.ncc >= t.verify for c in full if c.local != -1)


def test_scan_thumbnails_spare_the_check_a_second_decode(dataset, monkeypatch):
    import vision.data.io
    from vision.dedup.verify import Verifier

    folder, _, _ = dataset
    paths = [str(folder / f"g1_{e}.jpg") for e in ("orig", "crop", "mirror")]
    catalog = scan_images(paths, thumbnails=True)
    assert set(catalog.thumbnails) == set(paths) and scan_images(paths).thumbnails is None
    pairs = [(paths[0], paths[1]), (paths[0], paths[2])]
    decoded = Verifier().score_pairs(pairs)

    def no_decode(*args, **kwargs):
        raise AssertionError("the check decoded an image the scan kept")

    monkeypatch.setattr(vision.data.io, "load_image", no_decode)
    assert Verifier(thumbnails=catalog.thumbnails).score_pairs(pairs) == decoded
    assert decoded[0].ncc > 0.95 and decoded[1].ncc > 0.95


def test_scan_vectors_are_the_extractors(dataset):
    """The scan preprocesses on its reading threads and batches the network itself: the same vectors as the
    feature extractor gives for the images."""
    from vision.data.io import load_image
    from vision.features import FeatureExtractor

    folder, _, catalog = dataset
    extractor = FeatureExtractor.from_pretrained(MODEL, backend="torch")
    images = [load_image(i, draft_size=256) for i in catalog.ids]
    head = extractor.predictor.head           # the predictor's own path: its head's batch preprocessing
    batch, meta = head.preprocess(images)
    reference = np.stack([r.vector for r in head.postprocess(extractor.predictor.runtime(batch), meta,
                                                             [""] * len(images))])
    assert np.allclose(catalog.vectors, reference, atol=1e-5)
    assert np.allclose(extractor(images), reference, atol=1e-5)
