"""Preprocessing, and the DVC stage `prepare`: fetched data into model-ready arrays
in data/prepared/<dataset>/.

arrays.npz holds the arrays (x_train, y_train, x_test, y_test, ...; no pickle);
meta.json records the shapes, the settings, the sha256 of raw and prepared data,
and the raw provenance.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
from filelock import FileLock
from omegaconf import OmegaConf

from rnnlab import io, paths
from rnnlab.cli import run_stage
from rnnlab.config import data_part
from rnnlab.data.fetch import fetch, load_raw

log = logging.getLogger(__name__)


def pad(sequences: list, maxlen: int, padding: str = "pre", truncating: str = "pre") -> np.ndarray:
    """Pad with 0 or cut every sequence to `maxlen` ids (keras.utils.pad_sequences)."""
    return keras.utils.pad_sequences(sequences, maxlen=maxlen, padding=padding, truncating=truncating,
                                     dtype="int32", value=0)


def prepare_reviews(raw: dict[str, Any], data: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """IMDB: pad or cut every review to `maxlen` ids; the word index travels along for decoding."""
    limit = data.limit or None
    arrays = {
        "x_train": pad(raw["train"][:limit], data.maxlen, data.padding, data.truncating),
        "y_train": np.asarray(raw["train_labels"][:limit], dtype=np.int64),
        "x_test": pad(raw["test"][:limit], data.maxlen, data.padding, data.truncating),
        "y_test": np.asarray(raw["test_labels"][:limit], dtype=np.int64),
    }
    extra = {"task": "binary", "input_spec": {"kind": "tokens", "length": data.maxlen, "vocab": data.num_words},
             "positive_share": {"train": float(arrays["y_train"].mean()), "test": float(arrays["y_test"].mean())},
             "word_index": raw["word_index"]}
    return arrays, extra


# How each dataset becomes arrays: (raw, data config) -> (arrays for arrays.npz, extra meta).
# The extra meta names the `task` and the model's `input_spec` (see models/keras_models.py).
PREPARERS = {"imdb": prepare_reviews}


def prepare(cfg: Any, raw_folder: Path | None = None, out: Path | None = None) -> Path:
    """Turn the fetched data of `cfg.data` into arrays, written atomically; returns the folder."""
    data = cfg.data
    raw = load_raw(raw_folder or paths.raw_dir(data.name))
    arrays, extra = PREPARERS[data.name](raw, data)
    out = out or paths.prepared_dir(data.name)
    with io.atomic_dir(out) as tmp:
        io.write_npz(tmp / "arrays.npz", **arrays)
        if "word_index" in extra:
            io.write_json(tmp / "word_index.json", extra.pop("word_index"))
        meta = {
            "dataset": data.name,
            "config_sha256": config_digest(cfg),
            "settings": OmegaConf.to_container(data),
            "shapes": {name: list(array.shape) for name, array in arrays.items()},
            **extra,
            "raw_sha256": raw["provenance"]["sha256"],
            "sha256": io.sha256_file(tmp / "arrays.npz"),
            "provenance": raw["provenance"],
        }
        io.write_json(tmp / "meta.json", meta)
    log.info("prepared %s: %s -> %s", data.name, meta["shapes"], out)
    return out


def config_digest(cfg: Any) -> str:
    """Identifies the data settings, so prepared data is reused only for the same ones."""
    return hashlib.sha256(json.dumps(data_part(cfg), sort_keys=True).encode()).hexdigest()


def ensure_prepared(cfg: Any) -> dict[str, Any]:
    """Prepared data for `cfg`, made once and reused (a Hydra run, every job of a sweep).

    The pipeline's data/prepared/<dataset> is used when its settings match; otherwise
    the data is built under data/cache/<dataset>-<settings digest>/, leaving the
    outputs that DVC tracks untouched. A lock keeps parallel jobs from building it twice.
    """
    digest = config_digest(cfg)
    pipeline = paths.prepared_dir(cfg.data.name)
    if _matches(pipeline, digest):
        return load_prepared(pipeline)
    cache = paths.ROOT / "data" / "cache" / f"{cfg.data.name}-{digest[:12]}"
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".lock")):
        if not _matches(cache / "prepared", digest):
            fetch(cfg, out=cache / "raw")
            prepare(cfg, raw_folder=cache / "raw", out=cache / "prepared")
    return load_prepared(cache / "prepared")


def _matches(folder: Path, digest: str) -> bool:
    meta = folder / "meta.json"
    return meta.is_file() and io.read_json(meta)["config_sha256"] == digest


def load_prepared(folder: Path) -> dict[str, Any]:
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"{folder} holds no prepared data; run `dvc repro prepare@{folder.name}` first.")
    with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays["meta"] = io.read_json(folder / "meta.json")
    if (folder / "word_index.json").is_file():
        arrays["word_index"] = io.read_json(folder / "word_index.json")
    return arrays


if __name__ == "__main__":
    run_stage(prepare, "Prepare a fetched dataset into data/prepared/<dataset>/.")
