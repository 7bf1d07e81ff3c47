"""IMDB reviews: the real keras loader, a user's CSV, or the synthetic sample.

Whatever the source, the result has keras' IMDB encoding: each review starts with
1, out-of-vocabulary words are 2, and the word ranked r by frequency is r + 3.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import pandas as pd

from omegaconf import MISSING

from rnnlab import io
from rnnlab.data import download
from rnnlab.data import samples
from rnnlab.errors import DataSourceError

log = logging.getLogger(__name__)

START_ID, OOV_ID, INDEX_FROM = 1, 2, 3
# keras.datasets.imdb downloads from here; used only to tell "offline" from other failures.
REMOTE_HOST = "storage.googleapis.com"
REMOTE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
TOKEN = re.compile(r"[a-z0-9']+")


@dataclass
class Schema:
    """conf/data/imdb.yaml."""

    # Keys that only the prepare stage reads; every other key shapes what fetch writes.
    PREPARE_KEYS: ClassVar[tuple[str, ...]] = ("maxlen", "padding", "truncating", "limit")

    name: str = MISSING
    source: str = MISSING
    path: Optional[str] = MISSING
    test_fraction: float = MISSING
    num_words: int = MISSING
    maxlen: int = MISSING
    padding: str = MISSING
    truncating: str = MISSING
    sample_train: int = MISSING
    sample_test: int = MISSING
    limit: Optional[int] = MISSING


def check(d: Any, require: Callable[[bool, str, Any, str], None]) -> None:
    """Range checks beyond the schema's types; `require(ok, key, value, rule)` raises ConfigError."""
    require(d.num_words > 3, "data.num_words", d.num_words, "must be > 3 (ids 0-2 are reserved)")
    require(d.maxlen > 0, "data.maxlen", d.maxlen, "must be a positive integer")
    require(d.padding in ("pre", "post"), "data.padding", d.padding, "choose pre or post")
    require(d.truncating in ("pre", "post"), "data.truncating", d.truncating, "choose pre or post")
    require(0.0 < d.test_fraction < 1.0, "data.test_fraction", d.test_fraction, "must be in (0, 1)")
    require(d.sample_train > 1 and d.sample_test > 1, "data.sample_train/sample_test",
            (d.sample_train, d.sample_test), "must be > 1")
    require(d.limit is None or d.limit > 1, "data.limit", d.limit, "must be > 1 or null")


def fetch_to(folder: Path, data: Any, seed: int) -> dict[str, Any]:
    """Write reviews.npz (ragged ids as values + offsets) and word_index.json; returns provenance."""
    reviews = load(data, seed)
    io.write_npz(folder / "reviews.npz", **_ragged("train", reviews.train), train_labels=reviews.train_labels,
                 **_ragged("test", reviews.test), test_labels=reviews.test_labels)
    io.write_json(folder / "word_index.json", reviews.word_index)
    counts = {"train": len(reviews.train), "test": len(reviews.test),
              "train_positive": int(reviews.train_labels.sum()), "test_positive": int(reviews.test_labels.sum()),
              "vocabulary": len(reviews.word_index)}
    return {**reviews.provenance, "counts": counts}


def read_raw(folder: Path) -> dict[str, Any]:
    """What fetch_to wrote, back as lists of id arrays with labels and the word index."""
    with np.load(folder / "reviews.npz", allow_pickle=False) as npz:
        arrays = dict(npz)
    return {
        "train": _unragged(arrays["train_values"], arrays["train_offsets"]), "train_labels": arrays["train_labels"],
        "test": _unragged(arrays["test_values"], arrays["test_offsets"]), "test_labels": arrays["test_labels"],
        "word_index": io.read_json(folder / "word_index.json"),
    }


def _ragged(prefix: str, sequences: list[list[int]]) -> dict[str, np.ndarray]:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    values = np.fromiter((i for s in sequences for i in s), dtype=np.int32, count=int(lengths.sum()))
    return {f"{prefix}_values": values, f"{prefix}_offsets": np.concatenate([[0], np.cumsum(lengths)])}


def _unragged(values: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


@dataclass(frozen=True)
class EncodedReviews:
    train: list[list[int]]
    train_labels: np.ndarray
    test: list[list[int]]
    test_labels: np.ndarray
    word_index: dict[str, int]
    provenance: dict[str, Any]


def host_reachable(host: str) -> bool:
    return download.reachable(f"https://{host}/")


def load(data: Any, seed: int) -> EncodedReviews:
    """Reviews from `data.source`: auto | remote | local | sample."""
    if data.source == "sample":
        return from_sample(data, seed)
    if data.source == "local":
        return from_csv(Path(data.path), data.num_words, data.test_fraction, seed)
    if data.source == "auto" and not host_reachable(REMOTE_HOST):
        reason = f"{REMOTE_HOST} is unreachable (no network)"
        log.warning("IMDB: %s; using the SYNTHETIC SAMPLE instead. Set data.source=remote to fail "
                    "instead, or data.source=local data.path=<csv> to use your own reviews.", reason)
        reviews = from_sample(data, seed)
        reviews.provenance.update(requested_source="auto", fallback_reason=reason)
        return reviews
    return from_keras(data.num_words)


def from_keras(num_words: int) -> EncodedReviews:
    """The real loader, keras.datasets.imdb, with its word index for decoding."""
    import keras

    if not host_reachable(REMOTE_HOST):
        raise DataSourceError(
            f"data.source=remote: cannot reach {REMOTE_HOST} to download IMDB. Connect to the "
            "network, or use data.source=sample (offline synthetic reviews) or data.source=local data.path=<csv>."
        )
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(num_words=num_words)
        word_index = keras.datasets.imdb.get_word_index()
    except Exception as exc:  # keras raises a bare Exception for a failed download
        raise DataSourceError(f"downloading IMDB through keras failed: {exc}. Retry, or use data.source=sample.") from exc
    return EncodedReviews(
        train=[list(map(int, x)) for x in x_train], train_labels=np.asarray(y_train, dtype=np.int64),
        test=[list(map(int, x)) for x in x_test], test_labels=np.asarray(y_test, dtype=np.int64),
        word_index={str(k): int(v) for k, v in word_index.items()},
        provenance={"source": "remote", "url": REMOTE_URL, "loader": "keras.datasets.imdb.load_data",
                    "synthetic": False},
    )


def from_sample(data: Any, seed: int) -> EncodedReviews:
    corpus = samples.synthetic_reviews(data.sample_train, data.sample_test, seed)
    word_index = samples.word_index_by_frequency(corpus.train_words)
    return EncodedReviews(
        train=encode(corpus.train_words, word_index, data.num_words), train_labels=corpus.train_labels,
        test=encode(corpus.test_words, word_index, data.num_words), test_labels=corpus.test_labels,
        word_index=word_index,
        provenance={"source": "sample", "synthetic": True, "label": samples.SYNTHETIC_LABEL,
                    "generator": "rnnlab.data.samples.synthetic_reviews", "seed": seed},
    )


def from_csv(path: Path, num_words: int, test_fraction: float, seed: int) -> EncodedReviews:
    """A CSV with columns text,label; the vocabulary comes from the training part only."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"data.path={path}: cannot read it as CSV ({exc}). "
                              "Give a UTF-8 CSV with a header row text,label.") from exc
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise DataSourceError(f"data.path={path}: missing column(s) {sorted(missing)}; "
                              f"found {list(frame.columns)}. The CSV needs columns text,label.")
    if len(frame) < 4:
        raise DataSourceError(f"data.path={path}: {len(frame)} rows; at least 4 are needed to split train and test.")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = frame.index[~labels.isin([0, 1])]
    if len(bad):
        raise DataSourceError(f"data.path={path}: label must be 0 or 1; row {int(bad[0]) + 2} has "
                              f"{frame['label'].iloc[bad[0]]!r}.")
    if frame["text"].isna().any():
        raise DataSourceError(f"data.path={path}: row {int(frame.index[frame['text'].isna()][0]) + 2} has no text.")
    texts = [tokenize(t) for t in frame["text"].astype(str)]
    y = labels.to_numpy(dtype=np.int64)
    stratify = y if np.bincount(y, minlength=2).min() >= 2 else None
    from sklearn.model_selection import train_test_split  # here: every command imports this module

    tr_idx, te_idx = train_test_split(np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=stratify)
    train_words = [texts[i] for i in tr_idx]
    word_index = samples.word_index_by_frequency(train_words)
    return EncodedReviews(
        train=encode(train_words, word_index, num_words), train_labels=y[tr_idx],
        test=encode([texts[i] for i in te_idx], word_index, num_words), test_labels=y[te_idx],
        word_index=word_index,
        provenance={"source": "local", "path": str(path.resolve()), "synthetic": False},
    )


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower().replace("<br />", " "))


def encode(documents: list[list[str]], word_index: dict[str, int], num_words: int) -> list[list[int]]:
    """keras' IMDB encoding: start id, then rank + 3, with words past num_words as OOV."""
    def word_id(word: str) -> int:
        rank = word_index.get(word)
        if rank is None or rank + INDEX_FROM >= num_words:
            return OOV_ID
        return rank + INDEX_FROM

    return [[START_ID] + [word_id(w) for w in doc] for doc in documents]


def decode(ids: np.ndarray | list[int], word_index: dict[str, int]) -> str:
    """Word ids back to text; padding is dropped, the start and OOV ids are shown as markers."""
    words_by_id = {rank + INDEX_FROM: word for word, rank in word_index.items()}
    words_by_id.update({START_ID: "<start>", OOV_ID: "<oov>"})
    return " ".join(words_by_id.get(int(i), "<oov>") for i in ids if int(i) != 0 and int(i) != START_ID)


def prepare(raw: dict[str, Any], data: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Pad or cut every review to `maxlen` ids; the word index travels along for decoding."""
    from rnnlab.data.prepare import pad  # the preprocessing library imports Keras: only when preparing

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


N_EXAMPLES = 6


def examples(data: dict[str, Any], p_model: np.ndarray, p_baseline: np.ndarray) -> list[dict[str, Any]]:
    """The first test reviews of each class, decoded to words, with both predictions."""
    y = data["y_test"]
    chosen = [*np.flatnonzero(y == 1)[: N_EXAMPLES // 2], *np.flatnonzero(y == 0)[: N_EXAMPLES // 2]]
    return [{"text": decode(data["x_test"][i], data["word_index"]), "label": int(y[i]),
             "p_model": round(float(p_model[i]), 4), "p_baseline": round(float(p_baseline[i]), 4)}
            for i in sorted(chosen)]
