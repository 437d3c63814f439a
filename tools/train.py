#!/usr/bin/env python
"""Train a model from YAML configs.

    python tools/train.py --config configs/classification/grocery_resnet10t.yaml
    python tools/train.py --config configs/classification/grocery_resnet10t.yaml --resume last
    python tools/train.py --config configs/classification/demo.yaml --print_config

Every key can be overridden on the command line (``--trainer.max_epochs 5 --data.batch_size 32``).
"""


from vision.cli import main

if __name__ == "__main__":
    main()
