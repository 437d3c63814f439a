"""Galleries as self-checking, locked stores (issue 29 items 6, 12, 13, 17 and the weak deep-metadata case): a
content digest over every array, headers checked against the file before numpy allocates, every threshold and
rule value range-checked, the rule's verifier a zoo name, brand-name YAML without aliases, and a lock around a
read-modify-write."""

from __future__ import annotations

import json
import logging
import multiprocessing
import random
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vision.brands.detection_rule import DetectionRule, DetectionRuleError
from vision.brands.gallery import DIGEST_FIELD, BrandGallery, GalleryError, content_sha256

REPO = Path(__file__).resolve().parents[1]
DETECTOR = ("det", "d" * 64)
VERIFIER = {"name": "logo_verifier_lite0", "sha256": "a" * 64, "power": 0.75, "margin": 0.15,
            "detector": {"name": "det0", "sha256": "b" * 64}}


def _unit(n, dim=8, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _gallery(path: Path, normalization="background") -> Path:
    gallery = BrandGallery(8, model_name="emb", model_sha256="e" * 64, threshold=0.1, normalization=normalization)
    gallery.add_many(["acme", "zeta", "oat"], _unit(3))
    gallery.set_background(_unit(5, seed=1))
    gallery.detection_rule = DetectionRule("logistic", *DETECTOR, 0.1, 5.8, (9.2, 13.0), {"frr": 0.1},
                                           verifier=dict(VERIFIER))
    return gallery.save(path)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _write(path: Path, arrays: dict, restamp: bool) -> Path:
    """``arrays`` saved as ``path``; ``restamp``: with a digest of the edited arrays (an edit that knows the
    format), else with the original digest (an edit that does not)."""
    arrays = dict(arrays)
    if restamp:
        arrays[DIGEST_FIELD] = np.array(content_sha256(arrays))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _edit_meta(path: Path, out: Path, change, restamp: bool = True) -> Path:
    arrays = _arrays(path)
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    return _write(out, arrays, restamp)


# --- item 6: contents are integrity-checked
def test_swapped_brands_or_an_edited_threshold_are_refused(tmp_path):
    path = _gallery(tmp_path / "g.npz")
    assert BrandGallery.load(path).brands == ["acme", "zeta", "oat"]
    arrays = _arrays(path)
    swapped = {**arrays, "owner": arrays["owner"][[1, 0, 2]]}
    with pytest.raises(GalleryError, match=r"swapped\.npz: content sha256 mismatch"):
        BrandGallery.load(_write(tmp_path / "swapped.npz", swapped, restamp=False))

    def loosen(meta):
        meta["threshold"] = -1
        meta["detection_rule"]["threshold"] = -100

    with pytest.raises(GalleryError, match=r"loose\.npz: content sha256 mismatch"):
        BrandGallery.load(_edit_meta(path, tmp_path / "loose.npz", loosen, restamp=False))


def test_a_gallery_without_a_digest_loads_with_a_warning(tmp_path, caplog):
    arrays = _arrays(_gallery(tmp_path / "g.npz"))
    del arrays[DIGEST_FIELD]
    with caplog.at_level(logging.WARNING, logger="vision.brands.gallery"):
        old = BrandGallery.load(_write(tmp_path / "old.npz", arrays, restamp=False))
    assert old.brands == ["acme", "zeta", "oat"] and "records no content digest" in caplog.text
    old.save(tmp_path / "old.npz")          # re-saved: now self-checking
    assert DIGEST_FIELD in _arrays(tmp_path / "old.npz")


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(threshold=-2), r"field 'threshold' must be null or a number in \(-2, 2\]"),
    (lambda m: m.update(threshold=-1, normalization="none"), r"'threshold' must be null or a number in \(-1, 1\]"),
    (lambda m: m.update(threshold=7.5), "field 'threshold'"),
    (lambda m: m["detection_rule"].update(threshold=-100), r"detection_rule'?: threshold must be in \(-26, 35\.2\]"),
    (lambda m: m["detection_rule"].update(weights=[1e9, 13.0]), r"weights\[0\] must be in"),
    (lambda m: m["detection_rule"].update(min_detection_score=float("nan")), "min_detection_score must be a finite"),
    (lambda m: m["detection_rule"]["verifier"].update(margin=1e9), "verifier.margin must be a number from 0 to 1"),
    (lambda m: m["detection_rule"]["verifier"].update(margin=float("inf")), "verifier.margin must be a number"),
    (lambda m: m["detection_rule"]["verifier"].update(margin=float("nan")), "verifier.margin must be a number"),
    (lambda m: m["detection_rule"]["verifier"].update(power=float("nan")), r"verifier.power must be a number in"),
    (lambda m: m["detection_rule"]["verifier"].update(detector_conf=0), r"verifier.detector_conf must be a number "
                                                                        r"in \(0, 1\]"),
    (lambda m: m["detection_rule"]["verifier"].update(name="../../tmp/evil.safetensors"), "verifier.name .* is not "
                                                                                           "a plain name"),
    (lambda m: m["detection_rule"]["verifier"].update(name="/tmp/evil.onnx"), "verifier.name .* is not a plain"),
    (lambda m: m["detection_rule"]["verifier"].update(sha256="x" * 64), "verifier.sha256 must be a sha256"),
])
def test_every_rule_and_threshold_value_is_range_checked(tmp_path, change, message):
    """Even with a fresh digest (an editor who knows the format), a value outside its meaning is refused at load,
    naming the file and the field (before: accepted, failing later with a raw cv2.error/OverflowError, or never)."""
    path = _edit_meta(_gallery(tmp_path / "g.npz"), tmp_path / "bad.npz", change)
    with pytest.raises(GalleryError, match=r"bad\.npz: .*" + message):
        BrandGallery.load(path)


def test_a_rule_verifier_is_loaded_from_the_zoo_only(tmp_path, monkeypatch):
    from vision.brands import verification
    from vision.brands.verification import zoo_source
    from vision.zoo import ZooError, find_card

    loaded = []
    monkeypatch.setattr(verification.LogoVerifier, "from_pretrained",
                        classmethod(lambda cls, source, **kw: loaded.append(source)))
    det = type("Det", (), {"card": type("Card", (), {"name": "det0", "sha256": "b" * 64})()})()
    rule = DetectionRule("logistic", *DETECTOR, 0.1, 5.8, (9.2, 13.0),
                         verifier={**VERIFIER, "name": "not_a_zoo_model"})
    with pytest.warns(UserWarning, match="not_a_zoo_model.*in the zoo"):
        assert verification.verified_for_rule(det, rule) is det
    assert loaded == []                      # nothing was loaded, let alone run
    # a file or folder in the working directory named like the zoo model is not what gets loaded
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logo_verifier_lite0").write_bytes(b"not a model")
    card, folder = find_card("logo_verifier_lite0")
    assert zoo_source("logo_verifier_lite0") == folder / card.file
    with pytest.raises(ZooError, match="not a plain name"):
        zoo_source("../logo_verifier_lite0")
    with pytest.raises(DetectionRuleError, match="verifier.name"):
        DetectionRule("pair", *DETECTOR, 0.1, 0.5, verifier={**VERIFIER, "name": "sub/dir"})


# --- item 12: a small file claiming gigabytes is refused in constant memory
def _bomb(path: Path, rows: int, dim: int = 128) -> Path:
    """A gallery .npz whose 'vectors' member really inflates to ``rows x dim`` float32 zeros (deflate shrinks them
    about 1000x), next to a valid meta and owner."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)}
    meta = {"format": 2, "dim": dim, "model_name": "m", "model_sha256": "", "threshold": 0.5, "index": "flat",
            "hnsw_m": 32, "ef_search": 64, "nlist": None, "nprobe": 16}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in (("meta", np.array(json.dumps(meta))), ("owner", np.array(["a"] * 4))):
            with zf.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, array)
        with zf.open("vectors.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(1 << 24)
            for _ in range(rows * dim * 4 // len(chunk)):
                f.write(chunk)
    return path


def test_a_gallery_claiming_gigabytes_is_refused_before_allocating(tmp_path):
    path = _bomb(tmp_path / "bomb.npz", rows=1 << 19)        # 256 MiB of vectors in a file of about 0.6 MB
    assert path.stat().st_size < 8 << 20
    script = textwrap.dedent(f"""
        import resource, sys
        from vision.brands.gallery import BrandGallery, GalleryError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            BrandGallery.load({str(path)!r})
        except GalleryError as e:
            print("refused:", e)
        print("grew_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused:" in out.stdout and "bomb.npz" in out.stdout and "the limit for this file" in out.stdout
    grew = int(out.stdout.split("grew_kib")[1])
    assert grew < 64 * 1024, out.stdout        # before: all 256 MiB (1.5 GiB of vectors: 1.6 GB peak)


# --- weak: metadata nested 100k deep
def test_deeply_nested_metadata_is_a_gallery_error(tmp_path):
    arrays = _arrays(_gallery(tmp_path / "g.npz"))
    arrays["meta"] = np.array("[" * 100_000 + "]" * 100_000)
    with pytest.raises(GalleryError, match=r"deep\.npz: field 'meta' is JSON nested too deep"):
        BrandGallery.load(_write(tmp_path / "deep.npz", arrays, restamp=True))


# --- item 13: brand-name YAML with nested aliases
def _laughs(levels: int) -> str:
    """One brand whose names nest ``levels`` lists of 9 aliases of the list before (9**levels strings)."""
    parts = ["&a [" + ",".join(["lol"] * 9) + "]"]
    for i in range(1, levels):
        parts.append(f"&{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    return "x: [" + ",".join(parts) + "]\n"


LAUGHS_SMALL, LAUGHS_BIG = _laughs(6), _laughs(9)   # before: a 4.3 MB error line; a MemoryError


@pytest.mark.parametrize("text", [LAUGHS_SMALL, LAUGHS_BIG])
def test_brand_names_yaml_with_aliases_is_refused_at_once(tmp_path, text):
    from vision.brands.ocr import load_aliases

    path = tmp_path / "names.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"names\.yaml: not valid YAML: .*aliases .* are not allowed") as e:
        load_aliases(path)
    assert time.perf_counter() - start < 1.0 and len(str(e.value)) < 600
    path.write_text("acme: " + "[" * 50 + "x" * 10_000 + "]" * 50 + "\n")
    with pytest.raises(ValueError, match="brand 'acme'") as e:
        load_aliases(path)
    assert len(str(e.value)) < 600           # the value is cut in the message, not printed whole


# --- item 17: a NaN margin in impostors.json
@pytest.mark.parametrize("margin", ["NaN", "Infinity", "1e9", "-0.1", "[0.15]", '"0.15"'])
def test_a_non_finite_impostor_margin_is_refused(tmp_path, margin):
    from vision.synth.negatives import check_recorded_margin

    (tmp_path / "impostors.json").write_text('{"parameters": {"margin": ' + margin + "}}")
    with pytest.raises(ValueError, match=r"impostors\.json: parameters\.margin must be a number"):
        check_recorded_margin(tmp_path, 0.15)


def test_a_deeply_nested_impostors_record_is_a_value_error(tmp_path):
    from vision.synth.negatives import check_recorded_margin

    (tmp_path / "impostors.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"impostors\.json: not a vision make-impostors record"):
        check_recorded_margin(tmp_path, 0.15)


# --- galleries as a store: a read-modify-write under a lock
def _add_brand(path: str, brand: str, seed: int) -> None:
    with BrandGallery.edit(path) as gallery:
        time.sleep(0.3)                      # widen the window between reading and writing
        gallery.add(brand, _unit(1, seed=seed))


def test_concurrent_edits_keep_every_brand(tmp_path):
    path = _gallery(tmp_path / "g.npz", normalization="none")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_brand, args=(str(path), f"brand{i}", 10 + i)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0] * 4
    assert set(BrandGallery.load(path).brands) == {"acme", "zeta", "oat"} | {f"brand{i}" for i in range(4)}


def test_a_failed_edit_leaves_the_file_as_it_was(tmp_path):
    path = _gallery(tmp_path / "g.npz")
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with BrandGallery.edit(path) as gallery:
            gallery.add("newco", _unit(1, seed=3))
            raise RuntimeError("crash mid-edit")
    assert path.read_bytes() == before


# --- fuzz: only a clean load or a GalleryError
FUZZ_VALUES = [None, True, -1, 0, 1e9, -1e9, float("nan"), float("inf"), "x", "../x", [], {}, [1, 2], {"a": 1}]


def _fields(meta: dict, prefix=()):
    for key, value in meta.items():
        yield prefix + (key,)
        if isinstance(value, dict) and key != "calibration":
            yield from _fields(value, prefix + (key,))


def _set(meta: dict, keys: tuple, value) -> None:
    for key in keys[:-1]:
        meta = meta[key]
    meta[keys[-1]] = value


def _load_or_gallery_error(path: Path) -> None:
    try:
        BrandGallery.load(path)
    except GalleryError:
        pass


def test_fuzz_metadata_rule_and_verifier_fields(tmp_path):
    path = _gallery(tmp_path / "g.npz")
    fields = list(_fields(json.loads(str(_arrays(path)["meta"]))))
    assert ("detection_rule", "verifier", "margin") in fields
    for n, keys in enumerate(fields):
        for value in FUZZ_VALUES:
            out = _edit_meta(path, tmp_path / f"f{n}.npz", lambda m, keys=keys, value=value: _set(m, keys, value))
            _load_or_gallery_error(out)
        for restamp in (True, False):        # the field removed
            out = _edit_meta(path, tmp_path / f"f{n}.npz", lambda m, keys=keys: _drop(m, keys), restamp=restamp)
            _load_or_gallery_error(out)


def _drop(meta: dict, keys: tuple) -> None:
    for key in keys[:-1]:
        meta = meta[key]
    meta.pop(keys[-1])


def test_fuzz_flipped_bytes_and_truncations(tmp_path):
    path = _gallery(tmp_path / "g.npz")
    good = path.read_bytes()
    rng = random.Random(29)
    for _trial in range(300):
        data = bytearray(good)
        for _ in range(rng.choice((1, 1, 2, 8))):
            data[rng.randrange(len(data))] = rng.randrange(256)
        (tmp_path / "flip.npz").write_bytes(bytes(data))
        _load_or_gallery_error(tmp_path / "flip.npz")
    for cut in sorted({rng.randrange(len(good)) for _ in range(100)} | {0, 1, 22, len(good) - 1}):
        (tmp_path / "cut.npz").write_bytes(good[:cut])
        with pytest.raises(GalleryError, match=r"cut\.npz"):
            BrandGallery.load(tmp_path / "cut.npz")


def test_fuzz_impostor_records(tmp_path):
    from vision.synth.negatives import check_recorded_margin

    record = {"parameters": {"margin": 0.15, "size": 128}, "counts": {"train": 3}}
    for value in FUZZ_VALUES + ["NaN-literal"]:
        for where in (("parameters", "margin"), ("parameters",), ("counts",)):
            edited = json.loads(json.dumps(record))
            _set(edited, where, value)
            text = json.dumps(edited).replace('"NaN-literal"', "NaN")
            (tmp_path / "impostors.json").write_text(text)
            try:
                check_recorded_margin(tmp_path, 0.15)
            except ValueError as e:
                assert "impostors.json" in str(e)


def test_a_threshold_load_would_refuse_is_not_saved(tmp_path):
    gallery = BrandGallery(8, model_name="emb", model_sha256="e" * 64, threshold=-1.0)
    gallery.add_many(["acme"], _unit(1))
    with pytest.raises(GalleryError, match=r"g\.npz: threshold must be None or a number in \(-1, 1\]"):
        gallery.save(tmp_path / "g.npz")
    assert not (tmp_path / "g.npz").exists()
    gallery.threshold = np.float64(0.25)      # a numpy float64 (what calibration code may leave) is fine
    assert BrandGallery.load(gallery.save(tmp_path / "g.npz")).threshold == 0.25
