"""The alphabet, A to Z: the course's smallest sequence task, predicting the next letter.

There is nothing to fetch or to hold out: the course trains and scores on the 25
(or 23) letter patterns themselves, asking whether each framing can learn them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from omegaconf import MISSING

from rnnlab.errors import DataSourceError

LETTERS = string.ascii_uppercase
FRAMINGS = ("one_letter", "window_features", "window_timesteps", "stateful")


@dataclass
class Schema:
    """conf/data/alphabet.yaml."""

    PREPARE_KEYS: ClassVar[tuple[str, ...]] = ("seq_length",)
    # Chosen per experiment from the one prepared dataset, so they are no part of its settings.
    SELECT_KEYS: ClassVar[tuple[str, ...]] = ("framing",)

    name: str = MISSING
    source: str = MISSING
    path: Any = MISSING
    seq_length: int = MISSING
    framing: str = MISSING


def check(d: Any, require: Callable[[bool, str, Any, str], None]) -> None:
    require(d.source in ("auto", "sample"), "data.source", d.source, "the alphabet is built in: use sample")
    require(0 < d.seq_length < len(LETTERS), "data.seq_length", d.seq_length, "must be in 1..25")
    require(d.framing in FRAMINGS, "data.framing", d.framing, f"choose one of {', '.join(FRAMINGS)}")


def fetch_to(folder: Path, data: Any, seed: int) -> dict[str, Any]:
    if data.source not in ("auto", "sample"):
        raise DataSourceError(f"data.source={data.source}: the alphabet has no remote or local form; use sample.")
    (folder / "letters.txt").write_text(LETTERS + "\n")
    return {"source": "sample", "synthetic": True, "label": "the alphabet A-Z", "counts": {"letters": len(LETTERS)}}


def read_raw(folder: Path) -> dict[str, Any]:
    return {"letters": (folder / "letters.txt").read_text().strip()}


def prepare(raw: dict[str, Any], data: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every framing of the next-letter task, letters scaled to [0, 1) as the course fed them.

    Each experiment picks its framing with `select` (data.framing); train and test are
    the same patterns, as in the course: the question is which framing can learn them.
    """
    from rnnlab.data.prepare import sliding_windows

    letters = raw["letters"]
    ids = np.arange(len(letters))
    scaled = (ids / len(letters)).astype(np.float32)
    windows, _ = sliding_windows(scaled, data.seq_length)
    arrays = {"x_one_letter": scaled[:-1].reshape(-1, 1, 1), "y_one_letter": ids[1:],
              "x_window_features": windows.reshape(-1, 1, data.seq_length),
              "x_window_timesteps": windows.reshape(-1, data.seq_length, 1),
              "y_window": ids[data.seq_length:]}
    return arrays, {"task": "letters", "n_outputs": len(letters), "letters": letters}


def select(data_cfg: Any, prepared: dict[str, Any]) -> dict[str, Any]:
    """The arrays of one framing (data.framing); a stateful model reads one letter at a time."""
    framing = "one_letter" if data_cfg.framing == "stateful" else data_cfg.framing
    x = prepared[f"x_{framing}"]
    y = prepared["y_one_letter" if framing == "one_letter" else "y_window"]
    meta = {**prepared["meta"], "input_spec": {"kind": "series", "length": x.shape[1], "features": x.shape[2]}}
    return {"x_train": x, "y_train": y, "x_test": x, "y_test": y, "meta": meta}
