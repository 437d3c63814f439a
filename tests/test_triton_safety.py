"""Triton repositories (issue 29): model names cannot leave the repository, config.pbtxt and labels.txt take no
injected lines, every file of a model folder is recorded and checked, a crash while a model folder is replaced
leaves the previous one whole, and a seeded fuzz of repositories gives a clean verify or our own error only.

Fast: the artifacts are fake TensorRT plans with their sidecars (no engine is ever deserialized)."""

import dataclasses
import json
import os
import random
import signal
from pathlib import Path

import pytest

import vision.export.triton as triton
from vision.export import ArtifactIntegrityError, ExportError, verify_artifact
from vision.export.tensorrt import build_sidecar, sidecar_path
from vision.export.triton import DIGESTS, verify_triton_repository, write_triton_model

from .test_zoo import _card


def _plan(path: Path, card=None, output: str = "logits", payload: bytes = b"\x00fake serialized engine") -> Path:
    card = card or _card()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload * 40)
    sidecar = build_sidecar(path, card=card, output=output, precision="fp16", batch=(1, 4, 16),
                            input_shape=(-1, 3, 32, 32), output_shape=(4, len(card.class_names)),
                            tensorrt_version="10.16.1.11", gpu_name="NVIDIA L4", compute_capability="8.9")
    sidecar_path(path).write_text(json.dumps(sidecar))
    return path


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- critical: a model name writes outside the repository
@pytest.mark.parametrize("name", ["../../pwn_triton", "../pwn", "/tmp/pwn_triton_abs", "a/b", ".hidden", "..",
                                  "x\nname: \"y", 'q"uote', "", "a" * 129])
def test_a_model_name_outside_the_repository_is_refused(tmp_path, name):
    plan = _plan(tmp_path / "in" / "tiny.plan")
    repo = tmp_path / "out" / "a" / "repo"
    with pytest.raises(ExportError, match=r"Triton model name .* is not a plain name"):
        write_triton_model(plan, repo, name=name)
    assert not (tmp_path / "out").exists() and not Path("/tmp/pwn_triton_abs").exists()


def test_cli_refuses_a_traversing_name_before_exporting(tmp_path):
    from vision.commands.export import main

    out = tmp_path / "out" / "a" / "repo"
    for name in ("../../pwn_triton", str(tmp_path / "abs")):
        with pytest.raises(SystemExit, match=r"error: --name: Triton model name .* is not a plain name"):
            main(["--model", "grocery_resnet10t", "--format", "triton", "--name", name, "--out", str(out)])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("card_name", ['g"\nbackend: "python', "a b"])   # names the card schema accepts
def test_a_card_name_is_checked_as_a_model_name(tmp_path, card_name):
    plan = _plan(tmp_path / "tiny.plan", card=_card(name=card_name))
    with pytest.raises(ExportError, match=r"tiny\.plan: model card name .* is not a plain name"):
        write_triton_model(plan, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
    # a plain name given explicitly still cannot carry the card's name into config.pbtxt
    model_dir = write_triton_model(plan, tmp_path / "repo", name="safe")
    assert "python" not in (model_dir / "config.pbtxt").read_text()


# --- item 9: config.pbtxt line injection
def test_config_strings_are_quoted_or_refused(tmp_path):
    from google.protobuf import text_format

    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    plan = _plan(tmp_path / "q.plan", output='lo"gi\\ts')    # a quote and a backslash: escaped, one string
    model_dir = write_triton_model(plan, tmp_path / "repo", name="quoted")
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.output[0].name == 'lo"gi\\ts' and config.backend == "tensorrt" and config.name == "quoted"

    plan = _plan(tmp_path / "n.plan", output='logits"\nbackend: "python')
    with pytest.raises(ExportError, match=r"n\.plan: output name .* contains a control character"):
        write_triton_model(plan, tmp_path / "repo", name="injected")
    assert not (tmp_path / "repo" / "injected").exists()
    bad = tmp_path / "x\ny.plan"
    bad.write_bytes(plan.read_bytes())
    sidecar_path(bad).write_bytes(sidecar_path(_plan(tmp_path / "ok.plan")).read_bytes())
    with pytest.raises(ExportError):   # the artifact's file name goes into the config's comment
        write_triton_model(bad, tmp_path / "repo", name="comment")


@pytest.mark.parametrize("field, value", [("version", "../x"), ("version", 0), ("instance_count", "1\nkind: X"),
                                          ("max_batch_size", "8\nbackend: \"python\"")])
def test_numbers_in_the_config_must_be_numbers(tmp_path, field, value):
    with pytest.raises(ExportError, match=rf"Triton {field} must be a whole number"):
        write_triton_model(_plan(tmp_path / "t.plan"), tmp_path / "repo", name="t", **{field: value})


# --- item 10: labels.txt shifts by one
def test_a_class_name_with_a_line_break_is_refused_naming_its_index(tmp_path):
    card = dataclasses.replace(_card(), class_names=["a", "b\nc", "d"])
    # the card refuses such a name (class tables check it at their source); the Triton writer checks labels.txt
    # lines again with its own message, for a card read without that check
    with pytest.raises(ExportError, match=r"'b\\nc' contains a line break"):
        write_triton_model(_plan(tmp_path / "t.plan", card=card), tmp_path / "repo", name="t")
    assert not (tmp_path / "repo" / "t").exists()
    model_dir = write_triton_model(_plan(tmp_path / "ok.plan"), tmp_path / "repo", name="t")
    assert (model_dir / "labels.txt").read_text().splitlines() == ["a", "b", "c"]


# --- item 8: every file of the model folder is recorded
def test_unrecorded_model_file_and_edited_config_or_card_are_refused(tmp_path, capsys):
    model_dir = write_triton_model(_plan(tmp_path / "t.plan"), tmp_path / "repo", name="t")
    recorded = [line.split("  ")[1] for line in (model_dir / DIGESTS).read_text().splitlines()]
    assert recorded == ["1/model.plan", "config.pbtxt", "labels.txt", "vision.json"]
    clean = _tree(model_dir)

    def restore():
        for rel in set(_tree(model_dir)) - set(clean):
            (model_dir / rel).unlink()
        for rel, data in clean.items():
            (model_dir / rel).write_bytes(data)
        verify_triton_repository(tmp_path / "repo")

    # the attack of the issue: default_model_filename to a file dropped into 1/, and a rewritten vision.json
    (model_dir / "1" / "evil.onnx").write_bytes(b"evil")
    with pytest.raises(ArtifactIntegrityError, match=r"t/1/evil\.onnx: not recorded in .*vision\.sha256"):
        verify_artifact(tmp_path / "repo")
    restore()
    config = (model_dir / "config.pbtxt").read_text()
    (model_dir / "config.pbtxt").write_text(config + 'default_model_filename: "evil.onnx"\n')
    with pytest.raises(ArtifactIntegrityError, match=r"t/config\.pbtxt: sha256 differs"):
        verify_artifact(model_dir)
    restore()
    info = json.loads((model_dir / "vision.json").read_text())
    info["card"]["preprocessing"]["mean"] = [0.0, 0.0, 0.0]
    (model_dir / "vision.json").write_text(json.dumps(info))
    with pytest.raises(ArtifactIntegrityError, match=r"t/vision\.json: sha256 differs"):
        verify_artifact(tmp_path / "repo")
    restore()
    (model_dir / "labels.txt").unlink()
    with pytest.raises(ArtifactIntegrityError, match=r"t/labels\.txt: recorded in .* but missing"):
        verify_artifact(tmp_path / "repo")
    restore()
    (tmp_path / "repo" / "dropped" / "1").mkdir(parents=True)   # Triton would try to load a folder without config
    (tmp_path / "repo" / "dropped" / "1" / "model.onnx").write_bytes(b"x")
    with pytest.raises(ArtifactIntegrityError, match=r"repo/dropped: not a model folder written by vision"):
        verify_artifact(tmp_path / "repo")

    from vision.commands.export import main

    with pytest.raises(SystemExit, match="error: .*dropped: not a model folder"):
        main(["--verify", str(tmp_path / "repo")])


# --- weak: a crash while a model folder is replaced
@pytest.mark.parametrize("step", ["copyfile", "_carry_versions", "format_digests", "_fsync_tree", "_exchange"])
def test_a_crash_while_replacing_a_model_folder_keeps_the_previous_one(tmp_path, monkeypatch, step):
    repo = tmp_path / "repo"
    model_dir = write_triton_model(_plan(tmp_path / "old.plan"), repo, name="t")
    before = _tree(model_dir)
    target = triton.shutil if step == "copyfile" else triton

    def crash(*args, **kwargs):
        raise KeyboardInterrupt(f"crash at {step}")

    monkeypatch.setattr(target, step, crash)
    new = _plan(tmp_path / "new.plan", payload=b"\x01another engine")
    with pytest.raises(KeyboardInterrupt):
        write_triton_model(new, repo, name="t")
    assert _tree(model_dir) == before and verify_triton_repository(repo)
    assert sorted(p.name for p in repo.iterdir()) == [".t.lock", "t"]   # no temporary folder left
    monkeypatch.undo()
    write_triton_model(new, repo, name="t")
    assert (model_dir / "1" / "model.plan").read_bytes() == new.read_bytes() and verify_triton_repository(repo)


def test_the_two_rename_switch_is_recovered_by_the_next_write(tmp_path, monkeypatch):
    """Without renameat2: a crash between the two renames leaves the old folder aside; the next write restores it
    before replacing it, and verify never passes a half-written folder."""
    repo = tmp_path / "repo"
    model_dir = write_triton_model(_plan(tmp_path / "old.plan"), repo, name="t")
    before = _tree(model_dir)
    monkeypatch.setattr(triton, "_exchange", lambda a, b: False)
    renames = []
    real_rename = os.rename

    def rename(src, dst):
        renames.append(dst)
        if len(renames) == 2:
            raise KeyboardInterrupt("crash between the renames")
        real_rename(src, dst)

    monkeypatch.setattr(triton.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        write_triton_model(_plan(tmp_path / "new.plan", payload=b"\x01new"), repo, name="t")
    monkeypatch.setattr(triton.os, "rename", real_rename)
    assert not model_dir.exists() and len(list(repo.glob(".t.old.*"))) == 1
    monkeypatch.setattr(triton, "_process_alive", lambda pid: False)   # the writer is gone
    triton._recover(repo, "t")
    assert _tree(model_dir) == before and verify_triton_repository(repo)
    # and the two-rename switch itself works
    write_triton_model(_plan(tmp_path / "new.plan", payload=b"\x01new"), repo, name="t")
    assert verify_triton_repository(repo) and not list(repo.glob(".t.*.*"))


def test_sigkill_during_the_switch_keeps_a_verifiable_model(tmp_path):
    repo = tmp_path / "repo"
    model_dir = write_triton_model(_plan(tmp_path / "old.plan"), repo, name="t")
    before = _tree(model_dir)
    new = _plan(tmp_path / "new.plan", payload=b"\x01new engine")
    pid = os.fork()
    if pid == 0:   # the writer, killed at its commit point: no finally, no cleanup
        try:
            triton._switch = lambda new, old: os.kill(os.getpid(), signal.SIGKILL)
            write_triton_model(new, repo, name="t")
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert _tree(model_dir) == before and verify_triton_repository(repo)   # the killed writer's temp is ignored
    assert list(repo.glob(".t.new.*"))
    write_triton_model(new, repo, name="t")                                 # and removed by the next write
    assert not list(repo.glob(".t.new.*")) and verify_triton_repository(repo)


def test_a_second_version_is_carried_and_a_damaged_one_is_not(tmp_path):
    repo = tmp_path / "repo"
    write_triton_model(_plan(tmp_path / "a.plan"), repo, name="t")
    model_dir = write_triton_model(_plan(tmp_path / "b.plan", payload=b"\x02b"), repo, name="t", version=2)
    assert (model_dir / "1" / "model.plan").read_bytes() == (tmp_path / "a.plan").read_bytes()
    (model_dir / "2" / "model.plan").write_bytes(b"damaged")
    write_triton_model(_plan(tmp_path / "c.plan", payload=b"\x03c"), repo, name="t", version=1)
    assert not (model_dir / "2").exists() and verify_triton_repository(repo)


# --- fuzz: mutated repositories give a clean verify or our own error
def _mutations(model_dir: Path, rng: random.Random):
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())

    def flip():
        f = rng.choice(files)
        data = bytearray(f.read_bytes())
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        f.write_bytes(bytes(data))

    def truncate():
        f = rng.choice(files)
        f.write_bytes(f.read_bytes()[:rng.randrange(max(f.stat().st_size, 1))])

    def append():
        f = rng.choice(files)
        f.write_bytes(f.read_bytes() + rng.randbytes(rng.randint(1, 64)))

    def delete():
        rng.choice(files).unlink()

    def add_file():
        folder = rng.choice([model_dir, model_dir / "1", model_dir / "3", model_dir / "1" / "sub"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / rng.choice(["model.onnx", "evil.onnx", "x.txt", ".hidden"])).write_bytes(rng.randbytes(16))

    def edit_config():
        c = model_dir / "config.pbtxt"
        c.write_text(c.read_text().replace('"tensorrt"', '"python"') + 'default_model_filename: "x"\n')

    def huge():
        with open(rng.choice(files + [model_dir / "1" / "big.plan"]), "wb") as f:
            f.truncate(64 << 20)   # sparse: 64 MiB claimed, nothing on disk

    def link():
        target = model_dir / "1" / "model.plan"
        target.unlink()
        target.symlink_to("/etc/hostname")

    def bad_record():
        d = model_dir / DIGESTS
        d.write_text(rng.choice(["", "\x00\xff", "0" * 64 + "  ../config.pbtxt\n", "0" * 64 + "  /etc/passwd\n",
                                 d.read_text() + d.read_text(), "z" * 70 + "\n"]))

    def huge_record():
        with open(model_dir / DIGESTS, "ab") as f:
            f.truncate(8 << 20)

    def rename_model():
        model_dir.rename(model_dir.with_name("renamed"))

    def drop_folder():
        (model_dir.parent / "stranger").mkdir()

    def fake_temp():   # a folder named like a writer's temporary one, holding a model Triton could load
        fake = model_dir.parent / ".t.new.1.abcdefgh"
        (fake / "1").mkdir(parents=True)
        (fake / "config.pbtxt").write_text('name: "x"')

    return [flip, truncate, append, delete, add_file, edit_config, huge, link, bad_record, huge_record,
            rename_model, drop_folder, fake_temp]


def test_fuzz_mutated_repositories_verify_cleanly_or_raise_our_error(tmp_path):
    template = tmp_path / "template"
    write_triton_model(_plan(tmp_path / "t.plan"), template, name="t")
    rng = random.Random(29)
    outcomes = {"ok": 0, "refused": 0}
    for case in range(60):
        repo = tmp_path / f"r{case}"
        for rel, data in _tree(template).items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_bytes(data)
        mutations = _mutations(repo / "t", rng)
        for mutate in rng.sample(mutations, rng.randint(1, 2)):
            if (repo / "t").is_dir():
                mutate()
        try:
            verify_artifact(repo)
            outcomes["ok"] += 1
        except ExportError as e:   # ArtifactIntegrityError included; never another type
            assert str(e) and "Traceback" not in str(e)
            outcomes["refused"] += 1
    assert outcomes["refused"] >= 50, outcomes


def test_a_folder_named_like_a_temporary_one_is_skipped_only_when_it_holds_nothing_loadable(tmp_path):
    repo = tmp_path / "repo"
    write_triton_model(_plan(tmp_path / "t.plan"), repo, name="t")
    fake = repo / ".t.new.1.abcdefgh"
    (fake / "model" / "1").mkdir(parents=True)   # what a killed writer leaves: skipped
    assert verify_triton_repository(repo)
    (fake / "1").mkdir()                           # a version folder Triton could load: refused
    (fake / "config.pbtxt").write_text('name: "x"')
    with pytest.raises(ArtifactIntegrityError, match=r"\.t\.new\.1\.abcdefgh: no vision\.sha256"):
        verify_triton_repository(repo)
