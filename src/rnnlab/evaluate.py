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
from rnnlab.baselines import CharNGram, bag_of_words_logistic_regression  # noqa: E402
from rnnlab.cli import run_stage  # noqa: E402
from rnnlab.config import validate  # noqa: E402
from rnnlab.data.prepare import CharVocabulary, OneHotWindows, load_prepared, scaler_from_dict, select  # noqa: E402
from rnnlab.models import numpy_models  # noqa: E402
from rnnlab.models.keras_models import reset_states  # noqa: E402
from rnnlab.data.sources.imdb import decode  # noqa: E402

log = logging.getLogger(__name__)

BASELINE_NAME = "bag-of-words logistic regression"
NGRAM_ORDER = 5
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


def score_binary(cfg: Any, model: Any, data: dict[str, Any], figures: Path) -> dict[str, Any]:
    """Sentiment: accuracy, log loss, ROC AUC, confusion matrix, beside bag-of-words."""
    p_model = predict_positive(model, data["x_test"])
    spec = data["meta"]["input_spec"]
    p_baseline = bag_of_words_logistic_regression(data["x_train"], data["y_train"], data["x_test"],
                                                  spec.get("vocab", spec.get("features")), seed=int(cfg.seed))
    scores = {"model": classification_metrics(data["y_test"], p_model),
              "baseline": {"name": BASELINE_NAME, **classification_metrics(data["y_test"], p_baseline)},
              "primary": {"name": "accuracy", "higher_is_better": True}}
    plot_confusion(cfg.experiment_name, data["meta"], scores, figures / "confusion_matrix.png")
    if "word_index" in data:
        io.write_json(figures / "examples.json", examples(data, p_model, p_baseline))
    elif "test_texts" in data["meta"]:
        io.write_json(figures / "examples.json", [
            {"text": text, "label": int(y), "p_model": round(float(pm), 4), "p_baseline": round(float(pb), 4)}
            for text, y, pm, pb in zip(data["meta"]["test_texts"], data["y_test"], p_model, p_baseline)])
    return scores


def predict_positive(model: Any, x: np.ndarray) -> np.ndarray:
    if isinstance(model, keras.Model):
        return model.predict(x, batch_size=512, verbose=0).ravel()
    return numpy_models.positive_probability(model, x)


def load_trained(folder: Path) -> Any:
    """The saved model: a Keras model, or a from-scratch NumPy one (model.implementation=numpy)."""
    if (folder / "model.npz").is_file():
        return numpy_models.load(folder / "model.npz")
    return keras.models.load_model(folder / "model.keras")


def score_regression(cfg: Any, model: keras.Model, data: dict[str, Any], figures: Path) -> dict[str, Any]:
    """Series: errors in the series' own units (prices after inverting the scaler), beside persistence."""
    meta = data["meta"]
    predicted = model.predict(data["x_test"], batch_size=512, verbose=0).reshape(-1)
    if "scaler" in meta:
        predicted = scaler_from_dict(meta["scaler"]).inverse_transform(predicted.reshape(-1, 1)).ravel()
    actual, previous = data["y_test_raw"], data["previous_test_raw"]
    scores = {"model": regression_metrics(actual, predicted, previous),
              "baseline": {"name": "persistence (tomorrow equals today)",
                           **regression_metrics(actual, previous, previous)},
              "primary": {"name": "rmse", "higher_is_better": False}}
    scores["model"]["skill"] = 1.0 - scores["model"]["rmse"] / scores["baseline"]["rmse"]
    if "noise_floor_mse" in meta["provenance"]:
        scores["noise_floor_mse"] = meta["provenance"]["noise_floor_mse"]
    plot_series(cfg.experiment_name, data, predicted, figures / "predictions.png")
    io.write_json(figures / "predictions.json", {"actual": actual.tolist(), "model": predicted.tolist(),
                                                 "persistence": previous.tolist()})
    return scores


def regression_metrics(actual: np.ndarray, predicted: np.ndarray, previous: np.ndarray) -> dict[str, float]:
    error = predicted - actual
    nonzero = np.abs(actual) > 1e-12
    moved = actual != previous
    return {
        "mse": float(np.mean(error**2)),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "mape": float(np.mean(np.abs(error[nonzero] / actual[nonzero])) * 100) if nonzero.any() else float("nan"),
        # Did it call the day's direction (up or down from the last known value) right?
        "direction_accuracy": float(np.mean(np.sign(predicted[moved] - previous[moved])
                                            == np.sign(actual[moved] - previous[moved]))) if moved.any() else float("nan"),
    }


def score_text(cfg: Any, model: keras.Model, data: dict[str, Any], figures: Path) -> dict[str, Any]:
    """A character model: bits per character on the held-out end of the text, beside a
    character n-gram on the same targets; and generated samples."""
    meta = data["meta"]
    window, vocab_size = meta["input_spec"]["length"], meta["input_spec"]["features"]
    test = OneHotWindows(data["ids_test"], window, vocab_size, batch_size=512)
    bits, correct = [], []
    for i in range(len(test)):
        x, y = test[i]
        p = np.asarray(model(x, training=False))
        bits.append(-np.log2(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)))
        correct.append(p.argmax(axis=1) == y)
    bits, correct = np.concatenate(bits), np.concatenate(correct)
    ngram = CharNGram(NGRAM_ORDER, vocab_size).fit(data["ids_train"])
    baseline_bits = ngram.bits_per_char(data["ids_test"], first_target=window)
    vocab = CharVocabulary.from_dict(meta["vocabulary"])
    samples = generate_samples(model, vocab, data["ids_test"], window, int(cfg.seed))
    io.write_json(figures / "samples.json", samples)
    return {"model": {"bits_per_char": float(bits.mean()), "next_char_accuracy": float(correct.mean())},
            "baseline": {"name": f"character {NGRAM_ORDER}-gram (Witten-Bell)", "bits_per_char": baseline_bits},
            "primary": {"name": "bits_per_char", "higher_is_better": False}}


def generate_samples(model: keras.Model, vocab: Any, ids: np.ndarray, window: int, seed: int,
                     length: int = 200, n_seeds: int = 2) -> list[dict[str, Any]]:
    """Text continued from fixed seed windows of the test part: greedy (as the course) and sampled."""
    rng = np.random.default_rng(seed)
    starts = np.linspace(0, len(ids) - window - 1, n_seeds).astype(int)
    out = []
    for start in starts:
        seed_ids = [int(i) for i in ids[start:start + window]]
        row = {"seed": vocab.decode(np.array(seed_ids))}
        for temperature in (0.0, 0.5, 1.0):
            context, generated = list(seed_ids), []
            for _ in range(length):
                x = np.zeros((1, window, vocab.size), dtype=np.float32)
                x[0, np.arange(window), context[-window:]] = 1.0
                p = np.asarray(model(x, training=False))[0].astype(np.float64)
                if temperature == 0.0:
                    nxt = int(p.argmax())
                else:
                    logits = np.log(np.clip(p, 1e-12, 1.0)) / temperature
                    q = np.exp(logits - logits.max())
                    nxt = int(rng.choice(len(q), p=q / q.sum()))
                context.append(nxt)
                generated.append(nxt)
            row["greedy" if temperature == 0.0 else f"temperature {temperature}"] = vocab.decode(np.array(generated))
        out.append(row)
    return out


def score_letters(cfg: Any, model: keras.Model, data: dict[str, Any], figures: Path) -> dict[str, Any]:
    """The alphabet: accuracy over every pattern, each prediction listed, beside a lookup table
    that maps the last letter of the input to the letter that followed it in training."""
    letters = data["meta"]["letters"]
    if cfg.model.stateful:
        reset_states(model)  # read the alphabet from A, one letter at a time, as in training
        probabilities = np.concatenate([np.asarray(model(x[None], training=False)) for x in data["x_test"]])
    else:
        probabilities = model.predict(data["x_test"], batch_size=64, verbose=0)
    predicted = probabilities.argmax(axis=1)
    last_letter = np.rint(data["x_test"].reshape(len(data["x_test"]), -1)[:, -1] * len(letters)).astype(int)
    table = dict(zip(np.rint(data["x_train"].reshape(len(data["x_train"]), -1)[:, -1] * len(letters)).astype(int),
                     data["y_train"]))
    looked_up = np.array([table.get(i, -1) for i in last_letter])
    y = data["y_test"]
    io.write_json(figures / "predictions.json", [
        {"input": "".join(letters[int(round(v * len(letters)))] for v in x.ravel()),
         "expected": letters[int(t)], "predicted": letters[int(p)]}
        for x, t, p in zip(data["x_test"], y, predicted)])
    return {"model": {"accuracy": float(np.mean(predicted == y))},
            "baseline": {"name": "last-letter lookup table", "accuracy": float(np.mean(looked_up == y))},
            "primary": {"name": "accuracy", "higher_is_better": True}}


SCORERS = {"binary": score_binary, "regression": score_regression, "classes": score_text, "letters": score_letters}


def evaluate(cfg: Any, outputs: paths.Outputs, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the saved model and its baseline on the same test split; returns what metrics.json holds."""
    data = select(cfg, data if data is not None else load_prepared(paths.prepared_dir(cfg.data.name)))
    run_info = io.read_json(outputs.model / "run.json")
    model = load_trained(outputs.model)
    meta = data["meta"]
    provenance = meta["provenance"]
    with io.atomic_dir(outputs.figures) as figures:
        scores = SCORERS[meta["task"]](cfg, model, data, figures)
        plot_history(outputs.metrics / "history.csv", figures / "training_curves.png", cfg.experiment_name)
        io.write_json(figures / "data.json", {"provenance": provenance, "prepared_sha256": meta["sha256"],
                                              "shapes": meta["shapes"]})
    primary = scores.pop("primary")
    model_value, baseline_value = scores["model"][primary["name"]], scores["baseline"][primary["name"]]
    primary.update(model=model_value, baseline=baseline_value,
                   beats_baseline=bool(model_value > baseline_value if primary["higher_is_better"]
                                       else model_value < baseline_value))
    metrics = {
        "experiment": str(cfg.experiment_name),
        "data": {"dataset": str(cfg.data.name), "source": provenance["source"],
                 "synthetic": bool(provenance.get("synthetic")),
                 "label": provenance.get("label", "real data"),
                 "n_train": int(meta.get("n_train", len(data.get("y_train", [])))),
                 "n_test": int(meta.get("n_test", len(data.get("y_test", []))))},
        "setup": setup(cfg),
        **scores,
        "primary": primary,
        "run_id": run_info["run_id"],
    }
    io.write_json(outputs.metrics / "metrics.json", metrics)

    with tracking.run(str(cfg.tracking.experiment or cfg.experiment_name), run_id=run_info["run_id"]):
        flat = {f"test_{k}": v for k, v in metrics["model"].items() if isinstance(v, float)}
        flat.update({f"baseline_{k}": v for k, v in metrics["baseline"].items() if isinstance(v, float)})
        mlflow.log_metrics(flat)
        # What sweeps and leaderboards rank this run by (rnnlab.sweeps.primary_of).
        mlflow.set_tags({"primary_metric": primary["name"],
                         "primary_higher_is_better": str(primary["higher_is_better"]).lower(),
                         "baseline_name": metrics["baseline"]["name"]})
        mlflow.log_artifact(str(outputs.metrics / "metrics.json"))
        mlflow.log_artifacts(str(outputs.figures), "figures")
    log.info("evaluated %s: %s %.4f (baseline %.4f)", cfg.experiment_name, primary["name"], model_value, baseline_value)
    return metrics


def setup(cfg: Any) -> dict[str, Any]:
    """What was trained and how, for tables that set experiments side by side."""
    m, t = cfg.model, cfg.trainer
    return {"implementation": str(m.implementation), "cell": str(m.cell), "units": int(m.units),
            "layers": int(m.layers), "bidirectional": bool(m.bidirectional), "optimizer": str(t.optimizer),
            "learning_rate": float(t.learning_rate), "clipvalue": t.clipvalue, "clipnorm": t.clipnorm,
            "batch_size": int(t.batch_size), "epochs": int(t.epochs)}


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
    second = "accuracy" if rows and "accuracy" in rows[0] else "mae"
    for ax, metric in zip(axes, ("loss", second)):
        for prefix, style in (("", "o-"), ("val_", "s--")):
            key = prefix + metric
            if rows and key in rows[0]:
                if len(epochs) > 50:  # a marker per epoch would hide the curve
                    style = style.strip("os")
                ax.plot(epochs, [float(r[key]) for r in rows], style, label="validation" if prefix else "training")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title}: training curves")
    io.write_figure(fig, out)


def plot_confusion(experiment: str, meta: dict[str, Any], scores: dict[str, Any], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, (name, part) in zip(axes, (("model", scores["model"]), ("baseline", scores["baseline"]))):
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
    fig.suptitle(f"{experiment} on {meta['dataset']} ({meta['provenance'].get('label', 'real data')})")
    io.write_figure(fig, out)


def plot_series(experiment: str, data: dict[str, Any], predicted: np.ndarray, out: Path) -> None:
    """The test part: actual values, the model's predictions and persistence; the training tail for context."""
    fig, ax = plt.subplots(figsize=(10, 4))
    t_test = data["t_test"]
    if "series_raw" in data:
        ax.plot(np.arange(len(data["series_raw"])), data["series_raw"], color="0.75", lw=0.8, label="series")
        ax.axvline(t_test[0], color="red", lw=1, label="train/test boundary")
    ax.plot(t_test, data["y_test_raw"], "k.-", lw=1, label="actual")
    ax.plot(t_test, predicted, "-", color="tab:blue", label="model")
    ax.plot(t_test, data["previous_test_raw"], "--", color="tab:orange", label="persistence")
    ax.set_xlabel(data["meta"].get("time_label", "t"))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{experiment}: test predictions ({data['meta']['provenance'].get('label', 'real data')})")
    io.write_figure(fig, out)



def stage_evaluate(cfg: Any) -> None:
    evaluate(validate(cfg), paths.Outputs.pipeline(cfg.experiment_name))


if __name__ == "__main__":
    run_stage(stage_evaluate, "DVC stage: evaluate one trained experiment beside its baseline.")
