"""Paired significance tests: a model only "beats" its baseline when a test says so.

Both tests compare a model with its baseline on the same test items, so they use the pairing:
what matters is where the two disagree, not each one's own spread. Verdicts are from the
model's point of view: `better`, `tie` or `worse`.

- `mcnemar_exact`: classification, per-item right/wrong.
- `paired_bootstrap`: per-item losses (squared error, absolute error, bits per character);
  with `block_length > 1` a circular moving-block bootstrap, for time series whose errors on
  neighbouring days are correlated (an i.i.d. bootstrap would give too narrow an interval).

Only numpy and scipy are imported: the report and the leaderboard use this without Keras.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import stats

BETTER, TIE, WORSE = "better", "tie", "worse"

# Elements gathered per chunk of resamples: bounds memory (about 12 MB of indices and values)
# whatever the number of items, while each chunk stays large enough to be vectorised.
_CHUNK_ELEMENTS = 1 << 20


def mcnemar_exact(model_correct: np.ndarray, baseline_correct: np.ndarray, *, alpha: float = 0.05) -> dict:
    """Exact McNemar test on paired per-item correctness.

    Only the discordant items carry information: b (model right, baseline wrong) and
    c (model wrong, baseline right). Under "no difference" each discordant item is a fair coin,
    so the two-sided p-value is an exact binomial test of b out of b + c. The verdict is
    `better`/`worse` only when p < alpha.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    model = _as_correctness(model_correct, "model_correct")
    baseline = _as_correctness(baseline_correct, "baseline_correct")
    _check_same_length(model, baseline, "model_correct", "baseline_correct")
    n = model.size
    b = int(np.count_nonzero(model & ~baseline))
    c = int(np.count_nonzero(~model & baseline))
    # No discordant items: the predictions are equally right everywhere, nothing to test.
    p_value = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    p_value = min(p_value, 1.0)
    if p_value < alpha and b != c:
        verdict = BETTER if b > c else WORSE
    else:
        verdict = TIE
    return {
        "test": "exact McNemar",
        "n": n,
        "model_only_correct": b,
        "baseline_only_correct": c,
        "model_accuracy": float(np.count_nonzero(model) / n),
        "baseline_accuracy": float(np.count_nonzero(baseline) / n),
        "difference": (b - c) / n,
        "alpha": alpha,
        "p_value": p_value,
        "verdict": verdict,
    }


def paired_bootstrap(model_loss: np.ndarray, baseline_loss: np.ndarray, *, seed: int = 0,
                     n_resamples: int = 2000, block_length: int = 1, confidence: float = 0.95,
                     lower_is_better: bool = True,
                     statistic: Literal["mean", "rmse"] = "mean") -> dict:
    """Percentile bootstrap interval of the model-minus-baseline difference on paired items.

    `model_loss`/`baseline_loss` are per-item losses on the same test items (squared error,
    absolute error, bits). Items are resampled together for both, which keeps the pairing.

    - statistic="mean": the difference of mean losses, mean(model_loss - baseline_loss) (MAE,
      MSE, bits per character).
    - statistic="rmse": the losses are squared errors and the difference is
      sqrt(mean(model)) - sqrt(mean(baseline)) computed per resample, so the interval is of
      RMSE_model - RMSE_baseline, not of the MSE difference.

    block_length=1 resamples items i.i.d. block_length=L>1 is a circular moving-block
    bootstrap: ceil(n / L) blocks of L consecutive items (wrapping around the end), trimmed to
    n items, so correlation between neighbouring items (days) is kept inside each block.

    The verdict is `better` when the whole interval is on the good side of 0, `worse` when it
    is all on the bad side, else `tie`. The p-value is two-sided: twice the share of resampled
    differences on the other side of 0 from the observed one, with the +1 correction.
    """
    model = _as_losses(model_loss, "model_loss")
    baseline = _as_losses(baseline_loss, "baseline_loss")
    _check_same_length(model, baseline, "model_loss", "baseline_loss")
    n = model.size
    if statistic not in ("mean", "rmse"):
        raise ValueError(f"statistic must be 'mean' or 'rmse', got {statistic!r}")
    if statistic == "rmse" and (np.any(model < 0) or np.any(baseline < 0)):
        raise ValueError("statistic='rmse' needs squared errors, but some losses are negative")
    if isinstance(block_length, bool) or int(block_length) != block_length or block_length < 1:
        raise ValueError(f"block_length must be an integer >= 1, got {block_length}")
    block_length = int(block_length)
    if block_length > n:
        raise ValueError(f"block_length ({block_length}) must not exceed the number of items ({n})")
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples}")
    n_resamples = int(n_resamples)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")

    test = "paired bootstrap" if block_length == 1 else f"paired block bootstrap (L={block_length})"
    result = {"test": test, "n": n, "statistic": statistic, "confidence": confidence,
              "block_length": block_length, "n_resamples": n_resamples, "seed": seed,
              "lower_is_better": lower_is_better}

    if np.array_equal(model, baseline):
        # Every difference is exactly 0: every resample gives 0 as well.
        return {**result, "difference": 0.0, "interval": [0.0, 0.0], "p_value": 1.0, "verdict": TIE}

    rng = np.random.default_rng(seed)
    if statistic == "mean":
        diff = model - baseline
        observed = float(diff.mean())
        sums = _resampled_sums(diff, block_length, n_resamples, rng)
        resampled = sums[0] / n
    else:
        observed = float(np.sqrt(model.mean()) - np.sqrt(baseline.mean()))
        sums = _resampled_sums(np.stack([model, baseline]), block_length, n_resamples, rng)
        # Clip: a sum of non-negative numbers can come out a hair below 0 through cumsum rounding.
        resampled = np.sqrt(np.maximum(sums[0] / n, 0.0)) - np.sqrt(np.maximum(sums[1] / n, 0.0))

    tail = (1.0 - confidence) / 2.0
    lo, hi = (float(v) for v in np.quantile(resampled, [tail, 1.0 - tail]))
    # Resampled differences on the other side of 0 from the observed one.
    other_side = np.count_nonzero(resampled <= 0) if observed >= 0 else np.count_nonzero(resampled >= 0)
    p_value = min(1.0, 2.0 * (other_side + 1) / (n_resamples + 1))

    good_below = lower_is_better
    if hi < 0:
        verdict = BETTER if good_below else WORSE
    elif lo > 0:
        verdict = WORSE if good_below else BETTER
    else:
        verdict = TIE
    return {**result, "difference": observed, "interval": [lo, hi], "p_value": p_value, "verdict": verdict}


def verdict_text(result: dict) -> str:
    """One short line for the report and the leaderboard, from either test's result."""
    test = result["test"]
    verdict = result["verdict"]
    if "interval" not in result:
        return f"{verdict} ({_format_p(result['p_value'])}, {test})"
    difference = result["difference"]
    lo, hi = result["interval"]
    decimals = _decimals(max(abs(difference), abs(lo), abs(hi)))
    level = f"{result['confidence'] * 100:g}%"
    return (f"{verdict}: difference {difference:.{decimals}f}, "
            f"{level} interval [{lo:.{decimals}f}, {hi:.{decimals}f}] ({test})")


def _resampled_sums(values: np.ndarray, block_length: int, n_resamples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Sum of the resampled items for each resample, for each row of `values` (rows, n).

    A circular block bootstrap resample is k = ceil(n / L) blocks, of which the last is cut to
    its first r = n - (k - 1) L items. So its sum is the sum of k - 1 full-block sums plus one
    partial-block sum. Both are precomputed for every start, from a cumulative sum over the
    series wrapped around; a resample then costs k look-ups instead of n. With L = 1 the block
    sums are the items themselves: the ordinary i.i.d. bootstrap.
    """
    values = np.atleast_2d(values)
    n = values.shape[1]
    n_blocks = -(-n // block_length)
    last_length = n - (n_blocks - 1) * block_length
    if block_length == 1:
        full = partial = values
    else:
        wrapped = np.concatenate([values, values[:, :block_length]], axis=1)
        cumulative = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(wrapped, axis=1)], axis=1)
        full = cumulative[:, block_length:block_length + n] - cumulative[:, :n]
        partial = cumulative[:, last_length:last_length + n] - cumulative[:, :n]

    index_type = np.int32 if n < 2**31 else np.int64
    chunk = max(1, _CHUNK_ELEMENTS // n_blocks)
    sums = np.empty((values.shape[0], n_resamples))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        starts = rng.integers(0, n, size=(stop - start, n_blocks), dtype=index_type)
        for row in range(values.shape[0]):
            if last_length == block_length:  # L divides n (always for L = 1): no partial block
                sums[row, start:stop] = full[row][starts].sum(axis=1)
            else:
                sums[row, start:stop] = (full[row][starts[:, :-1]].sum(axis=1)
                                         + partial[row][starts[:, -1]])
    return sums


def _as_correctness(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    _check_vector(array, name)
    if array.dtype != bool:
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{name} must be booleans (right/wrong per item), got dtype {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains non-finite values")
        if not np.all((array == 0) | (array == 1)):
            raise ValueError(f"{name} must be booleans or 0/1 (right/wrong per item)")
        array = array.astype(bool)
    return array


def _as_losses(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    _check_vector(array, name)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name} must be numbers (a loss per item), got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains non-finite values (NaN or infinity)")
    return array


def _check_vector(array: np.ndarray, name: str) -> None:
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per test item), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: no test items to compare")


def _check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.size != b.size:
        raise ValueError(f"{name_a} and {name_b} have different lengths ({a.size} and {b.size}): "
                         "a paired test needs the same test items for both")


def _format_p(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def _decimals(magnitude: float) -> int:
    """3 decimals, or more so that small numbers still show 2 significant digits."""
    if magnitude == 0 or magnitude >= 0.01:
        return 3
    return min(12, max(3, 1 - math.floor(math.log10(magnitude))))
