"""A newcomer's path: the README's zoo table and links, `vision zoo`, evaluating a shipped model on the sample."""

import re
import subprocess
import sys

from .conftest import REPO, SAMPLE


def _vision(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vision", *args], capture_output=True, text=True, cwd=REPO)


def test_readme_is_short_and_its_zoo_table_is_generated_from_the_manifest():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    table = readme.split("<!-- zoo-table:start -->\n", 1)[1].split("<!-- zoo-table:end -->", 1)[0].strip()
    out = _vision("zoo", "--markdown", "--zoo-dir", str(REPO / "weights"))
    assert out.returncode == 0, out.stderr
    assert table == out.stdout.strip(), "README's zoo table is stale: paste `vision zoo --markdown` into it"


def test_every_local_link_in_readme_and_docs_exists():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "benchmarks" / "results").glob("*.md"))]
    missing = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                missing.append(f"{page.relative_to(REPO)} -> {target}")
    assert not missing, missing


def test_zoo_shows_the_headline_metric_the_origin_and_the_galleries():
    out = _vision("zoo", "--zoo-dir", str(REPO / "weights"))
    assert out.returncode == 0, out.stderr
    lite0 = next(line for line in out.stdout.splitlines() if line.startswith("grocery_lite0 "))
    assert "top-1 0.851" in lite0 and "shipped" in lite0
    assert "mAP50 0.834" in next(line for line in out.stdout.splitlines() if line.startswith("logo_yolo11n "))
    assert any(line.startswith("simple_icons_gallery ") and "gallery" in line for line in out.stdout.splitlines())


def test_zoo_refuses_an_unknown_task():
    out = _vision("zoo", "--task", "segmentation")
    assert out.returncode != 0 and "unknown task 'segmentation'" in out.stderr and "classification" in out.stderr


def test_a_sample_manifest_maps_its_own_class_table_onto_the_models_classes():
    """The shipped sample's labels index its own 8-class table; the model has 81 classes in another order."""
    from vision.data.datasets import ClassTable
    from vision.evaluation import read_split
    from vision.zoo import find_card

    card, _ = find_card("grocery_lite0")
    table = ClassTable(card.class_names, card.coarse_names, card.fine_to_coarse)
    samples = read_split(SAMPLE / "val.txt", None, table, None)
    sample_table = ClassTable.read(SAMPLE / "classes.csv")
    lines = [line.split(",") for line in (SAMPLE / "val.txt").read_text().splitlines() if line.strip()]
    assert len(samples) == len(lines)
    for sample, (path, label, *_) in zip(samples, lines):
        assert sample.path.name == path.strip().rsplit("/", 1)[-1]
        assert table.names[sample.label] == sample_table.names[int(label)]


def test_every_config_named_by_a_shipped_card_or_a_doc_exists():
    import json

    texts = [entry["command"] for entry in json.loads((REPO / "weights" / "manifest.json").read_text())["models"]
             .values()]
    texts += [p.read_text(encoding="utf-8") for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")]]
    named = {m for text in texts for m in re.findall(r"\bconfigs/[\w/.-]+\.ya?ml\b", text)}
    assert named and not sorted(n for n in named if not (REPO / n).is_file())


def _fake_recognizer(monkeypatch, seen: dict):
    from vision.commands import recognize

    class Recognizer:
        @classmethod
        def from_pretrained(cls, embedder, gallery, detector=None, **kwargs):
            seen.update(embedder=embedder, gallery=str(gallery), detector=detector)
            return cls()

        def predict(self, images, batch_size=16):
            if seen.get("interrupt_after") == seen.setdefault("calls", 0):
                raise KeyboardInterrupt
            seen["calls"] += 1
            return [[{"box": [1.0, 1.0, 8.0, 8.0], "brand": "acme", "score": 0.8}] for _ in images]

    monkeypatch.setattr(recognize, "recognizer_class", lambda: Recognizer)


def test_recognize_runs_the_shipped_pipeline_by_default_and_writes_json_lines_to_stdout(monkeypatch, capsys):
    from vision.commands import main

    seen = {}
    _fake_recognizer(monkeypatch, seen)
    photos = sorted((SAMPLE / "val" / "Fruit").rglob("*.jpg"))[:3]
    assert main(["recognize", "--images", *map(str, photos)]) == 0
    assert seen == {"embedder": "brand_ensemble", "gallery": "simple_icons_gallery", "detector": "logo_yolo11n",
                    "calls": 1}
    out = capsys.readouterr()
    lines = [__import__("json").loads(line) for line in out.out.splitlines()]
    assert [line["image"] for line in lines] == list(map(str, photos))   # results on stdout, the summary on stderr
    assert '"images": 3' in out.err and '"out": "stdout"' in out.err


def test_recognize_crops_mode_and_its_refusals(monkeypatch, capsys):
    import pytest

    from vision.commands import main

    seen = {}
    _fake_recognizer(monkeypatch, seen)
    photo = str(sorted((SAMPLE / "val" / "Fruit").rglob("*.jpg"))[0])
    assert main(["recognize", "--images", photo, "--crops", "--embedder", "mine", "--gallery", "g.npz"]) == 0
    assert seen["detector"] is None and seen["embedder"] == "mine"
    for args, message in ((["--crops", "--detector", "d"], "give --crops or --detector"),
                          (["--embedder", "mine"], "--gallery is needed with --embedder mine")):
        with pytest.raises(SystemExit):
            main(["recognize", "--images", photo, *args])
        assert message in capsys.readouterr().err


def test_an_interrupted_run_leaves_a_partial_file_never_a_complete_looking_one(monkeypatch, tmp_path, capsys):
    from vision.commands import main

    seen = {"interrupt_after": 1}
    _fake_recognizer(monkeypatch, seen)
    photos = sorted((SAMPLE / "val" / "Fruit").rglob("*.jpg"))[:4]
    out = tmp_path / "brands.jsonl"
    assert main(["recognize", "--images", *map(str, photos), "--batch-size", "2", "--out", str(out)]) == 130
    assert not out.exists() and len((tmp_path / "brands.jsonl.partial").read_text().splitlines()) == 2
    assert "brands.jsonl.partial" in capsys.readouterr().err
    seen.pop("interrupt_after")
    seen["calls"] = 0
    assert main(["recognize", "--images", *map(str, photos), "--batch-size", "2", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 4 and not (tmp_path / "brands.jsonl.partial").exists()


def test_a_closed_pipe_ends_the_command_quietly():
    python = sys.executable
    out = subprocess.run(f"{python} -m vision --help | head -1; {python} -m vision zoo --help | head -1", shell=True,
                         capture_output=True, text=True, cwd=REPO)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr and out.stdout.count("\n") == 2


def test_a_broken_pipe_inside_a_command_is_exit_141_without_a_traceback(monkeypatch):
    from vision.commands import main

    class ClosedPipe(__import__("io").StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["zoo"]) == 141


# --- every command shown in README.md and docs/ names a real command and real flags
TOOL_COMMANDS = {"train": "train", "predict": "predict", "eval": "eval", "export": "export", "extract": "extract",
                 "recognize": "recognize", "build_gallery": "build-gallery", "make_logo_dataset": "make-logo-dataset",
                 "make_brand_dataset": "make-brand-dataset", "make_impostors": "make-impostors",
                 "make_verifier_data": "make-verifier-data", "dedup": "dedup", "benchmark": "benchmark"}
TRAIN_FLAGS = {"--config", "--resume", "--zoo-name", "--zoo-dir", "--zoo-half", "--zoo-notes", "--zoo-licence",
               "--print_config", "--help", "--zoo_name", "--zoo_dir", "--zoo_half"}


def _shown_commands() -> list[tuple[str, str, list[str]]]:
    """``(page, command, flags)`` of every ``vision <cmd>`` / ``python tools/<cmd>.py`` line in a bash block."""
    import shlex

    found = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        blocks = re.findall(r"```(?:bash|sh|shell)\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
        for block in blocks:
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = line.split(" # ", 1)[0].strip()
                m = re.match(r"(?:HF_HUB_OFFLINE=1 )?(?:vision|python tools/(\w+)\.py)\b(.*)", line)
                if not m or (m[1] and m[1] not in TOOL_COMMANDS):
                    continue
                try:
                    words = shlex.split(m[2].replace("&&", " ").split(" | ")[0])
                except ValueError:
                    continue
                if m[1]:
                    command = TOOL_COMMANDS[m[1]]
                elif words and not words[0].startswith("-"):
                    command, words = words[0], words[1:]
                else:
                    continue
                found.append((page.name, command, [w.split("=")[0] for w in words if w.startswith("--")]))
    return found


def test_every_command_shown_in_the_docs_parses(capsys):
    from vision.commands import COMMANDS, main

    shown = _shown_commands()
    assert len(shown) > 30
    options: dict[str, set[str]] = {}
    problems = []
    for page, command, flags in shown:
        if command not in COMMANDS:
            problems.append(f"{page}: vision {command}: no such command")
            continue
        if command not in options:
            try:
                main([command, "--help"])
            except SystemExit:
                pass
            options[command] = set(re.findall(r"(--[\w-]+)", capsys.readouterr().out)) | {"--help"}
        allowed = TRAIN_FLAGS if command == "train" else options[command]
        unknown = [f for f in flags if f not in allowed and not (command == "train" and "." in f)]
        if unknown:
            problems.append(f"{page}: vision {command}: unknown flags {unknown}")
    assert not problems, "\n".join(problems)


def test_evaluate_is_a_library_call_dispatched_by_the_task_table(tmp_path):
    import pytest

    import vision
    from vision.evaluation import EvaluationError
    from vision.tasks import TASKS

    assert all(task.load("evaluator") for task in TASKS.values())
    report = vision.evaluate("grocery_resnet10t", SAMPLE / "val.txt", device="cpu", workers=0, progress=False,
                             out=tmp_path)
    assert report["task"] == "classification" and report["images"] == 32 and 0 <= report["top1"] <= 1
    with pytest.raises(EvaluationError, match="must be a YOLO data.yaml"):
        vision.evaluate("logo_yolo11n", SAMPLE / "val.txt", device="cpu", progress=False)


def test_the_readme_python_example_runs_as_written_from_another_folder(tmp_path, monkeypatch, capsys):
    """The README's API block, run where a user would have their own photos/ and shelf.jpg, outside the checkout."""
    import shutil

    (tmp_path / "photos").mkdir()
    for photo in sorted((SAMPLE / "val" / "Fruit").rglob("*.jpg"))[:2]:
        shutil.copy(photo, tmp_path / "photos" / photo.name)
    shutil.copy(sorted((REPO / "data" / "logo_sample" / "images" / "val").glob("*.jpg"))[0], tmp_path / "shelf.jpg")
    monkeypatch.chdir(tmp_path)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - the README's own example, not input
    assert (tmp_path / "shelf_annotated.png").is_file() and '"topk"' in capsys.readouterr().out.replace("'", '"')


def test_every_docs_python_example_compiles_and_ci_runs_them_against_the_wheel():
    """``tests/doc_examples.py`` runs each block as written (``.ci/run``, wheel venv, outside the checkout); here
    only that every block is found and compiles, and that the CI calls the runner."""
    from .doc_examples import PAGES, PRELUDES, SERVERS, python_blocks

    blocks = {page: python_blocks(page) for page in PAGES}
    assert sum(map(len, blocks.values())) >= 8 and blocks["README.md"]
    for page, found in blocks.items():
        for i, block in enumerate(found, 1):
            compile(block, f"{page} block {i}", "exec")
    assert set(PRELUDES) | set(SERVERS) <= {page for page, found in blocks.items() if found}
    assert "tests/doc_examples.py" in (REPO / ".ci" / "run").read_text()
