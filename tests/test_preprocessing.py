"""The preprocessing library in rnnlab.data.prepare: windows, splits, scalers, vocabulary, one-hot batches."""

from __future__ import annotations

import json
import logging
import tracemalloc

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import RobustScaler

from rnnlab import io
from rnnlab.data.prepare import (CharVocabulary, OneHotWindows, chronological_split, fit_scaler, scaler_from_dict,
                                 scaler_to_dict, sliding_windows, split_at_date, windows_from)

from conftest import SHARED_DATA


# --- sliding windows -------------------------------------------------------------------------------------

def test_windows_and_next_step_targets_on_arange():
    x, y = sliding_windows(np.arange(7), window=3)
    assert x.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert y.tolist() == [3, 4, 5, 6]


def test_horizon_puts_the_target_that_many_steps_after_the_window_end():
    x, y = sliding_windows(np.arange(10), window=3, horizon=3)
    assert x.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]
    assert y.tolist() == [5, 6, 7, 8, 9]  # last window row + 3


def test_step_skips_window_starts_and_drops_windows_whose_target_is_past_the_end():
    x, y = sliding_windows(np.arange(10), window=3, horizon=2, step=3)
    # a third window would start at 6 and need row 10 as its target
    assert x.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert y.tolist() == [4, 7]
    x, y = sliding_windows(np.arange(11), window=3, horizon=2, step=3)
    assert x[:, 0].tolist() == [0, 3, 6] and y.tolist() == [4, 7, 10]


def test_two_dimensional_series_keeps_features_last():
    series = np.arange(20).reshape(10, 2)  # row t = [2t, 2t + 1]
    x, y = sliding_windows(series, window=3, step=2)
    assert x.shape == (4, 3, 2) and y.shape == (4, 2)
    assert x[1].tolist() == [[4, 5], [6, 7], [8, 9]]
    assert y.tolist() == [[6, 7], [10, 11], [14, 15], [18, 19]]


@pytest.mark.parametrize("n", range(1, 14))
@pytest.mark.parametrize("window,horizon,step", [(1, 1, 1), (3, 1, 1), (3, 2, 2), (4, 3, 5), (2, 1, 3)])
def test_windows_match_a_plain_loop(n, window, horizon, step):
    series = np.arange(n) * 10
    starts = range(0, n - window - horizon + 1, step)
    if not starts:
        with pytest.raises(ValueError, match="needs at least"):
            sliding_windows(series, window, horizon, step)
        return
    x, y = sliding_windows(series, window, horizon, step)
    assert x.tolist() == [series[s:s + window].tolist() for s in starts]
    assert y.tolist() == [series[s + window - 1 + horizon] for s in starts]


def test_shortest_series_gives_one_window_and_shorter_ones_raise():
    x, y = sliding_windows(np.arange(5), window=3, horizon=2)
    assert x.tolist() == [[0, 1, 2]] and y.tolist() == [4]
    with pytest.raises(ValueError, match="4 steps has no window of 3 steps with a target 2 step"):
        sliding_windows(np.arange(4), window=3, horizon=2)
    with pytest.raises(ValueError, match="at least 1"):
        sliding_windows(np.arange(4), window=0)
    with pytest.raises(ValueError, match="at least 1"):
        sliding_windows(np.arange(4), window=2, step=0)


def test_windows_are_views_not_copies():
    series = np.arange(1000, dtype=np.float64)
    x, y = sliding_windows(series, window=50)
    assert np.shares_memory(x, series) and np.shares_memory(y, series)
    assert not x.flags.writeable  # a write would change every window sharing that row


# --- chronological splits --------------------------------------------------------------------------------

def test_chronological_split_by_fractions_and_by_boundaries():
    assert chronological_split(10, (0.7, 0.1, 0.2)) == (slice(0, 7), slice(7, 8), slice(8, 10))
    assert chronological_split(1000, (0.9, 0.0, 0.1)) == (slice(0, 900), slice(900, 900), slice(900, 1000))
    assert chronological_split(10, boundaries=(6, 9)) == (slice(0, 6), slice(6, 9), slice(9, 10))
    # the parts tile the rows in order, whatever the rounding
    rows = np.arange(101)
    train, val, test = chronological_split(101, (0.33, 0.33, 0.34))
    assert np.concatenate([rows[train], rows[val], rows[test]]).tolist() == rows.tolist()


@pytest.mark.parametrize("kwargs", [{}, {"fractions": (0.8, 0.2, 0.0), "boundaries": (8, 10)},
                                    {"fractions": (0.8, 0.1)}, {"fractions": (0.8, 0.1, 0.2)},
                                    {"boundaries": (8, 5)}, {"boundaries": (8, 11)}])
def test_chronological_split_refuses_unclear_parts(kwargs):
    with pytest.raises(ValueError):
        chronological_split(10, **kwargs)


def prices(dates: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"open": np.arange(len(dates), dtype=float) + 100}, index=pd.DatetimeIndex(dates))


def test_split_at_date_and_test_windows_reaching_back_into_train():
    days = ["2019-12-24", "2019-12-26", "2019-12-27", "2019-12-30", "2019-12-31", "2020-01-02", "2020-01-03",
            "2020-01-06"]
    train, test = split_at_date(prices(days), "2020-01-01")
    assert train.index[-1] == pd.Timestamp("2019-12-31") and len(train) == 5
    assert test.index[0] == pd.Timestamp("2020-01-02") and len(test) == 3

    series = np.concatenate([train["open"].to_numpy(), test["open"].to_numpy()])  # 100 .. 107
    x, y = windows_from(series, first_target=len(train), window=3)
    assert y.tolist() == test["open"].tolist() == [105.0, 106.0, 107.0]  # every target is a test day
    assert x.tolist() == [[102.0, 103.0, 104.0], [103.0, 104.0, 105.0], [104.0, 105.0, 106.0]]
    assert x[0].tolist() == train["open"].iloc[-3:].tolist()  # the first window is all training days

    x, y = windows_from(series, first_target=len(train), window=2, horizon=2)
    assert x.tolist() == [[102.0, 103.0], [103.0, 104.0], [104.0, 105.0]] and y.tolist() == [105.0, 106.0, 107.0]
    with pytest.raises(ValueError, match="needs 5 rows before it"):
        windows_from(series, first_target=4, window=5)


def test_split_at_date_refuses_unsorted_or_undated_rows():
    with pytest.raises(ValueError, match="increasing"):
        split_at_date(prices(["2020-01-02", "2019-12-31"]), "2020-01-01")
    with pytest.raises(TypeError, match="DatetimeIndex"):
        split_at_date(pd.DataFrame({"open": [1.0, 2.0]}), "2020-01-01")


def test_the_course_stock_split_on_the_real_prices():
    train_csv, test_csv = SHARED_DATA / "FB_training_data.csv", SHARED_DATA / "FB_test_data.csv"
    if not train_csv.is_file():
        pytest.skip(f"{train_csv} is not here")
    frame = pd.concat([pd.read_csv(path, index_col="Date", parse_dates=True) for path in (train_csv, test_csv)])
    train, test = split_at_date(frame, "2020-01-01")
    assert len(test) == 21 and len(train) == len(pd.read_csv(train_csv))
    scaler = fit_scaler(train[["Open"]].to_numpy())
    series = scaler.transform(frame[["Open"]].to_numpy())[:, 0]
    x, y = windows_from(series, len(train), window=40)
    # the course: all_data[len(all_data) - len(test_data) - 40:], then windows i - 40 .. i for i in 40 .. 60
    tail = series[len(series) - len(test) - 40:]
    assert np.array_equal(x, np.array([tail[i - 40:i] for i in range(40, len(tail))]))
    assert np.array_equal(y, series[len(train):])
    assert np.array_equal(x[0], series[len(train) - 40:len(train)])


# --- scalers ---------------------------------------------------------------------------------------------

def test_minmax_scaler_is_fitted_on_train_only():
    train, test = np.array([[10.0], [15.0], [20.0]]), np.array([[5.0], [25.0]])
    scaler = fit_scaler(train, "minmax")
    assert scaler.transform(train)[:, 0].tolist() == [0.0, 0.5, 1.0]
    assert scaler.transform(test)[:, 0].tolist() == [-0.5, 1.5]  # outside [0, 1]: test values are new


def test_standard_scaler_is_fitted_on_train_only():
    train = np.array([[1.0, 10.0], [3.0, 30.0]])
    scaler = fit_scaler(train, "standard")
    assert scaler.transform(train).tolist() == [[-1.0, -1.0], [1.0, 1.0]]
    assert scaler.transform([[5.0, 0.0]]).tolist() == [[3.0, -2.0]]


@pytest.mark.parametrize("kind", ["minmax", "standard"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scaler_round_trips_exactly_through_json(kind, dtype, tmp_path):
    rng = np.random.default_rng(7)
    train = (rng.normal(200, 30, size=(500, 3))).astype(dtype)
    test = (rng.normal(260, 40, size=(50, 3))).astype(dtype)
    scaler = fit_scaler(train, kind)
    io.write_json(tmp_path / "scaler.json", scaler_to_dict(scaler))
    restored = scaler_from_dict(io.read_json(tmp_path / "scaler.json"))

    assert type(restored) is type(scaler)
    for name, value in vars(scaler).items():
        if name.endswith("_"):
            assert np.asarray(getattr(restored, name)).dtype == np.asarray(value).dtype, name
            assert np.array_equal(getattr(restored, name), value), name
    scaled = scaler.transform(test)
    assert np.array_equal(restored.transform(test), scaled)
    predictions = scaled[:, :1].repeat(3, axis=1) + 0.01  # what a model might output
    assert np.array_equal(restored.inverse_transform(predictions), scaler.inverse_transform(predictions))
    assert np.allclose(restored.inverse_transform(scaled), test, rtol=1e-6)


def test_scaler_kinds_are_checked():
    with pytest.raises(ValueError, match="minmax"):
        fit_scaler(np.ones((3, 1)), "robust")
    with pytest.raises(TypeError, match="RobustScaler"):
        scaler_to_dict(RobustScaler().fit(np.ones((3, 1))))


# --- character vocabulary --------------------------------------------------------------------------------

def test_vocabulary_sorts_characters_and_reserves_id_zero():
    vocab = CharVocabulary.from_text("hello world")
    assert vocab.chars == " dehlorw" and vocab.size == 9 and vocab.dtype == np.uint8
    ids = vocab.encode("hello world")
    assert ids.dtype == np.uint8
    assert ids.tolist() == [4, 3, 5, 5, 6, 1, 8, 6, 7, 5, 2]
    assert vocab.decode(ids) == "hello world"


def test_unknown_characters_become_id_zero_and_are_logged(caplog):
    vocab = CharVocabulary.from_text("abc")
    with caplog.at_level(logging.WARNING):
        ids = vocab.encode("abxcz\U0001f600")
    assert ids.tolist() == [1, 2, 0, 3, 0, 0]
    assert "3 of 6 characters are not in the vocabulary" in caplog.text
    assert vocab.decode(ids) == "ab\ufffdc\ufffd\ufffd"
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        vocab.decode(np.array([1, 4]))


def test_vocabulary_round_trips_through_json_and_any_unicode(tmp_path):
    text = "Alice’s “curious” — 不思議の国 🐇\n\ttea" + "".join(map(chr, range(0x400, 0x520)))
    vocab = CharVocabulary.from_text(text)
    assert vocab.size > 256 and vocab.dtype == np.uint16
    io.write_json(tmp_path / "vocab.json", vocab.to_dict())
    restored = CharVocabulary.from_dict(io.read_json(tmp_path / "vocab.json"))
    assert restored == vocab
    assert restored.decode(vocab.encode(text)) == text
    assert vocab.encode("").tolist() == [] and vocab.decode(np.array([], dtype=np.uint16)) == ""


def test_vocabulary_refuses_other_policies_and_unsorted_characters():
    with pytest.raises(ValueError, match="unknown id"):
        CharVocabulary.from_dict({"chars": "ab", "unknown_id": -1, "unknown_char": "?"})
    with pytest.raises(ValueError, match="sorted"):
        CharVocabulary("ba")
    with pytest.raises(ValueError, match="sorted"):
        CharVocabulary("aab")


def test_vocabulary_of_the_train_part_of_alice(alice_path):
    text = alice_path.read_text(encoding="utf-8")
    train, _, test = chronological_split(len(text), (0.9, 0.0, 0.1))
    vocab = CharVocabulary.from_text(text[train])
    ids = vocab.encode(text[test])
    decoded = vocab.decode(ids)
    unknown = {c for c in text[test] if c not in vocab.chars}
    assert decoded == "".join("\ufffd" if c in unknown else c for c in text[test])
    assert np.count_nonzero(ids == 0) == sum(text[test].count(c) for c in unknown)


# --- one-hot batches -------------------------------------------------------------------------------------

TEXT = "the quick brown fox jumps over the lazy dog"  # 43 characters


def windows_of(ds: OneHotWindows, vocab: CharVocabulary) -> list[tuple[str, str]]:
    """(window text, next character) of every sample, in batch order, read back from the one-hot rows."""
    pairs = []
    for x, y in ds:
        pairs += [(vocab.decode(sample.argmax(-1)), vocab.decode(target[None])) for sample, target in zip(x, y)]
    return pairs


def test_batches_are_one_hot_windows_and_next_char_ids():
    vocab = CharVocabulary.from_text(TEXT)
    ds = OneHotWindows(vocab.encode(TEXT), window=5, vocab_size=vocab.size, batch_size=8)
    assert len(ds) == 5  # 38 windows
    shapes = [(x.shape, y.shape) for x, y in ds]
    assert shapes == [((8, 5, vocab.size), (8,))] * 4 + [((6, 5, vocab.size), (6,))]
    x, y = ds[4]
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert set(np.unique(x)) == {0.0, 1.0} and (x.sum(-1) == 1).all()
    assert windows_of(ds, vocab) == [(TEXT[s:s + 5], TEXT[s + 5]) for s in range(38)]


def test_batches_equal_the_course_dense_arrays():
    vocab = CharVocabulary.from_text(TEXT)
    ids = vocab.encode(TEXT)
    # the course's loops, with this vocabulary's ids
    starts = range(0, len(TEXT) - 7, 3)
    dense_x = np.zeros((len(starts), 7, vocab.size), dtype=bool)
    for i, s in enumerate(starts):
        for j, ch in enumerate(TEXT[s:s + 7]):
            dense_x[i, j, ids[TEXT.index(ch)]] = 1
    ds = OneHotWindows(ids, window=7, vocab_size=vocab.size, batch_size=4, step=3)
    assert len(ds) == 3  # 12 windows: starts 0, 3, ..., 33
    assert np.array_equal(np.concatenate([x for x, _ in ds]), dense_x.astype(np.float32))
    assert np.concatenate([y for _, y in ds]).tolist() == [ids[s + 7] for s in starts]


def test_shuffled_batches_hold_every_window_once_and_depend_only_on_the_seed():
    vocab = CharVocabulary.from_text(TEXT)
    ids = vocab.encode(TEXT)
    made = [OneHotWindows(ids, 5, vocab.size, batch_size=8, shuffle=True, seed=seed) for seed in (1, 1, 2)]
    first, same, other = (windows_of(ds, vocab) for ds in made)
    assert first == same and first != other
    assert sorted(first) == sorted((TEXT[s:s + 5], TEXT[s + 5]) for s in range(38))

    for ds in made[:2]:
        ds.on_epoch_end()
    second = windows_of(made[0], vocab)
    assert second == windows_of(made[1], vocab)
    assert second != first and sorted(second) == sorted(first)

    plain = OneHotWindows(ids, 5, vocab.size, batch_size=8)
    plain.on_epoch_end()
    assert plain.order.tolist() == list(range(38))


def test_batch_index_ids_and_length_are_checked():
    vocab = CharVocabulary.from_text(TEXT)
    ds = OneHotWindows(vocab.encode(TEXT), 5, vocab.size, batch_size=8)
    for index in (-1, 5):
        with pytest.raises(IndexError):
            ds[index]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        OneHotWindows(np.array([0, 1, 2, 3, 1, 2]), 2, vocab_size=3)
    with pytest.raises(ValueError, match="1-D integer"):
        OneHotWindows(np.zeros(10), 2, vocab_size=3)
    with pytest.raises(ValueError, match="needs at least 6"):
        OneHotWindows(vocab.encode("hello"), 5, vocab.size)


def test_memory_grows_with_the_text_not_with_window_times_vocabulary():
    ids = np.random.default_rng(0).integers(0, 60, size=200_000).astype(np.uint8)
    tracemalloc.start()
    try:
        ds = OneHotWindows(ids, window=40, vocab_size=60, batch_size=128, shuffle=True)
        x, _ = ds[len(ds) - 2]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    dense = 200_000 * 40 * 60  # the course's bool array, in bytes
    assert x.nbytes == 128 * 40 * 60 * 4
    # the window order (8 bytes per window) and a batch or two; the dense array would be 480 MB
    assert peak < 8 * 200_000 + 4 * x.nbytes + 1_000_000
    assert peak < dense / 100


def test_a_tiny_lstm_fits_one_epoch_on_the_batches():
    keras.utils.set_random_seed(0)
    vocab = CharVocabulary.from_text(TEXT)
    ds = OneHotWindows(vocab.encode(TEXT * 3), 6, vocab.size, batch_size=16, shuffle=True, seed=3)
    order = ds.order.copy()
    model = keras.Sequential([keras.Input((6, vocab.size)), keras.layers.LSTM(8),
                              keras.layers.Dense(vocab.size, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    batches = []
    seen = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    history = model.fit(ds, epochs=1, shuffle=False, verbose=0, callbacks=[seen])
    assert len(batches) == len(ds) == 8  # 123 windows
    assert np.isfinite(history.history["loss"][0])
    assert history.history["loss"][0] < np.log(vocab.size) + 0.5  # about uniform after one epoch
    assert not np.array_equal(ds.order, order)  # fit ended the epoch: the windows were reshuffled
    assert model.predict(ds[0][0], verbose=0).shape == (16, vocab.size)
