"""The leaderboard of a sweep, and how sweep runs are named: on runs made by hand, without training."""

from __future__ import annotations

import csv
import math

import pytest
from mlflow.tracking import MlflowClient

from rnnlab import compare, sweeps, tracking


def make_sweep(grid: dict[str, tuple[float, float]], failed: str | None = None) -> str:
    """A parent run and one child per entry of `grid` (name -> (test accuracy, dropout)); returns the parent's id."""
    client = MlflowClient(tracking.tracking_uri())
    experiment_id = tracking.set_experiment("imdb_lstm")
    parent = client.create_run(experiment_id, run_name="imdb_lstm sweep over dropout, regularizer",
                               tags={sweeps.ROLE_TAG: "parent", "experiment": "imdb_lstm",
                                     "sweep.command": "python -m rnnlab.train -m model.dropout=0.0,0.5"}).info.run_id
    for name, (accuracy, dropout) in grid.items():
        child = client.create_run(experiment_id, run_name=name,
                                  tags={"mlflow.parentRunId": parent, "data.synthetic": "true"}).info.run_id
        regularizer = name.split("regularizer=")[1]
        for key, value in {"model.dropout": dropout, "regularizer.kind": regularizer, "model.units": 64}.items():
            client.log_param(child, key, value)
        if name != failed:
            client.log_metric(child, "test_accuracy", accuracy)
            client.log_metric(child, "baseline_accuracy", 0.5)
        client.set_terminated(child, "FAILED" if name == failed else "FINISHED")
    client.set_terminated(parent, "FINISHED")
    return parent


GRID = {"imdb_lstm dropout=0.0 regularizer=none": (0.80, 0.0), "imdb_lstm dropout=0.5 regularizer=none": (0.90, 0.5),
        "imdb_lstm dropout=0.0 regularizer=l2": (0.85, 0.0), "imdb_lstm dropout=0.5 regularizer=l2": (0.0, 0.5)}


def test_the_leaderboard_sorts_by_test_accuracy_and_shows_what_differs(isolated_root):
    parent = make_sweep(GRID, failed="imdb_lstm dropout=0.5 regularizer=l2")
    board, files = compare.compare([], parent_run_id=parent)

    assert [row["run"] for row in board.rows] == ["imdb_lstm dropout=0.5 regularizer=none",
                                                  "imdb_lstm dropout=0.0 regularizer=l2",
                                                  "imdb_lstm dropout=0.0 regularizer=none",
                                                  "imdb_lstm dropout=0.5 regularizer=l2"]  # the failed run last
    assert board.varied == ["model.dropout", "regularizer.kind"]  # model.units is the same everywhere
    assert board.rows[0]["vs_baseline"] == pytest.approx(0.4) and math.isnan(board.rows[-1]["test_accuracy"])
    assert board.baseline() == 0.5

    assert set(files) == {"md", "csv", "png"}
    assert all(path.parent == isolated_root / "reports" / "leaderboards" for path in files.values())
    with open(files["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["rank"] for row in rows] == ["1", "2", "3", "4"] and rows[0]["test_accuracy"] == "0.9"
    markdown = files["md"].read_text()
    assert "| 1 | imdb_lstm dropout=0.5 regularizer=none | FINISHED | 0.9000 | 0.5000 | +0.4000 |  | 0.5 | none |" in markdown
    assert "baseline_accuracy 0.5000" in markdown and "SYNTHETIC SAMPLE" in markdown and "3 of 4 runs finished" in markdown
    assert files["png"].read_bytes().startswith(b"\x89PNG")


def test_the_experiments_latest_sweep_is_the_default(isolated_root):
    make_sweep({"imdb_lstm dropout=0.0 regularizer=none": (0.6, 0.0)})
    latest = make_sweep(GRID)
    board, _ = compare.compare(["experiment=imdb_lstm"])
    assert board.parent_run_id == latest and len(board.rows) == 4


def test_no_sweep_yet_says_how_to_run_one(isolated_root):
    with pytest.raises(compare.ConfigError, match="python -m rnnlab.train -m experiment=imdb_lstm"):
        compare.compare(["experiment=imdb_lstm"])


def test_no_plot_when_the_sweep_kept_dropout_fixed(isolated_root):
    parent = make_sweep({"imdb_lstm dropout=0.2 regularizer=none": (0.8, 0.2),
                         "imdb_lstm dropout=0.2 regularizer=l2": (0.7, 0.2)})
    _, files = compare.compare([], parent_run_id=parent)
    assert "png" not in files


@pytest.mark.parametrize("overrides, keys", [
    (["experiment=imdb_lstm", "model.dropout=0.0,0.2", "regularizer=none,l2"], ["model.dropout", "regularizer"]),
    (["model.dropout=interval(0.0, 0.5)", "model.units=choice(16, 32)", "seed=1"], ["model.dropout", "model.units"]),
    (["+trainer.extra=1,2"], ["trainer.extra"]),
])
def test_the_swept_keys_are_those_with_several_values(overrides, keys):
    assert sweeps.swept_keys(overrides) == keys


def test_a_job_is_named_after_the_values_it_varies():
    job = sweeps.SweepJob(parent_run_id="p", num=3, job_id="3", output_dir="/tmp/3",
                          overrides=["experiment=imdb_lstm", "profile=quick", "model.dropout=0.2",
                                     "trainer.learning_rate=0.0012345678", "regularizer=l2"],
                          swept_keys=["model.dropout", "regularizer", "trainer.learning_rate"])
    assert job.run_name("imdb_lstm") == "imdb_lstm dropout=0.2 learning_rate=0.001235 regularizer=l2"
    assert job.tags()["hydra.job.num"] == "3"
    assert sweeps.short_names(["model.dropout", "data.dropout", "regularizer"]) == {
        "model.dropout": "model.dropout", "data.dropout": "data.dropout", "regularizer": "regularizer"}


def test_a_regression_sweep_is_ranked_lowest_error_first(isolated_root):
    """evaluate tags each run with its primary metric; an RMSE sweep sorts ascending and names
    its own baseline, on the leaderboard and on the sweep's parent run."""
    client = MlflowClient(tracking.tracking_uri())
    experiment_id = tracking.set_experiment("sine_simplernn")
    parent = client.create_run(experiment_id, run_name="sine sweep",
                               tags={sweeps.ROLE_TAG: "parent", "experiment": "sine_simplernn"}).info.run_id
    for name, (rmse, dropout) in {"dropout=0.0": (0.80, 0.0), "dropout=0.2": (0.70, 0.2),
                                  "dropout=0.5": (0.95, 0.5)}.items():
        child = client.create_run(experiment_id, run_name=name, tags={
            "mlflow.parentRunId": parent, "primary_metric": "rmse", "primary_higher_is_better": "false",
            "baseline_name": "persistence (tomorrow equals today)"}).info.run_id
        client.log_param(child, "model.dropout", dropout)
        client.log_metric(child, "test_rmse", rmse)
        client.log_metric(child, "baseline_rmse", 0.864)
        client.set_terminated(child, "FINISHED")
    summary = sweeps._finish_parent(parent, "FINISHED")
    board, files = compare.compare([], parent_run_id=parent)

    assert [row["run"] for row in board.rows] == ["dropout=0.2", "dropout=0.0", "dropout=0.5"]
    assert board.columns()[3:5] == ["test_rmse", "baseline_rmse"] and board.baseline() == 0.864
    markdown = files["md"].read_text()
    assert "sorted by test_rmse (lower is better)" in markdown
    assert "Baseline (persistence (tomorrow equals today), same test split): baseline_rmse 0.8640" in markdown
    assert summary.best == ("dropout=0.2", 0.70, "test_rmse")
    assert client.get_run(parent).data.metrics["best_test_rmse"] == pytest.approx(0.70)


def test_runs_ranked_by_different_metrics_have_no_best(isolated_root):
    client = MlflowClient(tracking.tracking_uri())
    experiment_id = tracking.set_experiment("mixed")
    accuracy = client.create_run(experiment_id, run_name="a").info.run_id
    client.log_metric(accuracy, "test_accuracy", 0.9)
    rmse = client.create_run(experiment_id, run_name="b", tags={"primary_metric": "rmse",
                                                                "primary_higher_is_better": "false"}).info.run_id
    client.log_metric(rmse, "test_rmse", 0.7)
    runs = [client.get_run(accuracy), client.get_run(rmse)]
    assert sweeps.best_run(runs[:1]) == ("a", 0.9, "test_accuracy")  # untagged: ranked by test accuracy
    assert sweeps.best_run(runs) is None  # a sweep over experiments has no single best
