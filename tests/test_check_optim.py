"""autocnn.tools.check_optim on optim.py files written for these tests (tests/fixtures/optim/).

Each fixture is a correct file in one course's layout or carries one named mistake; each must
get the right status on every row and the diagnosis that names its mistake, and nothing else.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from autocnn.tools import check_optim as co
from autocnn.training import optim

FIXTURES = Path(__file__).parent / "fixtures" / "optim"


def rows_of(target) -> dict[tuple[str, str], co.OptimRow]:
    rows = co.check_optim(target)
    table = {(row.function, row.output): row for row in rows}
    assert len(table) == len(rows), "one row per (function, output)"
    return table


def assert_rows(table, expected: dict[tuple[str, str], tuple[str, str]]) -> None:
    """expected: (function, output) -> (status, a phrase the diagnosis must contain, or '')."""
    assert set(table) == set(expected), f"rows {sorted(table)} != {sorted(expected)}"
    for key, (status, phrase) in expected.items():
        row = table[key]
        assert row.status == status, f"{key}: {row.status} ({row.diagnosis})"
        assert phrase in row.diagnosis, f"{key}: {row.diagnosis!r} lacks {phrase!r}"
        if status == co.PASS and not phrase:
            assert row.diagnosis == "", f"{key}: a plain pass says {row.diagnosis!r}"
        if status in (co.ERROR, co.NOT_IMPLEMENTED):
            assert row.error is None, f"{key}: a row that did not run shows an error {row.error}"
        assert row.error is None or np.isfinite(row.error), f"{key}: error {row.error}"


def all_pass(rule: str, state_labels: tuple[str, ...], notes: dict[str, str] | None = None) -> dict:
    notes = notes or {}
    outputs = ("next_w", *state_labels, "config=None")
    return {(rule, output): (co.PASS, notes.get(output, "")) for output in outputs}


CS231N_STATE = {"sgd": (), "sgd_momentum": ("config['velocity']",), "rmsprop": ("config['cache']",),
                "adam": ("config['m']", "config['v']", "config['t']")}


def test_a_correct_cs231n_file_passes_every_row_with_no_remark():
    expected = {}
    for rule, labels in CS231N_STATE.items():
        expected.update(all_pass(rule, labels))
    assert_rows(rows_of(FIXTURES / "correct.py"), expected)


def test_a_correct_nndl_file_passes_in_its_own_state_names():
    expected = all_pass("sgd_momentum", ("config['velocity']",))
    expected.update(all_pass("rmsprop", ("config['a']",), {"next_w": "nndl convention: config['a'] is the cache"}))
    expected.update(all_pass("adam", ("config['v']", "config['a']", "config['t']"),
                             {"next_w": "config['v'] is the first moment, config['a'] the second"}))
    assert_rows(rows_of(FIXTURES / "correct_nndl.py"), expected)


def test_adam_in_the_papers_efficient_form_is_accepted_and_named():
    expected = all_pass("adam", CS231N_STATE["adam"], {"next_w": "accepted: Kingma & Ba's efficient form",
                                                       "config=None": "accepted form"})
    table = rows_of(FIXTURES / "adam_efficient.py")
    assert_rows(table, expected)
    assert table[("adam", "next_w")].error <= co.TOLERANCE  # measured against the accepted form


def adam_rows(next_w: tuple[str, str], m=(co.PASS, ""), v=(co.PASS, ""), t=(co.PASS, ""),
              defaults=(co.FAIL, "the same mistake as with an explicit config")) -> dict:
    return {("adam", "next_w"): next_w, ("adam", "config['m']"): m, ("adam", "config['v']"): v,
            ("adam", "config['t']"): t, ("adam", "config=None"): defaults}


@pytest.mark.parametrize("fixture, expected", [
    ("adam_no_bias_correction.py", adam_rows((co.FAIL, "no bias correction"))),
    ("adam_t_after_use.py", adam_rows((co.FAIL, "t is incremented after it is used (off by one)"))),
    # One step cannot show a t that never advances, so config=None passes.
    ("adam_t_not_stored.py", adam_rows((co.FAIL, "config['t'] is not advanced"),
                                       t=(co.FAIL, "config['t'] is not advanced"), defaults=(co.PASS, ""))),
    ("adam_two_mistakes.py", adam_rows((co.FAIL, "no bias correction: m and v are used without dividing by "
                                                 "1 - beta1**t and 1 - beta2**t; epsilon inside the square root"))),
], ids=lambda value: value if isinstance(value, str) else "")
def test_adam_mistakes_are_named(fixture, expected):
    assert_rows(rows_of(FIXTURES / fixture), expected)


def test_epsilon_inside_the_square_root_is_named_for_rmsprop_and_adam():
    table = rows_of(FIXTURES / "eps_inside_sqrt.py")
    expected = adam_rows((co.FAIL, "epsilon inside the square root: sqrt(v_hat + epsilon)"))
    expected.update({("rmsprop", "next_w"): (co.FAIL, "epsilon inside the square root: sqrt(cache + epsilon)"),
                     ("rmsprop", "config['cache']"): (co.PASS, ""),
                     ("rmsprop", "config=None"): (co.FAIL, "the same mistake")})
    assert_rows(table, expected)


def test_rmsprop_decay_on_the_wrong_term_is_named_on_both_outputs():
    phrase = "decay_rate weights the wrong term"
    assert_rows(rows_of(FIXTURES / "rmsprop_decay_swapped.py"), {
        ("rmsprop", "next_w"): (co.FAIL, phrase), ("rmsprop", "config['cache']"): (co.FAIL, phrase),
        ("rmsprop", "config=None"): (co.FAIL, "the same mistake")})


def momentum_variant(name: str) -> types.ModuleType:
    """A module whose sgd_momentum is one of momentum_mistakes.py's functions."""
    source = co.load_optim(FIXTURES / "momentum_mistakes.py")
    module = types.ModuleType(source.__name__)
    module.__file__ = source.__file__
    module.sgd_momentum = getattr(source, name)
    return module


@pytest.mark.parametrize("name, expected", [
    ("uphill", {"next_w": (co.FAIL, "the gradient is added"), "config['velocity']": (co.FAIL, "the gradient is added"),
                "config=None": (co.FAIL, "the same mistake")}),
    ("stale", {"next_w": (co.FAIL, "w is moved by the old velocity"), "config['velocity']": (co.PASS, ""),
               "config=None": (co.FAIL, "the same mistake")}),
    # Right weights, but the state the notebook checks holds -v.
    ("negated", {"next_w": (co.PASS, ""), "config['velocity']": (co.FAIL, "velocity stored with the opposite sign"),
                 "config=None": (co.PASS, "")}),
])
def test_momentum_sign_and_order_mistakes_are_named(name, expected):
    assert_rows(rows_of(momentum_variant(name)), {("sgd_momentum", output): value for output, value in expected.items()})


def test_state_not_stored_back_in_config_is_named_for_every_rule():
    table = rows_of(FIXTURES / "state_not_stored.py")
    assert_rows(table, {
        ("sgd_momentum", "next_w"): (co.FAIL, "config['velocity'] is not updated"),
        ("sgd_momentum", "config['velocity']"): (co.FAIL, "config has no 'velocity' after the update"),
        ("sgd_momentum", "config=None"): (co.PASS, ""),
        ("rmsprop", "next_w"): (co.FAIL, "config['cache'] is not updated"),
        ("rmsprop", "config['cache']"): (co.FAIL, "config['cache'] is not updated"),
        ("rmsprop", "config=None"): (co.PASS, ""),
        ("adam", "next_w"): (co.FAIL, "config['m'] and config['v'] are not updated"),
        ("adam", "config['m']"): (co.FAIL, "not updated"),
        ("adam", "config['v']"): (co.FAIL, "not updated"),
        ("adam", "config['t']"): (co.PASS, ""),
        ("adam", "config=None"): (co.PASS, ""),
    })


def test_starter_code_is_not_implemented_never_pass():
    assert_rows(rows_of(FIXTURES / "not_implemented.py"), {
        ("sgd", "next_w"): (co.NOT_IMPLEMENTED, "assert False at not_implemented.py:9 in sgd"),
        ("sgd_momentum", "next_w"): (co.NOT_IMPLEMENTED, "returns next_w = None"),
        ("rmsprop", "next_w"): (co.NOT_IMPLEMENTED, "raises NotImplementedError at not_implemented.py:25"),
        ("adam", "next_w"): (co.NOT_IMPLEMENTED, "returns None"),
    })


def test_exceptions_name_the_file_and_line_and_numpy_2_removals():
    assert_rows(rows_of(FIXTURES / "raises.py"), {
        ("rmsprop", "next_w"): (co.ERROR, "at raises.py:10 in rmsprop (np.float was removed in NumPy 2, use float)"),
        ("adam", "next_w"): (co.ERROR, "raises KeyError: 'beta' at raises.py:27 in adam (step 1)"),
    })


def test_python_2_syntax_is_one_import_row():
    assert_rows(rows_of(FIXTURES / "python2_print.py"), {
        ("optim.py", "import"): (co.ERROR, "Python 2 syntax (print statement) at python2_print.py:7: "
                                           "the checker runs Python 3")})


def test_another_default_is_named_not_failed_and_a_changed_dw_is_noted():
    assert_rows(rows_of(FIXTURES / "other_defaults.py"), {
        ("sgd_momentum", "next_w"): (co.PASS, "note: changes dw in place"),
        ("sgd_momentum", "config['velocity']"): (co.PASS, ""),
        ("sgd_momentum", "config=None"): (co.PASS, "defaults differ from autocnn's: momentum 0.7 (autocnn: 0.9)"),
    })


def test_an_unknown_mistake_fails_with_where_it_starts_and_a_constant_factor():
    table = rows_of(FIXTURES / "unknown_bug.py")
    assert_rows(table, {
        ("sgd_momentum", "next_w"): (co.FAIL, "wrong from the first step; the step next_w - w is 0.037 times"),
        ("sgd_momentum", "config['velocity']"): (co.FAIL, "config['velocity'] is 0.037 times autocnn's on step 1"),
        ("sgd_momentum", "config=None"): (co.FAIL, "differs from autocnn's"),
    })
    assert 0.5 < table[("sgd_momentum", "next_w")].error < 1


def test_the_simulated_correct_rules_are_autocnns():
    """The hypotheses are only as good as the simulator: its correct choice must be autocnn itself."""
    rng = np.random.RandomState(0)
    for rule in co.RULES:
        inputs = co._draw_inputs(rng, co.STEPS)
        hp, defaults = co.HYPERPARAMETERS[rule], co._rule_defaults(rule)
        correct = next(co._variants(rule))
        assert all(not option.text for option in correct.values())
        simulated = co._simulate(rule, correct, inputs, hp, defaults)
        errors = co._errors(simulated, co._run_autocnn(rule, inputs, hp), co.STATE_KEYS[rule])
        assert all(error <= 1e-14 for error, _ in errors.values()), (rule, errors)


def test_every_named_mistake_changes_the_numbers():
    """A mistake that the drawn inputs cannot tell from the right rule would be a silent pass."""
    rng = np.random.RandomState(1)
    for rule in co.RULES:
        inputs = co._draw_inputs(rng, co.STEPS)
        hp, defaults = co.HYPERPARAMETERS[rule], co._rule_defaults(rule)
        expected = co._run_autocnn(rule, inputs, hp)
        for choice in co._variants(rule, max_mistakes=1):
            simulated = co._simulate(rule, choice, inputs, hp, defaults)
            if simulated is None or all(not option.text for option in choice.values()):
                continue
            errors = co._errors(simulated, expected, co.STATE_KEYS[rule])
            worst = max(error for error, _ in errors.values())
            assert worst > 1e3 * co.TOLERANCE, (rule, [o.name for o in choice.values()], worst)


def test_inputs_are_copies_and_only_the_students_own_functions_are_judged():
    seen = []

    def sgd(w, dw, config=None):
        seen.append((w, dw))
        config = {"learning_rate": 1e-2} if config is None else config
        w -= config["learning_rate"] * dw  # in place, on the checker's copy
        return w, config

    module = types.ModuleType("student")
    module.sgd = sgd
    sgd.__module__ = "student"
    module.adam = optim.adam  # imported, not written: not judged
    table = rows_of(module)
    assert set(table) == {("sgd", "next_w"), ("sgd", "config=None")}
    assert all(row.status == co.PASS for row in table.values())
    arrays = [id(a) for pair in seen for a in pair]
    assert len(arrays) == len(set(arrays)), "every call gets fresh arrays"


def test_a_folder_target_finds_its_optim_py(tmp_path):
    package = tmp_path / "cs231n"
    package.mkdir()
    (package / "optim.py").write_text((FIXTURES / "adam_no_bias_correction.py").read_text())
    table = rows_of(tmp_path)
    assert table[("adam", "next_w")].status == co.FAIL
    assert not list(tmp_path.rglob("__pycache__")), "no bytecode written beside the student's file"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no optim.py under"):
        co.check_optim(tmp_path / "empty")
    with pytest.raises(ValueError, match="is not a file"):
        co.check_optim(tmp_path / "missing.py")


def test_format_rows_is_one_aligned_line_per_row():
    rows = co.check_optim(FIXTURES / "adam_t_after_use.py")
    text = co.format_rows(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["function", "output", "status", "error", "diagnosis"]
    assert len(lines) == len(rows) + 1
    # NaN steps: no error number (the rows stay plain JSON), the diagnosis says why.
    assert "adam      next_w       FAIL    -        t is incremented after it is used" in text
    status_column = lines[0].index("status")
    assert all(line[status_column:].startswith(row.status) for line, row in zip(lines[1:], rows))


def test_a_hyperparameter_read_under_another_name_is_named():
    assert_rows(rows_of(FIXTURES / "alias_key.py"), {
        ("rmsprop", "next_w"): (co.FAIL, "config['eps'] (1e-06) is read instead of config['epsilon']"),
        ("rmsprop", "config['cache']"): (co.PASS, ""),
        ("rmsprop", "config=None"): (co.PASS, "config['eps'] = 1e-06 stands for epsilon"),
    })


def test_a_missing_module_is_not_checked_rather_than_failed():
    assert_rows(rows_of(FIXTURES / "needs_module.py"), {
        ("optim.py", "import"): (co.NOT_CHECKED, "needs module course_helpers_that_are_not_installed, "
                                                 "which is not installed at needs_module.py:2")})


def test_what_the_students_code_prints_does_not_reach_the_checkers_output(capsys, tmp_path):
    noisy = tmp_path / "optim.py"
    noisy.write_text("import numpy as np\nprint('importing')\n\n\ndef sgd(w, dw, config=None):\n"
                     "    print('a step')\n    config = config or {'learning_rate': 1e-2}\n"
                     "    return w - config['learning_rate'] * dw, config\n")
    table = rows_of(noisy)
    assert all(row.status == co.PASS for row in table.values())
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_odd_return_values_get_rows_not_crashes():
    module = types.ModuleType("odd")

    def sgd(w, dw, config=None):
        return "not an array", {}

    def sgd_momentum(w, dw, config=None):
        config = config or {}
        config["velocity"] = "not numbers"
        return w - config.get("learning_rate", 1e-2) * dw, config

    def rmsprop(w, dw, config=None):
        return w.ravel(), config

    def adam(w, dw, config=None):
        return w

    for function in (sgd, sgd_momentum, rmsprop, adam):
        function.__module__ = "odd"
        setattr(module, function.__name__, function)
    table = rows_of(module)
    assert table[("sgd", "next_w")].status == co.ERROR
    assert "not an array of numbers" in table[("sgd", "next_w")].diagnosis
    assert table[("sgd_momentum", "config['velocity']")].status == co.FAIL
    assert table[("rmsprop", "next_w")].status == co.FAIL
    assert "next_w has shape (24,), the weights (4, 6)" in table[("rmsprop", "next_w")].diagnosis
    assert table[("adam", "next_w")].status == co.ERROR
    assert "expected the tuple (next_w, config)" in table[("adam", "next_w")].diagnosis


def test_state_under_another_courses_names_is_not_checked_when_the_steps_are_right():
    phrase = "next_w is right on every step, so the state is kept under other names (first_moment, " \
             "second_moment, step)"
    table = rows_of(FIXTURES / "other_state_names.py")
    assert_rows(table, {
        ("adam", "next_w"): (co.PASS, ""),
        ("adam", "config['m']"): (co.NOT_CHECKED, phrase),
        ("adam", "config['v']"): (co.NOT_CHECKED, phrase),
        ("adam", "config['t']"): (co.NOT_CHECKED, phrase),
        ("adam", "config=None"): (co.PASS, ""),
    })
    assert all(table[("adam", f"config[{key!r}]")].error is None for key in "mvt")
