"""Sweeps end to end, in a copy of the project: Hydra multiruns as MLflow parent and child runs,
against a real `mlflow server` and the SQLite store, with the basic, joblib and submitit launchers,
failing jobs, Optuna, the leaderboard, and the MLflow UI's comparison view in headless Chromium."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import copy_project, run, running_mlflow_server, subprocess_env

from rnnlab import backends

pytestmark = pytest.mark.slow

# About 10 s a job on CPU.
SWEEP = ["python", "-m", "rnnlab.train", "-m", "experiment=imdb_lstm", "profile=quick", "trainer.epochs=1",
         "model.units=8", "data.sample_train=400", "data.sample_test=200", "data.limit=null"]
GRID = ["model.dropout=0.0,0.2", "regularizer=none,l2"]
GRID_NAMES = {"imdb_lstm dropout=0.0 regularizer=none", "imdb_lstm dropout=0.0 regularizer=l2",
              "imdb_lstm dropout=0.2 regularizer=none", "imdb_lstm dropout=0.2 regularizer=l2"}


def sweep_runs(client: MlflowClient, experiment: str = "imdb_lstm"):
    """The one sweep parent in the experiment, and every other run (which should all be its children)."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("rnnlab.sweep") == "parent"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    return parents[0], [r for r in runs if r is not parents[0]]


def sqlite_client(project: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{project / 'mlruns.db'}")


def assert_children_of(parent, children, names: set[str]) -> None:
    assert {c.info.run_name for c in children} == names
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED", (child.info.run_name, child.data.tags.get("error"))
        assert 0.0 <= child.data.metrics["test_accuracy"] <= 1.0 and "baseline_accuracy" in child.data.metrics


def assert_data_prepared_once(project: Path) -> None:
    """Every job used the same prepared data, which the first job to need it built."""
    caches = [p for p in (project / "data" / "cache").iterdir() if p.is_dir()]
    assert len(caches) == 1 and (caches[0] / "prepared" / "meta.json").is_file(), caches
    job_logs = " ".join(p.read_text() for p in (project / "outputs" / "sweeps").glob("*/*/train.log"))
    assert job_logs.count("fetched imdb") == 1 and job_logs.count("prepared imdb") == 1


# ------------------------------------------------------------------ a grid sweep against a server


@dataclass
class ServerSweep:
    project: Path
    url: str
    folder: Path
    returncode: int
    output: str


@pytest.fixture(scope="module")
def server_sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerSweep]:
    """A 2x2 sweep, two jobs at a time (joblib), tracked by a real `mlflow server`."""
    folder = tmp_path_factory.mktemp("server-sweep")
    project = copy_project(folder / "project")
    with running_mlflow_server(folder) as url:
        result = run([*SWEEP, *GRID, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], project,
                     subprocess_env(project, MLFLOW_TRACKING_URI=url))
        yield ServerSweep(project, url, folder, result.returncode, result.stdout + result.stderr)


def test_a_grid_sweep_is_one_parent_run_with_a_child_per_job(server_sweep: ServerSweep):
    assert server_sweep.returncode == 0, server_sweep.output[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in server_sweep.output
    assert not (server_sweep.project / "mlruns.db").exists()  # all of it went to the server
    parent, children = sweep_runs(MlflowClient(server_sweep.url))
    assert_children_of(parent, children, GRID_NAMES)

    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "imdb_lstm sweep over dropout, regularizer (quick)"
    assert parent.data.params["sweep.model.dropout"] == "0.0,0.2" and parent.data.params["sweep.regularizer"] == "none,l2"
    assert parent.data.params["sweep.jobs"] == "4"
    assert parent.data.tags["sweep.command"].startswith("python -m rnnlab.train -m experiment=imdb_lstm")
    assert "model.dropout=0.0,0.2 regularizer=none,l2" in parent.data.tags["sweep.command"]
    assert parent.data.metrics == pytest.approx({"jobs": 4, "jobs_finished": 4, "jobs_failed": 0,
                                                 "best_test_accuracy": max(c.data.metrics["test_accuracy"]
                                                                           for c in children)})

    for child in children:
        params, tags = child.data.params, child.data.tags
        dropout, regularizer = (part.split("=")[1] for part in child.info.run_name.split()[1:])
        assert params["model.dropout"] == dropout and params["regularizer.kind"] == regularizer
        assert params["model.units"] == "8" and params["profile_name"] == "quick"
        assert f"model.dropout={dropout}" in tags["hydra.job.overrides"].split()
        assert f"regularizer={regularizer}" in tags["hydra.job.overrides"].split()
        assert tags["data.synthetic"] == "true" and "git_commit" in tags
        # One backend for the whole sweep, the measured fastest for IMDB (trainer.backend=auto).
        assert tags["keras_backend"] == backends.FASTEST[("imdb", "cpu")] and tags["backend_choice"] == backends.MEASURED
        assert Path(tags["hydra.job.dir"]).name == tags["hydra.job.num"]
    assert sorted(c.data.tags["hydra.job.num"] for c in children) == ["0", "1", "2", "3"]


def test_every_job_of_a_sweep_reuses_the_data_prepared_once(server_sweep: ServerSweep):
    assert server_sweep.returncode == 0
    assert_data_prepared_once(server_sweep.project)


def test_the_leaderboard_ranks_the_runs_beside_the_baseline(server_sweep: ServerSweep):
    project = server_sweep.project
    result = run(["python", "-m", "rnnlab.compare", "experiment=imdb_lstm"], project,
                 subprocess_env(project, MLFLOW_TRACKING_URI=server_sweep.url))
    assert result.returncode == 0, result.stderr[-3000:]
    folder = project / "reports" / "leaderboards"
    with open(folder / "imdb_lstm.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {row["run"] for row in rows} == GRID_NAMES
    accuracies = [float(row["test_accuracy"]) for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    # Only what differs between the runs, and the baseline beside each.
    assert {"model.dropout", "regularizer.kind", "baseline_accuracy"} <= set(rows[0]) and "model.units" not in rows[0]
    markdown = (folder / "imdb_lstm.md").read_text()
    assert markdown in result.stdout and "Baseline (bag-of-words logistic regression" in markdown
    assert "SYNTHETIC SAMPLE" in markdown
    assert (folder / "imdb_lstm.png").read_bytes().startswith(b"\x89PNG")


def test_the_mlflow_ui_compares_the_sweeps_runs(server_sweep: ServerSweep):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed: `make test` installs it as root (apt-get install chromium)")
    assert server_sweep.returncode == 0
    parent, children = sweep_runs(MlflowClient(server_sweep.url))
    run_ids = json.dumps([c.info.run_id for c in children])
    # The UI's own route for its comparison view (mlflow/server/js: getCompareRunPageRoute).
    url = f"{server_sweep.url}/#/compare-runs?runs={run_ids}&experiments={json.dumps([parent.info.experiment_id])}"

    def chromium(*args: str) -> str:
        profile = server_sweep.folder / f"chromium-profile-{len(list(server_sweep.folder.glob('chromium-*')))}"
        result = run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                      "--window-size=1600,1100", "--hide-scrollbars", "--virtual-time-budget=15000", *args, url],
                     server_sweep.folder, subprocess_env(server_sweep.project), timeout=180)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    dom = chromium("--dump-dom")  # the page after React rendered it
    assert "Comparing 4 Runs" in dom
    for name in GRID_NAMES:
        assert name in dom
    screenshot = server_sweep.folder / "mlflow-compare-runs.png"
    chromium(f"--screenshot={screenshot}")
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one
    print(f"screenshot of the MLflow UI's comparison view: {screenshot}")


# ------------------------------------------------------------------ failures, launchers, Optuna (SQLite store)


def test_failed_jobs_end_failed_and_the_sweep_goes_on(project_copy: Path, tmp_path: Path):
    # Two failures that validation cannot see: a CSV without the columns it needs fails before
    # training, when the job has no run yet (the sweep makes one); validation_split=0.999 leaves
    # no training batch out of 400, which the job finds inside its run, before fit.
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("review,sentiment\ngood film,1\n")
    result = run([*SWEEP, "data.source=local,sample", f"data.path={reviews}", "trainer.validation_split=0.999,0.1"],
                 project_copy, subprocess_env(project_copy))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "error: 1 of 4 jobs finished; failed: imdb_lstm source=local validation_split=0.999" in result.stderr

    parent, children = sweep_runs(sqlite_client(project_copy))
    by_name = {c.info.run_name: c for c in children}
    assert len(children) == 4 and all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    for num, split in enumerate(["0.999", "0.1"]):
        no_data = by_name[f"imdb_lstm source=local validation_split={split}"]
        assert no_data.info.status == "FAILED" and no_data.data.tags["hydra.job.num"] == str(num)
        assert no_data.data.tags["error"].startswith("DataSourceError") and "missing column(s)" in no_data.data.tags["error"]
    in_training = by_name["imdb_lstm source=sample validation_split=0.999"]
    assert in_training.info.status == "FAILED"
    assert in_training.data.tags["error"].startswith("ConfigError: trainer.validation_split=0.999 leaves no training batch")
    assert in_training.data.params["trainer.validation_split"] == "0.999"  # it failed inside its own run
    finished = by_name["imdb_lstm source=sample validation_split=0.1"]  # the last job, after three failures
    assert finished.info.status == "FINISHED" and "test_accuracy" in finished.data.metrics
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["jobs"] == 4 and parent.data.metrics["jobs_finished"] == 1
    assert parent.data.metrics["jobs_failed"] == 3
    assert parent.data.tags["sweep.result"].startswith("1 of 4 jobs finished")


def test_a_bad_value_in_the_grid_stops_the_sweep_before_any_job(project_copy: Path):
    result = run([*SWEEP, "model.dropout=0.0,1.5"], project_copy, subprocess_env(project_copy))
    assert result.returncode == 2
    assert "model.dropout=1.5 is invalid: must be in [0, 1)" in result.stderr and "nothing was run" in result.stderr
    assert not (project_copy / "data" / "cache").exists() and not (project_copy / "mlruns.db").exists()


def test_joblib_runs_jobs_in_parallel_workers_without_harming_the_store(project_copy: Path):
    # 4 jobs on 2 workers: each worker runs 2 jobs, so runs and Keras state must not leak between jobs.
    result = run([*SWEEP, *GRID, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], project_copy,
                 subprocess_env(project_copy))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout and "database is locked" not in result.stderr
    parent, children = sweep_runs(sqlite_client(project_copy))
    assert_children_of(parent, children, GRID_NAMES)
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 4
    assert_data_prepared_once(project_copy)  # two jobs asked for it at once; the lock let one build it
    with sqlite3.connect(project_copy / "mlruns.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_submitit_local_runs_each_job_as_its_own_process(project_copy: Path):
    # The code path of hydra/launcher=slurm (conf/hydra/launcher/slurm.yaml), without a cluster.
    result = run([*SWEEP, "model.dropout=0.0,0.2", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
                 project_copy, subprocess_env(project_copy))
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(sqlite_client(project_copy))
    assert_children_of(parent, children, {"imdb_lstm dropout=0.0", "imdb_lstm dropout=0.2"})
    assert parent.data.tags["sweep.launcher"].endswith("submitit_launcher.LocalLauncher")
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 2
    assert list((project_copy / "outputs" / "sweeps").glob("*/.submitit"))  # submitit ran them


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
                    reason="hydra-optuna-sweeper is not installed (pip install hydra-optuna-sweeper)")
def test_an_optuna_sweep_tracks_each_trial(project_copy: Path):
    result = run([*SWEEP, "hydra/sweeper=imdb_lstm_optuna", "hydra.sweeper.n_trials=3"], project_copy,
                 subprocess_env(project_copy))
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(sqlite_client(project_copy))
    assert len(children) == 3 and parent.data.params["sweep.jobs"] == "3"
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.run_name.startswith("imdb_lstm dropout=") and " units=" in child.info.run_name
        assert float(child.data.params["trainer.learning_rate"]) != 0.001  # Optuna chose it
    # The sweeper optimised what the jobs returned: the validation accuracy of the kept epoch,
    # never the test split's; the parent still reports the best test accuracy.
    results = yaml.safe_load(next((project_copy / "outputs" / "sweeps").glob("*/optimization_results.yaml")).read_text())
    assert results["best_value"] == pytest.approx(max(c.data.metrics["kept_val_accuracy"] for c in children))
    assert parent.data.metrics["best_test_accuracy"] == pytest.approx(max(c.data.metrics["test_accuracy"]
                                                                           for c in children))
