import json

import pytest
import pytorch_lightning as pl
import torch

from vision.data.datamodule import ClassificationDataModule
from vision.tasks.classification import ClassificationModule, per_class_accuracy, save_confusion_png
from vision.training import AtomicCheckpointIO


def _module(dm, **kw):
    return ClassificationModule(backbone="test_resnet", num_classes=dm.num_classes,
                                num_coarse_classes=dm.num_coarse_classes, class_names=dm.class_names,
                                coarse_names=dm.coarse_names, fine_to_coarse=dm.fine_to_coarse,
                                preprocessing=dm.preprocessing_dict, **kw)


def test_recipe_trains_and_validates_on_the_sample(tiny_data_kwargs, tmp_path):
    dm = ClassificationDataModule(**tiny_data_kwargs)
    module = _module(dm, mixup_alpha=0.2, cutmix_alpha=1.0, ema_decay=0.99)
    trainer = pl.Trainer(max_epochs=2, limit_train_batches=3, accelerator="cpu", default_root_dir=tmp_path,
                         logger=pl.loggers.CSVLogger(tmp_path), enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    m = trainer.callback_metrics
    for key in ("val/top1", "val/top5", "val/coarse_top1", "val/coarse_top5", "val/mean_class_acc", "train/loss"):
        assert key in m and torch.isfinite(m[key]), key
    assert 0 <= m["val/top1"] <= m["val/top5"] <= 1
    # EMA weights differ from the raw weights after updates, and are what validation uses
    raw, ema = module.model.head.weight, module.ema.module.head.weight
    assert not torch.equal(raw, ema) and module.eval_model is module.ema.module
    pngs = sorted((tmp_path / "lightning_logs" / "version_0" / "confusion").glob("val_epoch*.png"))
    assert [p.name for p in pngs] == ["val_epoch000.png", "val_epoch001.png"]
    per_class = json.loads(pngs[-1].with_name("val_epoch001_per_class.json").read_text())
    assert set(per_class) == set(dm.class_names)


def test_mixing_keeps_shapes_and_soft_targets_sum_to_one(tiny_data_kwargs):
    dm = ClassificationDataModule(**tiny_data_kwargs)
    module = _module(dm, mixup_alpha=0.4, cutmix_alpha=1.0)
    module.trainer = pl.Trainer(max_epochs=5, logger=False)
    x = torch.rand(4, 3, 32, 32)
    torch.manual_seed(0)
    mixed, lam = module._mix(x)
    assert mixed.shape == x.shape and 0 <= lam <= 1
    logits = torch.zeros(4, 8, requires_grad=True)
    loss = module._soft_ce(logits, torch.tensor([0, 1, 2, 3]), lam)
    assert torch.isclose(loss, torch.log(torch.tensor(8.0)), atol=1e-5)  # uniform logits: CE = log(C)
    module.hparams.mixup_off_epochs = 5  # the last epochs train unmixed
    assert module._mix(x)[1] == 1.0


def test_coarse_logits_marginalise_fine_probabilities_without_a_coarse_head(tiny_data_kwargs):
    dm = ClassificationDataModule(**tiny_data_kwargs)
    module = _module(dm, coarse_head=False)
    assert module.model.coarse_head is None
    fine = torch.randn(3, 8)
    coarse = module.coarse_logits(torch.zeros(3, module.model.num_features), fine).exp()
    probs = fine.softmax(-1)
    expected = torch.stack([probs[:, [i for i, c in enumerate(dm.fine_to_coarse) if c == k]].sum(1)
                            for k in range(5)], 1)
    assert torch.allclose(coarse, expected, atol=1e-6)


def test_per_class_accuracy_and_confusion_png(tmp_path):
    confmat = torch.tensor([[3, 1, 0], [0, 0, 0], [1, 0, 1]])
    assert per_class_accuracy(confmat) == {0: 0.75, 1: None, 2: 0.5}
    path = save_confusion_png(confmat, ["a", "b", "c"], tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_warmup_then_cosine_schedule(tiny_data_kwargs, tmp_path):
    dm = ClassificationDataModule(**tiny_data_kwargs)
    module = _module(dm, warmup_epochs=1, min_lr_ratio=0.1,
                     optimizer=lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.9, weight_decay=1e-4))
    trainer = pl.Trainer(max_epochs=4, limit_train_batches=5, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=dm)
    opt = trainer.optimizers[0]
    assert opt.param_groups[1]["weight_decay"] == 0.0  # norms and biases are not decayed
    assert opt.param_groups[0]["weight_decay"] == 1e-4
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1, rel=0.05)  # cosine ends at min_lr_ratio * lr


def test_atomic_checkpoint_io_keeps_the_old_file_when_saving_fails(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(2)}, path)

    def broken_save(obj, f, *a, **k):
        open(f, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind



def test_zero_warmup_starts_at_full_lr_with_the_same_scheduler_shape(tiny_data_kwargs, monkeypatch):
    # the scheduler is a SequentialLR either way, so checkpoints resume across warmup settings
    dm = ClassificationDataModule(**tiny_data_kwargs)
    module = _module(dm, warmup_epochs=0, optimizer=lambda p: torch.optim.SGD(p, lr=0.5))
    monkeypatch.setattr(pl.Trainer, "estimated_stepping_batches", property(lambda self: 10))
    module.trainer = pl.Trainer(max_epochs=2, logger=False)
    config = module.configure_optimizers()
    assert type(config["lr_scheduler"]["scheduler"]).__name__ == "SequentialLR"
    assert config["optimizer"].param_groups[0]["lr"] == pytest.approx(0.5)
