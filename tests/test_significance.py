"""The paired tests behind "the model beats its baseline": real numbers, not just shapes."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from rnnlab.significance import mcnemar_exact, paired_bootstrap, verdict_text


def paired_correctness(both: int, model_only: int, baseline_only: int, neither: int,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right/wrong arrays with the given counts of each (model, baseline) pair, shuffled."""
    model = np.array([True] * both + [True] * model_only + [False] * baseline_only + [False] * neither)
    baseline = np.array([True] * both + [False] * model_only + [True] * baseline_only + [False] * neither)
    order = np.random.default_rng(seed).permutation(model.size)
    return model[order], baseline[order]


def ar1(n: int, phi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=n)
    series = np.empty(n)
    series[0] = noise[0] / math.sqrt(1 - phi**2)
    for t in range(1, n):
        series[t] = phi * series[t - 1] + noise[t]
    return series


# McNemar

def test_mcnemar_identical_predictions_is_a_tie_with_p_1():
    correct = np.random.default_rng(0).random(500) < 0.7
    result = mcnemar_exact(correct, correct.copy())
    assert result["p_value"] == 1.0
    assert result["verdict"] == "tie"
    assert result["model_only_correct"] == result["baseline_only_correct"] == 0
    assert result["difference"] == 0.0
    assert result["n"] == 500


def test_mcnemar_clear_win_and_its_mirror():
    model, baseline = paired_correctness(both=300, model_only=100, baseline_only=5, neither=95)
    win = mcnemar_exact(model, baseline)
    assert win["test"] == "exact McNemar"
    assert (win["model_only_correct"], win["baseline_only_correct"]) == (100, 5)
    assert win["n"] == 500
    assert win["difference"] == pytest.approx((100 - 5) / 500)
    assert win["model_accuracy"] - win["baseline_accuracy"] == pytest.approx(win["difference"])
    assert win["p_value"] < 0.01
    assert win["verdict"] == "better"

    loss = mcnemar_exact(baseline, model)
    assert (loss["model_only_correct"], loss["baseline_only_correct"]) == (5, 100)
    assert loss["p_value"] == pytest.approx(win["p_value"])
    assert loss["difference"] == pytest.approx(-win["difference"])
    assert loss["verdict"] == "worse"


def test_mcnemar_exact_known_values():
    # b = 10, c = 2: two-sided exact p = 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096.
    model, baseline = paired_correctness(both=50, model_only=10, baseline_only=2, neither=38)
    result = mcnemar_exact(model, baseline)
    by_hand = 2 * (math.comb(12, 0) + math.comb(12, 1) + math.comb(12, 2)) / 2**12
    assert by_hand == pytest.approx(0.0386, abs=5e-5)
    assert result["p_value"] == pytest.approx(by_hand, rel=1e-9)
    assert result["p_value"] == pytest.approx(2 * stats.binom.cdf(2, 12, 0.5), rel=1e-9)
    assert result["verdict"] == "better"  # p < 0.05
    # The same counts with a stricter level: not significant.
    assert mcnemar_exact(model, baseline, alpha=0.01)["verdict"] == "tie"

    model, baseline = paired_correctness(both=50, model_only=7, baseline_only=7, neither=36)
    balanced = mcnemar_exact(model, baseline)
    assert balanced["p_value"] == 1.0
    assert balanced["verdict"] == "tie"


def test_mcnemar_small_accuracy_gap_on_4000_items_is_a_tie():
    # 1,001 discordant items split 517/484: accuracies 0.5065 and 0.4983.
    model, baseline = paired_correctness(both=1509, model_only=517, baseline_only=484, neither=1490)
    result = mcnemar_exact(model, baseline)
    assert result["n"] == 4000
    assert result["model_accuracy"] == pytest.approx(0.5065)
    assert result["baseline_accuracy"] == pytest.approx(0.49825)
    assert result["difference"] == pytest.approx(0.00825)
    assert result["p_value"] == pytest.approx(stats.binomtest(517, 1001, 0.5).pvalue)
    assert 0.2 < result["p_value"] < 0.4
    assert result["verdict"] == "tie"


def test_mcnemar_accepts_zero_one_integers():
    model, baseline = paired_correctness(both=20, model_only=10, baseline_only=2, neither=8)
    as_bool = mcnemar_exact(model, baseline)
    as_int = mcnemar_exact(model.astype(int), baseline.astype(np.int8))
    assert as_int == as_bool


# Paired bootstrap

def test_bootstrap_all_zero_differences_is_a_tie_on_0():
    loss = np.random.default_rng(0).gamma(2.0, 1.0, size=1000)
    for kwargs in ({}, {"block_length": 10}, {"statistic": "rmse"}):
        result = paired_bootstrap(loss, loss.copy(), **kwargs)
        assert result["difference"] == 0.0
        assert result["interval"] == [0.0, 0.0]
        assert result["p_value"] == 1.0
        assert result["verdict"] == "tie"


def test_bootstrap_clear_shift_is_better_and_its_mirror_worse():
    rng = np.random.default_rng(1)
    baseline = rng.gamma(2.0, 1.0, size=3000)
    model = baseline - 0.3 + rng.normal(0.0, 0.5, size=3000)  # true shift -0.3, noise sd 0.5
    result = paired_bootstrap(model, baseline, seed=0)
    lo, hi = result["interval"]
    assert result["test"] == "paired bootstrap"
    assert (result["n"], result["n_resamples"], result["block_length"], result["confidence"]) == (3000, 2000, 1, 0.95)
    assert result["difference"] == pytest.approx(float(np.mean(model - baseline)))
    assert lo < -0.3 < hi
    assert hi < 0
    assert result["verdict"] == "better"
    # Nothing resampled crosses 0: the smallest p-value 2000 resamples can give.
    assert result["p_value"] == pytest.approx(2 / 2001)

    mirror = paired_bootstrap(baseline, model, seed=0)
    assert mirror["verdict"] == "worse"
    assert mirror["difference"] == pytest.approx(-result["difference"])
    assert mirror["interval"][0] > 0
    # Where higher is better (e.g. accuracy per item), the same numbers read the other way.
    assert paired_bootstrap(model, baseline, seed=0, lower_is_better=False)["verdict"] == "worse"
    assert paired_bootstrap(baseline, model, seed=0, lower_is_better=False)["verdict"] == "better"


def test_bootstrap_interval_width_matches_the_standard_error():
    rng = np.random.default_rng(2)
    n = 5000
    baseline = rng.normal(1.0, 1.0, size=n)
    model = baseline + rng.normal(0.0, 1.0, size=n)  # no real difference
    result = paired_bootstrap(model, baseline, seed=3)
    lo, hi = result["interval"]
    expected_width = 2 * 1.959964 * np.std(model - baseline) / math.sqrt(n)
    assert hi - lo == pytest.approx(expected_width, rel=0.1)
    assert lo < result["difference"] < hi
    assert result["verdict"] == "tie"
    assert result["p_value"] > 0.05


def test_bootstrap_seed_reproducible_and_seed_dependent():
    rng = np.random.default_rng(4)
    baseline = rng.gamma(2.0, 1.0, size=2000)
    model = baseline + rng.normal(-0.05, 0.5, size=2000)
    first = paired_bootstrap(model, baseline, seed=7)
    again = paired_bootstrap(model, baseline, seed=7)
    other = paired_bootstrap(model, baseline, seed=8)
    assert first == again
    assert other["interval"] != first["interval"]
    assert other["difference"] == first["difference"]  # the observed difference needs no resampling
    width = first["interval"][1] - first["interval"][0]
    for a, b in zip(first["interval"], other["interval"]):
        assert abs(a - b) < 0.1 * width  # only slightly different


def test_block_bootstrap_is_wider_on_autocorrelated_differences():
    n = 3000
    baseline = np.abs(np.random.default_rng(5).normal(2.0, 1.0, size=n))
    model = baseline + 0.02 + ar1(n, phi=0.9, seed=6)
    iid = paired_bootstrap(model, baseline, seed=0)
    block = paired_bootstrap(model, baseline, seed=0, block_length=50)
    assert block["test"] == "paired block bootstrap (L=50)"
    assert block["block_length"] == 50
    assert block["difference"] == iid["difference"]
    iid_width = iid["interval"][1] - iid["interval"][0]
    block_width = block["interval"][1] - block["interval"][0]
    # The long-run standard error of an AR(1) with phi = 0.9 is sqrt(1.9 / 0.1) = 4.4 times the i.i.d. one.
    assert block_width > 2.5 * iid_width


def test_block_bootstrap_wraps_around_the_end():
    # Every circular block of 2 items of +1, -1, +1, -1, ... sums to 0, including the one that
    # starts at the last item and wraps to the first: every resample has mean 0 exactly.
    baseline = np.full(1000, 5.0)
    model = baseline + np.tile([1.0, -1.0], 500)
    result = paired_bootstrap(model, baseline, block_length=2, n_resamples=500)
    assert result["interval"] == [0.0, 0.0]
    assert result["p_value"] == 1.0
    assert result["verdict"] == "tie"
    # One block as long as the series (wrapped): every resample is the series itself.
    rng = np.random.default_rng(9)
    model, baseline = rng.normal(size=101), rng.normal(size=101)
    whole = paired_bootstrap(model, baseline, block_length=101, n_resamples=200)
    assert whole["interval"] == pytest.approx([np.mean(model - baseline)] * 2, abs=1e-12)


def test_block_bootstrap_with_a_trimmed_last_block():
    # 1003 items in blocks of 10: the last of the 101 blocks is cut to 3 items.
    rng = np.random.default_rng(10)
    baseline = rng.gamma(2.0, 1.0, size=1003)
    model = baseline + 0.5 + ar1(1003, phi=0.5, seed=11)
    result = paired_bootstrap(model, baseline, block_length=10, seed=1)
    lo, hi = result["interval"]
    assert lo < result["difference"] < hi
    assert lo < 0.5 < hi
    assert result["verdict"] == "worse"


def test_rmse_statistic_is_the_difference_of_rmses():
    rng = np.random.default_rng(12)
    n = 4000
    target = rng.normal(size=n)
    model_sq = (target - (target + rng.normal(0.0, 0.8, size=n))) ** 2
    baseline_sq = (target - (target + rng.normal(0.0, 1.0, size=n))) ** 2
    rmse_model, rmse_baseline = math.sqrt(model_sq.mean()), math.sqrt(baseline_sq.mean())
    result = paired_bootstrap(model_sq, baseline_sq, statistic="rmse", seed=0)
    lo, hi = result["interval"]
    assert result["statistic"] == "rmse"
    assert result["difference"] == pytest.approx(rmse_model - rmse_baseline)
    assert (lo + hi) / 2 == pytest.approx(rmse_model - rmse_baseline, abs=0.1 * (hi - lo))
    assert lo < -0.2 < hi  # true RMSEs 0.8 and 1.0
    assert result["verdict"] == "better"
    # The mean statistic on the same squared errors is the MSE difference: a different number.
    mse = paired_bootstrap(model_sq, baseline_sq, seed=0)
    assert mse["difference"] == pytest.approx(model_sq.mean() - baseline_sq.mean())
    assert mse["difference"] < result["difference"] - 0.1
    # With blocks too.
    blocked = paired_bootstrap(model_sq, baseline_sq, statistic="rmse", block_length=7, seed=0)
    assert blocked["interval"][0] < rmse_model - rmse_baseline < blocked["interval"][1]


def test_bootstrap_confidence_level_widens_the_interval():
    rng = np.random.default_rng(13)
    baseline = rng.normal(size=2000)
    model = baseline + rng.normal(0.0, 1.0, size=2000)
    narrow = paired_bootstrap(model, baseline, confidence=0.8)
    wide = paired_bootstrap(model, baseline, confidence=0.99)
    assert wide["interval"][0] < narrow["interval"][0] < narrow["interval"][1] < wide["interval"][1]


def test_bootstrap_on_150k_items_stays_vectorised():
    # The size of a character-level test set: must not take a Python step per item.
    rng = np.random.default_rng(14)
    baseline = rng.gamma(2.0, 1.0, size=150_000)
    model = baseline + rng.normal(-0.01, 0.5, size=150_000)
    result = paired_bootstrap(model, baseline, n_resamples=100)
    assert result["n"] == 150_000
    assert result["interval"][0] < result["difference"] < result["interval"][1]


# Text

def test_verdict_text():
    model, baseline = paired_correctness(both=50, model_only=10, baseline_only=2, neither=38)
    assert verdict_text(mcnemar_exact(model, baseline)) == "better (p = 0.039, exact McNemar)"
    model, baseline = paired_correctness(both=300, model_only=100, baseline_only=5, neither=95)
    assert verdict_text(mcnemar_exact(baseline, model)) == "worse (p < 0.001, exact McNemar)"
    result = {"test": "paired bootstrap", "verdict": "tie", "difference": -0.0123, "interval": [-0.0312, 0.0061],
              "confidence": 0.95, "p_value": 0.2}
    assert verdict_text(result) == "tie: difference -0.012, 95% interval [-0.031, 0.006] (paired bootstrap)"
    small = {**result, "test": "paired block bootstrap (L=20)", "difference": -0.00123, "interval": [-0.0031, 0.0006]}
    assert verdict_text(small) == "tie: difference -0.0012, 95% interval [-0.0031, 0.0006] (paired block bootstrap (L=20))"
    loss = np.zeros(10)
    assert verdict_text(paired_bootstrap(loss, loss)) == "tie: difference 0.000, 95% interval [0.000, 0.000] (paired bootstrap)"


# Bad inputs

@pytest.mark.parametrize(("model", "baseline", "message"), [
    (np.ones(5, bool), np.ones(4, bool), "different lengths"),
    (np.ones(0, bool), np.ones(0, bool), "empty"),
    (np.ones((2, 3), bool), np.ones((2, 3), bool), "one-dimensional"),
    (np.array([0, 1, 2]), np.array([0, 1, 1]), "0/1"),
    (np.array([1.0, np.nan]), np.array([1.0, 0.0]), "non-finite"),
    (np.array(["a", "b"]), np.array(["a", "b"]), "booleans"),
])
def test_mcnemar_bad_inputs(model, baseline, message):
    with pytest.raises(ValueError, match=message):
        mcnemar_exact(model, baseline)


@pytest.mark.parametrize(("model", "baseline", "kwargs", "message"), [
    (np.ones(5), np.ones(4), {}, "different lengths"),
    (np.ones(0), np.ones(0), {}, "empty"),
    (np.ones((2, 3)), np.ones((2, 3)), {}, "one-dimensional"),
    (np.array([1.0, np.nan, 2.0]), np.ones(3), {}, "model_loss contains non-finite"),
    (np.ones(3), np.array([1.0, np.inf, 2.0]), {}, "baseline_loss contains non-finite"),
    (np.ones(3), np.zeros(3), {"block_length": 0}, "block_length must be an integer >= 1"),
    (np.ones(3), np.zeros(3), {"block_length": 2.5}, "block_length must be an integer >= 1"),
    (np.ones(3), np.zeros(3), {"block_length": 4}, "must not exceed the number of items"),
    (np.ones(3), np.zeros(3), {"n_resamples": 0}, "n_resamples"),
    (np.ones(3), np.zeros(3), {"confidence": 1.0}, "confidence"),
    (np.ones(3), np.zeros(3), {"statistic": "median"}, "statistic"),
    (np.array([1.0, -1.0]), np.ones(2), {"statistic": "rmse"}, "squared errors"),
])
def test_bootstrap_bad_inputs(model, baseline, kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(model, baseline, **kwargs)


def test_mcnemar_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        mcnemar_exact(np.ones(3, bool), np.ones(3, bool), alpha=0.0)


def test_import_needs_no_keras():
    code = ("import sys, rnnlab.significance; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'jax', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
