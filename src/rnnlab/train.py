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
from pathlib import Path
from typing import Any

import hydra
import keras
import mlflow
import numpy as np
from omegaconf import DictConfig, OmegaConf

from rnnlab import cli, io, models, paths, sweeps, tracking
from rnnlab.config import load_resolved, validate
from rnnlab.data.cache import ensure_prepared
from rnnlab.data.datasets import select
from rnnlab.data.prepare import OneHotWindows, SequenceChunks, load_prepared

log = logging.getLogger(__name__)


def train(cfg: Any, outputs: paths.Outputs, data: dict[str, Any] | None = None) -> str:
    """Fit the experiment's model on prepared data; returns the MLflow run id."""
    data = select(cfg, data if data is not None else load_prepared(paths.prepared_dir(cfg.data.name)))
    meta = data["meta"]
    job = sweeps.current_job()  # set when this run is one job of a Hydra sweep
    run_name = job.run_name(str(cfg.experiment_name)) if job else str(cfg.experiment_name) + _run_name_suffix(cfg)
    tags = {**tracking.run_tags(cfg, meta), "implementation": str(cfg.model.implementation),
            **(job.tags() if job else {})}
    with tracking.run(tracking.experiment_name(cfg), run_name=run_name, tags=tags,
                      parent_run_id=job.parent_run_id if job else None) as active:
        mlflow.log_params(tracking.flat_params(cfg))
        mlflow.log_text(OmegaConf.to_yaml(cfg), "config.yaml")
        with io.atomic_dir(outputs.model) as tmp:
            model = models.build(cfg.model, cfg.regularizer, meta, batch_size=int(cfg.trainer.batch_size),
                                 seed=int(cfg.seed))
            history = model.fit(cfg.trainer, fit_inputs(cfg, data),
                                callbacks=[tracking.EpochLogger(), *training_callbacks(cfg.trainer)])
            saved = model.save(tmp)
            summary = training_summary(cfg.trainer, history)
            # Prefixed: a bare val_loss would add a point to the per-epoch val_loss curve.
            mlflow.log_metrics({f"kept_{k}" if k.startswith("val_") else k: v for k, v in summary.items()})
            io.write_json(tmp / "run.json", {"run_id": active.info.run_id,
                                             "experiment_id": active.info.experiment_id,
                                             "tracking_uri": tracking.tracking_uri(), "training": summary})
        write_history(history, outputs.metrics / "history.csv")
        mlflow.log_artifact(str(outputs.metrics / "history.csv"))
        mlflow.log_artifact(str(outputs.model / saved), "model")
    log.info("trained %s: run %s -> %s", cfg.experiment_name, active.info.run_id, outputs.model)
    return active.info.run_id


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


def fit_inputs(cfg: Any, data: dict[str, Any]) -> dict[str, Any]:
    """What model.fit reads: arrays, or for a text, windows or chunks built batch by batch.

    The course's window models validate on the held-out end of the text, the metric it
    reports, unless early stopping or ReduceLROnPlateau watch the validation: then, as for
    every other model, the last `trainer.validation_split` of the training data is held out,
    so the test split stays unseen until evaluate.
    """
    t = cfg.trainer
    if data["meta"]["task"] == "char_lm":
        ids, seq_len, batch = data["ids_train"], int(cfg.data.seq_len), int(t.batch_size)
        cut = len(ids) - int(round(len(ids) * t.validation_split))
        inputs = {"x": SequenceChunks(ids[:cut], seq_len, batch, shuffle=True, seed=int(cfg.seed))}
        if t.validation_split > 0:
            inputs["validation_data"] = SequenceChunks(ids[cut:], seq_len, batch)
        return inputs
    if "ids_train" in data:
        spec = data["meta"]["input_spec"]
        window, vocab, batch = spec["length"], spec["features"], cfg.trainer.batch_size
        ids = data["ids_train"]
        watched = t.early_stopping.enabled or t.reduce_lr.enabled
        cut = len(ids) - int(round(len(ids) * t.validation_split)) if watched else len(ids)
        return {"x": OneHotWindows(ids[:cut], window, vocab, batch, step=cfg.data.step, shuffle=True,
                                   seed=int(cfg.seed)),
                "validation_data": OneHotWindows(ids[cut:] if watched else data["ids_test"], window, vocab, batch)}
    # A stateful model reads the sequence in order, its state carried from one batch to the next.
    return {"x": data["x_train"], "y": data["y_train"], "batch_size": cfg.trainer.batch_size,
            "validation_split": cfg.trainer.validation_split, "shuffle": not cfg.model.stateful}


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
    with cli.user_errors_exit():
        return _run(raw_cfg)


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
