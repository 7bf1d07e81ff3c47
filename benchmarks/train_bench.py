"""Training throughput: the pipeline against a bare Keras script, per backend, with XLA on and off.

    python benchmarks/train_bench.py                                   # the three course experiments, quick
    python benchmarks/train_bench.py --experiments stock_lstm --profile quick --epochs 2 --repeats 1
    python benchmarks/train_bench.py --profile full --epochs 5 --repeats 3 --json bench.json

For each experiment (imdb_lstm, stock_lstm, textgen_lstm by default) and each configuration
(tensorflow with jit_compile on, tensorflow with it off, jax), two runners train the same model on
the same prepared arrays, each in a fresh subprocess:

  pipeline  `python -m rnnlab.train experiment=X profile=P trainer.epochs=N ...`: the whole Hydra
            app (PyDataset batches, MLflow logging, checkpoints, evaluation), into a temporary
            MLflow store;
  bare      this file as a plain Keras script: the arrays that the pipeline reads (loaded by
            rnnlab's own ensure_prepared + select, before any timing), the same architecture and
            hyperparameters from the composed config built in keras.Sequential, then model.fit on
            numpy arrays with the same batch size, epochs and validation.

The repeats alternate: round r runs every configuration of every experiment once, pipeline and
bare side by side (their order flipped every round), so a machine that gets busier or quieter
shifts both alike.

What is measured, per run:
  epoch wall / CPU  from inside training: both runners print one line per epoch ("epoch i/N ...
            (x.x s)"); this script notes the time and the child's CPU time (psutil: user + system
            of all its threads) when each line arrives. The steady epoch is the span from the
            first epoch's line to the last one's, divided by the epochs between: the first epoch
            (tracing, XLA compilation) is left out when N > 1. Both runners are timed the same way.
  child wall / CPU  the whole subprocess (start-up, imports, data loading, evaluation, MLflow):
            wall clock and getrusage(RUSAGE_CHILDREN) deltas.
  throughput  training samples per second of a steady epoch (the bare child counts them).

Ratios are taken per round (the runs of one round are neighbours in time) and shown as the median
with the [min, max] over rounds. The raw numbers go to --json.

The pipeline's backend and XLA switches are `pipeline_overrides` (one function): KERAS_BACKEND is
always set in the child's environment, and trainer.backend / trainer.jit_compile are passed as
overrides once conf/trainer/default.yaml has those keys. Without trainer.jit_compile the pipeline
runs Keras' default jit_compile="auto", shown as "jit auto" and set beside the bare run of what
auto resolves to (the bare child reports it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("imdb_lstm", "stock_lstm", "textgen_lstm")
# "(1.2 s)" from rnnlab.models.progress, "(1.234 s)" from the bare script's own callback
EPOCH_LINE = re.compile(r"epoch\s+(\d+)/(\d+)\s.*\((\d+(?:\.\d+)?) s\)\s*$")
RESULT_PREFIX = "TRAIN_BENCH_RESULT "


# --- the pipeline's switches --------------------------------------------------------------------

def trainer_keys() -> set[str]:
    """The top-level keys of this checkout's conf/trainer/default.yaml."""
    text = (ROOT / "conf" / "trainer" / "default.yaml").read_text()
    return set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*):", text, re.M))


def pipeline_overrides(backend: str, jit: str) -> list[str]:
    """The Hydra overrides that choose the Keras backend and XLA for `python -m rnnlab.train`.

    jit: "on" | "off" (tensorflow) or "-" (jax, which always compiles). The keys trainer.backend
    and trainer.jit_compile are passed once the checkout's trainer config has them; until then
    the backend comes from KERAS_BACKEND alone (set by child_env) and XLA stays Keras' "auto".
    """
    keys, overrides = trainer_keys(), []
    if "backend" in keys:
        overrides.append(f"trainer.backend={backend}")
    if "jit_compile" in keys and backend == "tensorflow":
        overrides.append(f"trainer.jit_compile={'true' if jit == 'on' else 'false'}")
    return overrides


def pipeline_jit_choices() -> list[str]:
    """What the pipeline can be asked under TensorFlow: on and off, or only Keras' auto."""
    return ["on", "off"] if "jit_compile" in trainer_keys() else ["auto"]


def child_env(backend: str, store: Path) -> dict[str, str]:
    return {**os.environ, "KERAS_BACKEND": backend, "MLFLOW_TRACKING_URI": f"sqlite:///{store}",
            "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}


def base_overrides(experiment: str, args: argparse.Namespace) -> list[str]:
    overrides = [f"experiment={experiment}", f"profile={args.profile}"]
    if args.epochs is not None:
        overrides.append(f"trainer.epochs={args.epochs}")
    if args.source != "config":
        overrides.append(f"data.source={args.source}")
    return [*overrides, *args.overrides]


# --- the bare Keras script (this file, run as a child) ------------------------------------------

def bare_child(overrides: list[str], jit: str) -> None:
    """Train the experiment's model in plain Keras on the pipeline's prepared arrays; print one
    line per epoch, then the counts as one JSON line."""
    import numpy as np

    from rnnlab.config import compose
    from rnnlab.data.cache import ensure_prepared
    from rnnlab.data.datasets import select

    cfg = compose(overrides)
    data = select(cfg, ensure_prepared(cfg))  # the arrays the pipeline trains on, loaded as it loads them
    import keras

    meta, t, m = data["meta"], cfg.trainer, cfg.model
    if m.implementation != "keras" or m.stateful or meta["task"] == "char_lm":
        sys.exit(f"bare: {cfg.experiment_name} is not covered (NumPy, stateful or char_lm models)")
    fit: dict[str, Any] = {"batch_size": int(t.batch_size), "epochs": int(t.epochs), "shuffle": True, "verbose": 0}
    if "ids_train" in data:  # one-hot character windows, as OneHotWindows builds them batch by batch
        spec = meta["input_spec"]
        window, vocab, step = int(spec["length"]), int(spec["features"]), int(cfg.data.step)
        watched = t.early_stopping.enabled or t.reduce_lr.enabled
        ids = data["ids_train"]
        cut = len(ids) - int(round(len(ids) * t.validation_split)) if watched else len(ids)

        def windows(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            starts = np.arange(0, len(part) - window, step)
            x = part[starts[:, None] + np.arange(window)]
            return np.eye(vocab, dtype=np.float32)[x], part[starts + window].astype(np.int32)

        x, y = windows(ids[:cut])
        fit["validation_data"] = windows(ids[cut:] if watched else data["ids_test"])
    else:
        x, y = data["x_train"], data["y_train"]
        if t.validation_split > 0:
            fit["validation_split"] = float(t.validation_split)  # the last rows, as the pipeline's cut
    samples = len(x) - (int(round(len(x) * t.validation_split)) if "validation_split" in fit else 0)

    keras.utils.set_random_seed(int(cfg.seed))
    model = bare_model(keras, cfg, meta)
    losses = {"binary": "binary_crossentropy", "next_char": "sparse_categorical_crossentropy",
              "letters": "sparse_categorical_crossentropy", "regression": "mse"}
    metrics = ["mae"] if meta["task"] == "regression" else ["accuracy"]
    clip = {k: v for k, v in (("global_clipnorm", t.clipnorm), ("clipvalue", t.clipvalue)) if v is not None}
    optimizer = {"adam": lambda: keras.optimizers.Adam(learning_rate=t.learning_rate, **clip),
                 "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate=t.learning_rate, **clip),
                 "sgd": lambda: keras.optimizers.SGD(learning_rate=t.learning_rate, momentum=t.momentum, **clip)}
    auto_jit = None
    try:  # what jit_compile="auto" (the pipeline's default) would choose for this model
        from keras.src.trainers.trainer import model_supports_jit

        auto_jit = bool(model_supports_jit(model))
    except Exception:  # noqa: BLE001 - a private helper; only a label depends on it
        pass
    jit_compile = True if keras.backend.backend() == "jax" else jit == "on"
    model.compile(optimizer=optimizer[str(t.optimizer)](), loss=losses[meta["task"]], metrics=metrics,
                  jit_compile=jit_compile)

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            values = "  ".join(f"{k} {float(v):.4g}" for k, v in (logs or {}).items())
            print(f"epoch {epoch + 1}/{t.epochs}  {values}  ({time.perf_counter() - self.start:.3f} s)",
                  file=sys.stderr, flush=True)

    model.fit(x, y, callbacks=[EpochTimes()], **fit)
    print(RESULT_PREFIX + json.dumps({"samples": int(samples), "backend": keras.backend.backend(),
                                      "jit_compile": bool(model.jit_compile), "auto_jit": auto_jit,
                                      "params": int(model.count_params())}), flush=True)


def bare_model(keras: Any, cfg: Any, meta: dict[str, Any]) -> Any:
    """The experiment's model, written out in plain Keras from the config's values."""
    m, reg, spec, task = cfg.model, cfg.regularizer, meta["input_spec"], meta["task"]
    if m.cell == "lstm" and m.forget_bias != 1.0:
        sys.exit("bare: model.forget_bias other than 1 is not covered")
    regs: dict[str, Any] = {}
    if reg.kind != "none":
        l1 = reg.l1 if reg.kind in ("l1", "l1l2") else 0.0
        l2 = reg.l2 if reg.kind in ("l2", "l1l2") else 0.0
        regs = {f"{w}_regularizer": keras.regularizers.L1L2(l1=l1, l2=l2) for w in reg.apply_to}
    if spec["kind"] == "tokens":
        layers = [keras.Input(shape=(spec["length"],), dtype="int32"),
                  keras.layers.Embedding(spec["vocab"], m.embedding_dim)]
    else:
        layers = [keras.Input(shape=(spec["length"], spec["features"]))]
    cell = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simplernn": keras.layers.SimpleRNN}[m.cell]
    for i in range(m.layers):
        layer = cell(m.units, activation=m.activation, dropout=m.dropout, recurrent_dropout=m.recurrent_dropout,
                     return_sequences=i < m.layers - 1, unroll=m.unroll,
                     recurrent_initializer=m.recurrent_initializer, **regs)
        layers.append(keras.layers.Bidirectional(layer) if m.bidirectional else layer)
        if m.dropout_between > 0:
            layers.append(keras.layers.Dropout(m.dropout_between))
    layers += [keras.layers.Dense(units, activation=m.dense_activation) for units in m.dense_units]
    outputs = int(meta.get("n_outputs", 1))
    if task == "binary":
        layers.append(keras.layers.Dense(1, activation="sigmoid"))
    elif task in ("next_char", "letters"):
        layers.append(keras.layers.Dense(outputs, activation="softmax"))
    else:
        layers.append(keras.layers.Dense(outputs))
    return keras.Sequential(layers)


# --- running and timing the children ------------------------------------------------------------

def prepare(experiment: str, args: argparse.Namespace, env: dict[str, str], artifacts: Path) -> None:
    """Fetch and prepare the experiment's data once, before any run is timed, and create its MLflow
    experiment in the temporary store with the artifacts beside it (MLflow's default for a
    database store would be ./mlruns in the checkout)."""
    code = ("import os, sys, mlflow; from pathlib import Path; from rnnlab.config import compose; "
            "from rnnlab.data.cache import ensure_prepared; cfg = compose(sys.argv[2:]); ensure_prepared(cfg); "
            "mlflow.set_tracking_uri(os.environ['MLFLOW_TRACKING_URI']); "
            "name = str(cfg.tracking.experiment or cfg.experiment_name); "
            "mlflow.get_experiment_by_name(name) or mlflow.create_experiment(name, artifact_location=Path(sys.argv[1]).as_uri())")
    done = subprocess.run([sys.executable, "-c", code, str(artifacts), *base_overrides(experiment, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"preparing the data of {experiment} failed:\n{done.stderr[-3000:]}")


def run_child(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run one child to its end, noting wall and CPU time at each epoch line it prints."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    marks: list[dict[str, float]] = []
    result: dict[str, Any] = {}
    with open(log, "w") as out, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT, text=True, bufsize=1) as child:
        proc = psutil.Process(child.pid)
        assert child.stdout is not None
        for line in child.stdout:
            now = time.perf_counter()
            out.write(line)
            match = EPOCH_LINE.search(line)
            if match:
                try:
                    cpu = proc.cpu_times()
                    cpu_s = cpu.user + cpu.system
                except psutil.Error:
                    cpu_s = float("nan")
                marks.append({"epoch": int(match.group(1)), "of": int(match.group(2)), "logged_s": float(match.group(3)),
                              "t": now - start, "cpu": cpu_s})
            elif line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
        rc = child.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run: dict[str, Any] = {"rc": rc, "child_wall_s": wall,
                           "child_cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                           "epochs_logged_s": [m["logged_s"] for m in marks], "log": str(log), **result}
    if len(marks) >= 2:  # the first epoch's line to the last one's: the steady epochs
        first, last = marks[0], marks[-1]
        n = last["epoch"] - first["epoch"]
        run.update(steady_epochs=n, epoch_wall_s=(last["t"] - first["t"]) / n, epoch_cpu_s=(last["cpu"] - first["cpu"]) / n)
    elif marks:  # one epoch: it includes tracing and compilation
        run.update(steady_epochs=0, epoch_wall_s=marks[0]["logged_s"], epoch_cpu_s=marks[0]["cpu"])
    return run


def configurations(backends: list[str], jits: list[str]) -> list[tuple[str, str]]:
    """(backend, jit) pairs that the bare runner trains; jax always compiles (jit "-")."""
    pairs: list[tuple[str, str]] = []
    for backend in backends:
        pairs += [(backend, j) for j in jits] if backend == "tensorflow" else [(backend, "-")]
    return pairs


def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        tmp_path = Path(tmp)
        logs = Path(args.logs) if args.logs else tmp_path / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        store = tmp_path / "mlruns.db"
        for experiment in args.experiments:
            prepare(experiment, args, child_env(args.backends[0], store), tmp_path / "artifacts")
        pipeline_jits = pipeline_jit_choices()
        for repeat in range(args.repeats):
            for experiment in args.experiments:
                overrides = base_overrides(experiment, args)
                jobs: list[tuple[str, str, str]] = []
                for backend, jit in configurations(args.backends, args.jit):
                    pipe_jit = jit if backend != "tensorflow" or jit in pipeline_jits else None
                    if backend == "tensorflow" and pipeline_jits == ["auto"]:
                        pipe_jit = "auto" if jit == args.jit[0] else None  # once per round
                    pair = [("pipeline", backend, pipe_jit)] if pipe_jit else []
                    pair.append(("bare", backend, jit))
                    jobs += pair if repeat % 2 == 0 else pair[::-1]
                for runner, backend, jit in jobs:
                    name = f"{experiment}-{runner}-{backend}-{'jit_' + jit if jit != '-' else 'xla'}-r{repeat}"
                    if runner == "pipeline":
                        cmd = [sys.executable, "-m", "rnnlab.train", *overrides, "trainer.resume=false",
                               f"hydra.run.dir={tmp_path / 'runs' / name}", *pipeline_overrides(backend, jit)]
                    else:
                        cmd = [sys.executable, __file__, "--bare-child", "--bare-jit", jit, "--", *overrides]
                    label = f"{experiment:<13} {runner:<8} {backend:<10} jit {jit:<4} round {repeat + 1}"
                    print(f"{label} ...", end=" ", flush=True)
                    run = run_child(cmd, child_env(backend, store), logs / f"{name}.log")
                    run.update(experiment=experiment, runner=runner, backend=backend, jit=jit, repeat=repeat,
                               cmd=cmd[1:] if runner == "pipeline" else cmd[2:])
                    if run["rc"] != 0 or "epoch_wall_s" not in run:
                        print(f"FAILED (exit {run['rc']}); the end of its log:")
                        print("\n".join("   | " + l for l in Path(run["log"]).read_text().rstrip().split("\n")[-12:]))
                    else:
                        print(f"epoch {run['epoch_wall_s']:.3f} s wall, {run['epoch_cpu_s']:.3f} s CPU; "
                              f"child {run['child_wall_s']:.1f} s wall, {run['child_cpu_s']:.1f} s CPU")
                    runs.append(run)
        if args.logs is None:
            for run in runs:
                run["log"] = None  # the temporary folder goes away
    # Throughput: the bare child counts the samples of an epoch; the pipeline trains the same ones.
    samples = {(r["experiment"], r["backend"]): r["samples"] for r in runs if r.get("samples")}
    any_samples = {r["experiment"]: r["samples"] for r in runs if r.get("samples")}
    for run in runs:
        n = samples.get((run["experiment"], run["backend"]), any_samples.get(run["experiment"]))
        if n and run.get("epoch_wall_s"):
            run["samples"] = n
            run["samples_per_s"] = n / run["epoch_wall_s"]
            run["samples_per_cpu_s"] = n / run["epoch_cpu_s"] if run.get("epoch_cpu_s") else None
    return runs


# --- the report ---------------------------------------------------------------------------------

def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    ok = [r for r in runs if r["rc"] == 0 and r.get("epoch_wall_s")]
    lines = []
    for experiment in args.experiments:
        mine = [r for r in ok if r["experiment"] == experiment]
        steady = {r["steady_epochs"] for r in mine}
        lines += ["", f"== {experiment} (profile {args.profile}, "
                      f"{'epochs from the config' if args.epochs is None else f'{args.epochs} epochs'}, "
                      f"{args.repeats} round(s); steady epoch = epochs 2..N"
                      f"{', here N = 1: the one epoch includes compilation' if steady == {0} else ''})",
                  f"{'backend':<11}{'jit':<6}{'runner':<10}{'epoch wall s':>14}{'epoch CPU s':>13}{'samples/s':>11}"
                  f"{'child wall s':>14}{'child CPU s':>13}"]
        keys = sorted({(r["backend"], r["jit"], r["runner"]) for r in mine})
        for backend, jit, runner in keys:
            rs = [r for r in mine if (r["backend"], r["jit"], r["runner"]) == (backend, jit, runner)]
            med = lambda k: statistics.median([r[k] for r in rs if r.get(k) is not None] or [float("nan")])  # noqa: E731
            lines.append(f"{backend:<11}{jit:<6}{runner:<10}{med('epoch_wall_s'):>14.3f}{med('epoch_cpu_s'):>13.3f}"
                         f"{med('samples_per_s'):>11.0f}{med('child_wall_s'):>14.1f}{med('child_cpu_s'):>13.1f}")

        def per_round(a: dict[str, str], b: dict[str, str], key: str = "epoch_wall_s") -> list[float]:
            """b's time over a's per round: a's throughput over b's."""
            out = []
            for repeat in range(args.repeats):
                ra = [r for r in mine if r["repeat"] == repeat and all(r[k] == v for k, v in a.items())]
                rb = [r for r in mine if r["repeat"] == repeat and all(r[k] == v for k, v in b.items())]
                if ra and rb and ra[0].get(key) and rb[0].get(key):
                    out.append(rb[0][key] / ra[0][key])
            return out

        lines += ["", "throughput ratios (median [min, max] over rounds; > 1: the first is faster)",
                  f"{'':<44}{'by wall time':>22}{'by CPU time':>22}"]
        bare_auto = {r["backend"]: r.get("auto_jit") for r in mine if r["runner"] == "bare"}
        for backend, jit in sorted({(r["backend"], r["jit"]) for r in mine if r["runner"] == "pipeline"}):
            bare_jit = jit
            if jit == "auto":
                bare_jit = {True: "on", False: "off"}.get(bare_auto.get(backend), "on")
            a, b = {"runner": "pipeline", "backend": backend, "jit": jit}, {"runner": "bare", "backend": backend, "jit": bare_jit}
            what = f"pipeline/bare, {backend}" + (f" jit {jit}" if backend == "tensorflow" else "") + \
                (f" (bare {bare_jit})" if jit == "auto" else "")
            lines.append(f"{what:<44}{spread(per_round(a, b)):>22}{spread(per_round(a, b, 'epoch_cpu_s')):>22}")
        for runner in ("pipeline", "bare"):
            tf_jits = sorted({r["jit"] for r in mine if r["runner"] == runner and r["backend"] == "tensorflow"})
            if any(r["runner"] == runner and r["backend"] == "jax" for r in mine):
                for jit in tf_jits:
                    a, b = {"runner": runner, "backend": "jax"}, {"runner": runner, "backend": "tensorflow", "jit": jit}
                    what = f"jax/tensorflow (jit {jit}), {runner}"
                    lines.append(f"{what:<44}{spread(per_round(a, b)):>22}{spread(per_round(a, b, 'epoch_cpu_s')):>22}")
            if {"on", "off"} <= set(tf_jits):
                a, b = {"runner": runner, "backend": "tensorflow", "jit": "on"}, {"runner": runner, "backend": "tensorflow", "jit": "off"}
                what = f"jit on/off (tensorflow), {runner}"
                lines.append(f"{what:<44}{spread(per_round(a, b)):>22}{spread(per_round(a, b, 'epoch_cpu_s')):>22}")
    failed = [r for r in runs if r not in ok]
    if failed:
        lines += ["", f"{len(failed)} run(s) failed: " + ", ".join(
            f"{r['experiment']} {r['runner']} {r['backend']} jit {r['jit']} round {r['repeat'] + 1}" for r in failed)]
    if pipeline_jit_choices() == ["auto"]:
        lines += ["", "note: this checkout's trainer config has no jit_compile key: the pipeline ran Keras' "
                      "jit_compile=auto under TensorFlow"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), metavar="NAME",
                        help=f"experiments of conf/experiment/ (default: {' '.join(EXPERIMENTS)})")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--epochs", type=int, help="trainer.epochs for every run (default: the profile's)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, alternating the runs (default: 3)")
    parser.add_argument("--backends", nargs="+", choices=("tensorflow", "jax"), default=["tensorflow", "jax"])
    parser.add_argument("--jit", nargs="+", choices=("on", "off"), default=["on", "off"],
                        help="jit_compile under TensorFlow (default: on off)")
    parser.add_argument("--source", default="sample", choices=("sample", "config", "auto", "remote", "local"),
                        help="data.source for every run: sample (default: the offline samples, the same "
                             "everywhere), or config to keep each experiment's own")
    parser.add_argument("--json", type=Path, help="write the raw numbers of every run here")
    parser.add_argument("--logs", help="keep every child's output in this folder (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every run (after --)")
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-jit", default="on", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child:
        bare_child(args.overrides, args.bare_jit)
        return
    if args.repeats < 1 or (args.epochs is not None and args.epochs < 1):
        parser.error("--repeats and --epochs must be at least 1")
    if Path.cwd().resolve() != ROOT:
        print(f"note: the runs start in {ROOT} (the repository root)", file=sys.stderr)
    started, load = time.perf_counter(), os.getloadavg()[0]
    runs = bench(args)
    print(report(runs, args))
    print(f"\n{len(runs)} runs in {time.perf_counter() - started:.0f} s on {os.cpu_count()} cores "
          f"(1-minute load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                                  if not k.startswith("bare")},
                                         "cpu_count": os.cpu_count(), "runs": runs}, indent=1))
        print(f"raw numbers: {args.json}")


if __name__ == "__main__":
    main()
