import mlflow
import pytest
from mlflow.tracking import MlflowClient

from rnnlab import tracking


def test_default_store_is_an_absolute_sqlite_file_in_the_project(isolated_root):
    assert tracking.tracking_uri() == f"sqlite:///{isolated_root / 'mlruns.db'}"


def test_environment_variable_points_elsewhere(isolated_root, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri() == "http://127.0.0.1:5999"


@pytest.mark.parametrize("error, status", [(ValueError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")])
def test_a_crashed_or_interrupted_run_never_stays_running(isolated_root, error, status):
    with pytest.raises(type(error)):
        with tracking.run("crash-test", run_name="doomed") as active:
            run_id = active.info.run_id
            raise error
    run = MlflowClient(tracking.tracking_uri()).get_run(run_id)
    assert run.info.status == status
    assert mlflow.active_run() is None


def test_resuming_a_run_adds_to_it(isolated_root):
    with tracking.run("resume-test", run_name="first") as active:
        mlflow.log_metric("a", 1.0)
    with tracking.run("resume-test", run_id=active.info.run_id):
        mlflow.log_metric("b", 2.0)
    run = MlflowClient(tracking.tracking_uri()).get_run(active.info.run_id)
    assert run.data.metrics == {"a": 1.0, "b": 2.0} and run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith((isolated_root / "mlartifacts").as_uri())


def test_flat_params_use_dotted_keys():
    params = tracking.flat_params({"model": {"units": 64, "cell": "lstm"}, "regularizer": {"apply_to": ["bias"]}})
    assert params == {"model.units": "64", "model.cell": "lstm", "regularizer.apply_to": "['bias']"}
