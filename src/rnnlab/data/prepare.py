"""Preprocessing, and the DVC stage `prepare`: fetched data into model-ready arrays
in data/prepared/<dataset>/.

The library part (first half) is what every experiment uses to turn series and text
into model inputs without Python loops over samples and without materialising
one-hot tensors: `pad` for reviews, `sliding_windows` / `windows_from` for series,
`chronological_split` / `split_at_date` for splits in time order, `fit_scaler` and
its JSON form, `CharVocabulary`, and `OneHotWindows` batches for character models.
Reviews need no wrapper for a stratified split: use
sklearn.model_selection.train_test_split(x, y, stratify=y, random_state=seed).

arrays.npz holds the arrays (x_train, y_train, x_test, y_test, ...; no pickle);
meta.json records the shapes, the settings, the sha256 of raw and prepared data,
and the raw provenance. Scalers and vocabularies are stored as JSON (their
to_dict forms), never pickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from omegaconf import OmegaConf
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from rnnlab import io, paths
from rnnlab import cli
from rnnlab.config import data_part, load_resolved
from rnnlab.data.datasets import DATASETS
from rnnlab.data.fetch import load_raw
from rnnlab.errors import DataSourceError

log = logging.getLogger(__name__)


def pad(sequences: list, maxlen: int, padding: str = "pre", truncating: str = "pre") -> np.ndarray:
    """Pad with 0 or cut every sequence to `maxlen` ids (keras.utils.pad_sequences)."""
    return keras.utils.pad_sequences(sequences, maxlen=maxlen, padding=padding, truncating=truncating,
                                     dtype="int32", value=0)


def sliding_windows(series: np.ndarray, window: int, horizon: int = 1,
                    step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every input window of `series` with its target, as views (no copy, no loop).

    Time runs along axis 0; any further axes are features. Window k starts at row
    s = k * step and covers rows s .. s + window - 1; its target is row
    s + window - 1 + horizon, i.e. `horizon` steps after the window's last row
    (horizon=1: the next row). Only windows whose target exists are returned, so
    there are (len(series) - window - horizon) // step + 1 of them.

    Returns (inputs, targets) of shapes (windows, window, *features) and
    (windows, *features). inputs is a read-only view and targets a view of
    `series`: copy them before changing them in place.

    A series shorter than window + horizon has no window at all; that raises
    ValueError rather than returning empty arrays, which would only fail later
    inside model.fit with a less clear message.
    """
    series = np.asarray(series)
    if min(window, horizon, step) < 1:
        raise ValueError(f"window, horizon and step must be at least 1, got {window}, {horizon}, {step}")
    if series.ndim == 0 or len(series) < window + horizon:
        raise ValueError(f"a series of {len(series) if series.ndim else 0} steps has no window of {window} "
                         f"steps with a target {horizon} step(s) later; it needs at least {window + horizon}")
    # Windows may only start where their target still lies inside the series.
    inputs = sliding_window_view(series[:len(series) - horizon], window, axis=0)[::step]
    # sliding_window_view puts the window axis last; models want (samples, time, features).
    inputs = np.moveaxis(inputs, -1, 1)
    targets = series[window + horizon - 1::step]
    return inputs, targets


def windows_from(series: np.ndarray, first_target: int, window: int, horizon: int = 1,
                 step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The windows whose targets are rows first_target, first_target + step, ... of `series`.

    This is how test windows are built after a chronological split: `series` is the
    train part followed by the test part and first_target = len(train part), so every
    target is a test row while the inputs of the first windows reach back into the
    last training rows (the course's stock split: 40-day windows, targets in
    January 2020, inputs from November and December 2019 for the first ones).
    """
    start = first_target - (window + horizon - 1)
    if start < 0:
        raise ValueError(f"a target at row {first_target} needs {window + horizon - 1} rows before it "
                         f"(window {window}, horizon {horizon})")
    return sliding_windows(series[start:], window, horizon, step)


def chronological_split(n: int, fractions: Sequence[float] | None = None, *,
                        boundaries: Sequence[int] | None = None) -> tuple[slice, slice, slice]:
    """Train, validation and test slices of n rows (or characters), in this order, unshuffled.

    Give either fractions=(train, validation, test) summing to 1, cut at the rounded
    row counts, or boundaries=(validation_start, test_start). Shuffling before a
    split would let a model see the future of the series or text it is tested on.
    A fraction of 0 gives an empty part (text models often have no validation).
    """
    if (fractions is None) == (boundaries is None):
        raise ValueError("give either fractions or boundaries")
    if fractions is not None:
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
            raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
        boundaries = (round(n * fractions[0]), round(n * (fractions[0] + fractions[1])))
    if len(boundaries) != 2 or not 0 <= boundaries[0] <= boundaries[1] <= n:
        raise ValueError(f"boundaries must be (validation_start, test_start) with "
                         f"0 <= validation_start <= test_start <= {n}, got {boundaries}")
    val_start, test_start = boundaries
    return slice(0, val_start), slice(val_start, test_start), slice(test_start, n)


def split_at_date(frame: pd.DataFrame, test_start: str | pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows dated before `test_start` (train) and from `test_start` on (test).

    Test windows whose inputs reach back into the train part come from
    windows_from(np.concatenate([train, test]), len(train), window).
    """
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise TypeError(f"split_at_date needs a DatetimeIndex, got {type(frame.index).__name__}")
    # Unsorted dates would put later rows in train; refuse instead of sorting silently.
    if not frame.index.is_monotonic_increasing:
        raise ValueError("the dates are not in increasing order; sort the frame first")
    cut = frame.index.searchsorted(pd.Timestamp(test_start), side="left")
    return frame.iloc[:cut], frame.iloc[cut:]


SCALERS = {"minmax": MinMaxScaler, "standard": StandardScaler}
# What a fitted scaler's transform and inverse_transform read, per kind.
_FITTED = {"minmax": ("min_", "scale_", "data_min_", "data_max_", "data_range_"),
           "standard": ("mean_", "var_", "scale_")}


def fit_scaler(values_train: np.ndarray, kind: str = "minmax") -> MinMaxScaler | StandardScaler:
    """A scaler fitted on the training part only, so nothing about the test part leaks
    into training; test values may then fall outside [0, 1] with "minmax".

    values_train is (rows, features); a single series is one column, values[:, None].
    It is taken as a plain array so the scaler needs no column names later.
    """
    if kind not in SCALERS:
        raise ValueError(f"unknown scaler kind {kind!r}; choose one of {sorted(SCALERS)}")
    return SCALERS[kind]().fit(np.asarray(values_train))


def scaler_to_dict(scaler: MinMaxScaler | StandardScaler) -> dict[str, Any]:
    """A JSON-serialisable form that scaler_from_dict turns back into an identical scaler.

    Arrays keep their dtype, and JSON floats round-trip exactly (Python writes the
    shortest repr that reads back to the same float), so transform and
    inverse_transform give bit-identical results after the round trip.
    """
    kinds = {cls: kind for kind, cls in SCALERS.items()}
    if type(scaler) not in kinds:
        raise TypeError(f"cannot serialise a {type(scaler).__name__}; kinds: {sorted(SCALERS)}")
    kind = kinds[type(scaler)]
    fitted = {name: _array_to_json(getattr(scaler, name)) for name in _FITTED[kind]}
    return {"kind": kind, "params": scaler.get_params(), "fitted": fitted,
            "n_features_in": int(scaler.n_features_in_),
            "n_samples_seen": _array_to_json(scaler.n_samples_seen_)}


def scaler_from_dict(state: dict[str, Any]) -> MinMaxScaler | StandardScaler:
    """The scaler that scaler_to_dict described."""
    params = dict(state["params"])
    if "feature_range" in params:
        params["feature_range"] = tuple(params["feature_range"])  # JSON made the tuple a list
    scaler = SCALERS[state["kind"]](**params)
    for name, value in state["fitted"].items():
        setattr(scaler, name, _array_from_json(value))
    scaler.n_features_in_ = state["n_features_in"]
    scaler.n_samples_seen_ = _array_from_json(state["n_samples_seen"])
    return scaler


def _array_to_json(value: Any) -> Any:
    if value is None or isinstance(value, int):
        return value
    array = np.asarray(value)
    return {"dtype": array.dtype.str, "shape": list(array.shape), "values": array.ravel().tolist()}


def _array_from_json(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    array = np.asarray(value["values"], dtype=value["dtype"]).reshape(value["shape"])
    return array[()] if array.ndim == 0 else array  # a scalar stays a numpy scalar


@dataclass(frozen=True)
class CharVocabulary:
    """Characters of the training text and their ids.

    Id 0 is reserved for characters the training text lacks; chars[i] has id i + 1
    in sorted order, so the same text always gives the same ids (the course
    enumerated a set, whose order changes from run to run). Encoding maps an
    unknown character to 0 and logs how many there were, rather than failing: a
    test part may hold a few characters the training part never used (the
    Gutenberg footer of Alice has some), and a model that never saw id 0 as a
    target simply never predicts it. Decoding writes id 0 as U+FFFD, the Unicode
    replacement character.
    """

    chars: str

    UNKNOWN_ID: ClassVar[int] = 0
    UNKNOWN_CHAR: ClassVar[str] = "\ufffd"

    def __post_init__(self) -> None:
        if list(self.chars) != sorted(set(self.chars)):
            raise ValueError("chars must be distinct and sorted; build the vocabulary with from_text")

    @classmethod
    def from_text(cls, text: str) -> CharVocabulary:
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        """Number of ids, the unknown one included: the width of a one-hot row."""
        return len(self.chars) + 1

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned type holding every id: uint8 up to 255 characters."""
        return np.min_scalar_type(self.size - 1)

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text`, one per character, as `dtype`."""
        codes = _code_points(text)
        known = _code_points(self.chars)
        # A table indexed by code point; every code point above the largest known one is
        # clipped to the last slot, which like every gap holds the unknown id.
        table = np.full(int(known.max(initial=0)) + 2, self.UNKNOWN_ID, dtype=self.dtype)
        table[known] = np.arange(1, self.size)
        ids = table[np.minimum(codes, len(table) - 1)]
        unknown = int(np.count_nonzero(ids == self.UNKNOWN_ID))
        if unknown:
            log.warning("%d of %d characters are not in the vocabulary; encoded as id %d",
                        unknown, len(ids), self.UNKNOWN_ID)
        return ids

    def decode(self, ids: np.ndarray) -> str:
        """The text that `ids` encode; the unknown id becomes U+FFFD."""
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must lie in [0, {self.size}), got {ids.min()} .. {ids.max()}")
        return _code_points(self.UNKNOWN_CHAR + self.chars)[ids].tobytes().decode("utf-32-le")

    def to_dict(self) -> dict[str, Any]:
        return {"chars": self.chars, "unknown_id": self.UNKNOWN_ID, "unknown_char": self.UNKNOWN_CHAR}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> CharVocabulary:
        # Ids written under another unknown-id policy would be read shifted by one.
        if (state["unknown_id"], state["unknown_char"]) != (cls.UNKNOWN_ID, cls.UNKNOWN_CHAR):
            raise ValueError(f"vocabulary uses unknown id {state['unknown_id']!r}; this code uses {cls.UNKNOWN_ID}")
        return cls(state["chars"])


def _code_points(text: str) -> np.ndarray:
    """The Unicode code points of `text` without a Python loop: UTF-32 spends 4 bytes on each."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _usable(count: int, batch_size: int, multiple_of: int) -> int:
    """How many of `count` items the batches hold: all, but the last batch cut to a multiple of
    `multiple_of` (the devices that split each batch: every one gets the same number of rows).
    The cut items are others at every epoch where the order is reshuffled."""
    return count - (count % batch_size) % multiple_of


class _OrderedBatches(keras.utils.PyDataset):
    """Batches of `batch_size` items taken in `self.order`, which on_epoch_end permutes with
    `self._rng` when `self.shuffle`: what ArrayBatches and OneHotWindows share. Set
    `multiple_of` to N to make every batch split evenly across N devices."""

    order: np.ndarray
    batch_size: int
    shuffle: bool
    _rng: np.random.Generator
    multiple_of: int = 1

    def __len__(self) -> int:
        return -(-_usable(len(self.order), self.batch_size, self.multiple_of) // self.batch_size)

    def rows(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        end = min((index + 1) * self.batch_size, _usable(len(self.order), self.batch_size, self.multiple_of))
        return self.order[index * self.batch_size:end]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._rng.shuffle(self.order)


class OneHotWindows(_OrderedBatches):
    """Batches of one-hot character windows and the ids of the characters that follow.

    Window k starts at id s = k * step: x[k] is the one-hot form of ids[s : s + window]
    (float32, shape (window, vocab_size)) and y[k] = ids[s + window], the next
    character's id (int32). Sparse targets go with sparse_categorical_crossentropy;
    one-hot targets would add batch x vocab floats per batch and say nothing more.

    Only one batch is ever one-hot: memory is the ids, a view of their windows and
    the order of the windows (8 bytes per window), never windows x window x vocab.

    With shuffle=True the windows are permuted across batches by a numpy Generator
    seeded with `seed`, and again at every epoch end, so the sequence of epochs is
    the same for the same seed. Pass shuffle=False to model.fit: its own shuffling
    reorders whole batches with Python's global random module, outside this seed.
    The last batch holds the remaining windows and may be smaller.

    It returns numpy arrays only, so it works on every Keras backend (TensorFlow
    here, JAX on the GPU machines). Extra keyword arguments (workers, ...) go to
    keras.utils.PyDataset.
    """

    def __init__(self, ids: np.ndarray, window: int, vocab_size: int, batch_size: int = 128,
                 step: int = 1, shuffle: bool = False, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be a 1-D integer array, got {ids.dtype} of shape {ids.shape}")
        # Checked once here, so that a bad id fails now and not in the middle of an epoch.
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ValueError(f"ids must lie in [0, {vocab_size}), got {ids.min()} .. {ids.max()}")
        self.inputs, self.targets = sliding_windows(ids, window, horizon=1, step=step)
        self.vocab_size, self.batch_size, self.shuffle = vocab_size, batch_size, shuffle
        self._rng = np.random.default_rng(seed)
        count = len(self.targets)
        self.order = self._rng.permutation(count) if shuffle else np.arange(count)
        # Flat offset of each (sample, time) row of a batch: one np.put sets all its ones.
        self._row_offsets = np.arange(batch_size * window) * vocab_size

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.rows(index)
        windows = self.inputs[rows]
        x = np.zeros((*windows.shape, self.vocab_size), dtype=np.float32)
        np.put(x, self._row_offsets[:windows.size] + windows.ravel(), 1.0)
        return x, self.targets[rows].astype(np.int32)


class ArrayBatches(_OrderedBatches):
    """Batches of arrays (x, y), reshuffled at every epoch end by a numpy Generator seeded with
    `seed`: the order of epoch k depends on the seed and k alone, so a run resumed at epoch k
    (rnnlab.checkpoints) sees the batches an uninterrupted run would (`skip_epochs`). Keras'
    own shuffling of arrays draws from TensorFlow's global random state, which a restarted
    process cannot bring back to where it was. shuffle=False keeps the order."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = True, seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.shuffle = x, y, int(batch_size), shuffle
        self._rng = np.random.default_rng(seed)
        self.order = self._rng.permutation(len(x)) if shuffle else np.arange(len(x))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.rows(index)
        return self.x[rows], self.y[rows]


def skip_epochs(batches: Any, epochs: int) -> Any:
    """Bring a PyDataset's shuffling to where it stands after `epochs` epochs (a resumed run)."""
    for _ in range(epochs):
        batches.on_epoch_end()
    return batches


class SequenceChunks(keras.utils.PyDataset):
    """Batches of consecutive chunks of ids and the same chunks one character on: the input and
    targets of a character language model that predicts at every position (task char_lm).

    Chunk k covers ids[o + k L : o + (k + 1) L] (L = seq_len) and its targets are the ids one
    later. With shuffle=True the offset o is drawn anew in [0, L) at every epoch end and the
    chunks are permuted, both by a Generator seeded with `seed`: each epoch sees other cuts
    of the text, in another order. The number of chunks, (len(ids) - 1 - (L - 1)) // L, is the
    same for every offset, so every epoch has the same number of batches.
    """

    def __init__(self, ids: np.ndarray, seq_len: int, batch_size: int = 64, shuffle: bool = False,
                 seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ids = np.asarray(ids)
        if self.ids.ndim != 1 or len(self.ids) < 2 * seq_len:
            raise ValueError(f"a text of {len(self.ids)} characters holds no chunk of {seq_len} with its targets "
                             f"at every offset; it needs at least {2 * seq_len}")
        self.seq_len, self.batch_size, self.shuffle = seq_len, batch_size, shuffle
        self.count = (len(self.ids) - seq_len) // seq_len
        self._rng = np.random.default_rng(seed)
        self.offset = 0
        self.order = self._rng.permutation(self.count) if shuffle else np.arange(self.count)
        self._span = np.arange(seq_len + 1)

    multiple_of = 1  # as _OrderedBatches'

    def __len__(self) -> int:
        return -(-_usable(self.count, self.batch_size, self.multiple_of) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        end = min((index + 1) * self.batch_size, _usable(self.count, self.batch_size, self.multiple_of))
        starts = self.offset + self.order[index * self.batch_size:end] * self.seq_len
        chunks = self.ids[starts[:, None] + self._span].astype(np.int32)
        return chunks[:, :-1], chunks[:, 1:]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.offset = int(self._rng.integers(self.seq_len))
            self._rng.shuffle(self.order)


def prepare(cfg: Any, raw_folder: Path | None = None, out: Path | None = None) -> Path:
    """Turn the fetched data of `cfg.data` into arrays, written atomically; returns the folder."""
    data = cfg.data
    raw = load_raw(raw_folder or paths.raw_dir(data.name))
    arrays, extra = DATASETS[data.name].prepare(raw, data)
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
            # Without the fetch time, a refetch of the same data leaves this output byte-identical.
            "provenance": {k: v for k, v in raw["provenance"].items() if k != "fetched_at"},
        }
        io.write_json(tmp / "meta.json", meta)
    log.info("prepared %s: %s -> %s", data.name, meta["shapes"], out)
    return out


def config_digest(cfg: Any) -> str:
    """Identifies the data settings, so prepared data is reused only for the same ones."""
    return hashlib.sha256(json.dumps(data_part(cfg), sort_keys=True).encode()).hexdigest()


class PreparedDataError(DataSourceError):
    """Prepared data that cannot be read or does not match the sha256 its meta.json records."""


def load_prepared(folder: Path) -> dict[str, Any]:
    """The arrays of a prepared folder, with its meta (and word index), verified first.

    arrays.npz must have the sha256 that prepare recorded in meta.json (the hash of the file's
    bytes); the bytes hashed are the bytes loaded. A mismatch or an unreadable file raises
    PreparedDataError naming the folder and how to rebuild it, so that changed or damaged data
    never trains or evaluates under the provenance of the data it replaced.
    """
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"{folder} holds no prepared data; run `dvc repro prepare@{folder.name}` first.")
    fix = _rebuild_hint(folder)
    try:
        meta = io.read_json(folder / "meta.json")
        expected = meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PreparedDataError(f"{folder}/meta.json cannot be read or records no sha256 "
                                f"({type(exc).__name__}: {exc}). {fix}") from exc
    try:
        body = (folder / "arrays.npz").read_bytes()
    except OSError as exc:
        raise PreparedDataError(f"{folder}/arrays.npz cannot be read ({exc.strerror or exc}). {fix}") from exc
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected:
        raise PreparedDataError(f"{folder}/arrays.npz does not match its meta.json: sha256 {actual}, recorded "
                                f"{expected}; the prepared data was changed or damaged after prepare wrote it. {fix}")
    try:
        with np.load(BytesIO(body), allow_pickle=False) as npz:
            arrays = dict(npz)
        if (folder / "word_index.json").is_file():
            arrays["word_index"] = io.read_json(folder / "word_index.json")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise PreparedDataError(f"{folder}: cannot read the prepared data ({type(exc).__name__}: {exc}). "
                                f"{fix}") from exc
    arrays["meta"] = meta
    return arrays


def _rebuild_hint(folder: Path) -> str:
    """How to rebuild `folder`: the DVC stage for the pipeline's data/prepared/<dataset>."""
    if folder.resolve() == paths.prepared_dir(folder.name).resolve():
        return f"Rebuild it with `dvc repro prepare@{folder.name}` (or delete {folder} and run that)."
    return f"Delete {folder} and run again to rebuild it."


if __name__ == "__main__":
    cli.main(lambda resolved: prepare(load_resolved(resolved)),
             "DVC stage: prepare a fetched dataset into data/prepared/<dataset>/.")
