"""Which Keras backend trains, with XLA or not, on how many devices, at which precision.

Keras reads KERAS_BACKEND once, when it is first imported, so the backend is chosen from the
config before that: every command that trains or evaluates reads its config with
`command_config` and calls `select_for_config` first (rnnlab.cli.before_keras), and
`check_loaded` confirms the choice inside `train(cfg)`.

    trainer.backend: auto | tensorflow | jax
    trainer.jit_compile: auto | true | false
    trainer.devices: auto | N
    trainer.precision: float32 | mixed_bfloat16 | mixed_float16

`auto` means what `benchmarks/train_bench.py` measured fastest for the experiment's dataset on
this kind of device (FASTEST and JIT_PAYS below); an explicit KERAS_BACKEND in the environment
wins over auto. Standard library only until `configure` runs: this module is imported before Keras.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)

BACKENDS = ("tensorflow", "jax")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

# The fastest backend per (dataset, device kind), from `python benchmarks/train_bench.py
# --experiments imdb_lstm stock_lstm textgen_lstm sine_simplernn phrase_sentiment
# alphabet_window_features --epochs 3 --repeats 1` (2026-12-02; benchmarks/README.md): CPU time of
# a steady epoch of the pipeline, quick profile, on this project's 2-core CPU machine. In
# brackets, JAX against TensorFlow with XLA off / on. A dataset or device not listed gets DEFAULT.
FASTEST: dict[tuple[str, str], str] = {
    ("imdb", "cpu"): "jax",        # imdb_lstm: 3.10x / 2.55x
    ("prices", "cpu"): "jax",      # stock_lstm: 3.20x / 2.13x
    ("gutenberg", "cpu"): "jax",   # textgen_lstm: 1.19x / 1.46x
    ("sine", "cpu"): "jax",        # sine_simplernn: 7.5x / 8.5x
    ("phrases", "cpu"): "jax",     # phrase_sentiment: 14x / 17x
    ("alphabet", "cpu"): "jax",    # alphabet_window_features: 10x / 8x
}
# Not measured: the gradient study's long_memory, and every GPU (no GPU was lent to this project
# yet). On a GPU, JAX is what the GPU machines here have installed (benchmarks/gpu_check.sh).
DEFAULT = {"cpu": "jax", "gpu": "jax"}

# Whether XLA compilation pays on TensorFlow, per (dataset, device kind), same benchmark (steady
# epoch, CPU time, XLA on against off). JAX always compiles (its eager mode is orders of magnitude
# slower), so auto is true there. Not listed (alphabet: epochs of 10 ms, below what it resolves):
# what Keras' own "auto" does, XLA on GPUs and off on CPUs.
JIT_PAYS: dict[tuple[str, str], bool] = {
    ("imdb", "cpu"): True,         # 1.21x
    ("prices", "cpu"): True,       # 1.51x
    ("gutenberg", "cpu"): False,   # 0.82x
    ("sine", "cpu"): False,        # 0.88x
    ("phrases", "cpu"): False,     # 0.82x
}

# Where the choice came from, for the run's tags.
EXPLICIT, ENVIRONMENT, MEASURED, LOADED = "config", "KERAS_BACKEND", "measured fastest", "already loaded"
# "<backend>:<reason>" beside the KERAS_BACKEND that `select` set, so that a later check (or a
# child process) does not mistake it for one the user set.
CHOSEN = "RNNLAB_KERAS_BACKEND_CHOICE"


@dataclass(frozen=True)
class Choice:
    backend: str
    reason: str


def device_kind() -> str:
    """'gpu' where an NVIDIA GPU is visible to this process, else 'cpu'; read without importing
    any framework (a GPU without a framework build for it still trains on the CPU, see tags)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return "cpu"
    return "gpu" if Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir() else "cpu"


# A stateful model does not learn on JAX here: alphabet_stateful (the course's 300 epochs, batch 1)
# ends at training accuracy 0.64 and loss 1.95 on JAX, 1.0 and 0.04 on TensorFlow, with the same
# code and config (2026-12-02); the state carried from batch to batch is the suspect. auto trains
# stateful models on TensorFlow until that is understood.
STATEFUL_BACKEND = "tensorflow"
STATEFUL = "stateful: JAX does not learn it (rnnlab.backends.STATEFUL_BACKEND)"


def choose(requested: str, dataset: str, kind: str | None = None, environ: dict[str, str] | None = None,
           stateful: bool = False) -> Choice:
    """The backend for trainer.backend=`requested` on `dataset`: the config's if explicit, else
    an explicit KERAS_BACKEND, else TensorFlow for a stateful model, else the measured fastest."""
    environ = os.environ if environ is None else environ
    if requested not in ("auto", *BACKENDS):
        raise ConfigError(f"trainer.backend={requested!r} is invalid: choose auto, {', '.join(BACKENDS)}. "
                          "Set trainer.backend=<value> on the command line or in conf/.")
    if requested != "auto":
        return Choice(requested, EXPLICIT)
    ours = environ.get(CHOSEN, "").split(":", 1)
    if len(ours) == 2 and ours[0] == environ.get("KERAS_BACKEND"):
        return Choice(*ours)  # set by `select` in this process or the one that started it (a sweep's workers)
    if environ.get("KERAS_BACKEND"):
        return Choice(environ["KERAS_BACKEND"], ENVIRONMENT)
    if stateful and installed(STATEFUL_BACKEND):
        return Choice(STATEFUL_BACKEND, STATEFUL)
    kind = kind or device_kind()
    fastest = FASTEST.get((dataset, kind), DEFAULT[kind])
    if not installed(fastest):
        other = next(b for b in BACKENDS if b != fastest)
        return Choice(other, f"{fastest} (measured fastest) is not installed")
    return Choice(fastest, MEASURED)


def installed(backend: str) -> bool:
    """Whether `backend` can be imported here (the jax extra is optional), without importing it."""
    import importlib.util

    return importlib.util.find_spec(backend) is not None


def jit_compile(requested: Any, backend: str, dataset: str, kind: str | None = None) -> bool:
    """trainer.jit_compile resolved to true or false. Never Keras' own "auto": a model loaded to
    resume keeps its compile settings, and "auto" set on it again reads as true."""
    if requested in (True, False):
        return bool(requested)
    if backend == "jax":
        return True
    kind = kind or device_kind()
    return JIT_PAYS.get((dataset, kind), kind == "gpu")  # Keras' own auto: XLA on GPUs, not on CPUs


# ---------------------------------------------------------------------------------------------
# Before Keras is imported


def select(requested: str, dataset: str, stateful: bool = False) -> Choice:
    """Set KERAS_BACKEND for this process from the config, before Keras is imported. Where Keras
    is loaded already (a test, a sweep's second job in the same process), an explicit request
    for another backend is an error and auto keeps the loaded one."""
    choice = choose(requested, dataset, stateful=stateful)
    loaded = _loaded_backend()
    if loaded is None:
        os.environ["KERAS_BACKEND"] = choice.backend
        os.environ[CHOSEN] = f"{choice.backend}:{choice.reason}"
        return choice
    if loaded == choice.backend:
        return choice
    if choice.reason == EXPLICIT:
        raise ConfigError(
            f"trainer.backend={requested}, but this process already loaded Keras on {loaded}: a backend is "
            "chosen when Keras is first imported. Run it as its own command (python -m rnnlab.train ... "
            f"trainer.backend={requested}), or with KERAS_BACKEND={requested} in the environment.")
    return Choice(loaded, LOADED)


def command_config(config_name: str | None, argv: list[str]) -> tuple[Any, bool] | None:
    """The config a command line runs, before Keras is imported: (`--stage <resolved yaml>`'s
    content, True) for a DVC stage, or (the composed config of a Hydra command line's first job,
    False); one backend for all jobs of a sweep. None where the command line names no config to
    read (--help, --cfg, params.yaml stages)."""
    if argv and argv[0] == "--stage":
        config = _stage_config(argv)
        return None if config is None else (config, True)
    composed = _composed(config_name, argv)
    return None if composed is None else (composed, False)


def select_for_config(config: Any) -> Choice:
    """`select` for a config (composed or a resolved stage file's dict)."""
    trainer, data, model = config.get("trainer") or {}, config.get("data") or {}, config.get("model") or {}
    return select(str(trainer.get("backend", "auto")), str(data.get("name", "")), bool(model.get("stateful", False)))


def _loaded_backend() -> str | None:
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "backend"):
        return None
    return str(keras.backend.backend())


def _stage_config(argv: list[str]) -> dict[str, Any] | None:
    import yaml

    if len(argv) < 2 or not argv[1].endswith((".yaml", ".yml")) or Path(argv[1]).name == "params.yaml":
        return None
    try:
        loaded = yaml.safe_load(Path(argv[1]).read_text())
    except (OSError, yaml.YAMLError):
        return None  # the stage itself says what is wrong with its file
    return loaded if isinstance(loaded, dict) else None


def _composed(config_name: str | None, argv: list[str]) -> Any:
    """The config (a DictConfig) of the command line's first job, as Hydra composes it."""
    if config_name is None:
        return None
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from rnnlab.paths import CONF_DIR

    try:
        args = get_args_parser().parse_args(argv)
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except (SystemExit, Exception):  # noqa: BLE001 - Hydra will say what is wrong with the command line
        return None
    if (args.help or args.hydra_help or args.cfg or args.info or args.shell_completion or args.config_path
            or args.config_dir or GlobalHydra.instance().is_initialized()):
        return None
    first = []
    for o in overrides:
        if o.is_sweep_override():
            if o.key_or_group == "trainer.backend":
                raise ConfigError("trainer.backend cannot be swept in one command: Keras loads one backend per "
                                  "process. Run one sweep per backend (trainer.backend=tensorflow, then jax).")
            try:
                value = next(iter(o.sweep_string_iterator()))
            except Exception:  # noqa: BLE001 - glob() and the like: the default backend then
                continue
            prefix = {"ADD": "+", "FORCE_ADD": "++"}.get(o.type.name, "")
            first.append(f"{prefix}{o.key_or_group}{'@' + o.package if o.package else ''}={value}")
        else:
            first.append(o.input_line)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=first)
    except Exception:  # noqa: BLE001 - Hydra reports it in its words when the app starts
        return None


# ---------------------------------------------------------------------------------------------
# After Keras is imported


def check_loaded(trainer: Any, dataset: str, stateful: bool = False) -> Choice:
    """The backend this run trains on, confirming the config's choice (see `select`)."""
    choice = select(str(trainer.backend), dataset, stateful)
    if stateful and choice.backend == "jax":
        log.warning("a stateful model on JAX: it does not learn the course's alphabet there (training accuracy "
                    "0.64 against 1.0 on TensorFlow); trainer.backend=tensorflow trains it")
    return choice


def set_precision(precision: str) -> None:
    """The global dtype policy: float32, or mixed (bfloat16 or float16 compute, float32 weights;
    Keras scales the loss for float16 itself). The model's head computes in float32."""
    import keras

    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision!r} is invalid: choose one of {', '.join(PRECISIONS)}.")
    keras.config.set_dtype_policy(precision)


def accelerators(backend: str) -> list[Any]:
    """The GPUs (or TPUs) the loaded backend sees, in its own device objects."""
    if backend == "jax":
        import jax

        return [d for d in jax.devices() if d.platform != "cpu"]
    import tensorflow as tf

    return tf.config.list_logical_devices("GPU")


def training_devices(requested: Any, backend: str) -> list[Any]:
    """trainer.devices as the devices to train on: auto = every accelerator (else the CPU);
    N = the first N of the accelerators, or of the CPU devices where there are none (a CPU split
    in virtual devices, as the tests do)."""
    found = accelerators(backend)
    if requested == "auto":
        return found
    n = int(requested)
    if not found:
        found = _cpu_devices(backend)
    if n > len(found):
        kind = "accelerator" if accelerators(backend) else "CPU device"
        raise ConfigError(f"trainer.devices={n}, but {backend} sees {len(found)} {kind}(s): set trainer.devices=auto "
                          f"or at most {len(found)}.")
    return found[:n] if n > 1 else []


def _cpu_devices(backend: str) -> list[Any]:
    if backend == "jax":
        import jax

        return jax.devices("cpu")
    import tensorflow as tf

    return tf.config.list_logical_devices("CPU")


def device_names(devices: list[Any]) -> str:
    return ",".join(getattr(d, "name", None) or str(d) for d in devices)


@contextlib.contextmanager
def data_parallel(devices: list[Any], backend: str) -> Iterator[None]:
    """Build, compile and fit inside this: with two or more devices, every batch is split across
    them and the weights are kept in step (JAX: keras.distribution.DataParallel; TensorFlow:
    tf.distribute.MirroredStrategy). With fewer, nothing changes."""
    if len(devices) < 2:
        yield
        return
    if backend == "jax":
        import keras

        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield
        finally:
            keras.distribution.set_distribution(previous)
        return
    import tensorflow as tf

    with tf.distribute.MirroredStrategy(devices=[d.name for d in devices]).scope():
        yield


# What keeps Keras' LSTM and GRU off cuDNN's fused kernel on a GPU (keras.layers.LSTM's docs):
# each (config key, test on the model config, what the value should be).
OFF_CUDNN = (
    ("model.recurrent_dropout", lambda m: m.recurrent_dropout > 0, "0"),
    ("model.unroll", lambda m: bool(m.unroll), "false"),
    ("model.activation", lambda m: m.activation != "tanh", "tanh"),
)
_warned: set[tuple[str, ...]] = set()


def off_cudnn(model: Any) -> list[tuple[str, str]]:
    """The keys of an LSTM or GRU config that leave the cuDNN kernel: (key, value it needs)."""
    if model.cell not in ("lstm", "gru"):
        return []
    return [(key, fix) for key, test, fix in OFF_CUDNN if test(model)]


def warn_off_cudnn(model: Any) -> None:
    """One warning per process and config where an LSTM or GRU on a GPU runs Keras' generic
    kernel: a Python-level loop over time steps instead of cuDNN's fused one."""
    keys = off_cudnn(model)
    if not keys or tuple(keys) in _warned:
        return
    _warned.add(tuple(keys))
    named = ", ".join(f"{key}={_value(model, key)} (cuDNN needs {fix})" for key, fix in keys)
    log.warning("%s keeps this %s off the GPU's cuDNN kernel: each epoch runs several times slower (the "
                "cuDNN-path ratio of benchmarks/gpu_check.sh measures it on your GPU).", named, model.cell.upper())


def _value(model: Any, key: str) -> Any:
    return model[key.split(".", 1)[1]]
