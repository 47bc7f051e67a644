"""Resumable training: a run killed with SIGKILL in the middle of an epoch and
continued with ``autocnn train --resume DIR`` ends bitwise where an uninterrupted run of
the same seed ends."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from autocnn import cli
from autocnn.tools.train import resume_config, run_training
from tiny_cifar import TINY_SPLIT, write_tiny_cifar

ITERATIONS_PER_EPOCH = 5  # 100 images in batches of 20
NUM_EPOCHS = 3


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_cifar(tmp_path_factory.mktemp("tiny_cifar")).parent


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    """The run, start to end in one go (in this process)."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert cli.main(run_args(tiny_data, out)) == 0
    return out


def run_args(data_dir, out):
    """A small convnet with batchnorm (running statistics to restore) and dropout (masks
    drawn from the global np.random, whose state must be restored too)."""
    return ["train", "--data", str(data_dir), "--split", TINY_SPLIT, "--num-train", "100",
            "--batch-size", "20", "--epochs", str(NUM_EPOCHS), "--model", "convnet", "--blocks", "4",
            "--filter-size", "3", "--hidden-dims", "16", "--batchnorm", "--dropout", "0.8", "--lr", "3e-3",
            "--print-every", "1", "--num-train-samples", "100", "--seed", "11", "--out", str(out)]


def assert_same_run(resumed, uninterrupted):
    for name in ("params_final.npz", "params_best.npz"):
        with np.load(resumed / name) as ours, np.load(uninterrupted / name) as theirs:
            assert sorted(ours.files) == sorted(theirs.files)
            for key in ours.files:
                assert np.array_equal(ours[key], theirs[key]), f"{name}: {key} differs"
    ours, theirs = (json.loads((path / "metrics.json").read_text()) for path in (resumed, uninterrupted))
    for key in ("loss_history", "train_acc_history", "val_acc_history", "best_val_acc", "test_acc",
                "iterations_done", "epochs_completed"):
        assert ours[key] == theirs[key], key
    assert len(ours["loss_history"]) == NUM_EPOCHS * ITERATIONS_PER_EPOCH


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tiny_data, uninterrupted, tmp_path):
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "autocnn.cli", *run_args(tiny_data, killed)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    # Kill in the middle of epoch 2, i.e. after the epoch-1 checkpoint was written.
    target = ITERATIONS_PER_EPOCH + ITERATIONS_PER_EPOCH // 2
    seen = 0
    try:
        for line in process.stdout:
            match = re.match(r"\(Iteration (\d+) / \d+\)", line)
            if match:
                seen = int(match.group(1))
                if seen >= target:
                    process.send_signal(signal.SIGKILL)
                    break
    finally:
        if process.poll() is None and seen < target:
            process.kill()
        process.wait(timeout=60)
    assert seen >= target, f"the run ended before iteration {target}: {process.stderr.read()}"
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "metrics.json").exists(), "the run finished before it was killed"
    checkpoints = sorted(path.name for path in (killed / "checkpoints").glob("run_epoch_*.json"))
    assert checkpoints and checkpoints[-1] != f"run_epoch_{NUM_EPOCHS}.json"

    resumed = subprocess.run([sys.executable, "-m", "autocnn.cli", "train", "--resume", str(killed)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "(Resuming from" in resumed.stdout

    assert_same_run(killed, uninterrupted)
    log = (killed / "train.log").read_text()
    assert log.count("(Iteration 1 / 15)") == 1 and "(Resuming from" in log


def test_resume_before_the_first_checkpoint_starts_over(uninterrupted, tmp_path):
    """Killed before any epoch ended: --resume reruns the saved config from the start."""
    early = tmp_path / "early"
    early.mkdir()
    saved = json.loads((uninterrupted / "config.json").read_text())
    (early / "config.json").write_text(json.dumps(dict(saved, out=str(early))))
    result = run_training(resume_config(early), resume=True)
    assert result.metrics["resumed_from"] is None
    assert_same_run(early, uninterrupted)


def test_resume_may_extend_the_run_but_not_change_it(uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    assert cli.main(["train", "--resume", str(out), "--epochs", str(NUM_EPOCHS + 1)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == NUM_EPOCHS + 1
    assert metrics["resumed_from"]["epoch"] == NUM_EPOCHS
    assert json.loads((out / "config.json").read_text())["num_epochs"] == NUM_EPOCHS + 1
    with pytest.raises(ValueError, match="--batch-size cannot change when resuming"):
        resume_config(out, batch_size=7)
