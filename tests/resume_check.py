"""Shared by the resume tests: kill a training run with SIGKILL mid-epoch, resume it, check what was lost."""

import os
import signal
import subprocess
import time
from pathlib import Path

import torch

from .conftest import REPO


def kill_mid_epoch_and_resume(base: list[str], env: dict, last: Path, settle: float) -> None:
    """Run ``base`` for many epochs, SIGKILL its whole process group ``settle`` seconds after the first
    ``last.ckpt`` appears (all ranks at once, like a node going down), resume with ``--resume last`` for one more
    epoch, and check that exactly that epoch was trained: nothing before the kill redone, only the unfinished
    epoch lost."""
    proc = subprocess.Popen(base + ["--trainer.max_epochs", "50"], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not last.exists():
            time.sleep(0.1)
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert last.exists(), "no checkpoint written in time"
        time.sleep(settle)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = torch.load(last, weights_only=True)
    done_epochs = saved["epoch"] + 1
    steps_per_epoch = saved["global_step"] // done_epochs
    resumed = subprocess.run(base + ["--trainer.max_epochs", str(done_epochs + 1), "--resume", "last"], cwd=REPO,
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stderr + resumed.stdout
    final = torch.load(last, weights_only=True)
    assert final["epoch"] == done_epochs and final["global_step"] == steps_per_epoch * (done_epochs + 1)
