"""Smoke test of the benchmark (`autocnn bench --quick --json`): structure, not speed.

Nothing here asserts a time: the machine running the tests is shared, and the quick run's
sizes are too small to mean anything. What must hold: every case has the sides it should,
each with a median inside its min-max, a ratio to the hand-written fast side, images/s;
every side of a training step starts from the same parameters and so reports the same
loss; the peak-memory figures and the issue's targets are there; the table renders.
"""

import json
import math
import platform
import time

import pytest

import numpy as np

from autocnn.tools import bench, bench_torch
from autocnn import cli
from autocnn.core.models import ConvNet, ThreeLayerConvNet
from experiments import benchmark as benchmark_script

TORCH = bench_torch.torch_version() is not None
STEP_SIDES = {"ref-fast", "autocnn", "autocnn-scipy", "autograd-convolve"} | ({"pytorch"} if TORCH else set())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick run through the command line, shared by the tests below."""
    out = tmp_path_factory.mktemp("bench")
    path, table = out / "bench.json", out / "table.md"
    assert cli.main(["bench", "--quick", "--json", str(path), "--table", str(table)]) == 0
    return json.loads(path.read_text()), table.read_text()


def test_json_has_machine_settings_cases_and_targets(quick_run):
    results, _ = quick_run
    assert {"machine", "settings", "cases", "rows", "peak_memory", "targets"} <= set(results)
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert results["settings"] == {"quick": True, "repeats": 2, "max_repeats": 2, "min_seconds_fastest_side": 0.0,
                                   "keeps_freed_memory": on_glibc}
    assert results["machine"]["torch"] == bench_torch.torch_version()
    assert results["machine"]["blas_threads"] >= 1
    assert results["machine"]["cores"] >= 1 and results["machine"]["numpy"]
    kinds = {(case["kind"], case["phase"]) for case in results["cases"]}
    assert kinds == {("layer", "forward"), ("layer", "forward+backward"), ("step", "train step")}
    names = " ".join(case["name"] for case in results["cases"])
    for layer in ("conv 3->32 7x7", "conv 32->64 3x3", "max pool", "batchnorm", "spatial batchnorm", "affine",
                  "softmax"):
        assert layer in names, layer


def test_every_side_has_consistent_statistics_and_a_ratio(quick_run):
    results, _ = quick_run
    for case in results["cases"]:
        assert bench.BASELINE in case["sides"] and "autocnn" in case["sides"], case["name"]
        assert case["sides"][bench.BASELINE]["ratio"] == pytest.approx(1.0)
        for side, stats in case["sides"].items():
            assert side in bench.SIDES
            assert len(stats["times_s"]) == 2
            assert 0 < stats["min_s"] <= stats["median_s"] <= stats["max_s"]
            assert stats["ratio"] > 0 and stats["images_per_s"] > 0
            assert (stats["gflops"] is None) == (case["flops"] is None)


def test_conv_cases_cover_all_five_formulations_at_the_small_size(quick_run):
    results, _ = quick_run
    conv = [case for case in results["cases"] if case["name"].startswith("conv")]
    assert conv and all(set(case["sides"]) == set(bench.SIDES) - {"pytorch"} for case in conv)


def test_steps_carry_their_gemm_limit_and_each_sides_fraction_of_it(quick_run):
    results, table = quick_run
    for case in results["cases"]:
        limit = case["gemm_limit"]
        if case["kind"] != "step":
            assert limit is None
            continue
        assert 0 < limit["min_s"] <= limit["median_s"] <= limit["max_s"]
        assert limit["gflops"] == pytest.approx(case["flops"] / limit["median_s"] / 1e9)
        for stats in case["sides"].values():
            assert stats["limit_fraction"] == pytest.approx(limit["median_s"] / stats["median_s"])
    assert "| case | N | dtype | MFLOP / image | GEMMs median ms | GFLOP/s | limit img/s |" in table


def test_speedups_over_pytorch_where_it_ran(quick_run):
    results, table = quick_run
    for case in results["cases"]:
        for side, stats in case["sides"].items():
            if TORCH and case["kind"] == "step":
                assert stats["vs_pytorch"] == pytest.approx(case["sides"]["pytorch"]["median_s"] / stats["median_s"])
            else:
                assert "vs_pytorch" not in stats
    assert ("not installed" in table) != TORCH
    assert ("pytorch" in results["peak_memory"]) == TORCH


def test_without_torch_the_column_says_not_installed_and_nothing_else_changes(monkeypatch, capsys):
    monkeypatch.setattr(bench_torch, "torch_version", lambda: None)
    results = bench.run_benchmark(quick=True, repeats=1, memory=False, only="ConvNet")
    table = bench.format_table(results)
    [case] = results["cases"]
    assert set(case["sides"]) == {"ref-fast", "autocnn"} and case["gemm_limit"] is not None
    assert all("vs_pytorch" not in stats for stats in case["sides"].values())
    rows = [line for line in table.splitlines() if line.startswith(f"| {bench.DEEP_NAME} | train step")]
    assert len(rows) == 2 and all("| not installed |" in row for row in rows)
    assert "PyTorch not installed" in table
    shown = {t["target"]: t["shown"] for t in results["targets"]}
    assert shown["step ConvNet batch 100 float32: speed-up over PyTorch"] == "torch not installed"


@pytest.mark.parametrize("make", [
    lambda: ThreeLayerConvNet(hidden_dim=20, reg=0.1, weight_scale=1e-1, dtype=np.float64),
    lambda: ConvNet(blocks=((4, 4), (6,)), hidden_dims=(7,), reg=0.1, dtype=np.float64),
])
def test_torch_twin_has_the_same_loss_and_gradients_in_float64(make):
    """The PyTorch side is the same function of the same params, to float64 rounding."""
    if not TORCH:  # the bench's answer without torch: no version, and the twin cannot be built
        assert bench_torch.torch_version() is None
        with pytest.raises(ImportError):
            bench_torch.TorchConvNet(make())
        return
    np.random.seed(0)
    model = make()
    rng = np.random.RandomState(1)
    X, y = rng.randn(5, 3, 32, 32), rng.randint(10, size=5)
    loss, grads = model.loss(X, y)
    torch_loss, torch_grads = bench_torch.TorchConvNet(model).loss_and_grads(X, y)
    assert torch_loss == pytest.approx(loss, rel=1e-13)
    assert set(torch_grads) == set(grads)
    for name, grad in grads.items():
        assert torch_grads[name].shape == grad.shape
        scale = max(1.0, np.abs(grad).max())
        assert np.abs(torch_grads[name] - grad).max() <= 1e-12 * scale, name


@pytest.mark.parametrize("make", [
    lambda: ThreeLayerConvNet(hidden_dim=20, reg=0.01, weight_scale=1e-1, dtype=np.float64),
    lambda: ConvNet(blocks=((4, 4), (6,)), hidden_dims=(7,), reg=0.01, dtype=np.float64),
])
def test_float64_training_follows_the_torch_twin_step_for_step(make):
    """Twelve Adam steps (the bench's training step) on both sides: the same losses and params."""
    if not TORCH:
        assert bench_torch.torch_version() is None
        return
    np.random.seed(0)
    model = make()
    rng = np.random.RandomState(2)
    X, y = rng.randn(8, 3, 32, 32), rng.randint(10, size=8)
    torch_step = bench_torch.torch_trainer(model, X, y)  # copies the params before autocnn moves them
    configs: dict = {}
    for step in range(12):
        torch_loss, loss = torch_step(), bench._train_step(model, X, y, configs)
        assert torch_loss == pytest.approx(loss, rel=1e-11), f"step {step}"
    net = torch_step.net
    # A conv's bias before batchnorm has gradient 0 exactly; both sides compute rounding
    # noise (~1e-17) that Adam, dividing by its root mean square, turns into steps of 1e-9:
    # such biases follow each side's noise, not the function, and are left out.
    num_convs = sum(len(block) for block in model.blocks)
    cancelled = {f"b{index}" for index in range(1, num_convs + 1)} if model.use_batchnorm else set()
    for name, value in model.params.items():
        if name in cancelled:
            continue
        theirs = net.params[name].detach().numpy()
        theirs = theirs.T if name in net.affine_weights else theirs
        assert np.abs(theirs - value).max() <= 1e-10 * max(1.0, np.abs(value).max()), name


def test_step_gemms_are_the_layers_products():
    model = bench._net_65_models("float32")["autocnn"]()
    n = 7
    assert bench.step_gemms(model, n) == [
        ("conv1 forward", 32, 3 * 49, n * 1024), ("conv1 dW", 3 * 49, n * 1024, 32),
        ("affine2 forward", n, 8192, 1000), ("affine2 dW", 8192, n, 1000), ("affine2 dx", n, 1000, 8192),
        ("affine3 forward", n, 1000, 10), ("affine3 dW", 1000, n, 10), ("affine3 dx", n, 10, 1000)]


def test_all_sides_of_a_step_give_the_same_loss_for_the_same_params(quick_run):
    results, _ = quick_run
    steps = [case for case in results["cases"] if case["kind"] == "step"]
    assert len(steps) == 3
    assert set(steps[0]["sides"]) == STEP_SIDES and set(steps[1]["sides"]) == STEP_SIDES
    for case in steps:
        losses = [stats["loss"] for stats in case["sides"].values()]
        assert all(math.isfinite(loss) for loss in losses)
        tolerance = 1e-10 if case["dtype"] == "float64" else 1e-5
        assert max(losses) - min(losses) <= tolerance * abs(losses[0]), (case["name"], losses)


def test_rows_for_the_report_pair_reference_and_autocnn(quick_run):
    results, _ = quick_run
    assert len(results["rows"]) == len(results["cases"])
    for row in results["rows"]:
        assert row["ratio"] == pytest.approx(row["autocnn_ms"] / row["reference_ms"])


def test_peak_memory_and_targets_are_reported(quick_run):
    results, table = quick_run
    memory = results["peak_memory"]
    for side in ("ref-fast", "autocnn") + (("pytorch",) if TORCH else ()):
        assert memory[side]["peak_rss_mb"] >= memory[side]["before_steps_mb"] > 0
    targets = results["targets"]
    assert len(targets) == 16
    # The quick run's sizes are not the issue's: no target is judged on them.
    assert all(target["met"] is None for target in targets)
    assert "| case | pass | N | dtype | side | median ms |" in table
    assert "peak RSS MB" in table and "| target | goal | measured | met |" in table


def test_model_flops_match_the_issue():
    """The issue counts ~68.5 MFLOP per image for the >65% net's forward + backward."""
    model = bench._net_65_models("float32")["autocnn"]()
    assert bench.model_flops(model) / 1e6 == pytest.approx(68.5, abs=0.05)


def test_targets_are_judged_on_a_full_run_shaped_result():
    """evaluate_targets reads the full run's cases (fabricated here, no timing)."""

    def step(name, batch, dtype, times, limit_s=None):
        sides = {side: {"median_s": t, "images_per_s": batch / t, "ratio": t / times["ref-fast"]}
                 for side, t in times.items()}
        for stats in sides.values():
            if "pytorch" in times:
                stats["vs_pytorch"] = times["pytorch"] / stats["median_s"]
            if limit_s:
                stats["limit_fraction"] = limit_s / stats["median_s"]
        return {"name": name, "kind": "step", "phase": "train step", "batch": batch, "dtype": dtype, "sides": sides}

    results = {"machine": {"torch": "2.x"}, "cases": [
        step(bench.NET_65_NAME, 1000, "float32", {"ref-fast": 1.3, "autocnn": 1.0, "autograd-convolve": 5.0,
                                                  "pytorch": 1.3}, limit_s=0.85),
        step(bench.NET_65_NAME, 50, "float32", {"ref-fast": 0.07, "autocnn": 0.1, "autograd-convolve": 2.0,
                                                "pytorch": 0.14}),
        step(bench.NET_65_NAME, 50, "float64", {"ref-fast": 0.1, "autocnn": 0.11}),
        step(bench.DEEP_NAME, 100, "float32", {"ref-fast": 0.5, "autocnn": 0.5, "pytorch": 0.49}),
    ], "peak_memory": {"batch": 1000, "hidden_dim": 1000, "autocnn": {"peak_rss_mb": 2000.0, "steps_mb": 600.0},
                       "pytorch": {"peak_rss_mb": 1000.0, "steps_mb": 640.0}}}
    met = {target["target"]: target["met"] for target in bench.evaluate_targets(results)}
    assert met["step 3-layer net batch 1000 float32: speed-up over PyTorch"] is True  # 1.3x
    assert met["step 3-layer net batch 50 float32: speed-up over PyTorch"] is False  # 1.4x
    assert met["step ConvNet batch 100 float32: speed-up over PyTorch"] is False  # 0.98x
    assert met["step 3-layer net batch 1000 float32: fraction of the GEMM limit"] is True  # 0.85
    assert met["peak growth of a batch-1000 step: autocnn / PyTorch"] is True  # 600 / 640
    assert met["step 3-layer net batch 1000 float32: autocnn / ref-fast"] is True
    assert met["step 3-layer net batch 50 float32: autocnn / ref-fast"] is False  # 1.43x
    assert met["autocnn images/s, 3-layer net batch 1000 float32"] is True  # 1000 img/s
    assert met["autocnn images/s, 3-layer net batch 50 float32"] is False  # 500 img/s
    assert met["autocnn peak RSS, batch-1000 step"] is True
    assert met["autocnn speed-up over the autograd-convolve net (batch 1000 f32 step)"] is False  # 5x
    assert met["autocnn speed-up over the autograd-convolve net (batch 50 f32 step)"] is True  # 20x
    assert met["ref-fast step batch 50 / numpy prototype (72 ms)"] is True


def test_speedup_floors_say_when_a_target_asks_for_less_than_the_gemms_alone():
    """A target is below the floor when PyTorch's median / goal < the step's GEMMs alone."""

    def step(name, batch, times, limit_s):
        return {"name": name, "kind": "step", "phase": "train step", "batch": batch, "dtype": "float32",
                "sides": {side: {"median_s": t} for side, t in times.items()}, "gemm_limit": {"median_s": limit_s}}

    results = {"machine": {"torch": "2.x"}, "cases": [
        step(bench.NET_65_NAME, 1000, {"autocnn": 0.95, "pytorch": 0.66}, 0.59),  # allows 528 ms < 590
        step(bench.NET_65_NAME, 50, {"autocnn": 0.135, "pytorch": 0.15}, 0.05),  # allows 100 ms > 50
        step(bench.DEEP_NAME, 100, {"pytorch": 0.27}, 0.256),  # no autocnn side: its rest unknown
    ]}
    floors = {floor["target"]: floor for floor in bench.speedup_floors(results)}
    big = floors["step 3-layer net batch 1000 float32: speed-up over PyTorch"]
    assert big["allowed_ms"] == pytest.approx(660 / 1.25)
    assert big["left_ms"] == pytest.approx(660 / 1.25 - 590)
    assert big["autocnn_beyond_gemms_ms"] == pytest.approx(360)
    assert big["reachable"] is False
    small = floors["step 3-layer net batch 50 float32: speed-up over PyTorch"]
    assert small["reachable"] is True and small["left_ms"] == pytest.approx(50)
    deep = floors["step ConvNet batch 100 float32: speed-up over PyTorch"]
    assert deep["autocnn_beyond_gemms_ms"] is None and deep["reachable"] is True  # 270 > 256
    table = bench.format_table(dict(results, cases=[], settings={"quick": False, "repeats": 5},
                                    speedup_floors=list(floors.values()),
                                    machine={"cpu": "x", "cores": 2, "python": "3", "numpy": "2", "blas": "b",
                                             "scipy": "1", "autograd": "1", "blas_env": {}, "torch": "2.x"}))
    assert "| 528 | 590 | -62 | 360 | **no**: below the GEMM floor |" in table
    assert "| 100 | 50 | 50 | 85 | only with everything but the GEMMs 2x faster |" in table  # 85 ms in 50
    assert "| 270 | 256 | 14 | – | yes |" in table  # autocnn's rest unknown


def test_speedup_floors_skip_cases_without_pytorch_or_a_limit():
    results = {"machine": {"torch": None}, "cases": [
        {"name": bench.NET_65_NAME, "kind": "step", "phase": "train step", "batch": 1000, "dtype": "float32",
         "sides": {"autocnn": {"median_s": 1.0}}, "gemm_limit": {"median_s": 0.5}}]}
    assert bench.speedup_floors(results) == []


def test_experiment_script_smoke_writes_table_and_json(tmp_path, monkeypatch):
    """python -m experiments.benchmark --smoke, on one cheap case, into a chosen folder."""
    assert benchmark_script.main(["--smoke", "--only", "softmax", "--no-memory", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert [case["name"] for case in results["cases"]] == ["softmax loss (N, 10)"]
    assert (tmp_path / "table.md").read_text().startswith("Machine: ")


def test_bad_repeats_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--repeats", "0"])
    assert exit_info.value.code == 2
    assert "--repeats: must be at least 1" in capsys.readouterr().err


def test_fast_cases_are_repeated_until_the_fastest_side_has_run_long_enough():
    from autocnn.tools.bench import Case, time_case

    def side(seconds):
        def prepare():
            return (lambda: time.sleep(seconds)), None
        return prepare

    case = Case("sleep", "layer", "forward", 1, "float32", None,
                {"ref-fast": side(0.02), "autocnn": side(0.002)})
    timed = time_case(case, repeats=3, min_seconds=0.05, max_repeats=40)
    fast = timed["sides"]["autocnn"]["times_s"]
    runs = len(fast)
    assert len(timed["sides"]["ref-fast"]["times_s"]) == runs  # interleaved: the same count
    # The rule, whatever the sleeps really took: on while the fast side is under 50 ms in all.
    assert runs >= 3 and (runs == 3 or sum(fast[:-1]) < 0.05)
    assert sum(fast) >= 0.05 or runs == 40
    if sum(fast[:3]) < 0.05:
        assert runs > 3
    capped = time_case(case, repeats=3, min_seconds=10.0, max_repeats=6)
    assert len(capped["sides"]["autocnn"]["times_s"]) == 6
    fixed = time_case(case, repeats=3)
    assert len(fixed["sides"]["autocnn"]["times_s"]) == 3


def test_extra_repetitions_stop_when_the_case_has_taken_long_enough(monkeypatch):
    from autocnn.tools import bench

    monkeypatch.setattr(bench, "CASE_SECONDS_FOR_EXTRA_REPEATS", 0.1)
    case = bench.Case("sleep", "layer", "forward", 1, "float32", None,
                      {"ref-fast": lambda: ((lambda: time.sleep(0.03)), None),
                       "autocnn": lambda: ((lambda: time.sleep(0.001)), None)})
    sides = bench.time_case(case, repeats=2, min_seconds=1.0, max_repeats=40)["sides"]
    runs = len(sides["autocnn"]["times_s"])

    def case_seconds(repetitions):
        return sum(sum(side["times_s"][:repetitions]) for side in sides.values())

    # Stopped by the 0.1 s case budget (each repetition sleeps 31 ms), not the fast side's 1 s
    # nor the 40-repetition cap.
    assert case_seconds(runs) >= 0.1 and (runs == 2 or case_seconds(runs - 1) < 0.1)
    assert sum(sides["autocnn"]["times_s"]) < 1.0 and runs < 40


def test_progress_bar_counts_the_cases_and_keeps_the_progress_lines(capsys):
    lines = []
    results = bench.run_benchmark(quick=True, repeats=1, memory=False, only="softmax", progress=lines.append, bar=True)
    err = capsys.readouterr().err
    assert len(results["cases"]) == len(lines) == 1 and lines[0].startswith("softmax loss")
    assert "benchmark: 100%" in err and "1/1" in err
    bench.run_benchmark(quick=True, repeats=1, memory=False, only="softmax")
    assert "benchmark" not in capsys.readouterr().err  # no bar unless asked
