"""The update rules of autocnn.training.optim against values worked out by hand."""

import math

import numpy as np
import pytest

from autocnn.core import blockwise
from autocnn.training import optim
from autocnn.training.optim import adam, rmsprop, sgd, sgd_momentum


def test_sgd_two_steps_by_hand():
    w = np.array([1.0, 2.0])
    dw = np.array([0.5, -1.0])
    config = {"learning_rate": 0.1}
    w1, config = sgd(w, dw, config)
    np.testing.assert_allclose(w1, [0.95, 2.1], rtol=0, atol=1e-15)
    w2, config = sgd(w1, dw, config)
    np.testing.assert_allclose(w2, [0.9, 2.2], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(w, [1.0, 2.0])  # the input is not modified


def test_sgd_momentum_two_steps_by_hand():
    w = np.array([1.0, -1.0])
    dw = np.array([1.0, 2.0])
    config = {"learning_rate": 0.1, "momentum": 0.9}
    w1, config = sgd_momentum(w, dw, config)
    # v1 = -0.1 * dw, w1 = w + v1
    np.testing.assert_allclose(config["velocity"], [-0.1, -0.2], atol=1e-15)
    np.testing.assert_allclose(w1, [0.9, -1.2], atol=1e-15)
    w2, config = sgd_momentum(w1, dw, config)
    # v2 = 0.9 * v1 - 0.1 * dw = -0.19 * dw
    np.testing.assert_allclose(config["velocity"], [-0.19, -0.38], atol=1e-15)
    np.testing.assert_allclose(w2, [0.71, -1.58], atol=1e-15)


def test_rmsprop_two_steps_by_hand():
    w = np.array([1.0])
    dw = np.array([2.0])
    config = {"learning_rate": 0.01, "decay_rate": 0.99, "epsilon": 1e-8}
    w1, config = rmsprop(w, dw, config)
    # cache1 = 0.01 * 4 = 0.04, sqrt = 0.2, w1 = 1 - 0.01 * 2 / 0.2 = 0.9
    np.testing.assert_allclose(config["cache"], [0.04], rtol=1e-14)
    np.testing.assert_allclose(w1, [1.0 - 0.02 / (0.2 + 1e-8)], rtol=1e-14)
    w2, config = rmsprop(w1, dw, config)
    cache2 = 0.99 * 0.04 + 0.01 * 4.0  # 0.0796
    np.testing.assert_allclose(config["cache"], [cache2], rtol=1e-14)
    np.testing.assert_allclose(w2, w1 - 0.02 / (math.sqrt(cache2) + 1e-8), rtol=1e-14)


def test_adam_two_steps_by_hand():
    w = np.array([0.5])
    config = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    w1, config = adam(w, np.array([1.0]), config)
    # After bias correction the first step is lr * dw / (|dw| + eps).
    assert config["t"] == 1
    np.testing.assert_allclose(config["m"], [0.1], rtol=1e-14)
    np.testing.assert_allclose(config["v"], [0.001], rtol=1e-12)
    np.testing.assert_allclose(w1, [0.5 - 1e-3 / (1.0 + 1e-8)], rtol=1e-14)

    w2, config = adam(w1, np.array([3.0]), config)
    m2 = 0.9 * 0.1 + 0.1 * 3.0  # 0.39
    v2 = 0.999 * 0.001 + 0.001 * 9.0  # 0.009999
    m_hat = m2 / (1 - 0.9**2)
    v_hat = v2 / (1 - 0.999**2)
    assert config["t"] == 2
    np.testing.assert_allclose(config["m"], [m2], rtol=1e-12)
    np.testing.assert_allclose(config["v"], [v2], rtol=1e-12)
    np.testing.assert_allclose(w2, w1 - 1e-3 * m_hat / (math.sqrt(v_hat) + 1e-8), rtol=1e-12)


@pytest.mark.parametrize("rule, defaults", [
    (sgd, {"learning_rate": 1e-2}),
    (sgd_momentum, {"learning_rate": 1e-2, "momentum": 0.9}),
    (rmsprop, {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}),
    (adam, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}),
])
def test_config_none_gets_classic_defaults(rule, defaults):
    w = np.ones((2, 3))
    _, config = rule(w, np.full((2, 3), 0.5), None)
    for key, value in defaults.items():
        assert config[key] == value
    state_keys = {sgd: [], sgd_momentum: ["velocity"], rmsprop: ["cache"], adam: ["m", "v"]}[rule]
    for key in state_keys:
        assert config[key].shape == w.shape


@pytest.mark.parametrize("rule", list(optim.UPDATE_RULES.values()))
def test_float32_weights_stay_float32(rule):
    rng = np.random.RandomState(0)
    w = rng.randn(4, 5).astype(np.float32)
    # A numpy float64 learning rate (as lr decay may produce) must not promote.
    config = {"learning_rate": np.float64(1e-2)}
    for _ in range(2):
        dw = rng.randn(4, 5).astype(np.float32)
        w, config = rule(w, dw, config)
        assert w.dtype == np.float32
        for value in config.values():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32


@pytest.mark.parametrize("rule", list(optim.UPDATE_RULES.values()))
def test_numpy_and_python_learning_rates_agree_bitwise(rule):
    w = np.linspace(-1, 1, 6, dtype=np.float32)
    dw = np.linspace(2, -3, 6, dtype=np.float32)
    w_python, _ = rule(w, dw, {"learning_rate": 0.003})
    w_numpy, _ = rule(w, dw, {"learning_rate": np.float64(0.003)})
    np.testing.assert_array_equal(w_python, w_numpy)


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"gradient shape \(3,\) does not match weight shape \(2,\)"):
        sgd(np.zeros(2), np.zeros(3))


def _whole_array_adam(w, dw, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """The notebook's Adam over whole arrays, the formula the blocked rule must reproduce bitwise."""
    m = beta1 * m + (1.0 - beta1) * dw
    v = beta2 * v + (1.0 - beta2) * dw * dw
    next_w = w - lr * (m / (1.0 - beta1 ** t)) / (np.sqrt(v / (1.0 - beta2 ** t)) + eps)
    return next_w, m, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_adam_is_bitwise_the_whole_array_formula(dtype):
    rng = np.random.RandomState(1)
    size = 3 * blockwise.BLOCK_SIZE + 17  # several blocks and a ragged last one
    w = rng.randn(size).astype(dtype)
    config, m, v = {}, np.zeros(size, dtype), np.zeros(size, dtype)
    for t in (1, 2, 3):
        dw = rng.randn(size).astype(dtype)
        expected_w, m, v = _whole_array_adam(w, dw, m, v, t)
        w, config = adam(w, dw, config)
        np.testing.assert_array_equal(w, expected_w)
        np.testing.assert_array_equal(config["m"], m)
        np.testing.assert_array_equal(config["v"], v)


@pytest.mark.parametrize("rule, state_key", [(sgd_momentum, "velocity"), (rmsprop, "cache"), (adam, "v")])
def test_state_is_advanced_in_place_and_weights_are_left_alone(rule, state_key):
    rng = np.random.RandomState(2)
    w = rng.randn(blockwise.BLOCK_SIZE + 5).astype(np.float32)
    w_before = w.copy()
    _, config = rule(w, rng.randn(w.size).astype(np.float32), None)
    state = config[state_key]
    next_w, config = rule(w, rng.randn(w.size).astype(np.float32), config)
    assert config[state_key] is state  # the rule's own array, updated where it lies
    assert not np.shares_memory(next_w, w)
    np.testing.assert_array_equal(w, w_before)


@pytest.mark.parametrize("rule", list(optim.UPDATE_RULES.values()))
def test_any_layout_gives_the_same_update(rule):
    rng = np.random.RandomState(3)
    w, dw = rng.randn(40, 30), rng.randn(40, 30)
    expected, expected_config = rule(w, dw, {"learning_rate": 1e-2})
    # Transposed views, and state handed in as float32 Fortran-ordered arrays.
    config = {"learning_rate": 1e-2}
    got, config = rule(np.asfortranarray(w), np.asfortranarray(dw), config)
    np.testing.assert_array_equal(got, expected)
    for key, value in expected_config.items():
        if isinstance(value, np.ndarray):
            foreign = np.asfortranarray(value.astype(np.float32))
            _, again = rule(w, dw, dict(expected_config, **{key: foreign}))
            assert again[key].dtype == w.dtype and again[key].flags.c_contiguous


def test_state_of_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match=r"config\['m'\] has shape \(3,\), but the weights have shape \(2,\)"):
        adam(np.zeros(2), np.zeros(2), {"m": np.zeros(3)})


@pytest.mark.parametrize("rule", list(optim.UPDATE_RULES.values()))
def test_threaded_update_is_bitwise_the_single_threaded_one(monkeypatch, rule):
    rng = np.random.RandomState(4)
    w = rng.randn(5 * blockwise.BLOCK_SIZE + 3).astype(np.float32)
    grads = [rng.randn(w.size).astype(np.float32) for _ in range(3)]

    def run(threaded_min_size):
        monkeypatch.setattr(blockwise, "THREADED_MIN_SIZE", threaded_min_size)
        monkeypatch.setattr(blockwise, "_THREADS", 2)
        weights, config = w, {}
        for dw in grads:
            weights, config = rule(weights, dw, config)
        return weights, config

    threaded, threaded_config = run(1)  # two threads, each over a ragged range of blocks
    single, single_config = run(10 * w.size)
    np.testing.assert_array_equal(threaded, single)
    for key, value in single_config.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(threaded_config[key], value)
