"""Used by the resume test: slows training so a SIGKILL lands mid-epoch."""

import time

import pytorch_lightning as pl


class SlowBatches(pl.Callback):
    def __init__(self, seconds: float = 0.2):
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)
