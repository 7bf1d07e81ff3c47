"""The alphabet, A to Z: the course's smallest sequence task, predicting the next letter.

There is nothing to fetch or to hold out: the course trains and scores on the 25
(or 23) letter patterns themselves, asking whether each framing can learn them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from rnnlab.errors import DataSourceError

LETTERS = string.ascii_uppercase
FRAMINGS = ("one_letter", "window_features", "window_timesteps", "stateful")


@dataclass
class Schema:
    """conf/data/alphabet.yaml."""

    PREPARE_KEYS: ClassVar[tuple[str, ...]] = ("seq_length",)
    # Chosen per experiment from the one prepared dataset, so they are no part of its settings.
    SELECT_KEYS: ClassVar[tuple[str, ...]] = ("framing",)

    name: str = "alphabet"
    source: str = "sample"
    path: Any = None
    seq_length: int = 3
    framing: str = "one_letter"


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
