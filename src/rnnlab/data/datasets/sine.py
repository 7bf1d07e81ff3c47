"""The course's noisy sine wave: x_t = sin(frequency * t) + noise * U(0, 1), t = 0..n-1.

Synthetic by definition: `data.source` may be sample (or auto, which means sample here);
there is nothing to download. The uniform noise has variance noise**2 / 12 (1/3 for the
course's amplitude 2), the floor under any predictor's mean squared error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from omegaconf import MISSING

from rnnlab import io
from rnnlab.errors import DataSourceError


@dataclass
class Schema:
    """conf/data/sine.yaml."""

    PREPARE_KEYS: ClassVar[tuple[str, ...]] = ("window", "framing")

    name: str = MISSING
    source: str = MISSING
    path: Any = MISSING
    n: int = MISSING
    train_size: int = MISSING
    frequency: float = MISSING
    noise: float = MISSING
    window: int = MISSING
    framing: str = MISSING


def check(d: Any, require: Callable[[bool, str, Any, str], None]) -> None:
    require(d.source in ("auto", "sample"), "data.source", d.source,
            "the sine wave is generated, not downloaded: use sample (or auto)")
    require(d.n > 10, "data.n", d.n, "must be > 10")
    require(0 < d.train_size < d.n, "data.train_size", d.train_size, f"must be in (0, data.n={d.n})")
    require(d.noise >= 0, "data.noise", d.noise, "must be >= 0")
    require(0 < d.window < d.train_size, "data.window", d.window, "must be positive and shorter than the training part")
    require(d.framing in ("features", "timesteps"), "data.framing", d.framing, "choose features or timesteps")


def noise_floor(noise: float) -> float:
    """Variance of noise * U(0, 1): no predictor's expected squared error goes below it."""
    return noise**2 / 12.0


def series(n: int, frequency: float, noise: float, seed: int) -> np.ndarray:
    t = np.arange(n)
    return (np.sin(frequency * t) + noise * np.random.default_rng(seed).random(n)).astype(np.float64)


def fetch_to(folder: Path, data: Any, seed: int) -> dict[str, Any]:
    if data.source not in ("auto", "sample"):
        raise DataSourceError(f"data.source={data.source}: the sine wave has no remote or local form; use sample.")
    values = series(data.n, data.frequency, data.noise, seed)
    io.write_npz(folder / "series.npz", values=values)
    return {"source": "sample", "synthetic": True, "label": "synthetic sample",
            "generator": f"sin({data.frequency} t) + {data.noise} U(0, 1)", "seed": seed,
            "counts": {"points": data.n, "train": data.train_size, "test": data.n - data.train_size},
            "noise_floor_mse": noise_floor(data.noise)}


def read_raw(folder: Path) -> dict[str, Any]:
    with np.load(folder / "series.npz", allow_pickle=False) as npz:
        return {"values": npz["values"]}


def prepare(raw: dict[str, Any], data: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Windows of `window` points, the next point as target.

    Test targets are the points after train_size; their first windows reach back
    into the training part, as a forecaster's would.
    """
    from rnnlab.data.prepare import sliding_windows, windows_from

    values = raw["values"]
    split = data.train_size
    x_train, y_train = sliding_windows(values[:split], data.window)
    x_test, y_test = windows_from(values, split, data.window)
    shape = (1, data.window) if data.framing == "features" else (data.window, 1)
    arrays = {"x_train": x_train.reshape(-1, *shape).astype(np.float32), "y_train": y_train.astype(np.float32),
              "x_test": x_test.reshape(-1, *shape).astype(np.float32), "y_test": y_test.astype(np.float32),
              "y_test_raw": y_test.copy(), "previous_test_raw": values[split - 1:-1].copy(),
              "t_test": np.arange(split, len(values)), "series_raw": values}
    extra = {"task": "regression", "input_spec": {"kind": "series", "length": shape[0], "features": shape[1]},
             "time_label": "t"}
    return arrays, extra
