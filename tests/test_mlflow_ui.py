"""What MLflow shows of a run: the training view's runs table from the link `rnnlab ui` prints
(in headless Chromium, on a real server), the model as an MLflow model, the data as dataset
inputs, and params that name what trained."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from omegaconf import OmegaConf

from conftest import PROJECT, free_port, run, server_answers, subprocess_env
from rnnlab import models, paths, tracking
from rnnlab.config import compose
from rnnlab.data.cache import ensure_prepared
from rnnlab.train import run_experiment


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One quick phrase_sentiment run (about 15 s) in a store of its own."""
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "ROOT", root)
        mp.setattr(paths, "TRACKING_ROOT", root)
        mp.setattr(paths, "RESOLVED_DIR", root / "resolved")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        cfg = compose(["experiment=phrase_sentiment", "profile=quick"])
        metrics = run_experiment(cfg, paths.Outputs.job(root / "job"))
        data = ensure_prepared(cfg)
        uri = tracking.tracking_uri()
    return {"root": root, "uri": uri, "metrics": metrics, "data": data, "cfg": cfg}


def test_the_model_is_an_mlflow_model_that_predicts_what_it_predicted(trained: dict):
    run_id = trained["metrics"]["run_id"]
    mlflow.set_tracking_uri(trained["uri"])
    logged = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    x_test = trained["data"]["x_test"]
    saved = models.load(trained["root"] / "job" / "model", "binary")
    assert np.allclose(logged.predict(x_test.astype(np.float32)), saved.predict(x_test), atol=1e-6)
    assert logged.metadata.get_input_schema().inputs[0].shape == (-1, *x_test.shape[1:])
    assert logged.input_example is not None
    # Listed among the run's logged models, which is what the UI's Models column shows.
    listed = mlflow.search_logged_models(experiment_ids=[mlflow.get_run(run_id).info.experiment_id],
                                         output_format="list")
    assert [m.source_run_id for m in listed] == [run_id]


def test_the_data_are_dataset_inputs_and_the_params_say_what_trained(trained: dict):
    client = mlflow.MlflowClient(trained["uri"])
    run = client.get_run(trained["metrics"]["run_id"])
    inputs = {next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
              for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "test"}
    assert inputs["training"].name == "phrases training (project-written phrases)"
    assert inputs["training"].digest and inputs["training"].digest != inputs["test"].digest
    assert '"features_shape": [72, ' in inputs["training"].profile  # the 72 training phrases
    # The config said data.source=auto; what trained is the sample, and the params say so.
    assert trained["cfg"].data.source == "auto"
    assert run.data.params["data.source"] == "sample" and run.data.params["data.requested_source"] == "auto"
    assert run.data.tags["data.label"] == "project-written phrases" and run.data.tags["data.sample"] == "true"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_params_name_the_sample_that_answered_not_the_requested_ticker():
    cfg = OmegaConf.create({"data": {"name": "prices", "source": "auto", "ticker": "META", "window": 40}})
    goog = {"source": "sample", "ticker": "GOOG", "requested_ticker": "META", "sample": True, "synthetic": False}
    params = tracking.trained_params(cfg, goog)
    assert (params["data.ticker"], params["data.requested_ticker"]) == ("GOOG", "META")
    assert (params["data.source"], params["data.requested_source"]) == ("sample", "auto")
    assert params["data.window"] == "40" and "data.requested_window" not in params
    synthetic = {"source": "sample", "requested_ticker": "META", "sample": True, "synthetic": True}
    assert tracking.trained_params(cfg, synthetic)["data.ticker"] == "none (synthetic sample)"
    remote = {"source": "remote", "ticker": "META", "sample": False, "synthetic": False}
    assert tracking.trained_params(cfg, remote) == {**tracking.flat_params(cfg), "data.source": "remote",
                                                    "data.requested_source": "auto"}


def test_links_open_the_training_view_and_carry_no_credentials():
    assert tracking.run_link("sqlite:////tmp/mlruns.db", "3", "abc") is None
    assert tracking.run_link("https://user:s3cret@mlflow.example.org:8443/", "3", "abc") == \
        "https://mlflow.example.org:8443/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert tracking.experiment_link("http://127.0.0.1:5000", "7") == \
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"


def test_rnnlab_ui_prints_a_link_that_shows_the_runs_without_a_click(trained: dict, tmp_path: Path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed: `make test` installs it as root (apt-get install chromium)")
    port = free_port()
    env = subprocess_env(PROJECT, MLFLOW_TRACKING_URI=trained["uri"])
    ui = subprocess.Popen([sys.executable, "-m", "rnnlab.ui", "--port", str(port)], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = ui.stdout.readline().strip()
        experiment_id = mlflow.MlflowClient(trained["uri"]).get_run(trained["metrics"]["run_id"]).info.experiment_id
        link = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        assert first == f"MLflow UI: {link}  (experiment phrase_sentiment)"
        if not server_answers(f"http://127.0.0.1:{port}"):
            pytest.fail("rnnlab ui's server did not start")
        # A fresh browser profile: the UI's GenAI / Model-training switch starts on GenAI there.
        result = run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                      f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1600,1000",
                      "--virtual-time-budget=15000", "--dump-dom", link], tmp_path, env, timeout=180)
        assert result.returncode == 0, result.stderr[-2000:]
        dom = result.stdout
        assert "phrase_sentiment (quick)" in dom  # the run's name, in the runs table
        assert "phrases training (project-written phrases)" in dom  # its Dataset column
        assert "Detect issues" not in dom and "Token usage" not in dom  # not the GenAI view
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
    with pytest.raises(requests.ConnectionError):  # the server went with it
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_rnnlab_ui_names_the_experiments_there_are_when_asked_for_another(trained: dict, tmp_path: Path):
    env = subprocess_env(PROJECT, MLFLOW_TRACKING_URI=trained["uri"])
    result = run([sys.executable, "-m", "rnnlab.ui", "experiment=imdb_lstn"], tmp_path, env, timeout=120)
    assert result.returncode == 2
    assert "no MLflow experiment named 'imdb_lstn'" in result.stderr and "phrase_sentiment" in result.stderr
