"""Evaluation: a trained model on the test split, beside its baseline on the same split.

    python -m rnnlab.evaluate resolved/imdb_lstm.yaml     the DVC stage

Writes metrics.json (DVC metrics), PNG figures and example predictions, and adds
the test metrics and figures to the training's MLflow run.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import keras
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, roc_auc_score  # noqa: E402

from rnnlab import io, paths, tracking  # noqa: E402
from rnnlab.baselines import bag_of_words_logistic_regression  # noqa: E402
from rnnlab.cli import run_stage  # noqa: E402
from rnnlab.config import validate  # noqa: E402
from rnnlab.data.prepare import load_prepared  # noqa: E402
from rnnlab.data.sources.imdb import decode  # noqa: E402

log = logging.getLogger(__name__)

BASELINE_NAME = "bag-of-words logistic regression"
N_EXAMPLES = 6


def classification_metrics(y_true: np.ndarray, p_positive: np.ndarray) -> dict[str, Any]:
    y_pred = (p_positive >= 0.5).astype(np.int64)
    both_classes = len(np.unique(y_true)) == 2
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "loss": float(log_loss(y_true, np.clip(p_positive, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "roc_auc": float(roc_auc_score(y_true, p_positive)) if both_classes else float("nan"),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
    }


def evaluate(cfg: Any, outputs: paths.Outputs, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the saved model and the baseline; returns the metrics written to metrics.json."""
    data = data if data is not None else load_prepared(paths.prepared_dir(cfg.data.name))
    run_info = io.read_json(outputs.model / "run.json")
    model = keras.models.load_model(outputs.model / "model.keras")
    p_model = model.predict(data["x_test"], batch_size=512, verbose=0).ravel()
    p_baseline = bag_of_words_logistic_regression(data["x_train"], data["y_train"], data["x_test"],
                                                  cfg.data.num_words, seed=int(cfg.seed))
    provenance = data["meta"]["provenance"]
    metrics = {
        "experiment": str(cfg.experiment_name),
        "data": {"dataset": str(cfg.data.name), "source": provenance["source"],
                 "synthetic": bool(provenance.get("synthetic")),
                 "label": provenance.get("label", "real data"),
                 "n_train": int(len(data["y_train"])), "n_test": int(len(data["y_test"]))},
        "model": classification_metrics(data["y_test"], p_model),
        "baseline": {"name": BASELINE_NAME, **classification_metrics(data["y_test"], p_baseline)},
        "run_id": run_info["run_id"],
    }

    with io.atomic_dir(outputs.figures) as figures:
        plot_history(outputs.metrics / "history.csv", figures / "training_curves.png", cfg.experiment_name)
        plot_confusion(metrics, figures / "confusion_matrix.png")
        io.write_json(figures / "examples.json", examples(data, p_model, p_baseline))
        io.write_json(figures / "data.json", {"provenance": provenance, "prepared_sha256": data["meta"]["sha256"],
                                              "shapes": data["meta"]["shapes"]})
    io.write_json(outputs.metrics / "metrics.json", metrics)

    with tracking.run(str(cfg.tracking.experiment or cfg.experiment_name), run_id=run_info["run_id"]):
        flat = {f"test_{k}": v for k, v in metrics["model"].items() if k != "confusion_matrix"}
        flat.update({f"baseline_{k}": v for k, v in metrics["baseline"].items() if isinstance(v, float)})
        mlflow.log_metrics(flat)
        mlflow.log_artifact(str(outputs.metrics / "metrics.json"))
        mlflow.log_artifacts(str(outputs.figures), "figures")
    log.info("evaluated %s: accuracy %.4f (baseline %.4f)", cfg.experiment_name,
             metrics["model"]["accuracy"], metrics["baseline"]["accuracy"])
    return metrics


def examples(data: dict[str, Any], p_model: np.ndarray, p_baseline: np.ndarray) -> list[dict[str, Any]]:
    """The first test reviews of each class, decoded to words, with both predictions."""
    y = data["y_test"]
    chosen = [*np.flatnonzero(y == 1)[: N_EXAMPLES // 2], *np.flatnonzero(y == 0)[: N_EXAMPLES // 2]]
    return [{"text": decode(data["x_test"][i], data["word_index"]), "label": int(y[i]),
             "p_model": round(float(p_model[i]), 4), "p_baseline": round(float(p_baseline[i]), 4)}
            for i in sorted(chosen)]


def plot_history(history_csv: Path, out: Path, title: str) -> None:
    with open(history_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "o-"), ("val_", "s--")):
            key = prefix + metric
            if rows and key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], style, label="validation" if prefix else "training")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title}: training curves")
    fig.tight_layout()
    with io.atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_confusion(metrics: dict[str, Any], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, (name, part) in zip(axes, (("model", metrics["model"]), ("baseline", metrics["baseline"]))):
        matrix = np.asarray(part["confusion_matrix"])
        ax.imshow(matrix, cmap="Blues")
        middle = (matrix.min() + matrix.max()) / 2  # imshow stretches the colours from min to max
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > middle else "black")
        ax.set_xticks([0, 1], ["negative", "positive"])
        ax.set_yticks([0, 1], ["negative", "positive"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: accuracy {part['accuracy']:.3f}")
    data = metrics["data"]
    fig.suptitle(f"{metrics['experiment']} on {data['dataset']} ({data['label']})")
    fig.tight_layout()
    with io.atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def stage_evaluate(cfg: Any) -> None:
    evaluate(validate(cfg), paths.Outputs.pipeline(cfg.experiment_name))


if __name__ == "__main__":
    run_stage(stage_evaluate, "DVC stage: evaluate one trained experiment beside its baseline.")
