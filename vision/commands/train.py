"""``vision train``: train any task of the task table from YAML configs (LightningCLI).

    vision train --config configs/classification/grocery_resnet10t.yaml --zoo-name my_classifier
    vision train --config configs/classification/demo.yaml --trainer.max_epochs 5 --resume last
    vision train --config configs/detection/logo_yolo11n.yaml --trainer.strategy ddp --trainer.devices 4

Every key of the config can be overridden on the command line; ``vision train --config FILE --help`` lists them
all (that loads Lightning and the task's classes), ``--print_config`` prints the resolved config.
Options of our own: ``--resume last|CKPT``, ``--zoo-name NAME`` (save the final (EMA) weights to the zoo),
``--zoo-dir DIR`` (default: $VISION_ZOO_DIR, else your zoo), ``--zoo-half true`` (float16 storage),
``--zoo-notes``, ``--zoo-licence``. The common flags of the other commands are config keys here: the device is
``--trainer.accelerator``/``--trainer.devices``, the batch size ``--data.batch_size``, the image-decoding workers
``--data.num_workers``, the output folder ``--trainer.default_root_dir``. Keys are spelt in full: a shortened or
misspelt one (``--trainer.max_epoch``) is an error with a did-you-mean, never taken for the key it starts.

Each run writes its report to ``<root>/lightning_logs/version_N/report/index.html`` (printed at the end; a second run
into the same root gets the next version). Ctrl-C exits 130 and keeps the last checkpoint for ``--resume last``.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    if argv in (["--help"], ["-h"]):  # the quick overview; with a --config, LightningCLI lists every key
        print("usage: vision train --config FILE [--config FILE ...] [--section.key VALUE ...]\n")
        print(__doc__.strip())
        return 0
    from vision.cli import main as lightning_main

    lightning_main(argv, prog="vision train")  # the card records the command as typed
    return 0
