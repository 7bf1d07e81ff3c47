"""The from-scratch NumPy models as pipeline experiments (phrase_numpy_rnn, phrase_numpy_lstm):
the course's settings reach 100% training accuracy through the same code as `dvc repro`,
the runs land in MLflow with every epoch, and the saved model predicts what it predicted."""

from __future__ import annotations

import csv
from pathlib import Path

import mlflow
import numpy as np
import pytest

from rnnlab import paths, tracking
from rnnlab.config import compose
from rnnlab.data.cache import ensure_prepared
from rnnlab.models import numpy_models
from rnnlab.train import run_experiment


def read_history(folder: Path) -> dict[str, list[float]]:
    with open(folder / "metrics" / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {key: [float(r[key]) for r in rows] for key in rows[0]}


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["phrase_numpy_rnn", "phrase_numpy_lstm"])
def test_course_settings_learn_every_training_phrase(experiment: str, isolated_root: Path):
    """1000 epochs of per-phrase SGD (20 s for the RNN, 50 s for the LSTM on one core)."""
    cfg = compose([f"experiment={experiment}"])
    assert (cfg.model.units, cfg.trainer.learning_rate, cfg.trainer.clipvalue, cfg.trainer.epochs,
            cfg.trainer.batch_size, cfg.model.init_scale) == (64, 0.02, 1.0, 1000, 1, 0.001)
    job = isolated_root / "job"
    metrics = run_experiment(cfg, paths.Outputs.job(job))
    history = read_history(job)
    assert len(history["epoch"]) == 1000
    assert history["accuracy"][-1] == 1.0 and history["accuracy"][0] < 0.7
    assert history["loss"][-1] < 0.01 < history["loss"][0]
    assert metrics["model"]["accuracy"] >= 0.9  # 25 of the 26 test phrases, or all
    assert metrics["primary"]["beats_baseline"]
    assert metrics["setup"]["implementation"] == "numpy"

    # Every epoch is in MLflow, as Keras runs' are.
    client = mlflow.MlflowClient(tracking.tracking_uri())
    losses = client.get_metric_history(metrics["run_id"], "loss")
    assert [m.step for m in losses] == list(range(1000))
    assert losses[-1].value == pytest.approx(history["loss"][-1], rel=1e-4)
    run = client.get_run(metrics["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["implementation"] == "numpy"
    assert run.data.metrics["test_accuracy"] == metrics["model"]["accuracy"]
    # Logged as an MLflow model: loaded from the run, it predicts what the saved model predicts.
    x_test = ensure_prepared(cfg)["x_test"]
    logged = mlflow.pyfunc.load_model(f"runs:/{metrics['run_id']}/model")
    saved = numpy_models.NumpyModel.load(job / "model")
    assert np.allclose(logged.predict(x_test.astype(np.float32)), saved.predict(x_test), atol=1e-6)


@pytest.mark.parametrize("cell", ["simplernn", "lstm"])
def test_saved_model_predicts_what_it_predicted(cell: str, isolated_root: Path):
    cfg = compose(["experiment=phrase_numpy_rnn", f"model.cell={cell}", "trainer.epochs=5", "model.init_scale=0.1"])
    data = ensure_prepared(cfg)
    model = numpy_models.build(cfg.model, data["x_train"].shape[-1], seed=1)
    numpy_models.fit(model, cfg.trainer, data["x_train"], data["y_train"])
    numpy_models.save(model, cell, isolated_root / "model.npz")
    loaded = numpy_models.load(isolated_root / "model.npz")
    assert type(loaded) is type(model)
    before = numpy_models.positive_probability(model, data["x_test"])
    assert np.array_equal(numpy_models.positive_probability(loaded, data["x_test"]), before)
    assert not np.allclose(before, before[0])  # trained: not the same answer for every phrase


def test_padding_is_read_as_padding(isolated_root: Path):
    """The prepared phrases are one-hot and padded at the front with zero vectors: the mask the
    NumPy models get marks exactly the phrase's words."""
    cfg = compose(["experiment=phrase_numpy_rnn"])
    data = ensure_prepared(cfg)
    mask = numpy_models.mask_of(data["x_train"])
    lengths = [len(t.split()) for t in data["meta"]["test_texts"]]
    test_mask = numpy_models.mask_of(data["x_test"])
    assert test_mask.sum(axis=1).tolist() == lengths
    assert all(np.all(np.diff(row.astype(int)) >= 0) for row in mask)  # zeros first, then the words


def test_report_sets_the_phrase_models_side_by_side(isolated_root: Path):
    from rnnlab.report import build_report

    names = ["phrase_sentiment", "phrase_numpy_rnn"]
    for name in names:
        cfg = compose([f"experiment={name}", "trainer.epochs=4"])
        run_experiment(cfg, paths.Outputs.pipeline(name))
    build_report(names)
    report = (isolated_root / "reports" / "index.md").read_text()
    table = report[report.index("## Compared on phrases"):report.index("## phrase_sentiment")]
    assert "| [phrase_numpy_rnn](#phrase_numpy_rnn) | numpy: SimpleRNN(64); sgd lr 0.02, clipvalue 1, batch 1 | 4 |" in table
    assert "| [phrase_sentiment](#phrase_sentiment) | keras: SimpleRNN(64); adam lr 0.01, batch 8 | 4 |" in table
    assert "![training curves on phrases](compared/phrases.png)" in table
    assert (isolated_root / "reports" / "compared" / "phrases.png").is_file()
    assert "PROJECT-WRITTEN PHRASES" in report  # the sample is labelled where its numbers appear
