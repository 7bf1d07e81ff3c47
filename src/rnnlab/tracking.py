"""Everything MLflow: the store, one run per training, params, per-epoch metrics, tags.

The default store is `sqlite:///<project root>/mlruns.db` with artifacts in
`<project root>/mlartifacts`, both resolved to absolute paths once, so runs from
Hydra job folders and DVC's temporary experiment copies land in the same place.
MLFLOW_TRACKING_URI, when set, points to another store (a team server).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import keras
import mlflow
import numpy as np
import psutil
from mlflow.entities import Metric, RunStatus
from omegaconf import OmegaConf

from rnnlab import io, paths
from rnnlab.errors import Terminated, TrackingError

# MLflow's client retries a failed request 7 times with a growing wait (258 s in all) before it
# raises: a tracking server that is down would block a command for minutes. A user can still
# set these; check_reachable answers at start, EpochLogger keeps what it cannot send.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
# MLflow prints "View run at <URL>" on a server: with the URI's credentials, and opening the
# GenAI view. The project logs its own link (where_to_see).
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# Its "Downloading artifacts" bars (log_model checks its input example) fill every run's log.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Asked of every PythonModel without type hints, which a tensor model cannot give (mlflow_model.py).
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method")

log = logging.getLogger(__name__)

# The MLflow UI (3.x) opens an experiment on its GenAI view unless the experiment says it is
# model training, or the URL asks for the training view: the project does both.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
TRAINING_VIEW = "workflowType=machine_learning"


def default_uri() -> str:
    return f"sqlite:///{paths.TRACKING_ROOT / 'mlruns.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def _uses_default_store() -> bool:
    # Not "is the variable unset": mlflow.set_tracking_uri itself sets MLFLOW_TRACKING_URI.
    return tracking_uri() == default_uri()


def check_reachable(timeout: float = 5.0) -> None:
    """Fail at once, with the fix, when the tracking store is a server that does not answer."""
    import requests

    uri = tracking_uri()
    if ui_base(uri) is None:
        return
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout).raise_for_status()
    except requests.RequestException as exc:
        reason = type(exc).__name__ if not isinstance(exc, requests.HTTPError) else str(exc)
        raise TrackingError(
            f"the MLflow tracking server at {redact(uri)} does not answer ({redact(reason)}): start it "
            "(README, MLflow), fix MLFLOW_TRACKING_URI, or unset it to track into the project's SQLite store") from None


def set_experiment(name: str) -> str:
    """Select (creating if needed) the MLflow experiment; returns its id."""
    check_reachable()
    mlflow.set_tracking_uri(tracking_uri())
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        mark_as_training(mlflow.MlflowClient(), existing)
        mlflow.set_experiment(experiment_id=existing.experiment_id)
        return existing.experiment_id
    # MLflow's default artifact root is relative to the working directory; pin it to the project.
    location = (paths.TRACKING_ROOT / "mlartifacts").as_uri() if _uses_default_store() else None
    try:
        experiment_id = mlflow.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
    except mlflow.exceptions.MlflowException:
        experiment_id = mlflow.get_experiment_by_name(name).experiment_id  # created meanwhile by a parallel job
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def mark_as_training(client: mlflow.MlflowClient, experiment: Any) -> None:
    """Tag an experiment as model training, so the UI opens it on its runs table (experiments
    made before the project set the tag, or by hand)."""
    for key, value in EXPERIMENT_KIND.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)


def ui_base(uri: str) -> str | None:
    """The UI's address for an HTTP(S) tracking server, without credentials; None for a
    database or file store (serve it with `rnnlab ui`)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def experiment_link(base: str, experiment_id: str) -> str:
    """The runs table of an experiment, in the training view."""
    return f"{base}/#/experiments/{experiment_id}/runs?{TRAINING_VIEW}"


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """A run's page in the UI of the server at `tracking_uri`; None unless that is HTTP(S)."""
    base = ui_base(tracking_uri)
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{TRAINING_VIEW}" if base else None


def where_to_see(experiment: str, experiment_id: str, run_id: str) -> str:
    """For a log line: the run's link on a tracking server, else the command that serves the store."""
    return run_link(tracking_uri(), experiment_id, run_id) or f"run {run_id} (see it: rnnlab ui experiment={experiment})"


@contextlib.contextmanager
def run(experiment: str, run_name: str | None = None, run_id: str | None = None,
        tags: dict[str, str] | None = None, parent_run_id: str | None = None) -> Iterator["TrackedRun"]:
    """Start (or resume, given `run_id`) a run that always ends.

    FINISHED on success, FAILED on an error, KILLED on Ctrl-C or SIGTERM: a run never
    stays RUNNING after its process is gone. `parent_run_id` nests a new run under a
    run of another process (a sweep's parent, see rnnlab.sweeps). Write to the run through
    what this yields: when the tracking server stops answering, the writes go to a replay
    file and the command goes on (TrackedRun).
    """
    offline = _offline_runs.get(run_id) if run_id else None
    if offline is None:
        set_experiment(experiment)
        end_orphaned_runs(mlflow.MlflowClient())
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    if offline is None:
        active = mlflow.start_run(run_id=run_id, run_name=run_name if run_id is None else None, tags=tags,
                                  parent_run_id=parent_run_id if run_id is None else None)
        tracked = TrackedRun(active.info.run_id, active.info.experiment_id)
        tracked.set_tags(process_tags())  # a resumed run (evaluate) now belongs to this process
    else:
        tracked = offline
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        yield tracked
        status = RunStatus.to_string(RunStatus.FINISHED)
    except KeyboardInterrupt:
        status = RunStatus.to_string(RunStatus.KILLED)
        raise
    finally:
        tracked.end(status)
        signal.signal(signal.SIGTERM, previous)


# Runs of this process whose server went away, by id: evaluate, in the same process as train,
# goes on writing to the same replay file.
_offline_runs: dict[str, "TrackedRun"] = {}


def run_exists(run_id: str) -> bool:
    check_reachable()
    try:
        _client().get_run(run_id)
        return True
    except mlflow.exceptions.MlflowException:
        return False


def backfill_epochs(run: "TrackedRun", history: dict[str, list[float]]) -> None:
    """Log the epochs of `history` that the store lacks (sent late, then lost with a kill -9)."""
    client, now = _client(), int(time.time() * 1000)
    missing = []
    for key, values in history.items():
        have = {m.step for m in client.get_metric_history(run.run_id, key)}
        missing += [Metric(key, float(v), now, step) for step, v in enumerate(values) if step not in have]
    if missing:
        run.log_metric_history(missing)


class TrackedRun:
    """The active run, written through MLflow while the store answers. Once a write fails and
    the tracking server no longer answers, this and every later write of the run go to a
    replay file (outputs/offline/<run id>/run.json, with copies of its files) instead of
    stopping the command, which says so loudly at the end; `python -m rnnlab.tracking
    --replay <file>` sends it when the server is back."""

    def __init__(self, run_id: str, experiment_id: str) -> None:
        self.run_id, self.experiment_id = run_id, experiment_id
        self.info = self  # `.info.run_id` as on mlflow.ActiveRun
        self.journal: list[list[Any]] | None = None  # set when the server went away

    @property
    def folder(self) -> Path:
        return paths.offline_dir() / self.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        self._send("log_params", {k: str(v) for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._send("log_metrics", {k: float(v) for k, v in metrics.items()}, step)

    def log_metric_history(self, metrics: list[Metric]) -> None:
        self._send("log_batch", [[m.key, m.value, m.timestamp, m.step] for m in metrics])

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._send("set_tags", {k: str(v) for k, v in tags.items()})

    def log_text(self, text: str, artifact_file: str) -> None:
        self._send("log_text", text, artifact_file)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self._send("log_artifact", str(path), artifact_path)

    def log_artifacts(self, folder: Path | str, artifact_path: str | None = None) -> None:
        self._send("log_artifacts", str(folder), artifact_path)

    def log_model(self, model_file: Path, task: str, example: np.ndarray) -> None:
        self._send("log_model", str(model_file), task, example)

    def log_datasets(self, dataset: str, provenance: dict[str, Any],
                     splits: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> None:
        if self.journal is None:  # arrays are not kept for a replay: the data hashes are in the tags
            self._send("log_datasets", dataset, provenance, splits)

    def end(self, status: str) -> None:
        self._send("end", status)
        if self.journal is not None:
            _drop_active_run()  # else MLflow's exit handler tries the server again
            io.write_json(self.folder / "run.json", {"run_id": self.run_id, "experiment_id": self.experiment_id,
                                                      "tracking_uri": redact(tracking_uri()), "ops": self.journal})
            log.error("MLFLOW SERVER GONE: run %s is not complete in %s. The model, history and metrics are saved "
                      "as always; what MLflow missed is in %s. When the server is back: "
                      "python -m rnnlab.tracking --replay %s", self.run_id, redact(tracking_uri()), self.folder,
                      self.folder / "run.json")

    def _send(self, op: str, *args: Any) -> None:
        if self.journal is None:
            try:
                _OPS[op](self.run_id, *args)
                return
            except Exception as exc:  # noqa: BLE001 - a real error is re-raised below
                if op == "end":
                    _drop_active_run()
                if _reachable():
                    raise
                log.warning("MLflow: the tracking server %s stopped answering (%s); the run goes on into %s",
                            redact(tracking_uri()), type(exc).__name__, self.folder)
                self.journal = []
                _offline_runs[self.run_id] = self
        if op in ("log_datasets",):
            return
        self.journal.append([op, *self._kept(op, args)])

    def _kept(self, op: str, args: tuple[Any, ...]) -> list[Any]:
        """The op's arguments as JSON, with copies of the files it sends (they may be rebuilt
        before the replay)."""
        files = self.folder / "files"
        if op in ("log_artifact", "log_artifacts", "log_model"):
            source = Path(args[0])
            copy = files / str(len(self.journal)) / source.name  # the name kept: models.load reads it
            copy.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, copy)
            args = (str(copy), *args[1:])
        if op == "log_model":
            example = files / f"{len(self.journal)}-example.npy"
            np.save(example, args[2])
            args = (*args[:2], str(example))
        return list(args)


def _drop_active_run() -> None:
    # mlflow.end_run leaves the run stack popped even when telling the server fails.
    while mlflow.active_run() is not None:
        try:
            mlflow.end_run()
        except Exception:  # noqa: BLE001
            pass


def _reachable() -> bool:
    try:
        check_reachable(timeout=3.0)
        return True
    except TrackingError:
        return False


def _log_model_op(run_id: str, model_file: str, task: str, example: Any) -> None:
    example = np.load(example) if isinstance(example, str) else example
    with _active(run_id):
        log_model(Path(model_file), task, example)


def _log_datasets_op(run_id: str, dataset: str, provenance: dict[str, Any], splits: Any) -> None:
    with _active(run_id):
        log_datasets(dataset, provenance, splits)


@contextlib.contextmanager
def _active(run_id: str) -> Iterator[None]:
    """The fluent API's active run is `run_id` inside (log_model and log_input need one)."""
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield
        return
    with mlflow.start_run(run_id=run_id):
        yield


def _client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri())


_OPS: dict[str, Any] = {
    "log_params": lambda rid, params: _client().log_batch(
        rid, params=[mlflow.entities.Param(k, v) for k, v in params.items()]),
    "log_metrics": lambda rid, metrics, step: _client().log_batch(
        rid, metrics=[Metric(k, v, int(time.time() * 1000), step or 0) for k, v in metrics.items()]),
    "log_batch": lambda rid, rows: [_client().log_batch(rid, metrics=[Metric(*r) for r in rows[i:i + 1000]])
                                    for i in range(0, len(rows), 1000)],
    "set_tags": lambda rid, tags: _client().log_batch(
        rid, tags=[mlflow.entities.RunTag(k, v) for k, v in tags.items()]),
    "log_text": lambda rid, text, name: _client().log_text(rid, text, name),
    "log_artifact": lambda rid, path, where: _client().log_artifact(rid, path, where),
    "log_artifacts": lambda rid, folder, where: _client().log_artifacts(rid, folder, where),
    "log_model": _log_model_op,
    "log_datasets": _log_datasets_op,
    "end": lambda rid, status: _end_op(rid, status),
}


def _end_op(run_id: str, status: str) -> None:
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run(status=status)
    else:
        _client().set_terminated(run_id, status)


def replay(file: Path) -> str:
    """Send a run kept in a replay file to the tracking server (MLFLOW_TRACKING_URI); returns its id."""
    kept = io.read_json(file)
    check_reachable()
    mlflow.set_tracking_uri(tracking_uri())
    client = _client()
    run_id = kept["run_id"]
    try:
        client.get_run(run_id)
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(f"run {run_id} is not in {redact(tracking_uri())}: replay into the server that "
                            f"started it (it was {kept['tracking_uri']})") from exc
    client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    for op, *args in kept["ops"]:
        _OPS[op](run_id, *args)
    log.info("replayed %d writes into run %s: %s", len(kept["ops"]), run_id,
             where_to_see("", kept["experiment_id"], run_id))
    file.rename(file.with_suffix(".replayed.json"))
    return run_id


def raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    """A signal handler that makes SIGTERM end a run as Ctrl-C does: KILLED, never RUNNING."""
    raise Terminated(signum)


def process_tags() -> dict[str, str]:
    """Which process owns a run: what end_orphaned_runs checks (a pid alone can be reused)."""
    return {"rnnlab.host": socket.gethostname(), "rnnlab.pid": str(os.getpid()),
            "rnnlab.process_started": f"{psutil.Process().create_time():.2f}"}


def _process_exists(pid: str | None, started: str | None) -> bool:
    try:
        process = psutil.Process(int(pid or -1))
        return started is None or abs(process.create_time() - float(started)) < 1.0
    except (psutil.NoSuchProcess, ValueError):
        return False


def end_orphaned_runs(client: mlflow.MlflowClient) -> list[str]:
    """End KILLED the runs of this host left RUNNING by a process that no longer exists (a
    kill -9, a power cut), tagged with how they were found; returns their ids."""
    host = socket.gethostname()
    experiments = [e.experiment_id for e in client.search_experiments()]
    stale = [r for r in client.search_runs(experiments, max_results=1000, filter_string=
                                           f"attributes.status = 'RUNNING' and tags.`rnnlab.host` = '{host}'")
             if not _process_exists(r.data.tags.get("rnnlab.pid"), r.data.tags.get("rnnlab.process_started"))]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for orphan in stale:
        client.set_tag(orphan.info.run_id, "rnnlab.ended_by",
                       f"found RUNNING at {now} by process {os.getpid()}: its process "
                       f"{orphan.data.tags.get('rnnlab.pid')} on {host} no longer exists")
        client.set_terminated(orphan.info.run_id, RunStatus.to_string(RunStatus.KILLED))
    return [orphan.info.run_id for orphan in stale]


# Keys whose values are logged as *** (params, the config artifact, a sweep's command).
SECRET_KEY = re.compile(r"token|password|passwd|secret|key", re.IGNORECASE)
_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """`text` with the credentials of every URI in it removed (http://user:token@host -> http://host)."""
    return _CREDENTIALS.sub(r"\g<scheme>", text)


def masked(key: str, value: Any) -> Any:
    """What may be written of a setting: *** for a secret-looking key, credentials removed."""
    if SECRET_KEY.search(key.rsplit(".", 1)[-1]) and value not in (None, ""):
        return "***"
    return redact(value) if isinstance(value, str) else value


def masked_override(override: str) -> str:
    """A command-line override (key=value) as it may be logged."""
    key, sep, value = override.partition("=")
    return f"{key}{sep}{masked(key.lstrip('+~'), value)}" if sep else redact(override)


def masked_config(cfg: Any) -> Any:
    """The resolved config as plain containers, secrets masked (for params and the config artifact)."""
    container = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg

    def walk(key: str, node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(str(k), v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(key, v) for v in node]
        return masked(key, node)

    return walk("", container)


def experiment_name(cfg: Any) -> str:
    """The MLflow experiment of a run: tracking.experiment, or one per rnnlab experiment."""
    return str(cfg.tracking.experiment or cfg.experiment_name)


def flat_params(cfg: Any) -> dict[str, str]:
    """The resolved config as dotted keys: model.units=64, regularizer.l1=0.01, ... (masked)."""
    container = masked_config(cfg)
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


def trained_params(cfg: Any, provenance: dict[str, Any]) -> dict[str, str]:
    """The params of a run as what trained: where the data came from differs from what the
    config asked (data.source=auto fell back to the sample, data.ticker=META answered by the GOOG
    sample), the param says what was used and data.requested_<key> what was asked."""
    params = flat_params(cfg)
    for key, value in provenance.items():
        name = f"data.{key}"
        if name in params and isinstance(value, (str, int, float)) and str(value) != params[name]:
            params[f"data.requested_{key}"] = params[name]
            params[name] = str(value)
    if provenance.get("sample") or provenance.get("synthetic"):
        # The synthetic price sample has no ticker: say so rather than keep the requested one.
        for key in ("ticker",):
            if f"data.{key}" in params and key not in provenance:
                params[f"data.requested_{key}"] = params[f"data.{key}"]
                params[f"data.{key}"] = "none (synthetic sample)"
    return params


def run_tags(cfg: Any, data_meta: dict[str, Any]) -> dict[str, str]:
    provenance = data_meta["provenance"]
    tags = {
        **git_tags(),
        "experiment": str(cfg.experiment_name),
        "profile": str(cfg.profile_name),
        "data.source": str(provenance["source"]),
        "data.sample": str(provenance["source"] == "sample").lower(),
        "data.synthetic": str(bool(provenance.get("synthetic"))).lower(),
        "data.label": str(provenance.get("label") or data_label(provenance)),
        "data.raw_sha256": str(data_meta["raw_sha256"]),
        "data.sha256": str(data_meta["sha256"]),
        "keras_backend": keras.backend.backend(),
        "device": device(),
    }
    if provenance.get("ticker"):
        tags["data.ticker"] = str(provenance["ticker"])
    if os.environ.get("DVC_STAGE"):
        tags["dvc_stage"] = os.environ["DVC_STAGE"]
    return tags


def data_label(provenance: dict[str, Any]) -> str:
    """Where real data came from, for a run without a sample's label."""
    return str(provenance.get("url") or provenance.get("path") or provenance["source"])


def log_datasets(dataset: str, provenance: dict[str, Any], splits: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> None:
    """The training and test data as MLflow dataset inputs (the runs table's Dataset column):
    named by dataset and label, with their source and a digest of the arrays."""
    source = provenance.get("url") or provenance.get("path") or str(paths.raw_dir(dataset).resolve())
    label = provenance.get("label") or provenance["source"]
    for context, (features, targets) in splits.items():
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": two names for one kind of source
            warnings.filterwarnings("ignore", message="The specified dataset source")
            logged = mlflow.data.from_numpy(features, targets=targets, source=source,
                                            name=f"{dataset} {context} ({label})")
        _log_input_once(logged, context)


def _log_input_once(dataset: Any, context: str, attempts: int = 3) -> None:
    """mlflow.log_input, again when a parallel job of the same sweep logged the same dataset at
    the same moment: the store checks for it, then inserts it, and the slower of two jobs hits
    the unique constraint (sqlite "UNIQUE constraint failed", PostgreSQL "duplicate key"). The
    next attempt finds the dataset there and links it to this run."""
    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except mlflow.exceptions.MlflowException as exc:
            if attempt == attempts - 1 or not any(s in str(exc) for s in ("UNIQUE constraint", "duplicate key",
                                                                          "IntegrityError")):
                raise
            time.sleep(0.2 * (attempt + 1))


def log_model(model_file: Path, task: str, example: np.ndarray) -> str:
    """The saved model as an MLflow model (pyfunc flavour, rnnlab/models/mlflow_model.py) with
    its signature and an input example: `mlflow.pyfunc.load_model("runs:/<run id>/model")`
    predicts what the model predicts. Returns the logged model's id."""
    from mlflow.models import infer_signature

    from rnnlab import models

    loaded = models.load(model_file.parent, task)
    signature = infer_signature(example, loaded.predict(example, batch_size=len(example)))
    # Pinned rather than inferred: inference reloads the model in a subprocess for each run.
    requirements = [f"keras=={keras.__version__}", f"numpy=={np.__version__}", f"mlflow=={mlflow.__version__}"]
    info = mlflow.pyfunc.log_model(
        name="model", python_model=str(Path(models.__file__).with_name("mlflow_model.py")),
        artifacts={"model": str(model_file)}, model_config={"task": task},
        signature=signature, input_example=example, pip_requirements=requirements)
    return str(info.model_id)


class EpochLogger(keras.callbacks.Callback):
    """Logs per-epoch metrics (loss, accuracy, val_*) to the active run, as each epoch's step.

    Our own callback rather than mlflow.keras.autolog, whose documented support
    stops short of Keras 3's current releases. Epochs are sent together at most every
    FLUSH_SECONDS, so a thousand 20 ms epochs of the NumPy models cost a few writes to the
    store rather than a thousand; a Keras epoch usually takes longer and is sent at once.
    The NumPy models call `on_epoch_end` and `flush` themselves.
    """

    FLUSH_SECONDS = 2.0

    def __init__(self, run: TrackedRun | None = None) -> None:
        super().__init__()
        self.run = run  # None: the fluent API's active run
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
        """Send what is pending; what cannot be sent stays pending for the next flush, so a
        tracking server that goes away never stops training."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        try:
            if self.run is not None:  # a server that is gone: the run keeps them for a replay
                self.run.log_metric_history(self._pending)
                self._pending = []
            elif (active := mlflow.active_run()) is not None:
                client = mlflow.MlflowClient()
                while self._pending:  # log_batch takes at most 1000 metrics
                    client.log_batch(active.info.run_id, metrics=self._pending[:1000])
                    self._pending = self._pending[1000:]
        except Exception as exc:  # noqa: BLE001 - whatever the store raises, training goes on
            log.warning("MLflow: %d epoch metrics not sent yet (%s: %s); training goes on, they are "
                        "retried at the next epoch", len(self._pending), type(exc).__name__, redact(str(exc))[:200])


if __name__ == "__main__":
    import argparse

    from rnnlab import cli

    parser = argparse.ArgumentParser(description="Send a run kept while the tracking server was gone.")
    parser.add_argument("--replay", type=Path, required=True, metavar="FILE",
                        help="outputs/offline/<run id>/run.json, as the warning at the end of the run named it")
    cli.setup_logging()
    with cli.user_errors_exit():
        replay(parser.parse_args().replay)
