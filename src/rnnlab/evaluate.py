"""Evaluation: a trained model on the test split, beside its baseline on the same split.

    python -m rnnlab.evaluate --stage resolved/imdb_lstm.yaml     the DVC stage

Writes metrics.json (DVC metrics: numbers only, see metrics_file), details.json (names, labels,
matrices, the verdict, the run and the environment: what the report reads), PNG figures and
example predictions, and adds
the test metrics and figures to the training's MLflow run.
"""

from __future__ import annotations

import copy
import csv
import logging
from pathlib import Path
from typing import Any

from rnnlab import cli

if __name__ == "__main__":  # Keras loads on the backend the stage's config chooses, as training did
    cli.before_keras(None)

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # files only, no display
import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, roc_auc_score  # noqa: E402

from rnnlab import cli, io, models, paths, significance, tracking  # noqa: E402
from rnnlab.baselines import CharNGram, bag_of_words_logistic_regression  # noqa: E402
from rnnlab.config import load_resolved, validate  # noqa: E402
from rnnlab.data.datasets import DATASETS, select  # noqa: E402
from rnnlab.data.prepare import CharVocabulary, OneHotWindows, load_prepared, scaler_from_dict  # noqa: E402

log = logging.getLogger(__name__)

BASELINE_NAME = "bag-of-words logistic regression"
NGRAM_ORDER = 5


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
    p_model = model.predict(data["x_test"])
    spec = data["meta"]["input_spec"]
    p_baseline = bag_of_words_logistic_regression(data["x_train"], data["y_train"], data["x_test"],
                                                  spec.get("vocab", spec.get("features")), seed=int(cfg.seed))
    y = data["y_test"]
    scores = {"model": classification_metrics(y, p_model),
              "baseline": {"name": BASELINE_NAME, **classification_metrics(y, p_baseline)},
              "primary": {"name": "accuracy", "higher_is_better": True},
              "paired": {"model": (p_model >= 0.5) == y, "baseline": (p_baseline >= 0.5) == y}}
    plot_confusion(cfg.experiment_name, data["meta"], scores, figures / "confusion_matrix.png")
    dataset = DATASETS[data["meta"]["dataset"]]
    if hasattr(dataset, "examples"):
        io.write_json(figures / "examples.json", dataset.examples(data, p_model, p_baseline))
    return scores


def score_regression(cfg: Any, model: models.Model, data: dict[str, Any], figures: Path) -> dict[str, Any]:
    """Series: errors in the series' own units (prices after inverting the scaler), beside persistence."""
    meta = data["meta"]
    actual, previous = data["y_test_raw"], data["previous_test_raw"]
    predicted = in_series_units(model.predict(data["x_test"]), meta, previous)
    ridge = Ridge(alpha=1.0).fit(data["x_train"].reshape(len(data["x_train"]), -1), data["y_train"].ravel())
    ridge_predicted = in_series_units(ridge.predict(data["x_test"].reshape(len(data["x_test"]), -1)), meta, previous)
    scores = {"model": regression_metrics(actual, predicted, previous),
              "baseline": {"name": "persistence (tomorrow equals today)",
                           **regression_metrics(actual, previous, previous)},
              "primary": {"name": "rmse", "higher_is_better": False},
              # Errors on neighbouring days move together: blocks of days, not single days, are resampled.
              "paired": {"model": (predicted - actual) ** 2, "baseline": (previous - actual) ** 2,
                         "statistic": "rmse", "block_length": series_block_length(len(actual))}}
    scores["model"]["skill"] = 1.0 - scores["model"]["rmse"] / scores["baseline"]["rmse"]
    # A second, linear baseline on the same windows: does the recurrent model beat a ridge regression?
    ridge_scores = {"name": "ridge autoregression on the same windows",
                    **regression_metrics(actual, ridge_predicted, previous)}
    ridge_scores["model_vs_ridge"] = significance.paired_bootstrap(
        (predicted - actual) ** 2, (ridge_predicted - actual) ** 2, seed=int(cfg.seed), statistic="rmse",
        block_length=series_block_length(len(actual)))
    scores["other_baselines"] = [ridge_scores]
    if "test_range" in meta and meta.get("target") == "price" and meta["test_range"]["share_outside"] > 0:
        r = meta["test_range"]
        warning = (f"{r['share_outside']:.0%} of the test prices ({r['test_min']:.2f} to {r['test_max']:.2f}) lie "
                   f"outside the training range ({r['train_min']:.2f} to {r['train_max']:.2f}) that the scaler was "
                   "fit on: a model of scaled prices cannot reach them (try data.target=log_return)")
        log.warning("%s: %s", cfg.experiment_name, warning)
        scores["warnings"] = [warning]
    if "noise_floor_mse" in meta["provenance"]:
        scores["noise_floor_mse"] = meta["provenance"]["noise_floor_mse"]
    plot_series(cfg.experiment_name, data, predicted, figures / "predictions.png")
    io.write_json(figures / "predictions.json", {"actual": actual.tolist(), "model": predicted.tolist(),
                                                 "persistence": previous.tolist()})
    return scores


def in_series_units(predicted: np.ndarray, meta: dict[str, Any], previous: np.ndarray) -> np.ndarray:
    """Predictions in the series' own units: the scaler inverted, and for a log-return target,
    the price rebuilt from the day before."""
    predicted = np.asarray(predicted).reshape(-1)
    if "scaler" in meta:
        predicted = scaler_from_dict(meta["scaler"]).inverse_transform(predicted.reshape(-1, 1)).ravel()
    if meta.get("target") == "log_return":
        predicted = previous * np.exp(predicted)
    return predicted


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


def score_text(cfg: Any, model: models.Model, data: dict[str, Any], figures: Path) -> dict[str, Any]:
    """A character model: bits per character on the held-out end of the text, beside a
    character n-gram on the same targets; and generated samples."""
    meta = data["meta"]
    window, vocab_size = meta["input_spec"]["length"], meta["input_spec"]["features"]
    test = OneHotWindows(data["ids_test"], window, vocab_size, batch_size=512)
    bits, correct = [], []
    for i in range(len(test)):
        x, y = test[i]
        p = model.predict_batch(x)
        bits.append(-np.log2(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)))
        correct.append(p.argmax(axis=1) == y)
    bits, correct = np.concatenate(bits), np.concatenate(correct)
    return text_scores(cfg, data, bits, correct, window,
                       lambda contexts: model.predict(np.eye(vocab_size, dtype=np.float32)[contexts]), figures)


def score_char_lm(cfg: Any, model: models.Model, data: dict[str, Any], figures: Path) -> dict[str, Any]:
    """A character language model: bits per character on the same held-out targets as the
    window models (the test text after its first `window` characters), each target read with
    at least half a chunk of the test text before it."""
    first_target = int(cfg.data.window)
    bits, correct = chunked_bits(model, data["ids_test"], int(cfg.data.seq_len), first_target)
    return text_scores(cfg, data, bits, correct, int(cfg.data.seq_len),
                       lambda contexts: model.predict(contexts.astype(np.int32))[:, -1], figures)


def chunked_bits(model: models.Model, ids: np.ndarray, seq_len: int, first_target: int) -> tuple[np.ndarray, np.ndarray]:
    """-log2 P and right/wrong of every target ids[first_target:], in one batched call.

    Chunks of seq_len ids start every seq_len // 2; the first chunk scores its targets from
    first_target on, every later one only its second half, so each target is scored once,
    with at least half a chunk of context (the last chunk ends at the end of the text).
    """
    n, half = len(ids), seq_len // 2
    if n - 1 < seq_len:
        starts = np.array([0])
        seq_len = n - 1
    else:
        starts = np.unique(np.append(np.arange(0, n - 1 - seq_len + 1, half), n - 1 - seq_len))
    chunks = ids[starts[:, None] + np.arange(seq_len)].astype(np.int32)
    p = model.predict(chunks, batch_size=64)  # (chunks, seq_len, vocab)
    # Position j of the chunk at s predicts target s + j + 1. A chunk scores the targets after
    # the previous chunk's last one: at most half a chunk, so each has at least half before it.
    targets = starts[:, None] + np.arange(seq_len) + 1
    previous_end = np.append(first_target - 1, starts[:-1] + seq_len)
    keep = targets > previous_end[:, None]
    probabilities = p[keep]
    y = ids[targets[keep]]
    order = np.argsort(targets[keep], kind="stable")
    chosen = probabilities[np.arange(len(y)), y]
    bits = -np.log2(np.clip(chosen, 1e-12, 1.0))[order]
    correct = (probabilities.argmax(axis=1) == y)[order]
    return bits, correct


def text_scores(cfg: Any, data: dict[str, Any], bits: np.ndarray, correct: np.ndarray, context: int,
                next_probabilities: Any, figures: Path) -> dict[str, Any]:
    """Scores of a character model beside the n-gram on the same targets, and generated samples."""
    meta = data["meta"]
    window = int(cfg.data.window)
    vocab = CharVocabulary.from_dict(meta["vocabulary"])
    ngram = CharNGram(NGRAM_ORDER, vocab.size).fit(data["ids_train"])
    ngram_bits = ngram.bits(data["ids_test"], first_target=window)
    if len(ngram_bits) != len(bits):
        raise AssertionError(f"the model scored {len(bits)} targets, the n-gram {len(ngram_bits)}")
    io.write_json(figures / "samples.json", generate_samples(next_probabilities, vocab, data["ids_test"], context,
                                                             int(cfg.seed)))
    return {"model": {"bits_per_char": float(bits.mean()), "next_char_accuracy": float(correct.mean())},
            "baseline": {"name": f"character {NGRAM_ORDER}-gram (Witten-Bell)",
                         "bits_per_char": float(ngram_bits.mean())},
            "primary": {"name": "bits_per_char", "higher_is_better": False},
            "paired": {"model": bits, "baseline": ngram_bits, "block_length": series_block_length(len(bits))}}


TEMPERATURES = (0.0, 0.5, 1.0)


def generate_samples(next_probabilities: Any, vocab: Any, ids: np.ndarray, context: int, seed: int,
                     length: int = 200, n_seeds: int = 2) -> list[dict[str, Any]]:
    """Text continued from fixed seed windows of the test part, greedy (as the course) and at
    two temperatures: every seed and temperature in one batch, one model call per character.

    next_probabilities(contexts) maps ids (batch, context) to the next character's
    probabilities (batch, vocab).
    """
    rng = np.random.default_rng(seed)
    starts = np.linspace(0, len(ids) - context - 1, n_seeds).astype(int)
    rows = [(s, t) for s in starts for t in TEMPERATURES]
    contexts = np.stack([ids[s:s + context] for s, _ in rows]).astype(np.int64)
    temperatures = np.array([t for _, t in rows])[:, None]
    generated = np.empty((len(rows), length), dtype=np.int64)
    for step in range(length):
        p = np.asarray(next_probabilities(contexts[:, -context:]), dtype=np.float64)
        logits = np.log(np.clip(p, 1e-12, 1.0)) / np.where(temperatures > 0, temperatures, 1.0)
        q = np.exp(logits - logits.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        sampled = (q.cumsum(axis=1) < rng.random((len(rows), 1))).sum(axis=1).clip(max=p.shape[1] - 1)
        nxt = np.where(temperatures[:, 0] > 0, sampled, p.argmax(axis=1))
        generated[:, step] = nxt
        contexts = np.concatenate([contexts[:, 1:], nxt[:, None]], axis=1)
    out = []
    for i, start in enumerate(starts):
        row = {"seed": vocab.decode(ids[start:start + context])}
        for j, temperature in enumerate(TEMPERATURES):
            key = "greedy" if temperature == 0.0 else f"temperature {temperature}"
            row[key] = vocab.decode(generated[i * len(TEMPERATURES) + j])
        out.append(row)
    return out


def score_letters(cfg: Any, model: models.Model, data: dict[str, Any], figures: Path) -> dict[str, Any]:
    """The alphabet: accuracy over every pattern, each prediction listed, beside a lookup table
    that maps the last letter of the input to the letter that followed it in training."""
    letters = data["meta"]["letters"]
    if cfg.model.stateful:
        model.reset_states()  # read the alphabet from A, one letter at a time, as in training
        probabilities = np.concatenate([model.predict_batch(x[None]) for x in data["x_test"]])
    else:
        probabilities = model.predict(data["x_test"], batch_size=64)
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
            "primary": {"name": "accuracy", "higher_is_better": True},
            "paired": {"model": predicted == y, "baseline": looked_up == y}}


def series_block_length(n: int) -> int:
    """Block length of the bootstrap over consecutive days or characters: n^(1/3), the usual
    order for a moving-block bootstrap of a mean."""
    return max(1, int(round(n ** (1 / 3))))


def compare_with_baseline(primary: dict[str, Any], paired: dict[str, Any], seed: int) -> dict[str, Any]:
    """The paired test of the primary metric: exact McNemar on right/wrong per item for
    accuracy; a paired (block) bootstrap of the difference for RMSE and bits per character."""
    if primary["higher_is_better"]:
        return significance.mcnemar_exact(paired["model"], paired["baseline"])
    return significance.paired_bootstrap(paired["model"], paired["baseline"], seed=seed,
                                         block_length=paired.get("block_length", 1),
                                         statistic=paired.get("statistic", "mean"))


SCORERS = {"binary": score_binary, "regression": score_regression, "next_char": score_text,
           "char_lm": score_char_lm, "letters": score_letters}


def evaluate(cfg: Any, outputs: paths.Outputs, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the saved model and its baseline on the same test split; returns every number and
    name (metrics.json holds its numbers, details.json the rest)."""
    data = select(cfg, data if data is not None else load_prepared(paths.prepared_dir(cfg.data.name)))
    run_info = io.read_json(outputs.model / "run.json")
    meta = data["meta"]
    model = models.load(outputs.model, meta["task"])
    provenance = meta["provenance"]
    with io.atomic_dir(outputs.figures) as figures:
        scores = SCORERS[meta["task"]](cfg, model, data, figures)
        plot_history(outputs.metrics / "history.csv", figures / "training_curves.png", cfg.experiment_name)
        io.write_json(figures / "data.json", {"provenance": provenance, "prepared_sha256": meta["sha256"],
                                              "shapes": meta["shapes"]})
    primary = scores.pop("primary")
    test = compare_with_baseline(primary, scores.pop("paired"), int(cfg.seed))
    model_value, baseline_value = scores["model"][primary["name"]], scores["baseline"][primary["name"]]
    # "better" only where the paired test says so; a difference within noise is a tie.
    primary.update(model=model_value, baseline=baseline_value, verdict=test["verdict"],
                   beats_baseline=test["verdict"] == significance.BETTER, test=test,
                   verdict_text=significance.verdict_text(test))
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
        "training": run_info.get("training", {}),
        "run_id": run_info["run_id"],
    }
    write_metrics(outputs.metrics, metrics, run_info, cfg, provenance)

    with tracking.run(tracking.experiment_name(cfg), run_id=run_info["run_id"]) as active:
        flat = {f"test_{k}": v for k, v in metrics["model"].items() if isinstance(v, float)}
        flat.update({f"baseline_{k}": v for k, v in metrics["baseline"].items() if isinstance(v, float)})
        active.log_metrics(flat)
        # What sweeps and leaderboards rank this run by (rnnlab.sweeps.primary_of).
        for other in metrics.get("other_baselines", []):
            active.log_metrics({f"baseline_ridge_{k}": v for k, v in other.items() if isinstance(v, float)})
        if metrics.get("warnings"):
            active.set_tags({"warning": " | ".join(metrics["warnings"])})
        active.log_metrics({"verdict_p_value": test["p_value"],
                            **({"verdict_interval_low": test["interval"][0], "verdict_interval_high": test["interval"][1]}
                               if "interval" in test else {})})
        active.set_tags({"primary_metric": primary["name"],
                         "primary_higher_is_better": str(primary["higher_is_better"]).lower(),
                         "baseline_name": metrics["baseline"]["name"],
                         "verdict": test["verdict"], "verdict_text": primary["verdict_text"]})
        active.log_artifact(outputs.metrics / "metrics.json")
        active.log_artifact(outputs.metrics / "details.json")
        active.log_artifacts(outputs.figures, "figures")
    log.info("evaluated %s: %s %.4f (baseline %.4f): %s", cfg.experiment_name, primary["name"], model_value,
             baseline_value, primary["verdict_text"])
    return metrics


def metrics_file(metrics: dict[str, Any]) -> dict[str, float | int]:
    """What metrics.json (DVC's metrics) holds: numbers only, under the same few keys for every
    experiment, so that `dvc metrics show` and `dvc exp show` share their columns: the primary
    metric under its own name (accuracy, rmse or bits_per_char), `baseline` (the baseline's value
    of it), `p_value` of the paired test, `best_epoch` (the kept one) and `epochs` (trained)."""
    primary, training = metrics["primary"], metrics.get("training", {})
    out: dict[str, float | int] = {primary["name"]: primary["model"], "baseline": primary["baseline"],
                                   "p_value": primary["test"]["p_value"]}
    if "best_epoch" in training:
        out["best_epoch"] = int(training["best_epoch"])
    if "epochs_trained" in training:
        out["epochs"] = int(training["epochs_trained"])
    return out


def details_file(metrics: dict[str, Any], run_info: dict[str, Any], cfg: Any,
                 provenance: dict[str, Any]) -> dict[str, Any]:
    """What details.json (beside metrics.json, read by the report) holds: everything else that
    evaluate returns, names, labels, matrices, setup, the verdict and its test; where the data
    came from; the MLflow run (id, experiment, tracking URI, and its page in the MLflow UI when
    that is an HTTP(S) server); the profile, Keras backend and device."""
    details = copy.deepcopy(metrics)
    details.pop("run_id", None)
    details["primary"].pop("beats_baseline", None)  # the verdict says it: better, tie or worse
    details["data"]["sample"] = bool(provenance.get("sample", provenance.get("source") == "sample"))
    details["run"] = {k: run_info.get(k) for k in ("run_id", "experiment_id", "tracking_uri")}
    # The run's page in the MLflow UI when it was tracked on an HTTP(S) server, else None.
    details["run"]["link"] = tracking.run_link(str(run_info.get("tracking_uri") or ""),
                                               str(run_info.get("experiment_id") or ""), run_info["run_id"])
    # What trained (run.json, written by train): the numbers differ between backends.
    trained = run_info.get("setup") or {"keras_backend": keras.backend.backend()}
    details["environment"] = {"keras_backend": trained["keras_backend"], "device": tracking.device(),
                              "profile": str(cfg.profile_name),
                              **{k: trained[k] for k in ("jit_compile", "precision", "devices") if k in trained}}
    return details


def write_metrics(folder: Path, metrics: dict[str, Any], run_info: dict[str, Any], cfg: Any,
                  provenance: dict[str, Any]) -> None:
    io.write_json(folder / "metrics.json", metrics_file(metrics))
    io.write_json(folder / "details.json", details_file(metrics, run_info, cfg, provenance))


def setup(cfg: Any) -> dict[str, Any]:
    """What was trained and how, for tables that set experiments side by side."""
    m, t = cfg.model, cfg.trainer
    return {"implementation": str(m.implementation), "cell": str(m.cell), "units": int(m.units),
            "layers": int(m.layers), "bidirectional": bool(m.bidirectional), "optimizer": str(t.optimizer),
            "learning_rate": float(t.learning_rate), "clipvalue": t.clipvalue, "clipnorm": t.clipnorm,
            "batch_size": int(t.batch_size), "epochs": int(t.epochs)}


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
    if "test_dates" in data["meta"]:
        t_test = np.array(data["meta"]["test_dates"], dtype="datetime64[D]")
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



def stage_evaluate(resolved: Path) -> None:
    cfg = validate(load_resolved(resolved))
    evaluate(cfg, paths.Outputs.pipeline(cfg.experiment_name))


if __name__ == "__main__":
    cli.main(stage_evaluate, "DVC stage: evaluate one trained experiment beside its baseline.")
