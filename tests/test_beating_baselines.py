"""The tools that let a model beat its baseline on real data (early stopping, log-return
prices, a character language model) and the verdicts that say whether it did."""

from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from rnnlab import paths, tracking
from rnnlab.baselines import CharNGram
from rnnlab.config import ConfigError, compose, dataset_config
from rnnlab.data.cache import ensure_prepared
from rnnlab.data.datasets import prices, select
from rnnlab.data.prepare import SequenceChunks, scaler_from_dict
from rnnlab.evaluate import chunked_bits, in_series_units
from rnnlab.models import keras_recurrent
from rnnlab.train import run_experiment


# --- early stopping -----------------------------------------------------------------------------

def test_early_stopping_keeps_the_best_epochs_weights(isolated_root: Path):
    """On the noisy sine wave a wide model overfits quickly: training stops `patience` epochs after
    the best validation loss, and the saved model is that epoch's, not the last one's."""
    cfg = compose(["experiment=sine_simplernn", "profile=quick", "trainer.epochs=200", "model.units=64",
                   "trainer.learning_rate=0.01", "trainer.validation_split=0.25", "trainer.early_stopping.enabled=true",
                   "trainer.early_stopping.patience=4"])
    job = paths.Outputs.job(isolated_root / "job")
    metrics = run_experiment(cfg, job)
    training = metrics["training"]
    assert training["epochs_trained"] < 200, "it never stopped"
    assert training["epochs_trained"] == training["best_epoch"] + 4
    history = pd.read_csv(job.metrics / "history.csv")
    assert training["best_epoch"] == int(history["val_loss"].idxmin()) + 1
    # The saved weights are the best epoch's: their loss on the validation rows is that epoch's val_loss.
    data = ensure_prepared(cfg)
    n_val = int(len(data["x_train"]) * 0.25)
    model = keras.models.load_model(job.model / "model.keras")
    val_loss = model.evaluate(data["x_train"][-n_val:], data["y_train"][-n_val:], verbose=0, return_dict=True)["loss"]
    assert val_loss == pytest.approx(history["val_loss"][training["best_epoch"] - 1], rel=1e-3)
    assert val_loss < history["val_loss"].iloc[-1]
    run = mlflow.MlflowClient(tracking.tracking_uri()).get_run(metrics["run_id"])
    assert run.data.metrics["best_epoch"] == training["best_epoch"]


@pytest.mark.parametrize("overrides, fragment", [
    (["trainer.validation_split=0.0", "trainer.early_stopping.enabled=true"], "trainer.validation_split > 0"),
    (["trainer.early_stopping.enabled=true", "trainer.early_stopping.monitor=test_accuracy"], "monitor"),
    (["trainer.reduce_lr.enabled=true", "trainer.reduce_lr.factor=2"], "trainer.reduce_lr.factor"),
])
def test_callbacks_that_cannot_work_stop_before_training(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        compose(["experiment=imdb_lstm", *overrides])


# --- prices: log returns, ridge, the scaler's range -------------------------------------------

def rising_prices(days: int = 400) -> dict:
    index = pd.bdate_range("2019-01-01", periods=days, name="Date")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0.002, 0.01, days)))
    return {"prices": pd.DataFrame({"Close": close}, index=index), "provenance": {"sample": False}}


def test_log_return_target_rebuilds_prices_exactly():
    raw = rising_prices()
    data = dataset_config("prices", {"window": 10, "test_start": str(raw["prices"].index[300].date())})
    arrays, meta = prices.prepare(raw, data)
    prepared = {**arrays, "meta": {**meta, "dataset": "prices"}}
    chosen = prices.select(dataset_config("prices", {"target": "log_return"}), prepared)
    close = raw["prices"]["Close"].to_numpy()
    # The targets, unscaled, are the test days' log returns; a perfect prediction rebuilds every price.
    returns = scaler_from_dict(chosen["meta"]["scaler"]).inverse_transform(chosen["y_test"]).ravel()
    np.testing.assert_allclose(returns, np.log(close[300:] / close[299:-1]), rtol=1e-5, atol=1e-6)
    rebuilt = in_series_units(chosen["y_test"].ravel(), chosen["meta"], chosen["previous_test_raw"])
    np.testing.assert_allclose(rebuilt, close[300:], rtol=1e-5)
    # Standardised on the training days only.
    train_returns = np.log(close[1:300] / close[:299])
    assert chosen["meta"]["scaler"]["fitted"]["mean_"]["values"][0] == pytest.approx(train_returns.mean())
    price = prices.select(dataset_config("prices", {"target": "price"}), prepared)
    assert price["x_train"].shape == (300 - 10, 10, 1) and chosen["x_train"].shape == (299 - 10, 10, 1)
    # Prices that keep rising leave the training range: the share is recorded for the warning.
    assert meta["test_range"]["share_outside"] > 0.5


def test_real_prices_outside_the_training_range_are_flagged(isolated_root: Path, tmp_path: Path):
    """Facebook's January 2020 closes top its 2015-2019 range: evaluate says so in the metrics and
    in MLflow, beside persistence and the ridge autoregression."""
    train, test = SHARED_DATA / "FB_training_data.csv", SHARED_DATA / "FB_test_data.csv"
    if not train.is_file():
        pytest.skip(f"{train} is not here")
    csv = tmp_path / "fb.csv"
    pd.concat([pd.read_csv(train), pd.read_csv(test)]).to_csv(csv, index=False)
    cfg = compose(["experiment=stock_lstm", "profile=quick", "trainer.epochs=2", "data.source=local",
                   f"data.path={csv}"])
    metrics = run_experiment(cfg, paths.Outputs.job(isolated_root / "job"))
    assert any("outside the training range" in w for w in metrics["warnings"])
    ridge = metrics["other_baselines"][0]
    assert ridge["name"].startswith("ridge") and ridge["rmse"] > 0
    assert ridge["model_vs_ridge"]["verdict"] in ("better", "tie", "worse")
    assert metrics["primary"]["verdict"] in ("better", "tie", "worse")
    run = mlflow.MlflowClient(tracking.tracking_uri()).get_run(metrics["run_id"])
    assert "outside the training range" in run.data.tags["warning"]
    assert run.data.tags["verdict"] == metrics["primary"]["verdict"]
    assert "baseline_ridge_rmse" in run.data.metrics


# --- the character language model -------------------------------------------------------------

def test_sequence_chunks_are_shifted_by_one_and_move_each_epoch():
    ids = np.arange(1000) % 37
    chunks = SequenceChunks(ids, seq_len=50, batch_size=8, shuffle=True, seed=1)
    assert chunks.count == (1000 - 50) // 50 and len(chunks) == -(-chunks.count // 8)
    x, y = chunks[0]
    assert x.shape == y.shape == (8, 50) and x.dtype == np.int32
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])  # every position's target is the next id
    offsets = set()
    for _ in range(5):
        chunks.on_epoch_end()
        offsets.add(chunks.offset)
        assert 0 <= chunks.offset < 50 and len(chunks) == -(-chunks.count // 8)
        # Every chunk of every epoch is a real stretch of the text, its last target included.
        for i in range(len(chunks)):
            x, y = chunks[i]
            np.testing.assert_array_equal(y[:, -1], (x[:, 0] + 50) % 37)
    assert len(offsets) > 1  # other cuts of the text in other epochs


class ContextProbe:
    """A stand-in language model that is sure (p = 0.5) of the right next id only when it has read
    at least `needed` characters of the chunk, and nearly clueless otherwise: it tells which
    context each target was scored with."""

    def __init__(self, ids: np.ndarray, starts_seen: list, needed: int, vocab: int = 5) -> None:
        self.ids, self.needed, self.vocab, self.starts_seen = ids, needed, vocab, starts_seen

    def predict(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        n, length = x.shape
        p = np.full((n, length, self.vocab), 0.5 / (self.vocab - 1))
        for row, chunk in enumerate(x):
            start = next(s for s in range(len(self.ids)) if np.array_equal(self.ids[s:s + length], chunk))
            self.starts_seen.append(start)
            for j in range(length):
                if j + 1 >= self.needed:
                    p[row, j] = 0.5 / (self.vocab - 1)
                    p[row, j, self.ids[start + j + 1]] = 0.5
        return p


@pytest.mark.parametrize("n", [157, 400, 1001])
def test_chunked_bits_scores_every_target_once_with_half_a_chunk_of_context(n: int):
    ids = np.random.default_rng(n).integers(0, 5, n)
    seq_len, first_target = 40, 10
    probe = ContextProbe(ids, [], needed=seq_len // 2)
    bits, correct = chunked_bits(probe, ids, seq_len, first_target)
    assert len(bits) == n - first_target == len(correct)
    # Only the first chunk's early targets lack context; every other target was read with >= 20.
    assert np.all(bits[seq_len // 2 - first_target:] == pytest.approx(1.0))
    assert correct[seq_len // 2 - first_target:].all()


def test_char_lm_predicts_every_position_and_is_scored_like_the_window_models(isolated_root: Path):
    cfg = compose(["experiment=textgen_charlm", "profile=quick", "trainer.epochs=1", "data.sample_chars=6000"])
    data = select(cfg, ensure_prepared(cfg))
    meta = data["meta"]
    assert meta["task"] == "char_lm"
    assert meta["input_spec"] == {"kind": "tokens", "length": 100, "vocab": meta["n_outputs"]}
    model = keras_recurrent.build_model(cfg.model, cfg.regularizer, meta["input_spec"], "char_lm",
                                        n_outputs=meta["n_outputs"])
    assert model.output_shape == (None, None, meta["n_outputs"])  # any length in, a distribution per step out
    metrics = run_experiment(cfg, paths.Outputs.job(isolated_root / "job"))
    # The same held-out targets and the same n-gram as textgen_lstm: the test part after its first window.
    ngram = CharNGram(5, meta["n_outputs"]).fit(data["ids_train"])
    assert metrics["baseline"]["bits_per_char"] == pytest.approx(ngram.bits_per_char(data["ids_test"], cfg.data.window))
    assert metrics["data"]["n_test"] == len(data["ids_test"]) - cfg.data.window
    assert 0 < metrics["model"]["bits_per_char"] < np.log2(meta["n_outputs"]) + 1
    samples = (isolated_root / "job" / "figures" / "samples.json").read_text()
    assert '"greedy"' in samples and '"temperature 0.5"' in samples
