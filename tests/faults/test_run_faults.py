"""Faults made for real around a training run: a kill -9, a SIGTERM, a tracking server that is
down, credentials in the tracking URI. Each fault is a real signal to a real process, or a real
`mlflow server` on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from conftest import PROJECT, free_port, running_mlflow_server, server_answers, subprocess_env
from rnnlab import tracking

# 300 short epochs (about 15 s on one core): long enough to be interrupted in the middle.
LONG_RUN = ["experiment=phrase_sentiment", "profile=quick", "trainer.epochs=300"]


def start_training(tmp_path: Path, uri: str, *overrides: str) -> subprocess.Popen:
    env = subprocess_env(PROJECT, MLFLOW_TRACKING_URI=uri)
    return subprocess.Popen([sys.executable, "-m", "rnnlab.train", *LONG_RUN, *overrides,
                             f"hydra.run.dir={tmp_path / 'job'}"], cwd=PROJECT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(client: mlflow.MlflowClient, process: subprocess.Popen, epochs: int = 3,
                    timeout: float = 180) -> mlflow.entities.Run:
    """The process's run, once MLflow holds `epochs` of its losses."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  filter_string="attributes.status = 'RUNNING'")
        if runs and len(client.get_metric_history(runs[0].info.run_id, "loss")) >= epochs:
            return runs[0]
        time.sleep(0.5)
    process.kill()
    pytest.fail("the training run never logged its first epochs")


def test_a_run_left_running_by_a_killed_process_is_ended_killed_by_the_next(tmp_path: Path,
                                                                            isolated_root: Path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = mlflow.MlflowClient(uri)
    process = start_training(tmp_path, uri)
    orphan = wait_for_epochs(client, process)
    process.send_signal(signal.SIGKILL)  # no handler runs: the run stays RUNNING
    process.communicate(timeout=60)
    assert client.get_run(orphan.info.run_id).info.status == "RUNNING"
    assert orphan.data.tags["rnnlab.pid"] == str(process.pid)

    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        with tracking.run("another experiment", run_name="next") as active:
            # A run whose process is alive (this one) is left alone.
            assert tracking.end_orphaned_runs(client) == []
            assert client.get_run(active.info.run_id).info.status == "RUNNING"
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    ended = client.get_run(orphan.info.run_id)
    assert ended.info.status == "KILLED"
    assert f"its process {process.pid} on " in ended.data.tags["rnnlab.ended_by"]
    assert client.get_run(active.info.run_id).info.status == "FINISHED"


def test_sigterm_ends_the_run_killed_and_exits_143(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = mlflow.MlflowClient(uri)
    process = start_training(tmp_path, uri)
    run = wait_for_epochs(client, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr
    assert client.get_run(run.info.run_id).info.status == "KILLED"


def test_a_tracking_server_that_is_down_fails_at_once_with_the_fix(tmp_path: Path):
    closed = f"http://127.0.0.1:{free_port()}"
    env = subprocess_env(PROJECT, MLFLOW_TRACKING_URI=closed)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "rnnlab.train", "experiment=phrase_sentiment", "profile=quick",
                             f"hydra.run.dir={tmp_path / 'job'}"], cwd=PROJECT, env=env, capture_output=True,
                            text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and closed in errors[0] and "unset it" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert elapsed < 60  # start-up included; MLflow's own retries would take 258 s
    assert not (tmp_path / "job" / "model").exists()


@pytest.mark.slow
def test_credentials_in_the_tracking_uri_are_never_written(tmp_path: Path):
    with running_mlflow_server(tmp_path) as url:
        secret_uri = url.replace("http://", "http://alice:tok3n-s3cret@")
        env = subprocess_env(PROJECT, MLFLOW_TRACKING_URI=secret_uri)
        job = tmp_path / "job"
        result = subprocess.run([sys.executable, "-m", "rnnlab.train", "experiment=phrase_sentiment", "profile=quick",
                                 f"hydra.run.dir={job}"], cwd=PROJECT, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        run_info = json.loads((job / "model" / "run.json").read_text())
        assert run_info["tracking_uri"] == url
        client = mlflow.MlflowClient(url)
        run = client.get_run(run_info["run_id"])
        config = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))
        written = [json.dumps(run.data.params), json.dumps(run.data.tags), Path(config).read_text(),
                   result.stdout, result.stderr, *(p.read_text(errors="replace") for p in job.rglob("*")
                                                    if p.is_file() and p.suffix in {".json", ".yaml", ".log", ".csv"})]
        assert not [text for text in written if "tok3n-s3cret" in text]


def test_secret_looking_settings_and_uris_are_masked():
    assert tracking.masked("data.api_token", "abc") == "***"
    assert tracking.masked("db.password", "hunter2") == "***"
    assert tracking.masked("model.units", 64) == 64
    assert tracking.masked("data.url", "https://u:p@host/book.txt") == "https://host/book.txt"
    assert tracking.masked_override("+data.secret_key=xyz") == "+data.secret_key=***"
    assert tracking.masked_override("model.dropout=0.1,0.2") == "model.dropout=0.1,0.2"
    assert tracking.redact("see http://bob:pw@10.0.0.1:5000 and sqlite:///x.db") == \
        "see http://10.0.0.1:5000 and sqlite:///x.db"
    params = tracking.flat_params({"tracking": {"api_key": "k", "experiment": None}, "data": {"path": "a"}})
    assert params == {"tracking.api_key": "***", "tracking.experiment": "None", "data.path": "a"}


def start_server(folder: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` in its own process group (so that a kill takes its workers too)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--artifacts-destination",
         str(folder / "server-artifacts"), "--workers", "1"],
        stdout=open(folder / "server.log", "a"), stderr=subprocess.STDOUT, cwd=folder, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    if server_answers(f"http://127.0.0.1:{port}"):
        return server
    os.killpg(server.pid, signal.SIGKILL)
    pytest.fail("mlflow server did not start: " + (folder / "server.log").read_text()[-2000:])


@pytest.mark.slow
def test_a_tracking_server_killed_during_training_costs_nothing_and_the_run_replays(project_copy: Path,
                                                                                     tmp_path: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    client = mlflow.MlflowClient(url)
    job = tmp_path / "job"
    env = subprocess_env(project_copy, MLFLOW_TRACKING_URI=url)
    process = subprocess.Popen([sys.executable, "-m", "rnnlab.train", *LONG_RUN, f"hydra.run.dir={job}"],
                               cwd=project_copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run = wait_for_epochs(client, process)
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server dies in the middle of training
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert "MLFLOW SERVER GONE" in stdout + stderr  # Hydra logs to stdout
    # Nothing lost locally: the model, all 300 epochs of history, the test metrics.
    assert (job / "model" / "model.keras").is_file()
    assert len((job / "metrics" / "history.csv").read_text().splitlines()) == 301
    metrics = json.loads(stdout.strip().splitlines()[-1])  # the last line: nothing tried the server after
    assert metrics["run_id"] == run.info.run_id and "accuracy" in metrics["model"]
    kept = project_copy / "outputs" / "offline" / run.info.run_id / "run.json"
    assert kept.is_file()

    # The server comes back on the same store; the replay completes the same run.
    server = start_server(tmp_path, port)
    try:
        result = subprocess.run([sys.executable, "-m", "rnnlab.tracking", "--replay", str(kept)], cwd=project_copy,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        replayed = client.get_run(run.info.run_id)
        assert replayed.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(300))
        assert replayed.data.metrics["test_accuracy"] == pytest.approx(metrics["model"]["accuracy"])
        assert [m.source_run_id for m in client.search_logged_models([replayed.info.experiment_id])] == [run.info.run_id]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def read_history(job: Path) -> list[dict[str, str]]:
    import csv

    with open(job / "metrics" / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def wait_for_checkpoint(folder: Path, process: subprocess.Popen, epochs: int, timeout: float = 180) -> dict:
    """The checkpoint's latest.json once it holds `epochs` epochs (written after every epoch,
    unlike MLflow's metrics, which are sent every few seconds)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        for latest in folder.glob("phrase_sentiment-*/latest.json"):
            with contextlib.suppress(ValueError, OSError):  # read while it is replaced
                state = json.loads(latest.read_text())
                if state["epoch"] >= epochs:
                    return state
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"the training run never checkpointed {epochs} epochs")


# A kill -9 on JAX, a SIGTERM on TensorFlow: each backend's random state comes back. On JAX, one
# phrase per batch: its epochs are otherwise too short to stop the run in the middle.
@pytest.mark.slow
@pytest.mark.parametrize("how, backend", [(signal.SIGKILL, "jax"), (signal.SIGTERM, "tensorflow")],
                         ids=["kill-9-jax", "sigterm-tensorflow"])
def test_a_killed_run_resumes_at_its_next_epoch_to_the_same_result(project_copy: Path, tmp_path: Path, how,
                                                                   backend: str):
    """Dropout on, so that the resumed run must also get back the random state of the masks."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = mlflow.MlflowClient(uri)
    env = subprocess_env(project_copy, MLFLOW_TRACKING_URI=uri)
    command = [sys.executable, "-m", "rnnlab.train", "experiment=phrase_sentiment", "profile=quick",
               "trainer.epochs=60", "model.dropout=0.3", f"trainer.backend={backend}", "trainer.checkpoint_every_seconds=0",
               *(["trainer.batch_size=1"] if backend == "jax" else [])]

    def train(job: Path) -> subprocess.Popen:
        return subprocess.Popen([*command, f"hydra.run.dir={job}"], cwd=project_copy, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    whole = train(tmp_path / "whole")
    out, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-3000:]
    expected = json.loads(out.strip().splitlines()[-1])
    assert not list((project_copy / "outputs" / "checkpoints").glob("*"))  # removed when the run finished

    first = train(tmp_path / "first")
    run = client.get_run(wait_for_checkpoint(project_copy / "outputs" / "checkpoints", first, epochs=10)["run_id"])
    first.send_signal(how)
    first.communicate(timeout=120)
    assert first.returncode == (-9 if how == signal.SIGKILL else 143)
    checkpoint = next((project_copy / "outputs" / "checkpoints").glob("phrase_sentiment-*"))
    done = json.loads((checkpoint / "latest.json").read_text())["epoch"]
    assert 10 <= done < 60

    again = train(tmp_path / "again")
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert f"resuming phrase_sentiment after epoch {done} of 60" in out + err
    resumed = json.loads(out.strip().splitlines()[-1])
    assert resumed["run_id"] == run.info.run_id  # the same MLflow run, finished
    final = client.get_run(run.info.run_id)
    assert final.info.status == "FINISHED" and final.data.tags["resumed_after_epoch"] == str(done)
    assert sorted({m.step for m in client.get_metric_history(run.info.run_id, "loss")}) == list(range(60))
    # Where an uninterrupted run with the same seed ends: every epoch's numbers, and the test's.
    assert read_history(tmp_path / "again") == read_history(tmp_path / "whole")
    assert resumed["model"] == expected["model"]
    assert not checkpoint.exists()


@pytest.mark.slow
def test_the_dvc_train_stage_resumes_too_and_keeps_checkpoints_out_of_its_outputs(project_copy: Path):
    env = subprocess_env(project_copy)
    params = project_copy / "params.yaml"  # a checkpoint after every epoch, so that the kill finds one
    params.write_text(params.read_text().replace("\noverrides: []\n", "\noverrides: [trainer.checkpoint_every_seconds=0]\n"))
    assert "trainer.checkpoint_every_seconds=0" in params.read_text()
    prepared = subprocess.run(["dvc", "repro", "prepare@phrases"], cwd=project_copy, env=env, capture_output=True,
                              text=True, timeout=600)
    assert prepared.returncode == 0, prepared.stdout[-2000:] + prepared.stderr[-2000:]
    client = mlflow.MlflowClient(f"sqlite:///{project_copy / 'mlruns.db'}")
    # The stage's own command (dvc.yaml), killed in the middle of the course's 200 epochs.
    stage = subprocess.Popen([sys.executable, "-m", "rnnlab.train", "--stage", "resolved/phrase_sentiment.yaml"],
                             cwd=project_copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = client.get_run(wait_for_checkpoint(project_copy / "outputs" / "checkpoints", stage, epochs=10)["run_id"])
    stage.send_signal(signal.SIGKILL)
    stage.communicate(timeout=60)
    checkpoint = next((project_copy / "outputs" / "checkpoints").glob("phrase_sentiment-*"))
    done = json.loads((checkpoint / "latest.json").read_text())["epoch"]
    assert 10 <= done < 200

    result = subprocess.run(["dvc", "repro", "train@phrase_sentiment"], cwd=project_copy, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"resuming phrase_sentiment after epoch {done} of 200" in result.stdout + result.stderr
    assert json.loads((project_copy / "models" / "phrase_sentiment" / "run.json").read_text())["run_id"] == run.info.run_id
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert len((project_copy / "metrics" / "phrase_sentiment" / "history.csv").read_text().splitlines()) == 201
    assert not checkpoint.exists()
    lock = (project_copy / "dvc.lock").read_text()
    assert "outputs/checkpoints" not in lock and "outputs/checkpoints" not in (project_copy / "dvc.yaml").read_text()
