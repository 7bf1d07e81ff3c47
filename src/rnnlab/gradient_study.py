"""The gradient study: how far back can each recurrent cell carry a gradient?

    python -m rnnlab.gradient_study [overrides]                            Hydra: outputs/runs/<time>_gradient_study/
    python -m rnnlab.gradient_study --stage resolved/gradient_study.yaml   the DVC stage

Every variant of conf/gradient_study.yaml is one recurrent layer and a Dense(2) softmax head,
on the long-memory task (data/datasets/long_memory.py: the first of 100 symbols is the label).
For each, on the same test sequences, at initialisation and after training:

    g_t = mean over sequences i of ||dL_i/dh_t||,   t = 1..T

dL_i/dh_t is the whole derivative of sequence i's loss with respect to the hidden state after
step t: through the output and through every later step (for an LSTM, with the cell state c_t
held as a separate input). Keras models get it from TensorFlow's autodiff, with a zero probe
added to each h_t in a step-by-step replay of the trained cell; the NumPy models from their
written-out backpropagation through time (backward()["h"]). A test checks that the two agree
on the same weights. g_1 / g_T says what share of the loss's pull on the last state reaches
the first: the signal the task needs.

Writes metrics/gradient_study/{metrics.json (numbers only), details.json (every variant), gradient_norms.csv} and
reports/gradient_study/{gradient_norms.png, training_curves.png}; one MLflow run per variant
in the MLflow experiment gradient_study, with g_t logged at step t.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

from rnnlab import cli

if __name__ == "__main__":  # before Keras loads: a misspelt override stops in a second, not ten,
    cli.before_keras("gradient_study")  # and Keras loads on the backend the config chooses

import hydra  # noqa: E402
import keras  # noqa: E402
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
from mlflow.entities import Metric  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from rnnlab import backends, cli, io, models, paths, tracking  # noqa: E402
from rnnlab.config import load_resolved, validate_study  # noqa: E402
from rnnlab.data.cache import ensure_prepared  # noqa: E402

log = logging.getLogger(__name__)


def variant_model(cfg: Any, variant: Any) -> DictConfig:
    """A variant as a model config: the study's model (one recurrent layer) with the variant's
    implementation, cell and initialisation."""
    return OmegaConf.merge(cfg.model, {key: variant[key] for key in VARIANT_MODEL_KEYS})


# A variant "learned" the task at this test accuracy or more (the report says the same).
LEARNED = 0.9
VARIANT_MODEL_KEYS = ("implementation", "cell", "activation", "recurrent_initializer", "init_scale", "forget_bias")


def build(variant: Any, cfg: Any, meta: dict[str, Any]) -> models.Model:
    """A variant's model with its initial weights, the same for a given seed: two logits, so
    that the measured loss is the softmax cross-entropy of both implementations."""
    return models.build(variant_model(cfg, variant), cfg.regularizer, {**meta, "n_outputs": 2},
                        batch_size=int(cfg.trainer.batch_size), seed=int(cfg.seed), logits=True)


def fit(model: models.Model, variant: Any, cfg: Any, x: np.ndarray, y: np.ndarray,
        epoch_logger: tracking.EpochLogger) -> dict[str, list[float]]:
    """Train with the study's trainer settings and the variant's clipping (of the global norm,
    in both implementations); returns per-epoch history."""
    trainer = OmegaConf.merge(cfg.trainer, {"clipnorm": variant.clipnorm})
    jit = backends.jit_compile(cfg.trainer.jit_compile, keras.backend.backend(), str(cfg.data.name))
    return model.fit(trainer, {"x": x, "y": y, "batch_size": int(trainer.batch_size)}, callbacks=[epoch_logger],
                     jit_compile=jit)


def accuracy_on(model: models.Model, x: np.ndarray, y: np.ndarray) -> float:
    p = model.predict(x)
    predicted = p.argmax(axis=1) if p.ndim == 2 else (p >= 0.5).astype(int)
    return float(np.mean(predicted == y))


def run_variant(name: str, variant: Any, cfg: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Measure, train, measure, score: one variant, one MLflow run."""
    x_measure, y_measure = data["x_test"][:cfg.n_measure], data["y_test"][:cfg.n_measure]
    tags = {**tracking.run_tags(cfg, data["meta"]), "variant": name, "implementation": str(variant.implementation)}
    with tracking.run(tracking.experiment_name(cfg), run_name=name, tags=tags) as active:
        mlflow.log_params(tracking.flat_params({"variant": OmegaConf.to_container(variant), "units": cfg.model.units,
                                                "n_measure": cfg.n_measure, "seed": cfg.seed,
                                                "trainer": OmegaConf.to_container(cfg.trainer),
                                                "data": OmegaConf.to_container(cfg.data)}))
        model = build(variant, cfg, data["meta"])
        at_init = model.state_gradients(x_measure, y_measure)
        started = time.perf_counter()
        history = fit(model, variant, cfg, data["x_train"], data["y_train"], tracking.EpochLogger())
        seconds = time.perf_counter() - started
        trained = model.state_gradients(x_measure, y_measure)
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
    """Every variant of the config; writes metrics, norms and figures; returns details.json's content."""
    backends.check_loaded(cfg.trainer, str(cfg.data.name))  # before any data is read or model trained
    backends.set_precision("float32")  # the gradients compared are float32's, whatever trained before
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
        "trainer": OmegaConf.to_container(cfg.trainer), "units": int(cfg.model.units),
        "order": list(results),  # the config's order; the JSON's keys are sorted
        "variants": {name: {k: v for k, v in r.items() if k not in ("norms", "history")} for name, r in results.items()},
    }
    io.write_json(outputs.metrics / "metrics.json", study_metrics_file(metrics))
    io.write_json(outputs.metrics / "details.json", metrics)
    write_norms_csv(results, outputs.metrics / "gradient_norms.csv")
    with io.atomic_dir(outputs.figures) as figures:
        plot_norms(results, metrics["data"], figures / "gradient_norms.png")
        plot_training(results, figures / "training_curves.png")
    return metrics


def study_metrics_file(metrics: dict[str, Any]) -> dict[str, float | int]:
    """metrics.json (DVC's metrics): numbers only, in the experiments' columns where they mean the
    same: the best variant's test `accuracy`, the `baseline` (chance), and how many variants
    learned the task (test accuracy at least 0.9). Every variant's numbers are in details.json."""
    accuracies = [v["test_accuracy"] for v in metrics["variants"].values()]
    return {"accuracy": max(accuracies), "baseline": metrics["baseline"]["accuracy"],
            "variants_learned": sum(a >= LEARNED for a in accuracies)}


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



@hydra.main(version_base="1.3", config_path=str(paths.CONF_DIR), config_name="gradient_study")
def main(raw_cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    with cli.user_errors_exit():
        cfg = validate_study(raw_cfg)
        study(cfg, paths.Outputs.job(Path(HydraConfig.get().runtime.output_dir)))


def stage_study(resolved: Path) -> None:
    study(validate_study(load_resolved(resolved)), paths.Outputs.gradient_study())


if __name__ == "__main__":
    cli.main(stage_study, "DVC stage: the gradient study from its resolved config.", app=main)
