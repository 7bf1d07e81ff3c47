"""Training: config -> data -> model -> fit -> save -> one MLflow run.

    python -m rnnlab.train experiment=imdb_lstm [overrides]      one run (Hydra)
    python -m rnnlab.train -m model.dropout=0.0,0.2,0.5           a sweep: one MLflow run per job (rnnlab.sweeps)
    python -m rnnlab.train --stage resolved/imdb_lstm.yaml      the DVC stage: train only

A Hydra run prepares its data if missing, trains, evaluates, logs one MLflow run,
writes into its own job folder and prints the final metrics as one JSON object on
the last line of stdout. The DVC stage trains into models/<experiment>/, and the
evaluate stage adds its metrics to the same MLflow run.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnlab import cli

if __name__ == "__main__":  # before Keras loads: a misspelt override stops in a second, not ten,
    cli.before_keras("config")  # and Keras loads on the backend the config chooses

import hydra  # noqa: E402
import keras
import numpy as np
from omegaconf import DictConfig, OmegaConf

from rnnlab import backends, checkpoints, cli, io, models, paths, sweeps, tracking
from rnnlab.config import load_resolved, validate
from rnnlab.errors import ConfigError
from rnnlab.data.cache import ensure_prepared
from rnnlab.data.datasets import select
from rnnlab.data.prepare import ArrayBatches, OneHotWindows, SequenceChunks, load_prepared, skip_epochs
from rnnlab.models.progress import EpochProgress

log = logging.getLogger(__name__)


def train(cfg: Any, outputs: paths.Outputs, data: dict[str, Any] | None = None) -> str:
    """Fit the experiment's model on prepared data; returns the MLflow run id."""
    data = select(cfg, data if data is not None else load_prepared(paths.prepared_dir(cfg.data.name)))
    meta = data["meta"]
    setup = training_setup(cfg)  # a config this backend or machine cannot train stops here, before any run
    job = sweeps.current_job()  # set when this run is one job of a Hydra sweep
    run_name = job.run_name(str(cfg.experiment_name)) if job else str(cfg.experiment_name) + _run_name_suffix(cfg)
    tags = {**tracking.run_tags(cfg, meta), "implementation": str(cfg.model.implementation),
            **setup.tags(), **(job.tags() if job else {})}
    keep = cfg.trainer.resume and cfg.model.implementation == "keras"  # the NumPy models train in seconds
    folder = checkpoints.folder_for(cfg)
    resumed = checkpoints.latest(folder) if keep else None
    if resumed is not None and not tracking.run_exists(resumed.run_id):
        tags["resumed_from"] = resumed.run_id  # its store is elsewhere: a new run says where it comes from
    with tracking.run(tracking.experiment_name(cfg), run_name=run_name, tags=tags,
                      run_id=resumed.run_id if resumed and "resumed_from" not in tags else None,
                      parent_run_id=job.parent_run_id if job else None) as active:
        if resumed is None or "resumed_from" in tags:
            active.log_params(tracking.trained_params(cfg, meta["provenance"]))
            active.log_text(OmegaConf.to_yaml(tracking.masked_config(cfg)), "config.yaml")
            active.log_datasets(str(cfg.data.name), meta["provenance"], dataset_splits(data))
        start = resumed.epoch if resumed else 0
        if resumed is not None:
            log.info("resuming %s after epoch %d of %d (%s)", cfg.experiment_name, start, cfg.trainer.epochs, folder)
            active.set_tags({"resumed_after_epoch": start})
            tracking.backfill_epochs(active, resumed.history)  # epochs a kill -9 kept from the store
        with io.atomic_dir(outputs.model) as tmp, backends.data_parallel(setup.devices, setup.backend):
            if resumed is not None:
                model = models.load(resumed.model_file.parent, meta["task"])
                checkpoints.restore(model.model, resumed)
            else:
                model = models.build(cfg.model, cfg.regularizer, meta, batch_size=int(cfg.trainer.batch_size),
                                     seed=int(cfg.seed))
            inputs = fit_inputs(cfg, data, skip=start, multiple_of=max(1, len(setup.devices)))
            watching = training_callbacks(cfg.trainer)
            callbacks = [tracking.EpochLogger(active), EpochProgress(int(cfg.trainer.epochs)), *watching]
            if keep:  # last: it puts back the state of those before it
                callbacks.append(checkpoints.EpochCheckpoint(folder, active.info.run_id, watching, resumed,
                                                             every_seconds=float(cfg.trainer.checkpoint_every_seconds)))
            history = model.fit(cfg.trainer, inputs, callbacks=callbacks, initial_epoch=start,
                                jit_compile=setup.jit_compile)
            if resumed is not None:
                history = {key: [*resumed.history.get(key, []), *values] for key, values in history.items()}
            saved = model.save(tmp)
            summary = training_summary(cfg.trainer, history)
            # Prefixed: a bare val_loss would add a point to the per-epoch val_loss curve.
            active.log_metrics({f"kept_{k}" if k.startswith("val_") else k: v for k, v in summary.items()})
            io.write_json(tmp / "run.json", {"run_id": active.info.run_id,
                                             "experiment_id": active.info.experiment_id,
                                             "tracking_uri": tracking.redact(tracking.tracking_uri()), "training": summary,
                                             "setup": setup.tags()})
        write_history(history, outputs.metrics / "history.csv")
        active.log_artifact(outputs.metrics / "history.csv")
        active.log_model(outputs.model / saved, meta["task"], input_example(cfg, inputs))
    checkpoints.remove(folder)  # the run is complete: nothing left to resume
    log.info("trained %s -> %s: %s", cfg.experiment_name, outputs.model,
             tracking.where_to_see(tracking.experiment_name(cfg), active.info.experiment_id, active.info.run_id))
    return active.info.run_id


@dataclass(frozen=True)
class TrainingSetup:
    """What trains: the Keras backend (and why it was chosen), XLA, the devices that split each
    batch (none: the backend's default device), the precision."""
    backend: str
    reason: str
    jit_compile: bool | str
    devices: list[Any]
    precision: str

    def tags(self) -> dict[str, str]:
        return {"keras_backend": self.backend, "backend_choice": self.reason,
                "jit_compile": str(self.jit_compile).lower(), "precision": self.precision,
                "devices": backends.device_names(self.devices) if self.devices else tracking.device()}


def training_setup(cfg: Any) -> TrainingSetup:
    """The trainer's backend, jit_compile, devices and precision, resolved for this process and
    machine (rnnlab.backends); sets the global dtype policy. Warns where a GPU config leaves the
    cuDNN kernel."""
    t, dataset = cfg.trainer, str(cfg.data.name)
    choice = backends.check_loaded(t, dataset, bool(cfg.model.stateful))
    if cfg.model.implementation != "keras":
        backends.set_precision("float32")
        return TrainingSetup(choice.backend, choice.reason, False, [], "float32")
    devices = backends.training_devices(t.devices, choice.backend)
    if devices and int(t.batch_size) % len(devices):
        raise ConfigError(f"trainer.batch_size={t.batch_size} does not split evenly across {len(devices)} devices "
                          f"(trainer.devices={t.devices}): set trainer.batch_size to a multiple of {len(devices)}.")
    backends.set_precision(str(t.precision))
    if devices or backends.accelerators(choice.backend):
        backends.warn_off_cudnn(cfg.model)
    return TrainingSetup(choice.backend, choice.reason, backends.jit_compile(t.jit_compile, choice.backend, dataset),
                         devices, str(t.precision))


def dataset_splits(data: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """What trained and what tests it, as MLflow logs dataset inputs: (features, targets) per
    context; a text's ids are both (the model reads windows of them)."""
    if "x_train" in data:
        return {"training": (data["x_train"], data["y_train"]), "test": (data["x_test"], data["y_test"])}
    return {"training": (data["ids_train"], None), "test": (data["ids_test"], None)}


def input_example(cfg: Any, inputs: dict[str, Any]) -> np.ndarray:
    """A few rows of what the model reads, for the logged model's signature and example: a
    stateful model's whole batch, since it only takes that many rows."""
    rows = int(cfg.trainer.batch_size) if cfg.model.stateful else 2
    x = inputs["x"]
    first = x if isinstance(x, np.ndarray) else np.asarray(x[0][0])  # a PyDataset's first batch
    return first[:rows]


def training_callbacks(trainer: Any) -> list[keras.callbacks.Callback]:
    """Early stopping with the best weights restored, and ReduceLROnPlateau, where the trainer
    config turns them on (both watch a validation metric, never the test split)."""
    callbacks: list[keras.callbacks.Callback] = []
    stop, reduce = trainer.early_stopping, trainer.reduce_lr
    if stop.enabled:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=stop.monitor, patience=stop.patience,
                                                       min_delta=stop.min_delta,
                                                       restore_best_weights=stop.restore_best_weights))
    if reduce.enabled:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=reduce.monitor, factor=reduce.factor,
                                                           patience=reduce.patience, min_lr=reduce.min_lr))
    return callbacks


def training_summary(trainer: Any, history: dict[str, list[float]]) -> dict[str, Any]:
    """How training went: epochs run, and the epoch whose weights were kept (the best by the
    early-stopping monitor when it restores them, else the last)."""
    epochs = len(next(iter(history.values()), []))
    stop = trainer.early_stopping
    best = epochs
    if stop.enabled and stop.restore_best_weights and history.get(stop.monitor):
        values = np.asarray(history[stop.monitor])
        best = int((values.argmax() if "accuracy" in stop.monitor else values.argmin()) + 1)
    kept = {key: float(values[best - 1]) for key, values in history.items() if key.startswith("val_") and values}
    return {"epochs_trained": epochs, "best_epoch": best, **kept}


def fit_inputs(cfg: Any, data: dict[str, Any], skip: int = 0, multiple_of: int = 1) -> dict[str, Any]:
    """What model.fit reads: batches built by a seeded order per epoch (ArrayBatches for arrays;
    for a text, windows or chunks built batch by batch), brought forward `skip` epochs for a
    resumed run; the NumPy models take the arrays themselves. fit's own shuffle is off: it
    would reorder the batches with Python's global random state, outside the seed.

    With `multiple_of` = N devices, each epoch's last batch is cut to a multiple of N (at most
    N - 1 rows, others at every reshuffled epoch), so that every device gets as many rows.

    The last `trainer.validation_split` of the training data is held out to validate, so the
    test split stays unseen until evaluate. The course's window models validate on the
    held-out end of the text, the metric it reports, unless early stopping or
    ReduceLROnPlateau watch the validation.
    """
    inputs = _fit_inputs(cfg, data, skip)
    for key in ("x", "validation_data"):
        if hasattr(inputs.get(key), "multiple_of"):
            inputs[key].multiple_of = multiple_of
    if len(inputs["x"]) == 0:  # Keras would stop on it mid-fit, with a message that differs per backend
        raise ConfigError(f"trainer.validation_split={cfg.trainer.validation_split} leaves no training batch "
                          f"of {cfg.trainer.batch_size}: lower trainer.validation_split or trainer.batch_size.")
    return inputs


def _fit_inputs(cfg: Any, data: dict[str, Any], skip: int) -> dict[str, Any]:
    t = cfg.trainer
    batch, seed = int(t.batch_size), int(cfg.seed)
    if data["meta"]["task"] == "char_lm":
        ids, seq_len = data["ids_train"], int(cfg.data.seq_len)
        cut = len(ids) - int(round(len(ids) * t.validation_split))
        inputs = {"x": skip_epochs(SequenceChunks(ids[:cut], seq_len, batch, shuffle=True, seed=seed), skip),
                  "shuffle": False}
        if t.validation_split > 0:
            inputs["validation_data"] = SequenceChunks(ids[cut:], seq_len, batch)
        return inputs
    if "ids_train" in data:
        spec = data["meta"]["input_spec"]
        window, vocab = spec["length"], spec["features"]
        ids = data["ids_train"]
        watched = t.early_stopping.enabled or t.reduce_lr.enabled
        cut = len(ids) - int(round(len(ids) * t.validation_split)) if watched else len(ids)
        return {"x": skip_epochs(OneHotWindows(ids[:cut], window, vocab, batch, step=cfg.data.step, shuffle=True,
                                               seed=seed), skip), "shuffle": False,
                "validation_data": OneHotWindows(ids[cut:] if watched else data["ids_test"], window, vocab, batch)}
    if cfg.model.implementation == "numpy":
        return {"x": data["x_train"], "y": data["y_train"]}
    x, y = data["x_train"], data["y_train"]
    if cfg.model.stateful:
        # Read in order, its state carried from one batch to the next: every epoch is the same,
        # and the arrays keep the fixed batch shape that a stateful layer needs.
        return {"x": x, "y": y, "batch_size": batch, "validation_split": t.validation_split, "shuffle": False}
    cut = len(x) - int(round(len(x) * t.validation_split))
    inputs = {"x": skip_epochs(ArrayBatches(x[:cut], y[:cut], batch, seed=seed), skip), "shuffle": False}
    if cut < len(x):
        inputs["validation_data"] = ArrayBatches(x[cut:], y[cut:], batch, shuffle=False)
    return inputs


def write_history(history: dict[str, list[float]], path: Path) -> None:
    """Per-epoch metrics as CSV, the form `dvc plots` reads."""
    keys = list(history)
    with io.atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["epoch", *keys])
            for epoch in range(len(history[keys[0]]) if keys else 0):
                writer.writerow([epoch + 1, *(f"{history[k][epoch]:.6g}" for k in keys)])


def _run_name_suffix(cfg: Any) -> str:
    # Named by us, not MLflow's random names, which repeat once seeded (lightning-hydra-template#613).
    return f" ({cfg.profile_name})" if cfg.profile_name != "full" else ""


def run_experiment(cfg: Any, outputs: paths.Outputs) -> dict[str, Any]:
    """Prepare data if missing, train, evaluate: the whole experiment in one call."""
    from rnnlab.evaluate import evaluate

    tracking.check_reachable()  # before preparing data, which can take minutes
    training_setup(cfg)  # likewise: a backend or device count this machine lacks
    data = ensure_prepared(cfg)
    train(cfg, outputs, data)
    return evaluate(cfg, outputs, data)


@hydra.main(version_base="1.3", config_path=str(paths.CONF_DIR), config_name="config")
def main(raw_cfg: DictConfig) -> float:
    """One run, or one job of a sweep; returns the experiment's primary test metric (accuracy,
    RMSE or bits per character), which a sweeper (Optuna) optimises."""
    if sweeps.current_job() is not None:
        # A failed job is recorded and the sweep goes on with the others (see rnnlab.sweeps).
        return sweeps.run_job(lambda: _run(raw_cfg), str(OmegaConf.select(raw_cfg, "experiment_name", default="job")))
    try:
        with cli.user_errors_exit():
            return _run(raw_cfg)
    except SystemExit:
        _remove_unused_job_dir()
        raise


def _remove_unused_job_dir() -> None:
    """A rejected run leaves no job folder behind: remove it while it holds no file but what
    Hydra wrote at the start (.hydra/ and the job's log)."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    if not job_dir.is_dir():
        return
    own_log, own_subdir = f"{hydra_cfg.job.name}.log", hydra_cfg.output_subdir
    files = [p.relative_to(job_dir) for p in job_dir.rglob("*") if not p.is_dir()]
    if all(str(f) == own_log or (own_subdir and f.parts[0] == own_subdir) for f in files):
        shutil.rmtree(job_dir, ignore_errors=True)


def _run(raw_cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    cfg = validate(raw_cfg)
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    keras.backend.clear_session()  # joblib workers are reused between sweep jobs
    metrics = run_experiment(cfg, paths.Outputs.job(job_dir))
    print(json.dumps(metrics, sort_keys=True))
    return sweep_objective(metrics)


def sweep_objective(metrics: dict[str, Any]) -> float:
    """What a sweeper (Optuna) optimises: the validation counterpart of the primary metric at
    the kept epoch (val_accuracy for accuracy, else val_loss, lower is better like RMSE and bits
    per character), so that tuning never looks at the test split. Without a validation split,
    the primary test metric, which is then the only number there is."""
    primary, training = metrics["primary"], metrics.get("training", {})
    key = "val_accuracy" if primary["name"] == "accuracy" else "val_loss"
    return float(training[key]) if key in training else float(primary["model"])


def stage_train(resolved: Path) -> None:
    cfg = validate(load_resolved(resolved))
    train(cfg, paths.Outputs.pipeline(cfg.experiment_name))


if __name__ == "__main__":
    cli.main(stage_train, "DVC stage: train one experiment from its resolved config.", app=main)
