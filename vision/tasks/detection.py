"""LightningModule for logo detection with an ultralytics YOLO network and loss.

Training reuses ultralytics' network, ``v8DetectionLoss``, NMS and ``DetMetrics``; the loop,
optimiser, warmup+cosine schedule (``vision.training``, shared by every task), EMA and checkpoints are ours.
Batches are ultralytics' collated dicts (``img`` uint8 BCHW RGB, ``cls``, ``bboxes`` normalised xywh,
``batch_idx``, ``ori_shape``, ``ratio_pad``) from :class:`vision.data.detection.YoloDataModule`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import torch
from pytorch_lightning.cli import OptimizerCallable

from vision import ultralytics_compat as ulc
from vision.models.detector import build_detection_model
from vision.tasks.cards import detection_card
from vision.training import TaskModule, gather_lists

if TYPE_CHECKING:
    from vision.zoo import ModelCard

IOU_THRESHOLDS = torch.linspace(0.5, 0.95, 10)


class LogoDetectionModule(TaskModule):
    """Trains a YOLO ``DetectionModel`` built from ``yaml``, the bare name of a YAML shipped with ultralytics
    (e.g. ``yolo11n.yaml``; paths are refused, see :func:`vision.models.detector.build_detection_model`).

    ``weights``: a local ultralytics ``.pt`` to start from. ``.pt`` files are pickles: only a file you
    pass here is read, with ultralytics' restricted (``weights_only``) loader, never a download, and the
    architecture record inside it must pass the same schema as ``yaml``.
    ``num_classes``, ``class_names`` and ``preprocessing`` are linked from the datamodule; ``imgsz`` is
    only used for the card when no ``preprocessing`` is linked. ``*_gain`` weight ultralytics' loss terms.
    """

    task = "detection"

    def __init__(
        self,
        yaml: str = "yolo11n.yaml",
        weights: str | None = None,
        num_classes: int = 1,
        class_names: list[str] | None = None,
        preprocessing: dict | None = None,
        imgsz: int = 640,
        box_gain: float = 7.5,
        cls_gain: float = 0.5,
        dfl_gain: float = 1.5,
        ema_decay: float | None = None,
        optimizer: OptimizerCallable | None = None,  # None: vision.training.default_optimizer
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        val_conf: float = 0.001,
        val_iou: float = 0.7,
        max_det: int = 300,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"])
        self.init_optimizer(optimizer)
        self.model = build_detection_model(yaml, num_classes, class_names, weights=weights)
        self.model.args = SimpleNamespace(box=box_gain, cls=cls_gain, dfl=dfl_gain)
        self.init_ema(ema_decay)
        self.criterion = None  # built on the model's device at the first training step
        self._val_stats: list[dict[str, np.ndarray]] = []

    # --- training
    def training_step(self, batch, batch_idx):
        if self.criterion is None:
            self.criterion = ulc.detection_loss(self.model)
        images = batch["img"].float() / 255
        loss_sum, items = self.criterion(self.model(images), batch)
        # ultralytics returns (box, cls, dfl) * batch size, the gradient of a per-image *sum*, tuned for its
        # SGD lr with nominal batch 64; the mean keeps our lr independent of batch size, like the classifier.
        loss = loss_sum.sum() / images.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=images.shape[0])
        for name, value in items.items():
            self.log(f"train/{name}", value, batch_size=images.shape[0])
        return loss

    def on_train_epoch_start(self) -> None:
        # the loader's workers for this epoch start after this hook, so a switch made here reaches them
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch, self.trainer.max_epochs)

    # --- validation: NMS, boxes back in original pixels, ultralytics DetMetrics
    def validation_step(self, batch, batch_idx):
        hp = self.hparams
        images = batch["img"].float() / 255
        output = self.eval_model(images)
        preds = output[0] if isinstance(output, (tuple, list)) else output
        detections = ulc.non_max_suppression(preds, conf=hp.val_conf, iou=hp.val_iou, max_det=hp.max_det)
        ops = ulc.ops()
        height, width = images.shape[2:]
        scale = torch.tensor([width, height, width, height], device=images.device, dtype=torch.float32)
        for i, det in enumerate(detections):
            keep = batch["batch_idx"] == i
            true_cls = batch["cls"][keep].view(-1)
            true_boxes = ops.xywh2xyxy(batch["bboxes"][keep].float()) * scale
            shape, ratio_pad = batch["ori_shape"][i], batch["ratio_pad"][i]
            true_boxes = ops.scale_boxes((height, width), true_boxes, shape, ratio_pad)
            pred_boxes = ops.scale_boxes((height, width), det[:, :4].clone(), shape, ratio_pad)
            tp = match_predictions(det[:, 5], true_cls, ulc.metrics_module().box_iou(true_boxes, pred_boxes))
            self._val_stats.append({"tp": tp, "conf": det[:, 4].cpu().numpy(), "pred_cls": det[:, 5].cpu().numpy(),
                                    "target_cls": true_cls.cpu().numpy(),
                                    "target_img": np.unique(true_cls.cpu().numpy()),
                                    "im_name": str(batch["im_file"][i])})

    def on_validation_epoch_end(self) -> None:
        # mAP ranks every prediction of the epoch together: each rank scores the union of all ranks' images
        stats, self._val_stats = gather_lists(self._val_stats), []
        metrics = ulc.metrics_module().DetMetrics(names=dict(enumerate(self._class_names())))
        for stat in stats:
            metrics.update_stats(stat)
        precision = recall = map50 = map5095 = 0.0
        if stats:
            metrics.process(plot=False)
            precision, recall, map50, map5095 = (float(v) for v in metrics.mean_results())
        # the same numbers on every rank (computed from the gathered stats)
        self.log("val/mAP50", map50, prog_bar=True, sync_dist=True)
        self.log("val/mAP50-95", map5095, prog_bar=True, sync_dist=True)
        self.log("val/precision", precision, sync_dist=True)
        self.log("val/recall", recall, sync_dist=True)

    def _class_names(self) -> list[str]:
        return list(self.hparams.class_names or [str(i) for i in range(self.hparams.num_classes)])

    def model_card(self, name: str, **extra) -> "ModelCard":
        """The zoo card for :attr:`eval_model` (see ``vision.zoo.save_model``)."""
        return detection_card(name, dict(self.hparams), **extra)


def match_predictions(pred_cls: torch.Tensor, true_cls: torch.Tensor, iou: torch.Tensor) -> np.ndarray:
    """``(n_pred, 10)`` bool: prediction j is a true positive at IoU threshold t (greedy, by descending score).

    ``iou`` is ``(n_true, n_pred)``; predictions must be sorted by score (NMS output is). Same rule as
    ultralytics' ``BaseValidator.match_predictions`` without scipy.
    """
    thresholds = IOU_THRESHOLDS.numpy()
    correct = np.zeros((pred_cls.shape[0], len(thresholds)), dtype=bool)
    if true_cls.numel() == 0 or pred_cls.numel() == 0:
        return correct
    iou = (iou * (true_cls[:, None] == pred_cls[None, :])).cpu().numpy()
    matched = np.zeros((iou.shape[0], len(thresholds)), dtype=bool)
    for j in np.flatnonzero((iou >= thresholds.min()).any(0)):
        available = np.where(matched, 0, iou[:, j, None])
        k = available.argmax(0)
        correct[j] = available[k, range(len(thresholds))] >= thresholds
        matched[k, range(len(thresholds))] |= correct[j]
    return correct
