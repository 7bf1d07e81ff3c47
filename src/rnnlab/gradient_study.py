"""The gradient study: how far back can each recurrent cell carry a gradient?

    python -m rnnlab.gradient_study [overrides]                            Hydra: outputs/runs/<time>_gradient_study/
    python -m rnnlab.gradient_study --stage resolved/gradient_study.yaml   the DVC stage

Every variant of conf/gradient_study.yaml is one recurrent layer and a Dense(2) softmax head,
on the long-memory task (data/sources/long_memory.py: the first of 100 symbols is the label).
For each, on the same test sequences, at initialisation and after training:

    g_t = mean over sequences i of ||dL_i/dh_t||,   t = 1..T

dL_i/dh_t is the whole derivative of sequence i's loss with respect to the hidden state after
step t: through the output and through every later step (for an LSTM, with the cell state c_t
held as a separate input). Keras models get it from TensorFlow's autodiff, with a zero probe
added to each h_t in a step-by-step replay of the trained cell; the NumPy models from their
written-out backpropagation through time (backward()["h"]). A test checks that the two agree
on the same weights. g_1 / g_T says what share of the loss's pull on the last state reaches
the first: the signal the task needs.

Writes metrics/gradient_study/{metrics.json, gradient_norms.csv} and
reports/gradient_study/{gradient_norms.png, training_curves.png}; one MLflow run per variant
in the MLflow experiment gradient_study, with g_t logged at step t.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import keras
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
from mlflow.entities import Metric  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from rnnlab import io, paths, tracking  # noqa: E402
from rnnlab.cli import USER_ERRORS, run_stage  # noqa: E402
from rnnlab.config import validate_study  # noqa: E402
from rnnlab.errors import ConfigError  # noqa: E402
from rnnlab.data.prepare import ensure_prepared  # noqa: E402
from rnnlab.models.numpy_common import Adam, RecurrentClassifier  # noqa: E402
from rnnlab.models.keras_models import CELLS as KERAS_CELLS  # noqa: E402
from rnnlab.models.numpy_models import CLASSES as NUMPY_CELLS  # noqa: E402

log = logging.getLogger(__name__)


def build_keras(variant: Any, units: int, length: int, symbols: int) -> keras.Model:
    """One recurrent layer over one-hot symbols, then two logits."""
    options = {}
    if variant.cell == "lstm":
        # Keras' own unit_forget_bias starts the forget gate's bias at 1; this sets any value.
        options = {"unit_forget_bias": False, "bias_initializer": ForgetGateBias(float(variant.forget_bias))}
    return keras.Sequential([
        keras.Input(shape=(length, symbols)),
        KERAS_CELLS[variant.cell](units, activation=variant.activation,
                                  recurrent_initializer=variant.recurrent_initializer, name="recurrent", **options),
        keras.layers.Dense(2, name="logits"),
    ])


class ForgetGateBias(keras.initializers.Initializer):
    """An LSTM bias of zeros except the forget gate's block (Keras' order i, f, c, o).

    A bias b holds the gate near sigmoid(b) at first, so c_t keeps sigmoid(b) of c_{t-1} per
    step and sigmoid(b)^99 of it over 99 steps: 1e-13.6 for b = 1, 6e-3 for b = 3."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        units = shape[0] // 4
        bias = np.zeros(shape, dtype="float32")
        bias[units:2 * units] = self.value
        return keras.ops.convert_to_tensor(bias, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


def keras_state_gradients(model: keras.Model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """g_t for t = 1..T (see the module docstring), by replaying the model's cell step by step."""
    import tensorflow as tf

    check_backend()
    cell, head = model.get_layer("recurrent").cell, model.get_layer("logits")
    x = tf.constant(x, dtype=tf.float32)
    batch, steps, _ = x.shape
    units = head.kernel.shape[0]
    probes = tf.zeros((steps, batch, units))
    n_states = 2 if isinstance(cell, keras.layers.LSTMCell) else 1
    with tf.GradientTape() as tape:
        tape.watch(probes)
        states = [tf.zeros((batch, units))] * n_states
        for t in range(steps):
            h, states = cell(x[:, t], states, training=False)
            h = h + probes[t]  # dL/d(probe_t) = dL/dh_t: every later use of h_t goes through h
            states = [h, *states[1:]]
        # Summed, not averaged: each sequence's gradient is then that sequence's own dL_i/dh_t.
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, head(h)))
    grads = tape.gradient(loss, probes).numpy()  # (T, batch, units)
    return np.linalg.norm(grads, axis=-1).mean(axis=1)


def check_backend() -> None:
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(f"KERAS_BACKEND={keras.backend.backend()}: the gradient study measures Keras models "
                          "with TensorFlow's GradientTape; run it with KERAS_BACKEND=tensorflow (the default), "
                          "or keep only NumPy variants.")


def numpy_state_gradients(model: RecurrentClassifier, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """g_t from the model's own backpropagation through time."""
    grads = model.loss_and_grads(x.astype(model.dtype), y)[1]["h"]  # of the batch's mean loss
    return np.linalg.norm(grads * len(x), axis=-1).mean(axis=0)


def measure(model: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if isinstance(model, RecurrentClassifier):
        return numpy_state_gradients(model, x, y)
    return keras_state_gradients(model, x, y)


def build(variant: Any, cfg: Any, spec: dict[str, Any]) -> Any:
    """A variant's model with its initial weights, the same for a given seed."""
    if variant.implementation == "numpy":
        model = NUMPY_CELLS[variant.cell](spec["features"], int(cfg.units), 2, seed=int(cfg.seed),
                                          init_scale=float(variant.init_scale))
        if variant.cell == "lstm":
            units = int(cfg.units)
            model.params["b"][units:2 * units] = variant.forget_bias
        return model
    keras.utils.set_random_seed(int(cfg.seed))
    return build_keras(variant, int(cfg.units), spec["length"], spec["features"])


def fit(model: Any, variant: Any, cfg: Any, x: np.ndarray, y: np.ndarray,
        epoch_logger: tracking.EpochLogger) -> dict[str, list[float]]:
    """Train with the study's trainer settings and the variant's clipping; returns per-epoch history."""
    t = cfg.trainer
    if isinstance(model, RecurrentClassifier):
        history = model.fit(x.astype(model.dtype), y, optimizer=Adam(float(t.learning_rate), clip_norm=variant.clipnorm),
                            epochs=int(t.epochs), batch_size=int(t.batch_size), on_epoch_end=epoch_logger.on_epoch_end)
        epoch_logger.flush()
        return history
    # global_clipnorm: one norm over all gradients, as the NumPy models clip (Keras' clipnorm is per weight).
    model.compile(optimizer=keras.optimizers.Adam(float(t.learning_rate), global_clipnorm=variant.clipnorm),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model.fit(x, y, batch_size=int(t.batch_size), epochs=int(t.epochs), verbose=t.verbose,
                     callbacks=[epoch_logger]).history


def accuracy_on(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    if isinstance(model, RecurrentClassifier):
        return model.evaluate(x.astype(model.dtype), y)[1]
    return float(np.mean(model.predict(x, batch_size=512, verbose=0).argmax(axis=1) == y))


def run_variant(name: str, variant: Any, cfg: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Measure, train, measure, score: one variant, one MLflow run."""
    x_measure, y_measure = data["x_test"][:cfg.n_measure], data["y_test"][:cfg.n_measure]
    tags = {**tracking.run_tags(cfg, data["meta"]), "variant": name, "implementation": str(variant.implementation)}
    with tracking.run(str(cfg.tracking.experiment or cfg.experiment_name), run_name=name, tags=tags) as active:
        mlflow.log_params(tracking.flat_params({"variant": OmegaConf.to_container(variant), "units": cfg.units,
                                                "n_measure": cfg.n_measure, "seed": cfg.seed,
                                                "trainer": OmegaConf.to_container(cfg.trainer),
                                                "data": OmegaConf.to_container(cfg.data)}))
        model = build(variant, cfg, data["meta"]["input_spec"])
        at_init = measure(model, x_measure, y_measure)
        started = time.perf_counter()
        history = fit(model, variant, cfg, data["x_train"], data["y_train"], tracking.EpochLogger())
        seconds = time.perf_counter() - started
        trained = measure(model, x_measure, y_measure)
        result = {
            "label": str(variant.label or name), "remedy_of": variant.remedy_of,
            "implementation": str(variant.implementation),
            "cell": str(variant.cell), "activation": str(variant.activation),
            "test_accuracy": accuracy_on(model, data["x_test"], data["y_test"]),
            "train_accuracy": float(history["accuracy"][-1]), "train_loss": float(history["loss"][-1]),
            "log10_ratio_init": log10_ratio(at_init), "log10_ratio_trained": log10_ratio(trained),
            "train_seconds": round(seconds, 1),
            "norms": {"init": at_init.tolist(), "trained": trained.tolist()},
            "history": {k: [float(v) for v in values] for k, values in history.items()},
            "run_id": active.info.run_id,
        }
        mlflow.log_metrics({k: result[k] for k in ("test_accuracy", "train_accuracy", "log10_ratio_init",
                                                   "log10_ratio_trained") if result[k] is not None})
        now = int(time.time() * 1000)
        mlflow.MlflowClient().log_batch(active.info.run_id, metrics=[
            Metric(f"grad_norm_{phase}", float(v), now, t + 1)
            for phase, values in (("init", at_init), ("trained", trained)) for t, v in enumerate(values)])
    log.info("%s: test accuracy %.3f, log10 g_1/g_T %s at init, %s trained (%.0f s)", name,
             result["test_accuracy"], result["log10_ratio_init"], result["log10_ratio_trained"], seconds)
    return result


def log10_ratio(norms: np.ndarray) -> float | None:
    """log10(g_1 / g_T), or None when g_T is 0: a model so sure of every answer that the
    loss's gradient rounds to 0 in float32 sends nothing back, and the ratio is undefined.
    A g_1 that underflowed to 0 counts as the smallest positive float64."""
    if norms[-1] == 0:
        return None
    return float(np.log10(max(norms[0], np.finfo(np.float64).tiny)) - np.log10(norms[-1]))


def study(cfg: Any, outputs: paths.Outputs) -> dict[str, Any]:
    """Every variant of the config; writes metrics, norms and figures; returns metrics.json's content."""
    if any(v.implementation == "keras" for v in cfg.variants.values()):
        check_backend()  # before any data is read or model trained
    data = ensure_prepared(cfg)
    provenance = data["meta"]["provenance"]
    results = {name: run_variant(name, variant, cfg, data) for name, variant in cfg.variants.items()}
    majority = int(np.bincount(data["y_train"]).argmax())
    metrics = {
        "experiment": str(cfg.experiment_name),
        "data": {"dataset": "long_memory", "source": provenance["source"], "synthetic": True,
                 "label": provenance.get("label", "synthetic sample"), "length": int(cfg.data.length),
                 "n_train": int(cfg.data.n_train), "n_test": int(cfg.data.n_test), "n_measure": int(cfg.n_measure)},
        "baseline": {"name": "majority class of the training labels (chance)",
                     "accuracy": float(np.mean(data["y_test"] == majority))},
        "trainer": OmegaConf.to_container(cfg.trainer), "units": int(cfg.units),
        "order": list(results),  # the config's order; the JSON's keys are sorted
        "variants": {name: {k: v for k, v in r.items() if k not in ("norms", "history")} for name, r in results.items()},
    }
    io.write_json(outputs.metrics / "metrics.json", metrics)
    write_norms_csv(results, outputs.metrics / "gradient_norms.csv")
    with io.atomic_dir(outputs.figures) as figures:
        plot_norms(results, metrics["data"], figures / "gradient_norms.png")
        plot_training(results, figures / "training_curves.png")
    return metrics


def write_norms_csv(results: dict[str, Any], path: Path) -> None:
    """One row per step: t, then log10 g_t of every variant at init and trained (what `dvc plots`
    reads; the logarithm, since the norms span tens of orders of magnitude)."""
    columns = [(name, phase) for name in results for phase in ("init", "trained")]
    with io.atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["t", *(f"{name}_{phase}" for name, phase in columns)])
            steps = len(next(iter(results.values()))["norms"]["init"])
            for t in range(steps):
                # A norm of exactly 0 has no logarithm: left empty.
                writer.writerow([t + 1, *(f"{np.log10(g):.6g}" if (g := results[n]["norms"][p][t]) > 0 else ""
                                          for n, p in columns)])


def plot_norms(results: dict[str, Any], data: dict[str, Any], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for ax, phase in zip(axes, ("init", "trained")):
        for name, r in results.items():
            norms = np.asarray(r["norms"][phase])
            style = "--" if r["implementation"] == "numpy" else "-"
            # Zeros (a saturated loss sends back nothing) have no logarithm and are not drawn.
            log_norms = np.log10(np.where(norms > 0, norms, np.nan))
            label = name if (norms > 0).any() else f"{name} (all 0)"
            ax.plot(np.arange(1, len(norms) + 1), log_norms, style, lw=1.3, label=label)
        ax.set_xlabel("t (step of the hidden state)")
        ax.set_title("at initialisation" if phase == "init" else "after training")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("log10 mean ||dL_i / dh_t||")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"How far back the gradient reaches: length-{data['length']} long-memory task "
                 f"({data['label']}); dashed: the NumPy models")
    io.write_figure(fig, out)


def plot_training(results: dict[str, Any], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, r in results.items():
        accuracy = r["history"]["accuracy"]
        ax.plot(np.arange(1, len(accuracy) + 1), accuracy, "--" if r["implementation"] == "numpy" else "-",
                label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training accuracy")
    ax.axhline(0.5, color="0.5", lw=0.8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Training accuracy on the long-memory task (0.5 is chance)")
    io.write_figure(fig, out)



def pipeline_outputs() -> paths.Outputs:
    return paths.Outputs(paths.ROOT / "models" / "gradient_study", paths.ROOT / "metrics" / "gradient_study",
                         paths.ROOT / "reports" / "gradient_study")


@hydra.main(version_base="1.3", config_path=str(paths.CONF_DIR), config_name="gradient_study")
def main(raw_cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    try:
        cfg = validate_study(raw_cfg)
        study(cfg, paths.Outputs.job(Path(HydraConfig.get().runtime.output_dir)))
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def stage_study(cfg: Any) -> None:
    study(validate_study(cfg), pipeline_outputs())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--stage":
        run_stage(stage_study, "DVC stage: the gradient study from its resolved config.", sys.argv[2:])
    else:
        main()
