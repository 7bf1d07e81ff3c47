"""DVC stage `fetch`: raw data from the configured source into data/raw/<dataset>/.

Writes reviews.npz (ragged token ids as values + offsets, no pickle), word_index.json
and provenance.json (source, sha256 of what was written, counts, time, versions).
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab import io, paths
from rnnlab.cli import run_stage
from rnnlab.data.sources import imdb

log = logging.getLogger(__name__)


def fetch(cfg: Any, out: Path | None = None) -> Path:
    """Fetch `cfg.data` (seeded by `cfg.seed`) and write it atomically; returns the folder."""
    reviews = imdb.load(cfg.data, int(cfg.seed))
    out = out or paths.raw_dir(cfg.data.name)
    with io.atomic_dir(out) as tmp:
        io.write_npz(tmp / "reviews.npz", **_ragged("train", reviews.train), train_labels=reviews.train_labels,
                     **_ragged("test", reviews.test), test_labels=reviews.test_labels)
        io.write_json(tmp / "word_index.json", reviews.word_index)
        provenance = {
            **reviews.provenance,
            "dataset": cfg.data.name,
            "sha256": io.sha256_dir(tmp),
            "counts": {"train": len(reviews.train), "test": len(reviews.test),
                       "train_positive": int(reviews.train_labels.sum()),
                       "test_positive": int(reviews.test_labels.sum()),
                       "vocabulary": len(reviews.word_index)},
            "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions(),
        }
        io.write_json(tmp / "provenance.json", provenance)
    log.info("fetched %s from %s: %d train, %d test reviews -> %s", cfg.data.name, provenance["source"],
             len(reviews.train), len(reviews.test), out)
    return out


def load_raw(folder: Path) -> dict[str, Any]:
    """The fetched reviews back as lists of id lists, with labels, word index and provenance."""
    if not (folder / "provenance.json").is_file():
        raise FileNotFoundError(f"{folder} holds no fetched data; run `dvc repro fetch@{folder.name}` first.")
    with np.load(folder / "reviews.npz", allow_pickle=False) as npz:
        arrays = dict(npz)
    return {
        "train": _unragged(arrays["train_values"], arrays["train_offsets"]),
        "train_labels": arrays["train_labels"],
        "test": _unragged(arrays["test_values"], arrays["test_offsets"]),
        "test_labels": arrays["test_labels"],
        "word_index": io.read_json(folder / "word_index.json"),
        "provenance": io.read_json(folder / "provenance.json"),
    }


def _ragged(prefix: str, sequences: list[list[int]]) -> dict[str, np.ndarray]:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    values = np.fromiter((i for s in sequences for i in s), dtype=np.int32, count=int(lengths.sum()))
    return {f"{prefix}_values": values, f"{prefix}_offsets": np.concatenate([[0], np.cumsum(lengths)])}


def _unragged(values: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"python": platform.python_version(), "keras": version("keras"), "numpy": np.__version__}


if __name__ == "__main__":
    run_stage(fetch, "Fetch a dataset into data/raw/<dataset>/.")
