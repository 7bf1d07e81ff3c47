"""Config schemas, composition and validation.

Every entry point (the Hydra app, the DVC stages, tests) gets its config through
`compose()` or `validate()`, so a wrong key or value fails the same way everywhere:
one `ConfigError` naming the key and the fix, before any data is read or model built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import HydraException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnnlab.backends import BACKENDS, PRECISIONS
from rnnlab.data.datasets import DATASETS
from rnnlab.errors import ConfigError
from rnnlab.paths import CONF_DIR

__all__ = ["ConfigError", "compose", "validate", "dataset_config", "data_part", "from_data_part", "load_resolved"]


# Each dataset's source module holds its schema (`Schema`, with PREPARE_KEYS) and
# its range checks (`check`); see rnnlab.data.datasets.
DATA_SCHEMAS: dict[str, type] = {name: module.Schema for name, module in DATASETS.items()}


# The schemas hold each key's type; the values live under conf/ only (MISSING here), so that
# a key YAML forgets is an error, never a silent second default.
@dataclass
class ModelConfig:
    implementation: str = MISSING
    cell: str = MISSING
    units: int = MISSING
    layers: int = MISSING
    bidirectional: bool = MISSING
    activation: str = MISSING
    recurrent_initializer: str = MISSING
    forget_bias: float = MISSING
    dropout: float = MISSING
    recurrent_dropout: float = MISSING
    dropout_between: float = MISSING
    stateful: bool = MISSING
    unroll: bool = MISSING
    embedding_dim: int = MISSING
    dense_units: list[int] = MISSING
    dense_activation: str = MISSING
    init_scale: float = MISSING


@dataclass
class RegularizerConfig:
    kind: str = MISSING
    l1: float = MISSING
    l2: float = MISSING
    apply_to: list[str] = MISSING


@dataclass
class EarlyStoppingConfig:
    enabled: bool = MISSING
    monitor: str = MISSING
    patience: int = MISSING
    min_delta: float = MISSING
    restore_best_weights: bool = MISSING


@dataclass
class ReduceLRConfig:
    enabled: bool = MISSING
    monitor: str = MISSING
    factor: float = MISSING
    patience: int = MISSING
    min_lr: float = MISSING


@dataclass
class TrainerConfig:
    optimizer: str = MISSING
    learning_rate: float = MISSING
    momentum: float = MISSING
    clipnorm: Optional[float] = MISSING
    clipvalue: Optional[float] = MISSING
    batch_size: int = MISSING
    epochs: int = MISSING
    validation_split: float = MISSING
    verbose: int = MISSING
    early_stopping: EarlyStoppingConfig = MISSING
    reduce_lr: ReduceLRConfig = MISSING
    resume: bool = MISSING
    checkpoint_every_seconds: float = 30.0
    # auto | tensorflow | jax; auto | true | false; auto | N; float32 | mixed_bfloat16 | mixed_float16
    # (rnnlab.backends). Any, not str: the YAML's true/false and N arrive as bool and int.
    backend: str = "auto"
    jit_compile: Any = "auto"
    devices: Any = "auto"
    precision: str = "float32"


@dataclass
class TrackingConfig:
    experiment: Optional[str] = MISSING


@dataclass
class RunConfig:
    experiment_name: str = MISSING
    seed: int = MISSING
    profile_name: str = MISSING
    data: Any = MISSING
    model: ModelConfig = MISSING
    regularizer: RegularizerConfig = MISSING
    trainer: TrainerConfig = MISSING
    tracking: TrackingConfig = MISSING


IMPLEMENTATIONS = ("keras", "numpy")


@dataclass
class VariantConfig:
    """One variant of the gradient study (conf/gradient_study.yaml; `variant_defaults` there
    fills what a variant leaves out)."""

    implementation: str = MISSING
    cell: str = MISSING
    activation: str = MISSING
    recurrent_initializer: str = MISSING
    clipnorm: Optional[float] = MISSING
    init_scale: float = MISSING
    forget_bias: float = MISSING
    label: Optional[str] = MISSING
    # The variant this one changes in a single respect: the report sets them side by side.
    remedy_of: Optional[str] = MISSING


@dataclass
class StudyConfig:
    experiment_name: str = MISSING
    seed: int = MISSING
    profile_name: str = MISSING
    data: Any = MISSING
    model: ModelConfig = MISSING
    regularizer: RegularizerConfig = MISSING
    trainer: TrainerConfig = MISSING
    tracking: TrackingConfig = MISSING
    n_measure: int = MISSING
    variant_defaults: Any = MISSING
    variants: dict[str, VariantConfig] = MISSING


CELLS = ("simplernn", "lstm", "gru")
NUMPY_CELLS = ("simplernn", "lstm")
RECURRENT_INITIALIZERS = ("orthogonal", "glorot_uniform", "identity")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear", "elu", "selu")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
REGULARIZERS = ("none", "l1", "l2", "l1l2")
REGULARIZED_WEIGHTS = ("kernel", "recurrent", "bias")
DATA_SOURCES = ("auto", "remote", "local", "sample")
# What early stopping and ReduceLROnPlateau may watch: validation metrics only, never the test split.
MONITORS = ("val_loss", "val_accuracy", "val_mae")


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str = "config") -> DictConfig:
    """Compose conf/<config_name>.yaml with Hydra overrides, then validate it: an experiment
    (config), or the gradient study (gradient_study)."""
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"{_first_line(exc)} (overrides: {' '.join(overrides) or 'none'})") from exc
    return validate_study(cfg) if config_name == "gradient_study" else validate(cfg)


def validate(cfg: DictConfig) -> DictConfig:
    """Check keys against the schemas and values against their ranges.

    Returns the config resolved, without Hydra's own node, read-only.
    """
    merged = _merge_with_schema(cfg, RunConfig)
    _check_ranges(merged)
    OmegaConf.set_readonly(merged, True)
    return merged


def validate_study(cfg: DictConfig) -> DictConfig:
    """`validate` for the gradient study's config (conf/gradient_study.yaml)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    defaults = plain.get("variant_defaults") or {}
    plain["variants"] = {name: {**defaults, **(variant or {})} for name, variant in (plain.get("variants") or {}).items()}
    merged = _merge_with_schema(OmegaConf.create(plain), StudyConfig)

    require = _require
    _check_seed(merged.seed, require)
    require(merged.model.units > 0, "model.units", merged.model.units, "must be a positive integer")
    require(merged.n_measure > 0, "n_measure", merged.n_measure, "must be a positive integer")
    require(len(merged.variants) > 0, "variants", {}, "name at least one variant")
    require(merged.data.name == "long_memory", "data.name", merged.data.name, "the study runs on data=long_memory")
    for name, v in merged.variants.items():
        key = f"variants.{name}"
        require(v.implementation in IMPLEMENTATIONS, f"{key}.implementation", v.implementation,
                f"choose one of {', '.join(IMPLEMENTATIONS)}")
        cells = NUMPY_CELLS if v.implementation == "numpy" else CELLS
        require(v.cell in cells, f"{key}.cell", v.cell, f"choose one of {', '.join(cells)} for {v.implementation}")
        require(v.activation in ACTIVATIONS, f"{key}.activation", v.activation, f"choose one of {', '.join(ACTIVATIONS)}")
        require(v.implementation == "keras" or v.activation == "tanh", f"{key}.activation", v.activation,
                "the NumPy models are tanh only")
        require(v.recurrent_initializer in RECURRENT_INITIALIZERS, f"{key}.recurrent_initializer",
                v.recurrent_initializer, f"choose one of {', '.join(RECURRENT_INITIALIZERS)}")
        require(v.recurrent_initializer != "identity" or v.cell == "simplernn", f"{key}.recurrent_initializer",
                v.recurrent_initializer, "identity needs a square recurrent matrix: simplernn only")
        require(v.clipnorm is None or v.clipnorm > 0, f"{key}.clipnorm", v.clipnorm, "must be > 0 or null")
        require(v.forget_bias == 1.0 or v.cell == "lstm", f"{key}.forget_bias", v.forget_bias,
                "only an LSTM has a forget gate; leave it at 1.0")
        require(v.init_scale > 0, f"{key}.init_scale", v.init_scale, "must be > 0")
        require(v.remedy_of is None or (v.remedy_of in merged.variants and v.remedy_of != name),
                f"{key}.remedy_of", v.remedy_of, "name another variant of this study, or null")
    _check_trainer(merged.trainer, require)
    _check_data(merged.data, require)
    OmegaConf.set_readonly(merged, True)
    return merged


def _require(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {rule}. Set {key}=<value> on the command line or in conf/.")


def _merge_with_schema(cfg: DictConfig, schema_class: type) -> DictConfig:
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    data_name = plain.get("data", {}).get("name")
    if data_name not in DATA_SCHEMAS:
        raise ConfigError(
            f"data.name={data_name!r} is not a known dataset; choose one of {sorted(DATA_SCHEMAS)} "
            "with data=<name>."
        )
    schema = OmegaConf.structured(schema_class)
    schema.data = OmegaConf.structured(DATA_SCHEMAS[data_name])
    try:
        merged = OmegaConf.merge(schema, plain)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(
            f"config key {key!r}: {_first_line(exc)}. Check the spelling against conf/ "
            "(python -m rnnlab.train --cfg job prints the full config)."
        ) from exc
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(f"no value for {', '.join(missing)}; set it in conf/ (the schemas in "
                          "rnnlab.config hold types only) or with key=<value> on the command line.")
    return merged


def _check_ranges(cfg: DictConfig) -> None:
    require = _require
    _check_seed(cfg.seed, require)
    m, r, t, d = cfg.model, cfg.regularizer, cfg.trainer, cfg.data
    require(m.implementation in IMPLEMENTATIONS, "model.implementation", m.implementation,
            f"choose one of {', '.join(IMPLEMENTATIONS)}")
    require(m.cell in CELLS, "model.cell", m.cell, f"choose one of {', '.join(CELLS)}")
    require(m.units > 0, "model.units", m.units, "must be a positive integer")
    require(m.layers > 0, "model.layers", m.layers, "must be a positive integer")
    require(m.embedding_dim > 0, "model.embedding_dim", m.embedding_dim, "must be a positive integer")
    require(0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "must be in [0, 1)")
    require(0.0 <= m.recurrent_dropout < 1.0, "model.recurrent_dropout", m.recurrent_dropout, "must be in [0, 1)")
    require(0.0 <= m.dropout_between < 1.0, "model.dropout_between", m.dropout_between, "must be in [0, 1)")
    require(m.activation in ACTIVATIONS, "model.activation", m.activation, f"choose one of {', '.join(ACTIVATIONS)}")
    require(m.recurrent_initializer in RECURRENT_INITIALIZERS, "model.recurrent_initializer", m.recurrent_initializer,
            f"choose one of {', '.join(RECURRENT_INITIALIZERS)}")
    require(m.recurrent_initializer != "identity" or (m.cell == "simplernn" and not m.bidirectional),
            "model.recurrent_initializer", m.recurrent_initializer, "identity needs a square recurrent matrix: simplernn only")
    require(m.forget_bias == 1.0 or m.cell == "lstm", "model.forget_bias", m.forget_bias,
            "only an LSTM has a forget gate; leave it at 1.0")
    require(m.dense_activation in ACTIVATIONS, "model.dense_activation", m.dense_activation,
            f"choose one of {', '.join(ACTIVATIONS)}")
    require(all(u > 0 for u in m.dense_units), "model.dense_units", list(m.dense_units), "sizes must be positive")
    require(r.kind in REGULARIZERS, "regularizer.kind", r.kind, f"choose one of {', '.join(REGULARIZERS)}")
    require(r.l1 >= 0, "regularizer.l1", r.l1, "must be >= 0")
    require(r.l2 >= 0, "regularizer.l2", r.l2, "must be >= 0")
    unknown = sorted(set(r.apply_to) - set(REGULARIZED_WEIGHTS))
    require(not unknown, "regularizer.apply_to", list(r.apply_to), f"entries must be among {', '.join(REGULARIZED_WEIGHTS)}")
    _check_trainer(t, require)
    require(not (m.stateful and t.devices not in ("auto", 1)), "trainer.devices", t.devices,
            "a stateful model keeps its state per row of one fixed batch, which cannot be split across devices: "
            "set trainer.devices=1")
    _check_data(d, require)
    if m.implementation == "numpy":
        _check_numpy(cfg, require)
    _check_validation(cfg, require)


def _check_seed(seed: int, require: Any) -> None:
    # NumPy's and TensorFlow's generators take 32-bit unsigned seeds: -1 or 2**32 would fail deep inside.
    require(0 <= seed < 2**32, "seed", seed, "must be an integer in [0, 2**32)")


def _check_trainer(t: DictConfig, require: Any) -> None:
    require(t.optimizer in OPTIMIZERS, "trainer.optimizer", t.optimizer, f"choose one of {', '.join(OPTIMIZERS)}")
    require(t.learning_rate > 0, "trainer.learning_rate", t.learning_rate, "must be > 0")
    require(t.batch_size > 0, "trainer.batch_size", t.batch_size, "must be a positive integer")
    require(t.epochs > 0, "trainer.epochs", t.epochs, "must be a positive integer")
    require(0.0 <= t.validation_split < 1.0, "trainer.validation_split", t.validation_split, "must be in [0, 1)")
    require(t.clipnorm is None or t.clipnorm > 0, "trainer.clipnorm", t.clipnorm, "must be > 0 or null")
    require(t.clipvalue is None or t.clipvalue > 0, "trainer.clipvalue", t.clipvalue, "must be > 0 or null")
    require(t.checkpoint_every_seconds >= 0, "trainer.checkpoint_every_seconds", t.checkpoint_every_seconds,
            "must be >= 0 (0: after every epoch)")
    require(t.backend in ("auto", *BACKENDS), "trainer.backend", t.backend, f"choose auto, {', '.join(BACKENDS)}")
    require(t.jit_compile in ("auto", True, False), "trainer.jit_compile", t.jit_compile, "choose auto, true or false")
    require(t.devices == "auto" or (isinstance(t.devices, int) and not isinstance(t.devices, bool) and t.devices > 0),
            "trainer.devices", t.devices, "choose auto or a positive number of devices")
    require(t.precision in PRECISIONS, "trainer.precision", t.precision, f"choose one of {', '.join(PRECISIONS)}")
    for key in ("early_stopping", "reduce_lr"):
        c = t[key]
        require(c.monitor in MONITORS, f"trainer.{key}.monitor", c.monitor, f"choose one of {', '.join(MONITORS)}")
        require(c.patience >= 0, f"trainer.{key}.patience", c.patience, "must be >= 0")
    require(0.0 < t.reduce_lr.factor < 1.0, "trainer.reduce_lr.factor", t.reduce_lr.factor, "must be in (0, 1)")
    require(t.reduce_lr.min_lr >= 0, "trainer.reduce_lr.min_lr", t.reduce_lr.min_lr, "must be >= 0")


def _check_data(d: DictConfig, require: Any) -> None:
    require(d.source in DATA_SOURCES, "data.source", d.source, f"choose one of {', '.join(DATA_SOURCES)}")
    if d.source == "local":
        require(d.path is not None, "data.path", d.path, "data.source=local needs data.path=<file>")
        path = Path(d.path)
        require(path.is_file(), "data.path", d.path, "no such file")
        require(path.stat().st_size > 0, "data.path", d.path, "the file is empty")
    DATASETS[d.name].check(d, require)


def _check_validation(cfg: DictConfig, require: Any) -> None:
    """Early stopping and ReduceLROnPlateau watch a validation split: refuse them without one."""
    t = cfg.trainer
    has_validation = t.validation_split > 0
    for key in ("early_stopping", "reduce_lr"):
        if t[key].enabled:
            require(has_validation, f"trainer.{key}.enabled", True,
                    "it watches a validation metric: set trainer.validation_split > 0")
            require(cfg.model.implementation == "keras", f"trainer.{key}.enabled", True,
                    "Keras callbacks: use model.implementation=keras")


def _check_numpy(cfg: DictConfig, require: Any) -> None:
    """The from-scratch models (models/numpy_*.py) are the course's one-layer RNN and an LSTM
    with a softmax head on one-hot words: refuse what they do not implement rather than ignore it."""
    m, t = cfg.model, cfg.trainer
    hint = "the NumPy models (model.implementation=numpy) do not implement it; use model.implementation=keras"
    require(m.cell in NUMPY_CELLS, "model.cell", m.cell, f"choose {' or '.join(NUMPY_CELLS)}: {hint}")
    require(cfg.data.name == "phrases", "data.name", cfg.data.name,
            f"one-hot phrases only (data=phrases): {hint}")
    require(m.layers == 1, "model.layers", m.layers, f"one layer only: {hint}")
    require(m.activation == "tanh", "model.activation", m.activation, f"tanh only: {hint}")
    for key in ("dropout", "recurrent_dropout", "dropout_between"):
        require(m[key] == 0.0, f"model.{key}", m[key], f"must be 0: {hint}")
    for key in ("bidirectional", "stateful", "unroll"):
        require(not m[key], f"model.{key}", m[key], f"must be false: {hint}")
    require(not m.dense_units, "model.dense_units", list(m.dense_units), f"must be []: {hint}")
    require(m.init_scale > 0, "model.init_scale", m.init_scale, "must be > 0")
    require(cfg.regularizer.kind == "none", "regularizer.kind", cfg.regularizer.kind, f"must be none: {hint}")
    require(t.optimizer in ("sgd", "adam"), "trainer.optimizer", t.optimizer, f"choose sgd or adam: {hint}")
    require(t.momentum == 0.0, "trainer.momentum", t.momentum, f"must be 0: {hint}")
    require(t.validation_split == 0.0, "trainer.validation_split", t.validation_split, f"must be 0: {hint}")


def dataset_config(name: str, overrides: dict[str, Any] | None = None) -> DictConfig:
    """conf/data/<name>.yaml in its schema, with `overrides`: one dataset's settings alone."""
    if name not in DATA_SCHEMAS:
        raise ConfigError(f"data.name={name!r} is not a known dataset; choose one of {sorted(DATA_SCHEMAS)}.")
    merged = OmegaConf.merge(OmegaConf.structured(DATA_SCHEMAS[name]), OmegaConf.load(CONF_DIR / "data" / f"{name}.yaml"),
                             overrides or {})
    return merged


def data_part(cfg: DictConfig) -> dict[str, Any]:
    """What fetch and prepare depend on, split by stage so dvc.yaml can track each part:

        seed: ...                      fetch (sample generation, splits)
        fetch: {name, source, ...}     fetch, plus the sha256 of a local file so edits rerun it
        prepare: {maxlen, ...}         prepare
    """
    data = OmegaConf.to_container(cfg.data)
    for key in getattr(DATA_SCHEMAS[data["name"]], "SELECT_KEYS", ()):
        data.pop(key, None)
    prepare_keys = DATA_SCHEMAS[data["name"]].PREPARE_KEYS
    fetch = {k: v for k, v in data.items() if k not in prepare_keys}
    fetch["local_file_sha256"] = None
    if data.get("source") == "local" and data.get("path"):
        from rnnlab.io import sha256_file

        fetch["local_file_sha256"] = sha256_file(data["path"])
    return {"seed": int(cfg.seed), "fetch": fetch, "prepare": {k: data[k] for k in prepare_keys}}


def from_data_part(part: dict[str, Any]) -> DictConfig:
    """The {seed, data} config that fetch and prepare take, from a `data_part`."""
    data = {k: v for k, v in part["fetch"].items() if k != "local_file_sha256"}
    return OmegaConf.create({"seed": part["seed"], "data": {**data, **part["prepare"]}})


def load_resolved(path: str | Path) -> DictConfig:
    """Read a file written by `rnnlab.compose`: an experiment's config or a dataset's data part."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; run `dvc repro compose` first.")
    cfg = OmegaConf.load(path)
    return from_data_part(OmegaConf.to_container(cfg)) if "fetch" in cfg else cfg


def _first_line(exc: BaseException) -> str:
    """Hydra's messages span lines (the available options follow); keep them on one."""
    lines = []
    for line in str(exc).splitlines():
        if line.startswith(("Config search path", "    full_key", "    object_type", "    reference_type")):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines) if lines else type(exc).__name__
