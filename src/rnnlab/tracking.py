"""Everything MLflow: the store, one run per training, params, per-epoch metrics, tags.

The default store is `sqlite:///<project root>/mlruns.db` with artifacts in
`<project root>/mlartifacts`, both resolved to absolute paths once, so runs from
Hydra job folders and DVC's temporary experiment copies land in the same place.
MLFLOW_TRACKING_URI, when set, points to another store (a team server).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any, Iterator

import keras
import mlflow
from mlflow.entities import Metric, RunStatus
from omegaconf import OmegaConf

from rnnlab import paths


def default_uri() -> str:
    return f"sqlite:///{paths.TRACKING_ROOT / 'mlruns.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def _uses_default_store() -> bool:
    # Not "is the variable unset": mlflow.set_tracking_uri itself sets MLFLOW_TRACKING_URI.
    return tracking_uri() == default_uri()


def set_experiment(name: str) -> str:
    """Select (creating if needed) the MLflow experiment; returns its id."""
    mlflow.set_tracking_uri(tracking_uri())
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        mlflow.set_experiment(experiment_id=existing.experiment_id)
        return existing.experiment_id
    # MLflow's default artifact root is relative to the working directory; pin it to the project.
    location = (paths.TRACKING_ROOT / "mlartifacts").as_uri() if _uses_default_store() else None
    try:
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        experiment_id = mlflow.get_experiment_by_name(name).experiment_id  # created meanwhile by a parallel job
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextlib.contextmanager
def run(experiment: str, run_name: str | None = None, run_id: str | None = None,
        tags: dict[str, str] | None = None, parent_run_id: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """Start (or resume, given `run_id`) a run that always ends.

    FINISHED on success, FAILED on an error, KILLED on Ctrl-C or SIGTERM: a run never
    stays RUNNING after its process is gone. `parent_run_id` nests a new run under a
    run of another process (a sweep's parent, see rnnlab.sweeps).
    """
    set_experiment(experiment)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    active = mlflow.start_run(run_id=run_id, run_name=run_name if run_id is None else None, tags=tags,
                              parent_run_id=parent_run_id if run_id is None else None)
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        yield active
        status = RunStatus.to_string(RunStatus.FINISHED)
    except KeyboardInterrupt:
        status = RunStatus.to_string(RunStatus.KILLED)
        raise
    finally:
        mlflow.end_run(status=status)
        signal.signal(signal.SIGTERM, previous)


def raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    """A signal handler that makes SIGTERM end a run as Ctrl-C does: KILLED, never RUNNING."""
    raise KeyboardInterrupt(f"signal {signum}")


def experiment_name(cfg: Any) -> str:
    """The MLflow experiment of a run: tracking.experiment, or one per rnnlab experiment."""
    return str(cfg.tracking.experiment or cfg.experiment_name)


def flat_params(cfg: Any) -> dict[str, str]:
    """The resolved config as dotted keys: model.units=64, regularizer.l1=0.01, ..."""
    container = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            flat[prefix] = str(node)

    walk("", container)
    return flat


def git_tags() -> dict[str, str]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=paths.ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def device() -> str:
    """What trains: the first accelerator Keras' backend sees, else the CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        devices = [d for d in jax.devices() if d.platform != "cpu"]
        return f"{devices[0].platform}:{getattr(devices[0], 'device_kind', devices[0])}" if devices else "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"gpu:{gpus[0].name}" if gpus else "cpu"
    if backend == "torch":
        import torch

        return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    return "cpu"


def run_tags(cfg: Any, data_meta: dict[str, Any]) -> dict[str, str]:
    provenance = data_meta["provenance"]
    tags = {
        **git_tags(),
        "experiment": str(cfg.experiment_name),
        "profile": str(cfg.profile_name),
        "data.source": str(provenance["source"]),
        "data.synthetic": str(bool(provenance.get("synthetic"))).lower(),
        "data.raw_sha256": str(data_meta["raw_sha256"]),
        "data.sha256": str(data_meta["sha256"]),
        "keras_backend": keras.backend.backend(),
        "device": device(),
    }
    if provenance.get("synthetic"):
        tags["data.label"] = str(provenance.get("label", "synthetic sample"))
    if os.environ.get("DVC_STAGE"):
        tags["dvc_stage"] = os.environ["DVC_STAGE"]
    return tags


class EpochLogger(keras.callbacks.Callback):
    """Logs per-epoch metrics (loss, accuracy, val_*) to the active run, as each epoch's step.

    Our own callback rather than mlflow.keras.autolog, whose documented support
    stops short of Keras 3's current releases. Epochs are sent together at most every
    FLUSH_SECONDS, so a thousand 20 ms epochs of the NumPy models cost a few writes to the
    store rather than a thousand; a Keras epoch usually takes longer and is sent at once.
    The NumPy models call `on_epoch_end` and `flush` themselves.
    """

    FLUSH_SECONDS = 2.0

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[Metric] = []
        self._last_flush = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        now_ms = int(time.time() * 1000)
        self._pending += [Metric(key, float(value), now_ms, epoch) for key, value in (logs or {}).items()]
        if time.monotonic() - self._last_flush >= self.FLUSH_SECONDS:
            self.flush()

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self.flush()

    def flush(self) -> None:
        run = mlflow.active_run()
        if run is not None and self._pending:
            client = mlflow.MlflowClient()
            for start in range(0, len(self._pending), 1000):  # log_batch takes at most 1000 metrics
                client.log_batch(run.info.run_id, metrics=self._pending[start:start + 1000])
        self._pending = []
        self._last_flush = time.monotonic()
