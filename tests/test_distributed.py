"""Distributed training pieces: rank-aware sampling, and 2-process gloo runs of every task."""

import numpy as np


def test_distributed_sampler_gives_disjoint_m_per_class_batches_per_rank():
    from vision.data.samplers import DistributedMPerClassSampler

    labels = [i // 5 for i in range(60)]  # 12 classes, 5 images each
    ranks = [DistributedMPerClassSampler(labels, m=2, batch_size=6, length=48, num_replicas=2, rank=r)
             for r in range(2)]
    single = DistributedMPerClassSampler(labels, m=2, batch_size=6, length=48, num_replicas=1, rank=0)
    epoch0 = [list(s) for s in ranks]
    assert [len(e) for e in epoch0] == [24, 24] and len(list(single)) == 48
    for indices in epoch0:
        for start in range(0, len(indices), 6):
            counts = np.bincount([labels[i] for i in indices[start:start + 6]])
            assert sorted(counts[counts > 0].tolist()) == [2, 2, 2]
    # the ranks' batches interleave the one-process plan: together they are exactly its batches
    plan = list(single)
    batches = [plan[i:i + 6] for i in range(0, 48, 6)]
    assert [b for i, b in enumerate(batches) if i % 2 == 0] == [epoch0[0][i:i + 6] for i in range(0, 24, 6)]
    assert [b for i, b in enumerate(batches) if i % 2 == 1] == [epoch0[1][i:i + 6] for i in range(0, 24, 6)]
    for s in ranks:
        s.set_epoch(1)
    assert [list(s) for s in ranks] != epoch0  # redrawn every epoch


# --- 2-process DDP (gloo, CPU) runs through tools/train.py. Lightning's launcher starts rank 1 by re-running the
# command line, so each run is a subprocess of its own.
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from .conftest import REPO, SAMPLE  # noqa: E402

DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
       "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _train(args: list[str], cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    result = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _assert_resumed(run, result: subprocess.CompletedProcess, epochs: int) -> None:
    """The run restored the first run's checkpoint, and its last checkpoint holds ``epochs`` epochs."""
    import torch

    assert "Restoring states from the checkpoint" in result.stdout + result.stderr
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] + 1 == epochs and last["global_step"] > 0


def _card(zoo, name) -> dict:
    return json.loads((zoo / "manifest.json").read_text())["models"][name]


def test_classification_ddp_trains_saves_and_validates_like_one_process(tmp_path):
    """EMA needs no find_unused_parameters; metrics sync over ranks; confusion files from rank 0; zoo save."""
    zoo, run = tmp_path / "zoo", tmp_path / "run"
    # an odd val set (31 images): the ranks' halves differ in size and no image may be scored twice
    lines = [line for line in (SAMPLE / "val.txt").read_text().splitlines() if line.strip()][:-1]
    val = tmp_path / "val_odd.txt"
    val.write_text("".join(f"{SAMPLE / line.strip()}\n" for line in lines))
    _train(["--config", str(REPO / "configs/classification/demo.yaml"), *DDP,
            "--model.backbone", "test_resnet", "--data.input_size", "32", "--data.num_workers", "0",
            "--data.train", str(SAMPLE / "train.txt"), "--data.val", str(val),
            "--data.classes", str(SAMPLE / "classes.csv"), "--trainer.max_epochs", "2",
            "--trainer.limit_train_batches", "2", "--trainer.default_root_dir", str(run),
            "--zoo_name", "ddp_clf", "--zoo_dir", str(zoo)], tmp_path)
    card = _card(zoo, "ddp_clf")
    assert sorted((run / "checkpoints").glob("*.ckpt")) and list(run.rglob("confusion/val_epoch001.png"))

    # the 2-process validation (each rank half of val, states all-reduced) equals one process over all of val
    from vision.data.datasets import ClassTable, read_manifest
    from vision.inference import ImageClassifier

    table = ClassTable.read(SAMPLE / "classes.csv")
    samples = read_manifest(val, classes=table)
    assert len(samples) == 31
    clf = ImageClassifier.from_pretrained(zoo / "ddp_clf.safetensors", device="cpu")
    logits = clf.logits([s.path for s in samples])
    labels = np.array([s.label for s in samples])
    top5 = logits.topk(5, dim=1).indices.numpy()
    assert card["metrics"]["val_top1"] == pytest.approx(float((top5[:, 0] == labels).mean()), abs=1e-4)
    assert card["metrics"]["val_top5"] == pytest.approx(float((top5 == labels[:, None]).any(1).mean()), abs=1e-4)


def test_embedding_ddp_gathers_losses_and_validation_like_one_process(tmp_path):
    """Rank-aware m-per-class batches, loss/miner over all ranks, retrieval metrics over the gathered val set."""
    from vision.synth.brand_dataset import write_brand_dataset

    data = tmp_path / "brands"
    write_brand_dataset(data, [SAMPLE / "train"], val_backgrounds=[SAMPLE / "val"], size=32, train_clean=2,
                        train_wild=2, queries=2, max_brands=6, background_size=96)
    sorted((data / "val" / "query").rglob("*.*"))[0].unlink()  # an odd val set: the ranks' halves differ in size
    zoo = tmp_path / "zoo"
    common = ["--config", str(REPO / "configs/embedding/simple_icons_resnet10t.yaml"), *DDP,
              "--model.backbone", "test_resnet", "--model.embedding_size", "16",
              "--data.train", str(data / "train"), "--data.val", str(data / "val"), "--data.input_size", "32",
              "--data.batch_size", "8", "--data.m_per_class", "2", "--data.num_workers", "0",
              "--trainer.default_root_dir", str(tmp_path / "run")]
    _train([*common, "--trainer.max_epochs", "1"], tmp_path)
    # a second epoch resumed from the first run's checkpoint (sampler, loss weights, schedule), then the zoo save
    resumed = _train([*common, "--trainer.max_epochs", "2", "--resume", "last", "--zoo_name", "ddp_emb",
                      "--zoo_dir", str(zoo)], tmp_path)
    _assert_resumed(tmp_path / "run", resumed, epochs=2)
    card = _card(zoo, "ddp_emb")

    from vision.features import FeatureExtractor
    from vision.retrieval import retrieval_metrics

    fx = FeatureExtractor.from_pretrained(zoo / "ddp_emb.safetensors", backend="torch", device="cpu")
    parts = {}
    for part in ("gallery", "query"):
        brands = sorted(p for p in (data / "val" / part).iterdir() if p.is_dir())
        paths = [(b.name, f) for b in brands for f in sorted(b.iterdir())]
        parts[part] = (fx([str(f) for _, f in paths]), [b for b, _ in paths])
    names = sorted(set(parts["gallery"][1]))
    metrics = retrieval_metrics(parts["query"][0], [names.index(b) for b in parts["query"][1]],
                                parts["gallery"][0], [names.index(b) for b in parts["gallery"][1]])
    assert card["metrics"]["val_recall_at_1"] == pytest.approx(metrics["recall@1"], abs=1e-4)


CLASSIFIER = ["--config", str(REPO / "configs/classification/demo.yaml"), "--model.backbone", "test_resnet",
              "--data.input_size", "32", "--data.num_workers", "0", "--data.train", str(SAMPLE / "train.txt"),
              "--data.val", str(SAMPLE / "val.txt"), "--data.classes", str(SAMPLE / "classes.csv"),
              "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.mark.slow
def test_two_nodes_on_loopback_the_way_torchrun_starts_them(tmp_path):
    """num_nodes 2 x devices 1: two torchrun agents (node ranks 0 and 1) meeting at 127.0.0.1, as on two hosts."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    zoo, run = tmp_path / "zoo", tmp_path / "run"
    args = [*CLASSIFIER, "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.num_nodes", "2",
            "--trainer.devices", "1", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.default_root_dir", str(run), "--zoo_name", "two_nodes", "--zoo_dir", str(zoo)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                               "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                               str(REPO / "tools" / "train.py"), *args],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]  # node 1 joined as the second member of one group
    assert "saved two_nodes to the zoo" in outputs[0] and "saved two_nodes" not in outputs[1]  # rank 0 writes
    assert _card(zoo, "two_nodes")["metrics"]["val_top1"] >= 0


@pytest.mark.slow
def test_ddp_run_killed_mid_epoch_resumes_and_loses_at_most_that_epoch(tmp_path):
    from .resume_check import kill_mid_epoch_and_resume

    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    base = [sys.executable, str(REPO / "tools" / "train.py"), *CLASSIFIER, *DDP[:6],
            "--trainer.default_root_dir", str(run), "--trainer.limit_val_batches", "1",
            "--trainer.callbacks+=tests.slow_callback.SlowBatches"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}
    kill_mid_epoch_and_resume(base, env, last, settle=0.3)  # inside the next epoch (3 batches per rank x 0.2 s)


@pytest.mark.slow
def test_detection_ddp_map_over_gathered_stats_equals_one_process(tmp_path):
    """Start from the shipped detector (as an ultralytics .pt), fine-tune a little on 2 ranks over an odd val set,
    and check the saved model's 2-process mAP against a one-process validation of the same weights."""
    import shutil

    import pytorch_lightning as pl

    from vision.data.detection import YoloDataModule
    from vision.models.detector import export_ultralytics_pt
    from vision.tasks.detection import LogoDetectionModule
    from vision.zoo import load_model

    data = tmp_path / "logos"
    shutil.copytree(REPO / "data" / "logo_sample", data)
    dropped = sorted((data / "images" / "val").glob("*.jpg"))[-1]
    dropped.unlink()
    (data / "labels" / "val" / f"{dropped.stem}.txt").unlink()
    start = export_ultralytics_pt(load_model("logo_yolo11n"), tmp_path / "start.pt", imgsz=320)
    zoo = tmp_path / "zoo"
    common = ["--config", str(REPO / "configs/detection/logo_yolo11n.yaml"), *DDP,
              "--model.weights", str(start), "--model.optimizer.init_args.lr", "0.00001",
              "--data.data_yaml", str(data / "data.yaml"), "--data.batch_size", "4", "--data.num_workers", "0",
              "--trainer.limit_train_batches", "1", "--trainer.default_root_dir", str(tmp_path / "run")]
    _train([*common, "--trainer.max_epochs", "1"], tmp_path)
    resumed = _train([*common, "--trainer.max_epochs", "2", "--resume", "last", "--zoo_name", "ddp_det",
                      "--zoo_dir", str(zoo)], tmp_path)
    _assert_resumed(tmp_path / "run", resumed, epochs=2)
    card = _card(zoo, "ddp_det")
    assert card["metrics"]["val_mAP50"] > 0.3  # a trained detector, so the equality below means something

    module = LogoDetectionModule(num_classes=1, class_names=["logo"], imgsz=320)
    module.model.load_state_dict(load_model(zoo / "ddp_det.safetensors").state_dict())
    datamodule = YoloDataModule(str(data / "data.yaml"), imgsz=320, batch_size=4, num_workers=0)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    one = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    assert card["metrics"]["val_mAP50"] == pytest.approx(one["val/mAP50"], abs=1e-3)
    assert card["metrics"]["val_mAP50-95"] == pytest.approx(one["val/mAP50-95"], abs=1e-3)
