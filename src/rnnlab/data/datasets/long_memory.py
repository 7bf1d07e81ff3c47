"""A long-memory task for the gradient study: only the first token decides the label.

Each sequence is `length` symbols from an alphabet of `symbols`, one-hot. The first symbol is
0 or 1 and is the label; every later one is drawn from the other `symbols - 2`, so it carries
no information. A model is right more often than chance only if what it saw at t = 1 survives
`length - 1` steps to the output, and it learns that only if the loss's gradient survives the
way back (Bengio et al., 1994; Hochreiter and Schmidhuber, 1997).

Synthetic by definition: `data.source` may be sample (or auto, which means sample here).
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
    """conf/data/long_memory.yaml."""

    # Every key shapes what fetch writes; prepare only one-hot encodes.
    PREPARE_KEYS: ClassVar[tuple[str, ...]] = ()

    name: str = MISSING
    source: str = MISSING
    path: Any = MISSING
    length: int = MISSING
    symbols: int = MISSING
    n_train: int = MISSING
    n_test: int = MISSING


def check(d: Any, require: Callable[[bool, str, Any, str], None]) -> None:
    require(d.source in ("auto", "sample"), "data.source", d.source,
            "the long-memory sequences are generated, not downloaded: use sample (or auto)")
    require(d.length >= 2, "data.length", d.length, "must be >= 2")
    require(d.symbols >= 3, "data.symbols", d.symbols, "must be >= 3 (two label symbols and at least one filler)")
    require(d.n_train >= 2, "data.n_train", d.n_train, "must be >= 2")
    require(d.n_test >= 2, "data.n_test", d.n_test, "must be >= 2")


def sequences(n: int, length: int, symbols: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(ids (n, length), labels (n,)): balanced labels, the label as the first symbol, filler after it."""
    labels = rng.permutation(np.arange(n) % 2)
    ids = rng.integers(2, symbols, size=(n, length))
    ids[:, 0] = labels
    return ids, labels


def fetch_to(folder: Path, data: Any, seed: int) -> dict[str, Any]:
    if data.source not in ("auto", "sample"):
        raise DataSourceError(f"data.source={data.source}: the long-memory task has no remote or local form; "
                              "use sample.")
    rng = np.random.default_rng(seed)
    ids_train, y_train = sequences(data.n_train, data.length, data.symbols, rng)
    ids_test, y_test = sequences(data.n_test, data.length, data.symbols, rng)
    io.write_npz(folder / "sequences.npz", ids_train=ids_train, y_train=y_train, ids_test=ids_test, y_test=y_test)
    return {"source": "sample", "synthetic": True, "label": "synthetic sample",
            "generator": f"first of {data.length} symbols (of {data.symbols}) is the label, the rest filler",
            "seed": seed, "counts": {"train": data.n_train, "test": data.n_test}}


def read_raw(folder: Path) -> dict[str, Any]:
    with np.load(folder / "sequences.npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def prepare(raw: dict[str, Any], data: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The sequences one-hot, (n, length, symbols)."""
    eye = np.eye(data.symbols, dtype=np.float32)
    arrays = {"x_train": eye[raw["ids_train"]], "y_train": raw["y_train"],
              "x_test": eye[raw["ids_test"]], "y_test": raw["y_test"]}
    extra = {"task": "binary", "input_spec": {"kind": "onehot", "length": data.length, "features": data.symbols}}
    return arrays, extra
