"""Tracking against real processes: an `mlflow server` on 127.0.0.1, and a run killed mid-training."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import run, running_mlflow_server, subprocess_env

pytestmark = pytest.mark.slow

QUICK_RUN = ["python", "-m", "rnnlab.train", "experiment=imdb_lstm", "profile=quick", "trainer.epochs=1",
             "model.units=8", "data.sample_train=400", "data.sample_test=200", "data.limit=null"]


@pytest.fixture
def mlflow_server(tmp_path: Path):
    with running_mlflow_server(tmp_path) as url:
        yield url


def test_runs_go_to_the_server_named_by_mlflow_tracking_uri(project_copy: Path, mlflow_server: str):
    env = subprocess_env(project_copy, MLFLOW_TRACKING_URI=mlflow_server)
    result = run(QUICK_RUN, project_copy, env)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert not (project_copy / "mlruns.db").exists()  # nothing went to the local default store

    client = MlflowClient(mlflow_server)
    mlrun = client.get_run(metrics["run_id"])
    assert mlrun.info.status == "FINISHED" and mlrun.data.params["model.units"] == "8"
    assert mlrun.data.metrics["test_accuracy"] == pytest.approx(metrics["model"]["accuracy"])
    assert mlrun.data.tags["data.synthetic"] == "true"
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"config.yaml", "metrics.json", "figures"} <= artifacts
    # The model is on the server as a logged model of the run, and loads from it.
    assert [m.source_run_id for m in client.search_logged_models([mlrun.info.experiment_id])] == [mlrun.info.run_id]


def test_a_run_terminated_mid_training_ends_killed(project_copy: Path):
    env = subprocess_env(project_copy)
    cmd = [*QUICK_RUN, "trainer.epochs=200"]
    proc = subprocess.Popen(cmd, cwd=project_copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = project_copy / "mlruns.db"
    deadline = time.time() + 180
    run_id = None
    while time.time() < deadline and run_id is None:
        time.sleep(2)
        # Read-only SQL, not MlflowClient: a client would run MLflow's schema migrations on a
        # store the training process may be creating at this very moment.
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                row = conn.execute("SELECT run_uuid FROM metrics WHERE key = 'loss' LIMIT 1").fetchone()
        except sqlite3.Error:
            row = None  # no store yet, or its tables are still being made
        if row:
            run_id = row[0]  # at least one epoch done: mid-training now
    assert run_id, "training never started"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert MlflowClient(f"sqlite:///{db}").get_run(run_id).info.status == "KILLED"
