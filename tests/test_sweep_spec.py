"""Sweep specs and trial parameters, without a cluster: a bad spec is refused naming its key,
trials come from the sweep seed alone, the fine stage narrows around the best coarse trials,
the record file survives a torn last line, and the best command line is a valid
``autocnn train``."""

import json
from pathlib import Path

import pytest

from autocnn import cli
from autocnn.tools.sweep import (TrialRecords, budget_settings, fine_space, rank, sample_trials, table_markdown,
                                 train_command)
from autocnn.tools.sweep_spec import Budget, SpecError, load_spec, parse_spec
from autocnn.tools.train import TrainConfig

SWEEPS = Path(__file__).resolve().parents[1] / "experiments" / "sweeps"

MINIMAL = """
model = "three-layer"
trials = 3
[budget]
epochs = 1
[space]
learning_rate = { log_uniform = [1e-4, 1e-2] }
"""


def with_lines(text: str, section: str, *lines: str) -> str:
    """MINIMAL with lines added at the end of a [section] (or at the top for section '')."""
    if not section:  # the top-level keys must come before any table
        return "\n".join(lines) + "\n" + text
    if f"[{section}]" not in text:
        return text + f"[{section}]\n" + "".join(line + "\n" for line in lines)
    return text.replace(f"[{section}]\n", f"[{section}]\n" + "".join(line + "\n" for line in lines))


def test_every_spec_in_experiments_parses():
    specs = sorted(SWEEPS.glob("*.toml"))
    assert any(path.name == "smoke.toml" for path in specs)
    for path in specs:
        spec = load_spec(path)
        assert spec.trials >= 1 and spec.space


@pytest.mark.parametrize("text, key", [
    (with_lines(MINIMAL, "", "trails = 4"), "trails"),
    (with_lines(MINIMAL, "space", "learning_rat = { log_uniform = [1e-4, 1e-2] }"), "space.learning_rat"),
    (with_lines(MINIMAL, "budget", "iteration = 5"), "budget.iteration"),
    (MINIMAL.replace("[1e-4, 1e-2]", "[1e-2, 1e-4]"), "space.learning_rate.log_uniform"),
    (MINIMAL.replace("[1e-4, 1e-2]", "[1e-3, 1e-3]"), "space.learning_rate.log_uniform"),
    (MINIMAL.replace("[1e-4, 1e-2]", "[0, 1e-2]"), "space.learning_rate.log_uniform"),
    (MINIMAL.replace("log_uniform = [1e-4, 1e-2]", "choices = []"), "space.learning_rate.choices"),
    (MINIMAL.replace("epochs = 1", "epochs = -2"), "budget.epochs"),
    (MINIMAL.replace("epochs = 1", "minutes = -0.5"), "budget.minutes"),
    (MINIMAL.replace("epochs = 1", "patience = 10"), "budget"),
    (MINIMAL.replace("trials = 3", "trials = 0"), "trials"),
    (with_lines(MINIMAL, "fixed", "num_epochs = 3"), "fixed.num_epochs"),
    (with_lines(MINIMAL, "fixed", "batch_sise = 3"), "fixed.batch_sise"),
    (with_lines(MINIMAL, "fixed", "learning_rate = 1e-3"), "learning_rate"),
    (MINIMAL + "[fine]\ntrials = 2\ntop = 5\n", "fine.top"),
    (MINIMAL + "[fine]\ntrials = 2\nbudget = { epochs = 0 }\n", "fine.budget.epochs"),
    (MINIMAL + "[fine]\ntrials = 2\nshrink = 2\n", "fine.shrink"),
])
def test_a_bad_spec_is_refused_naming_the_key(text, key):
    with pytest.raises(SpecError, match=f"'{key}'"):
        parse_spec(text)


def test_settings_the_model_does_not_have_are_refused_before_anything_runs():
    with pytest.raises(SpecError, match="--blocks applies only to --model convnet"):
        parse_spec(with_lines(MINIMAL, "space", "blocks = { choices = [[[8]], [[16]]] }"))
    with pytest.raises(SpecError, match="'model' is missing"):
        parse_spec(MINIMAL.replace('model = "three-layer"', ""))
    with pytest.raises(SpecError, match="--model must be one of"):
        parse_spec(MINIMAL.replace('"three-layer"', '"resnet"'))


def test_load_spec_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("model = \n")
    with pytest.raises(SpecError, match="bad.toml: not valid TOML"):
        load_spec(path)
    with pytest.raises(SpecError, match="cannot read the sweep spec"):
        load_spec(tmp_path / "missing.toml")


def test_trials_are_drawn_from_the_sweep_seed_alone(tmp_path):
    spec = load_spec(SWEEPS / "smoke.toml")
    first = sample_trials(spec, "coarse", spec.trials, spec.space, spec.budget, tmp_path)
    again = sample_trials(spec, "coarse", spec.trials + 3, spec.space, spec.budget, tmp_path)
    assert [trial.params for trial in first] == [trial.params for trial in again[:spec.trials]]
    assert [trial.config.seed for trial in first] == [trial.config.seed for trial in again[:spec.trials]]
    other = parse_spec(spec.source.replace("seed = 0", "seed = 1"))
    moved = sample_trials(other, "coarse", spec.trials, other.space, other.budget, tmp_path)
    assert [trial.params for trial in moved] != [trial.params for trial in first]
    for trial in first:
        rate = trial.params["learning_rate"]
        assert 1e-4 <= rate <= 3e-2 and trial.config.learning_rate == rate
        assert trial.config.out == str(tmp_path / "trials" / trial.id)
        assert trial.config.num_epochs == 2 and trial.config.model == "convnet"


def test_the_fine_stage_narrows_around_the_best_coarse_trials():
    spec = parse_spec(MINIMAL.replace("trials = 3", "trials = 4") + "[fine]\ntrials = 2\ntop = 2\nshrink = 0.25\n"
                      + "[space.use_batchnorm]\nchoices = [true, false]\n")
    records = [
        {"trial": "coarse-000", "stage": "coarse", "status": "completed", "best_val_acc": 0.5,
         "params": {"learning_rate": 1e-3, "use_batchnorm": True}},
        {"trial": "coarse-001", "stage": "coarse", "status": "completed", "best_val_acc": 0.4,
         "params": {"learning_rate": 2e-3, "use_batchnorm": True}},
        {"trial": "coarse-002", "stage": "coarse", "status": "completed", "best_val_acc": 0.1,
         "params": {"learning_rate": 1e-4, "use_batchnorm": False}},
        {"trial": "coarse-003", "stage": "coarse", "status": "diverged", "best_val_acc": 0.9,
         "params": {"learning_rate": 1e-2, "use_batchnorm": False}},
    ]
    space = {dim.name: dim for dim in fine_space(spec, records)}
    # Coarse range 1e-4..1e-2 is 2 decades: a margin of 0.5 decade around 1e-3..2e-3.
    assert space["learning_rate"].low == pytest.approx(10 ** -3.5, rel=1e-3)
    assert space["learning_rate"].high == pytest.approx(2e-3 * 10 ** 0.5, rel=1e-3)
    assert space["use_batchnorm"].choices == (True,)
    assert fine_space(spec, [dict(records[3])]) is None


def test_an_iteration_budget_sets_enough_epochs():
    settings = {"batch_size": 100, "split": [1000, 100, 100]}
    assert budget_settings(Budget(iterations=25), settings) == {"max_iterations": 25, "num_epochs": 3}
    assert budget_settings(Budget(iterations=25, epochs=2, patience=5), settings) == \
        {"max_iterations": 25, "num_epochs": 2, "patience": 5}
    assert budget_settings(Budget(minutes=1.5), {})["time_budget"] == 1.5


def test_the_best_command_line_is_the_trial_as_autocnn_train(tmp_path):
    spec = load_spec(SWEEPS / "smoke.toml")
    trial = sample_trials(spec, "coarse", 1, spec.space, spec.budget, tmp_path, data_dir="/data/cifar")[0]
    command = train_command(trial.config.to_dict(), out="runs/best")
    words = command.split()
    assert words[:2] == ["autocnn", "train"]
    args = cli.build_parser().parse_args(words[1:])
    given = {name: value for name, value in vars(args).items() if name not in ("command", "func")}
    rebuilt = TrainConfig.from_dict(given).resolved().to_dict()
    expected = dict(trial.config.to_dict(), out="runs/best")
    assert rebuilt == expected


def test_a_torn_last_record_line_is_dropped(tmp_path):
    path = tmp_path / "trials.jsonl"
    records = TrialRecords(path)
    records.append({"trial": "coarse-000", "status": "completed", "best_val_acc": 0.5})
    records.append({"trial": "coarse-001", "status": "completed", "best_val_acc": 0.25})
    with open(path, "ab") as handle:
        handle.write(b'{"trial": "coarse-002", "sta')
    again = TrialRecords(path)
    assert sorted(again.records) == ["coarse-000", "coarse-001"]
    assert path.read_text().count("\n") == 2 and json.loads(path.read_text().splitlines()[1])["trial"] == "coarse-001"
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="line 1 is not a trial record"):
        TrialRecords(path)


def test_the_table_ranks_by_best_val_acc_with_failures_last():
    spec = parse_spec(MINIMAL)
    records = [
        {"trial": "coarse-000", "status": "completed", "best_val_acc": 0.25, "params": {"learning_rate": 1e-3}},
        {"trial": "coarse-001", "status": "diverged", "best_val_acc": 0.3, "params": {"learning_rate": 1e-2},
         "diverged_at": {"iteration": 7, "loss": "nan"}},
        {"trial": "coarse-002", "status": "stopped early", "best_val_acc": 0.5, "params": {"learning_rate": 2e-3}},
        {"trial": "coarse-003", "status": "lost", "params": {"learning_rate": 3e-3}},
    ]
    ranked = rank(records)
    assert [record["trial"] for record in ranked] == ["coarse-002", "coarse-000", "coarse-001", "coarse-003"]
    table = table_markdown(spec, ranked)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "rank" not in line]
    assert rows[0].startswith("| 1 | coarse-002 | stopped early | 0.5000 |")
    assert "diverged (loss nan at iteration 7)" in rows[2]
