"""End to end, in a copy of the project: `dvc repro` and the Hydra entry point, as a user runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import run, subprocess_env

from rnnlab import backends

pytestmark = pytest.mark.slow

STAGES = ["compose", "fetch@imdb", "prepare@imdb", "train@imdb_lstm", "evaluate@imdb_lstm",
          "fetch@long_memory", "prepare@long_memory", "gradient_study", "report"]
# The gradient study on a few sequences, one epoch: tests/test_gradient_study.py checks its numbers.
TINY_STUDY = ["profile=quick", "data.n_train=64", "data.n_test=32", "n_measure=16", "trainer.epochs=1"]


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def use_quick_profile(project: Path) -> None:
    """The pipeline's shape on one experiment; tests/test_experiments.py runs every experiment."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["experiments"] = {"imdb_lstm": "imdb"}
    params["datasets"] = ["imdb", "long_memory"]
    params["overrides"] = ["profile=quick"]
    params["gradient_study_overrides"] = TINY_STUDY
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def mlflow_runs(project: Path, experiment: str = "imdb_lstm"):
    client = MlflowClient(f"sqlite:///{project / 'mlruns.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])


def test_dvc_repro_builds_everything_then_reruns_only_what_changed(project_copy: Path):
    project = project_copy
    env = subprocess_env(project)
    use_quick_profile(project)

    first = run(["dvc", "repro"], project, env)
    assert first.returncode == 0, first.stdout + first.stderr
    stages = ran_stages(first.stdout)  # DVC orders independent stages as it likes
    assert stages[0] == "compose" and stages[-1] == "report" and sorted(stages) == sorted(STAGES)
    assert "SYNTHETIC SAMPLE" in first.stderr  # auto fell back, loudly

    for path in ["resolved/imdb_lstm.yaml", "resolved/data/imdb.yaml", "data/raw/imdb/provenance.json",
                 "data/prepared/imdb/arrays.npz", "models/imdb_lstm/model.keras", "metrics/imdb_lstm/history.csv",
                 "metrics/imdb_lstm/metrics.json", "reports/experiments/imdb_lstm/training_curves.png",
                 "reports/experiments/imdb_lstm/confusion_matrix.png", "reports/index.md", "reports/index.html",
                 "metrics/gradient_study/metrics.json", "metrics/gradient_study/gradient_norms.csv",
                 "reports/gradient_study/gradient_norms.png"]:
        assert (project / path).is_file(), path

    metrics = json.loads((project / "metrics/imdb_lstm/details.json").read_text())
    assert metrics["data"] == {"dataset": "imdb", "source": "sample", "synthetic": True, "sample": True,
                               "label": "synthetic sample", "n_train": 3000, "n_test": 1000}
    # DVC's metrics file: numbers only, the keys every experiment shares.
    assert json.loads((project / "metrics/imdb_lstm/metrics.json").read_text()) == {
        "accuracy": metrics["model"]["accuracy"], "baseline": metrics["baseline"]["accuracy"],
        "p_value": metrics["primary"]["test"]["p_value"], "best_epoch": metrics["training"]["best_epoch"], "epochs": 3}
    # trainer.backend=auto: the measured fastest for IMDB on a CPU (rnnlab.backends.FASTEST).
    fastest = backends.FASTEST[("imdb", "cpu")]
    assert metrics["environment"] == {"keras_backend": fastest, "device": "cpu", "profile": "quick", "devices": "cpu",
                                      "precision": "float32",
                                      "jit_compile": str(backends.jit_compile("auto", fastest, "imdb", "cpu")).lower()}
    for part in ("model", "baseline"):
        assert set(metrics[part]) >= {"accuracy", "loss", "roc_auc", "confusion_matrix"}
        assert sum(map(sum, metrics[part]["confusion_matrix"])) == 1000
    # The sample is built so that order matters: bag-of-words stays near chance, the LSTM does not.
    assert 0.4 < metrics["baseline"]["accuracy"] < 0.6
    assert metrics["model"]["accuracy"] > metrics["baseline"]["accuracy"] + 0.2
    assert metrics["model"]["roc_auc"] > 0.8

    history = (project / "metrics/imdb_lstm/history.csv").read_text().splitlines()
    assert history[0].split(",") == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(history) == 1 + 3  # quick profile: 3 epochs

    report = (project / "reports/index.md").read_text()
    assert "SYNTHETIC SAMPLE" in report and "bag-of-words logistic regression" in report
    assert f"{metrics['model']['accuracy']:.4f}" in report and "<start>" not in report
    assert "<table>" in (project / "reports/index.html").read_text()
    assert "## gradient_study" in report and "gradient_study/gradient_norms.png" in report

    client, runs = mlflow_runs(project)
    assert len(runs) == 1
    mlrun = runs[0]
    assert mlrun.info.status == "FINISHED" and mlrun.info.run_id == metrics["run"]["run_id"]
    assert mlrun.info.run_name == "imdb_lstm (quick)"
    params = mlrun.data.params
    assert params["model.units"] == "64" and params["model.dropout"] == "0.2"
    assert params["regularizer.kind"] == "l1l2" and params["trainer.batch_size"] == "16"
    # The config asked for auto; the offline sample answered, and the params say what trained.
    assert params["data.source"] == "sample" and params["data.requested_source"] == "auto"
    assert params["profile_name"] == "quick"
    tags = mlrun.data.tags
    git_head = run(["git", "rev-parse", "HEAD"], project, env).stdout.strip()
    assert tags["git_commit"] == git_head and tags["git_dirty"] in ("true", "false")
    assert tags["data.source"] == "sample" and tags["data.synthetic"] == "true"
    assert tags["data.label"] == "synthetic sample"
    provenance = json.loads((project / "data/raw/imdb/provenance.json").read_text())
    assert tags["data.raw_sha256"] == provenance["sha256"]
    assert tags["keras_backend"] == fastest and tags["backend_choice"] == backends.MEASURED and tags["device"] == "cpu"
    assert tags["dvc_stage"] == "train@imdb_lstm"
    assert mlrun.data.metrics["test_accuracy"] == pytest.approx(metrics["model"]["accuracy"])
    assert mlrun.data.metrics["baseline_accuracy"] == pytest.approx(metrics["baseline"]["accuracy"])
    assert len(client.get_metric_history(mlrun.info.run_id, "val_accuracy")) == 3
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"config.yaml", "history.csv", "metrics.json", "details.json", "figures"} <= artifacts
    logged = client.search_logged_models([mlrun.info.experiment_id])  # the model, as an MLflow model
    assert [m.source_run_id for m in logged] == [mlrun.info.run_id]
    assert str(project / "mlartifacts") in mlrun.info.artifact_uri

    second = run(["dvc", "repro"], project, env)
    assert second.returncode == 0 and ran_stages(second.stdout) == []

    model_conf = project / "conf/model/lstm.yaml"
    model_conf.write_text(model_conf.read_text().replace("dropout: 0.2", "dropout: 0.3"))
    third = run(["dvc", "repro"], project, env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert ran_stages(third.stdout) == ["compose", "train@imdb_lstm", "evaluate@imdb_lstm", "report"]
    _, runs = mlflow_runs(project)
    assert sorted(r.data.params["model.dropout"] for r in runs) == ["0.2", "0.3"]

    data_conf = project / "conf/data/imdb.yaml"
    data_conf.write_text(data_conf.read_text().replace("maxlen: 80", "maxlen: 60"))
    fourth = run(["dvc", "repro"], project, env)
    assert ran_stages(fourth.stdout) == ["compose", "prepare@imdb", "train@imdb_lstm", "evaluate@imdb_lstm",
                                         "report"]


def test_a_bad_config_stops_dvc_repro_before_any_data_is_written(project_copy: Path):
    project = project_copy
    env = subprocess_env(project)
    model_conf = project / "conf/model/lstm.yaml"
    model_conf.write_text(model_conf.read_text().replace("dropout: 0.2", "dropout: 1.5"))
    result = run(["dvc", "repro"], project, env)
    assert result.returncode != 0
    assert "model.dropout=1.5 is invalid: must be in [0, 1)" in result.stderr
    # resolved/ is committed (as metrics/ is), and DVC removes a stage's outputs before it runs it.
    assert not (project / "data").exists() and not (project / "resolved").exists()


def test_hydra_run_trains_evaluates_and_prints_metrics_json(project_copy: Path):
    project = project_copy
    env = subprocess_env(project)
    result = run(["python", "-m", "rnnlab.train", "experiment=imdb_lstm", "profile=quick", "trainer.epochs=1",
                  "model.units=16"], project, env)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["experiment"] == "imdb_lstm" and metrics["data"]["synthetic"] is True
    assert 0.0 <= metrics["model"]["accuracy"] <= 1.0 and "accuracy" in metrics["baseline"]
    job_dirs = list((project / "outputs/runs").glob("*_imdb_lstm"))
    assert len(job_dirs) == 1
    assert (job_dirs[0] / "model/model.keras").is_file() and (job_dirs[0] / "metrics/metrics.json").is_file()
    assert (job_dirs[0] / "metrics/details.json").is_file()
    assert not (project / "models").exists()  # the pipeline's outputs are DVC's alone
    _, runs = mlflow_runs(project)
    assert [r.data.params["model.units"] for r in runs] == ["16"]
    assert runs[0].info.status == "FINISHED" and "dvc_stage" not in runs[0].data.tags


def test_hydra_run_rejects_bad_values_before_loading_data(project_copy: Path):
    env = subprocess_env(project_copy)
    for override, message in [("trainer.optimizer=adamw", "trainer.optimizer"),
                              ("experiment=imdb_transformer", "imdb_transformer"),
                              ("data.source=local", "data.path")]:
        result = run(["python", "-m", "rnnlab.train", override], project_copy, env)
        assert result.returncode != 0 and message in result.stderr
    assert not (project_copy / "data").exists() and not (project_copy / "mlruns.db").exists()
