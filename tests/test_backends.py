"""Both Keras backends, chosen by config before Keras loads; XLA; several devices; precision.

The test process runs Keras on one backend (conftest); everything that needs the other, or a
fresh process (the choice happens at import), runs in a subprocess of the project's venv.
"""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import PROJECT, run, subprocess_env
from test_experiments import EXPERIMENTS, TINY

from rnnlab import backends, paths
from rnnlab.config import compose
from rnnlab.errors import ConfigError
from rnnlab.train import run_experiment, training_setup

LOADED = keras.backend.backend()
OTHER = "tensorflow" if LOADED == "jax" else "jax"
PYTHON = sys.executable


def run_python(code: str, tmp_path: Path, backend: str | None = None, timeout: int = 900, **env: str) -> dict:
    """Run `code` in a fresh interpreter of the venv (Keras on `backend`, outputs in tmp_path);
    returns the JSON object its last line of stdout prints."""
    extra = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlruns.db", **env}
    if backend:
        extra["KERAS_BACKEND"] = backend
    out = run([PYTHON, "-c", textwrap.dedent(code)], tmp_path, subprocess_env(PROJECT, **extra), timeout=timeout)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# The choice


def test_an_explicit_backend_wins_then_the_environment_then_the_measured_table():
    assert backends.choose("tensorflow", "imdb", "cpu", environ={"KERAS_BACKEND": "jax"}) == \
        backends.Choice("tensorflow", backends.EXPLICIT)
    assert backends.choose("auto", "imdb", "cpu", environ={"KERAS_BACKEND": "tensorflow"}) == \
        backends.Choice("tensorflow", backends.ENVIRONMENT)
    for (dataset, kind), fastest in backends.FASTEST.items():
        assert backends.choose("auto", dataset, kind, environ={}) == backends.Choice(fastest, backends.MEASURED)
    assert backends.choose("auto", "a_new_dataset", "gpu", environ={}).backend == backends.DEFAULT["gpu"]
    with pytest.raises(ConfigError, match="trainer.backend='torch' is invalid"):
        backends.choose("torch", "imdb", "cpu", environ={})


def test_a_stateful_model_trains_on_tensorflow_under_auto():
    assert backends.choose("auto", "alphabet", "cpu", environ={}, stateful=True) == \
        backends.Choice("tensorflow", backends.STATEFUL)
    assert backends.choose("jax", "alphabet", "cpu", environ={}, stateful=True).backend == "jax"  # asked for


def test_every_dataset_a_course_experiment_trains_on_has_a_measured_backend_on_cpu():
    import yaml

    trained = set(yaml.safe_load((PROJECT / "params.yaml").read_text())["experiments"].values())
    assert trained <= {dataset for dataset, kind in backends.FASTEST if kind == "cpu"}


def test_jit_compile_auto_is_on_for_jax_and_measured_for_tensorflow():
    assert backends.jit_compile("auto", "jax", "gutenberg", "cpu") is True
    assert backends.jit_compile(False, "jax", "imdb", "cpu") is False
    for (dataset, kind), pays in backends.JIT_PAYS.items():
        assert backends.jit_compile("auto", "tensorflow", dataset, kind) is pays
    # Not measured: what Keras' own "auto" does.
    assert backends.jit_compile("auto", "tensorflow", "a_new_dataset", "cpu") is False
    assert backends.jit_compile("auto", "tensorflow", "a_new_dataset", "gpu") is True


def test_in_a_process_that_loaded_keras_auto_keeps_it_and_another_backend_is_refused():
    cfg = compose(["experiment=phrase_sentiment", "profile=quick"])
    assert training_setup(cfg).backend == LOADED
    with pytest.raises(ConfigError, match=f"trainer.backend={OTHER}, but this process already loaded Keras on {LOADED}"):
        training_setup(compose(["experiment=phrase_sentiment", f"trainer.backend={OTHER}"]))


@pytest.mark.slow
def test_each_command_loads_keras_on_the_backend_its_config_names(tmp_path: Path):
    """`python -m rnnlab.train` picks the backend before Keras loads; the run's tags say which and why."""
    env = subprocess_env(PROJECT, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlruns.db")
    env.pop("KERAS_BACKEND", None)
    tags = {}
    for requested in (OTHER, "auto"):
        out = run([PYTHON, "-m", "rnnlab.train", "experiment=phrase_sentiment", "profile=quick", "trainer.epochs=1",
                   f"trainer.backend={requested}", f"hydra.run.dir={tmp_path}/run-{requested}"], tmp_path, env)
        assert out.returncode == 0, out.stderr[-3000:]
        run_id = json.loads(out.stdout.strip().splitlines()[-1])["run_id"]
        tags[requested] = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db").get_run(run_id).data.tags
    assert tags[OTHER]["keras_backend"] == OTHER and tags[OTHER]["backend_choice"] == backends.EXPLICIT
    fastest = backends.FASTEST[("phrases", backends.device_kind())]
    assert tags["auto"]["keras_backend"] == fastest and tags["auto"]["backend_choice"] == backends.MEASURED
    assert tags[OTHER]["jit_compile"] in ("true", "false") and tags[OTHER]["precision"] == "float32"


def test_a_sweep_over_the_backend_is_refused_in_a_second(tmp_path: Path):
    started = time.perf_counter()
    out = run([PYTHON, "-m", "rnnlab.train", "-m", "experiment=phrase_sentiment", "trainer.backend=jax,tensorflow"],
              tmp_path, subprocess_env(PROJECT))
    assert out.returncode == 2 and time.perf_counter() - started < 3
    assert out.stderr.strip() == ("error: trainer.backend cannot be swept in one command: Keras loads one backend per "
                                  "process. Run one sweep per backend (trainer.backend=tensorflow, then jax).")


@pytest.mark.parametrize("override, fragment", [
    ("model.dropout=3", "model.dropout=3.0 is invalid: must be in [0, 1)"),
    ("trainer.precision=fp8", "trainer.precision='fp8' is invalid"),
    ("trainer.jit_compile=maybe", "trainer.jit_compile='maybe' is invalid: choose auto, true or false"),
    ("trainer.devices=0", "trainer.devices=0 is invalid: choose auto or a positive number of devices"),
])
def test_a_bad_value_fails_before_keras_loads_in_under_3_seconds(tmp_path: Path, override: str, fragment: str):
    started = time.perf_counter()
    out = run([PYTHON, "-m", "rnnlab.train", "experiment=phrase_sentiment", override], tmp_path, subprocess_env(PROJECT))
    seconds = time.perf_counter() - started
    assert out.returncode == 2 and fragment in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert seconds < 3, f"{seconds:.1f} s"
    assert not (tmp_path / "outputs").exists()


# ---------------------------------------------------------------------------------------------
# Every experiment on the other backend


@pytest.fixture(scope="module")
def on_the_other_backend(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every experiment config (and a tiny gradient study) trained and evaluated on OTHER, in one
    process, as test_experiments does on the loaded backend."""
    tmp = tmp_path_factory.mktemp("other_backend")
    runs = {}
    for experiment in EXPERIMENTS:
        dataset = compose([f"experiment={experiment}"]).data.name
        runs[experiment] = [f"experiment={experiment}", "profile=quick", "trainer.epochs=1", *TINY[dataset]]
    code = f"""
        import json
        from pathlib import Path
        import keras
        from rnnlab import gradient_study, paths
        from rnnlab.config import compose
        from rnnlab.train import run_experiment
        root = Path({str(tmp)!r})
        paths.ROOT = paths.TRACKING_ROOT = root
        out = {{"backend": keras.backend.backend()}}
        for name, overrides in {runs!r}.items():
            metrics = run_experiment(compose(overrides), paths.Outputs.job(root / name))
            out[name] = {{"primary": metrics["primary"], "model": metrics["model"], "baseline": metrics["baseline"],
                         "saved": sorted(p.name for p in (root / name / "model").iterdir())}}
        study = compose(["profile=quick", "data.n_train=64", "data.n_test=32", "n_measure=16", "trainer.epochs=1"],
                        config_name="gradient_study")
        details = gradient_study.study(study, paths.Outputs.job(root / "study"))
        out["gradient_study"] = {{name: v["log10_ratio_init"] for name, v in details["variants"].items()}}
        print(json.dumps(out))
    """
    return run_python(code, tmp, backend=OTHER, timeout=1500)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_on_the_other_backend(on_the_other_backend: dict, experiment: str):
    assert on_the_other_backend["backend"] == OTHER
    result = on_the_other_backend[experiment]
    primary = result["primary"]
    assert primary["name"] in result["model"] and primary["name"] in result["baseline"]
    assert np.isfinite(result["model"][primary["name"]])
    assert "model.keras" in result["saved"] or "model.npz" in result["saved"]


@pytest.mark.slow
def test_the_gradient_study_measures_on_the_other_backend(on_the_other_backend: dict):
    ratios = on_the_other_backend["gradient_study"]
    keras_variants = [name for name, v in compose([], config_name="gradient_study").variants.items()
                      if v.implementation == "keras"]
    assert keras_variants and all(ratios[name] is not None and np.isfinite(ratios[name]) for name in keras_variants)


@pytest.mark.slow
def test_both_backends_take_the_same_per_step_gradients(tmp_path: Path):
    """dL/dh_t through the replayed Keras cell, by GradientTape and by jax.grad, on the same saved
    weights: the backends' autodiff agree to float32 rounding."""
    from rnnlab import gradient_study

    rng = np.random.default_rng(0)
    x = np.eye(5, dtype=np.float32)[rng.integers(0, 5, (12, 30))]
    y = rng.integers(0, 2, 12)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    for cell in ("simplernn", "lstm", "gru"):
        variant = OmegaConf.create({"implementation": "keras", "cell": cell, "activation": "tanh",
                                    "recurrent_initializer": "orthogonal", "init_scale": 0.1, "forget_bias": 1.0})
        cfg = compose(["profile=quick", "model.units=6", "seed=0"], config_name="gradient_study")
        model = gradient_study.build(variant, cfg, {"task": "binary", "input_spec": {"kind": "onehot", "length": 30,
                                                                                    "features": 5}})
        (tmp_path / cell).mkdir()
        model.save(tmp_path / cell)
        here = model.state_gradients(x, y)
        there = run_python(f"""
            import json
            from pathlib import Path
            import numpy as np
            from rnnlab.models.keras_recurrent import KerasModel
            folder = Path({str(tmp_path / cell)!r})
            model = KerasModel.load(folder, "binary")
            g = model.state_gradients(np.load(folder.parent / "x.npy"), np.load(folder.parent / "y.npy"))
            print(json.dumps(g.tolist()))
        """, tmp_path, backend=OTHER)
        assert here.shape == (30,)
        np.testing.assert_allclose(np.asarray(there), here, rtol=1e-4, err_msg=cell)


# ---------------------------------------------------------------------------------------------
# Several devices, precision, cuDNN


TWO_DEVICES = {"jax": {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}, "tensorflow": {}}
SPLIT_TF_CPU = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_two_devices_split_each_batch_and_train_as_one(tmp_path: Path, backend: str):
    """phrase_sentiment (quick, 2 epochs) on one CPU device and on two virtual ones: the same data (a
    batch size and validation split whose last batches split evenly, so that no row is cut),
    the same initial weights, the loss of every epoch within 1e-4 (relative; the order of the
    sums differs)."""
    code = (SPLIT_TF_CPU if backend == "tensorflow" else "") + textwrap.dedent(f"""
        import json
        from pathlib import Path
        import mlflow
        from rnnlab import paths
        from rnnlab.config import compose
        from rnnlab.data.cache import ensure_prepared
        from rnnlab.data.datasets import select
        from rnnlab.train import run_experiment
        root = Path({str(tmp_path)!r})
        paths.ROOT = paths.TRACKING_ROOT = root
        overrides = ["experiment=phrase_sentiment", "profile=quick", "trainer.epochs=2"]
        cfg = compose(overrides)
        rows = len(select(cfg, ensure_prepared(cfg))["x_train"])
        batch, split = next((b, v / 100) for v in range(10, 20) for b in range(32, 8, -2)
                            if ((rows - int(round(rows * v / 100))) % b) % 2 == 0
                            and (int(round(rows * v / 100)) % b) % 2 == 0)
        out = {{"batch": batch, "split": split}}
        for n in (1, 2):
            cfg = compose([*overrides, f"trainer.devices={{n}}", f"trainer.batch_size={{batch}}",
                           f"trainer.validation_split={{split}}"])
            metrics = run_experiment(cfg, paths.Outputs.job(root / f"devices{{n}}"))
            run = mlflow.MlflowClient().get_run(metrics["run_id"])
            loss = [m.value for m in sorted(mlflow.MlflowClient().get_metric_history(metrics["run_id"], "loss"),
                                            key=lambda m: m.step)]
            out[n] = {{"loss": loss, "devices": run.data.tags["devices"], "backend": run.data.tags["keras_backend"]}}
        print(json.dumps(out))
    """)
    out = run_python(code, tmp_path, backend=backend, **TWO_DEVICES[backend])
    one, two = out["1"], out["2"]
    assert one["backend"] == two["backend"] == backend
    assert len(two["devices"].split(",")) == 2 and "," not in one["devices"], (one["devices"], two["devices"])
    assert len(one["loss"]) == len(two["loss"]) == 2
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-4)


def test_more_devices_than_the_machine_has_stop_before_the_data_are_prepared(isolated_root: Path):
    cfg = compose(["experiment=phrase_sentiment", "profile=quick", "trainer.devices=64"])
    with pytest.raises(ConfigError, match=r"trainer.devices=64, but \w+ sees 1 CPU device\(s\)"):
        run_experiment(cfg, paths.Outputs.job(isolated_root / "job"))
    assert not (isolated_root / "data").exists() and not (isolated_root / "job").exists()


def test_a_stateful_model_is_not_split_across_devices():
    with pytest.raises(ConfigError, match="trainer.devices=2 is invalid: a stateful model"):
        from rnnlab.config import validate

        validate(compose(["experiment=alphabet_stateful", "trainer.devices=2"]))


def test_mixed_precision_trains_with_a_float32_head(isolated_root: Path):
    from rnnlab import models

    cfg = compose(["experiment=phrase_sentiment", "profile=quick", "trainer.epochs=2", "trainer.precision=mixed_bfloat16"])
    try:
        metrics = run_experiment(cfg, paths.Outputs.job(isolated_root / "job"))
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        model = models.load(isolated_root / "job" / "model", "binary").model
        assert model.layers[0].dtype_policy.name == "mixed_bfloat16" and model.layers[0].compute_dtype == "bfloat16"
        assert model.layers[-1].compute_dtype == "float32"
        assert np.isfinite(metrics["model"]["loss"]) and 0.0 <= metrics["model"]["accuracy"] <= 1.0
    finally:
        keras.config.set_dtype_policy("float32")
    run_experiment(compose(["experiment=phrase_sentiment", "profile=quick", "trainer.epochs=1"]),
                   paths.Outputs.job(isolated_root / "job2"))
    assert keras.config.dtype_policy().name == "float32"  # the next run is back on float32


def test_a_config_off_the_cudnn_kernel_gets_one_warning_naming_the_key(caplog: pytest.LogCaptureFixture):
    model = compose(["experiment=imdb_lstm", "model.recurrent_dropout=0.2"]).model
    assert backends.off_cudnn(model) == [("model.recurrent_dropout", "0")]
    assert backends.off_cudnn(compose(["experiment=imdb_lstm"]).model) == []
    assert backends.off_cudnn(compose(["experiment=imdb_simplernn", "model.unroll=true"]).model) == []  # no cuDNN kernel
    both = compose(["experiment=imdb_gru", "model.unroll=true", "model.activation=relu"]).model
    assert [key for key, _ in backends.off_cudnn(both)] == ["model.unroll", "model.activation"]
    backends._warned.clear()
    with caplog.at_level(logging.WARNING, logger="rnnlab.backends"):
        backends.warn_off_cudnn(model)
        backends.warn_off_cudnn(model)
    warnings = [r.getMessage() for r in caplog.records if r.name == "rnnlab.backends"]
    assert len(warnings) == 1
    assert warnings[0].startswith("model.recurrent_dropout=0.2 (cuDNN needs 0) keeps this LSTM off the GPU's cuDNN kernel")


def test_with_n_devices_the_last_batch_is_cut_to_a_multiple_of_n():
    from rnnlab.data.prepare import ArrayBatches

    batches = ArrayBatches(np.arange(21)[:, None], np.arange(21), 8, seed=0)
    assert [len(batches[i][1]) for i in range(len(batches))] == [8, 8, 5]
    batches.multiple_of = 2
    assert [len(batches[i][1]) for i in range(len(batches))] == [8, 8, 4]
    first = set(np.concatenate([batches[i][1] for i in range(len(batches))]))
    batches.on_epoch_end()
    second = set(np.concatenate([batches[i][1] for i in range(len(batches))]))
    assert len(first) == len(second) == 20 and first != second  # another row is left out each epoch
    batches.multiple_of = 8  # a last batch smaller than N devices is left out whole
    assert len(batches) == 2
