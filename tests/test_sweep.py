"""``autocnn sweep`` on local Dask clusters of worker processes, on the tiny CIFAR folder: the
smoke sweep, a resume after SIGKILL that reproduces the same table without rerunning
finished trials, a diverging trial, and a worker killed in the middle of a trial."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autocnn import cli
from autocnn.tools.sweep import run_sweep
from autocnn.tools.sweep_spec import load_spec, parse_spec
from tiny_cifar import write_tiny_cifar

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "sweeps" / "smoke.toml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMOKE_TRIALS = 6  # 4 coarse + 2 fine


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_cifar(tmp_path_factory.mktemp("tiny_cifar")).parent


@pytest.fixture(scope="module")
def smoke_sweep(tiny_data, tmp_path_factory):
    """The smoke sweep, start to end, on 2 worker processes (in this process's client)."""
    out = tmp_path_factory.mktemp("smoke") / "sweep"
    lines = []
    summary = run_sweep(load_spec(SMOKE), out, workers=2, data_dir=str(tiny_data), progress=lines.append)
    return out, summary, lines


def table_rows(out):
    return [line for line in (out / "table.md").read_text().splitlines() if line.startswith("| ")]


def records(out):
    return [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]


def sweep_command(spec, out, data, *extra):
    return [sys.executable, "-m", "autocnn.cli", "sweep", str(spec), "--out", str(out), "--data", str(data),
            "--workers", "2", *extra]


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_smoke_sweep_runs_every_trial_on_two_worker_processes(smoke_sweep):
    out, summary, lines = smoke_sweep
    found = records(out)
    assert sorted(record["trial"] for record in found) == \
        [f"coarse-{index:03d}" for index in range(4)] + ["fine-000", "fine-001"]
    assert all(record["status"] == "completed" for record in found)
    assert summary["state"] == "finished" and summary["statuses"] == {"completed": SMOKE_TRIALS}
    assert summary["this_run"]["images_trained"] == SMOKE_TRIALS * 10 * 20  # 10 iterations of 20 images

    # Worker processes, each told to use one BLAS thread.
    pids = set()
    for record in found:
        trial = out / "trials" / record["trial"]
        pids.add(json.loads((trial / "worker.json").read_text())["pid"])
        machine = json.loads((trial / "metrics.json").read_text())["machine"]
        assert machine["blas_env"]["OPENBLAS_NUM_THREADS"] == "1"
        assert machine["blas_env"]["OMP_NUM_THREADS"] == "1"
    assert len(pids) == 2 and os.getpid() not in pids

    # The fine trials lie in the narrowed ranges, around the best two coarse trials.
    coarse = sorted((r for r in found if r["stage"] == "coarse"), key=lambda r: -r["best_val_acc"])[:2]
    for record in (r for r in found if r["stage"] == "fine"):
        assert record["params"]["use_batchnorm"] in {r["params"]["use_batchnorm"] for r in coarse}

    rows = table_rows(out)[1:]
    assert len(rows) == SMOKE_TRIALS
    accuracies = [float(row.split(" | ")[3]) for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    best = max(found, key=lambda r: (r["best_val_acc"], ))
    assert rows[0].split(" | ")[1] == summary["best_trial"] and summary["best_val_acc"] == best["best_val_acc"]
    for name in ("val_acc_vs_lr_reg.png", "best_curves.png"):
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE)
    command = (out / "best_command.txt").read_text().strip()
    assert command.startswith("autocnn train --model convnet") and f"--seed {best['config']['seed']}" in command
    assert any("done 6 (0 failed) / running 0 / waiting 0" in line for line in lines)


def recorded(out, count):
    path = out / "trials.jsonl"
    return lambda: path.exists() and path.read_bytes().count(b"\n") >= count


def test_ctrl_c_then_sigkill_then_resume_reproduces_the_table_without_rerunning_finished_trials(
        smoke_sweep, tiny_data, tmp_path):
    out = tmp_path / "killed"
    # Ctrl-C (SIGINT to the whole process group, as a terminal sends it) after the first trial.
    process = subprocess.Popen(sweep_command(SMOKE, out, tiny_data), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(recorded(out, 1), 120, "one recorded trial")
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    assert process.returncode == 130 and "autocnn sweep: interrupted" in output, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["state"] == "interrupted" and summary["trials_recorded"] == len(records(out)) >= 1
    assert len(table_rows(out)) == 1 + len(records(out))

    # Resumed, then SIGKILLed (client, scheduler and workers) two trials later.
    process = subprocess.Popen(sweep_command(SMOKE, out, tiny_data, "--resume"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(recorded(out, summary["trials_recorded"] + 2), 120, "two more recorded trials")
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    before = (out / "trials.jsonl").read_bytes()
    done_before = [json.loads(line)["trial"] for line in before.splitlines() if line.endswith(b"}")]
    assert 3 <= len(done_before) < SMOKE_TRIALS, "the sweep was not killed part-way"
    attempts = {trial: json.loads((out / "trials" / trial / "worker.json").read_text())["attempt"]
                for trial in done_before}

    assert cli.main(["sweep", str(SMOKE), "--out", str(out), "--data", str(tiny_data), "--workers", "2",
                     "--resume"]) == 0
    after = (out / "trials.jsonl").read_bytes()
    assert after.startswith(before.rstrip(b"\n").rsplit(b"\n", 1)[0])  # finished records untouched
    found = [record["trial"] for record in records(out)]
    assert sorted(found) == sorted(set(found)) and len(found) == SMOKE_TRIALS
    for trial in done_before:  # not trained again
        assert json.loads((out / "trials" / trial / "worker.json").read_text())["attempt"] == attempts[trial]
    assert table_rows(out) == table_rows(smoke_sweep[0])
    assert json.loads((out / "summary.json").read_text())["state"] == "finished"
    with pytest.raises(ValueError, match="already holds a sweep; continue it with --resume"):
        run_sweep(load_spec(SMOKE), out, workers=1, progress=None)
    other = parse_spec(SMOKE.read_text().replace("seed = 0", "seed = 5"))
    with pytest.raises(ValueError, match="holds a sweep of a different spec"):
        run_sweep(other, out, workers=1, resume=True, progress=None)


def kill_the_first_trials_worker(process: subprocess.Popen, out) -> str:
    """SIGKILL the worker process running the sweep's first trial; return the sweep's output when it ends."""
    try:
        first = out / "trials" / "coarse-000" / "worker.json"
        wait_for(first.exists, 120, "the first trial to start")
        os.kill(json.loads(first.read_text())["pid"], signal.SIGKILL)
        output, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    return output


def test_a_worker_killed_mid_trial_gets_the_trial_retried(smoke_sweep, tiny_data, tmp_path):
    out = tmp_path / "worker-killed"
    process = subprocess.Popen(sweep_command(SMOKE, out, tiny_data), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = kill_the_first_trials_worker(process, out)
    assert process.returncode == 0, output
    by_trial = {record["trial"]: record for record in records(out)}
    assert len(by_trial) == SMOKE_TRIALS
    assert by_trial["coarse-000"]["status"] == "completed" and by_trial["coarse-000"]["attempt"] == 2
    assert table_rows(out) == table_rows(smoke_sweep[0])  # the retried trial trained as if never killed


def test_a_worker_killed_twice_loses_the_trial_and_the_sweep_carries_on(tiny_data, tmp_path):
    out = tmp_path / "lost"
    process = subprocess.Popen(sweep_command(SMOKE, out, tiny_data, "--retries", "0"), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = kill_the_first_trials_worker(process, out)
    assert process.returncode == 0, output
    by_trial = {record["trial"]: record for record in records(out)}
    assert len(by_trial) == SMOKE_TRIALS
    assert by_trial["coarse-000"]["status"] == "lost" and "worker died" in by_trial["coarse-000"]["error"]
    assert all(record["status"] == "completed" for name, record in by_trial.items() if name != "coarse-000")
    assert "(1 failed)" in output
    assert table_rows(out)[-1].split(" | ")[1:3] == ["coarse-000", "lost"]


DIVERGING = """
description = "half of the trials blow up after their first epoch"
model = "fc"
trials = 4
seed = 3
[fixed]
hidden_dims = [16]
split = [400, 100, 100]
num_train = 100
batch_size = 20
learning_rate = 1.0
[budget]
epochs = 3
[space]
lr_decay = { choices = [1e-6, 1e20] }
"""


def test_a_diverging_trial_is_recorded_with_its_loss_and_iteration(tiny_data, tmp_path):
    spec = parse_spec(DIVERGING)
    out = tmp_path / "diverging"
    summary = run_sweep(spec, out, workers=1, threads=2, data_dir=str(tiny_data), progress=None)
    by_trial = {record["trial"]: record for record in records(out)}
    diverged = [record for record in by_trial.values() if record["status"] == "diverged"]
    fine = [record for record in by_trial.values() if record["status"] == "completed"]
    assert diverged and fine, by_trial
    for record in diverged:
        assert record["params"]["lr_decay"] == 1e20
        where = record["diverged_at"]
        assert 6 <= where["iteration"] <= 15 and where["loss"] in ("nan", "inf")
        assert "Training diverged" in record["error"]
    assert all(record["params"]["lr_decay"] == 1e-6 for record in fine)
    rows = table_rows(out)[1:]
    assert all("diverged (loss" in row for row in rows[-len(diverged):])
    assert summary["statuses"] == {"diverged": len(diverged), "completed": len(fine)}
    blas = json.loads((out / "trials" / fine[0]["trial"] / "metrics.json").read_text())["machine"]["blas_env"]
    assert blas["OPENBLAS_NUM_THREADS"] == "2"  # --threads 2


def test_a_bad_spec_stops_before_any_cluster_starts(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMOKE.read_text().replace("[budget]\nepochs = 2", "[budget]\nepochs = -1"))
    out = tmp_path / "never"
    assert cli.main(["sweep", str(bad), "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert "'budget.epochs' must be an integer >= 1, got -1" in error and "bad.toml" in error
    assert not out.exists()
