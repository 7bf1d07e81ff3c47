#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU, Python 3.12 and JAX with CUDA, but none of this
# project's other packages and no network: install the wheels that benchmarks/gpu_wheels.sh put
# in .whl/, train the quick profile of imdb_lstm, stock_lstm and textgen_lstm on the GPU with
# KERAS_BACKEND=jax, and print the device, the per-epoch times, the total training time and how
# much faster the LSTM is on cuDNN's fused kernel than off it. About 2 minutes on a GPU; the runs
# stop at a budget of GPU_CHECK_BUDGET_S (280 s) so that the whole check ends within 5 minutes.
#
#   benchmarks/gpu_wheels.sh        # first, where PyPI is reachable (writes .whl/, never committed)
#   benchmarks/gpu_check.sh         # then, on the GPU machine, from anywhere in the checkout
#
# Environment: GPU_CHECK_ALLOW_CPU=1 runs it although JAX sees no GPU (a rehearsal on a CPU machine;
# without it that is an error), GPU_CHECK_LOGS=DIR keeps the logs and the MLflow store there (default:
# a new folder under /tmp), GPU_CHECK_SITE=DIR installs there (default /tmp/site), GPU_CHECK_PYTHON
# (default python3), GPU_CHECK_BUDGET_S (default 280).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
PY=${GPU_CHECK_PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/site}
WHEELS=.whl
BUDGET=${GPU_CHECK_BUDGET_S:-280}

fail() { echo "gpu_check.sh: $*" >&2; exit 1; }

command -v "$PY" >/dev/null || fail "no $PY on PATH (set GPU_CHECK_PYTHON)"

# --- the wheels ---------------------------------------------------------------------------------
[ -f "$WHEELS/MANIFEST" ] || fail "no wheels in $ROOT/$WHEELS/: run benchmarks/gpu_wheels.sh first (where PyPI is reachable) and bring .whl/ along"
"$PY" - "$WHEELS" <<'EOF' || exit 1
import re, sys
from pathlib import Path
folder = Path(sys.argv[1])
lines = (folder / "MANIFEST").read_text().split("\n")
want = next((l.split()[1] for l in lines if l.startswith("python ")), "?")
have = "%d.%d" % sys.version_info[:2]
if want != have:
    sys.exit(f"gpu_check.sh: the wheels in {folder}/ are for Python {want}, this is {have}: "
             f"run GPU_WHEELS_PYTHON={have} benchmarks/gpu_wheels.sh first")
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()
files = {norm(p.name.split("-")[0]) + "-" + p.name.split("-")[1] for p in folder.glob("*.whl")}
missing = [l for l in lines if "==" in l and norm(l.split("==")[0]) + "-" + l.split("==")[1] not in files]
if missing:
    sys.exit(f"gpu_check.sh: wheels missing in {folder}/ ({', '.join(missing)}): run benchmarks/gpu_wheels.sh first")
EOF
"$PY" -m pip --version >/dev/null 2>&1 || fail "$PY has no pip: it is needed to install the wheels (python3 -m ensurepip)"
echo "== installing $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS/ into $SITE"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
  || fail "pip could not install the wheels of $WHEELS/ into $SITE (see above)"
export PYTHONPATH="$SITE:$ROOT/src"

# --- where the runs write -----------------------------------------------------------------------
LOGS=${GPU_CHECK_LOGS:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$LOGS"
LOGS=$(cd "$LOGS" && pwd)
export KERAS_BACKEND=jax
export MLFLOW_TRACKING_URI="file:$LOGS/mlruns"
export MLFLOW_ALLOW_FILE_STORE=true   # MLflow 3 refuses a file store without it; sqlite would need SQLAlchemy
rm -f "$LOGS/results.jsonl"

# --- the device ---------------------------------------------------------------------------------
device=$("$PY" - <<'EOF'
import sys
try:
    import jax
except Exception as exc:  # noqa: BLE001
    print(f"ERROR JAX cannot be imported ({type(exc).__name__}: {exc})")
    sys.exit(0)
devices = jax.devices()
try:
    import jax.experimental.rnn  # noqa: F401  (what Keras' cuDNN LSTM calls under JAX)
    rnn = "jax.experimental.rnn present"
except Exception as exc:  # noqa: BLE001
    rnn = f"jax.experimental.rnn MISSING ({type(exc).__name__}): no cuDNN LSTM"
print(f"{jax.default_backend()} JAX {jax.__version__}, default backend {jax.default_backend()}, devices: "
      + ", ".join(f"{d.platform}:{getattr(d, 'device_kind', d)}" for d in devices) + f"; {rnn}")
EOF
)
backend=${device%% *}
echo "== device: ${device#* }"
case "$backend" in
  gpu) ;;
  ERROR) fail "${device#ERROR }" ;;
  *) if [ "${GPU_CHECK_ALLOW_CPU:-0}" = 1 ]; then
       echo "   (GPU_CHECK_ALLOW_CPU=1: a rehearsal on the CPU, the times below are not the GPU's)"
     else
       fail "JAX sees no GPU (default backend: ${backend:-none}): install jax with its CUDA plugins (pip install 'jax[cuda12]' or jax-cuda13-plugin), check nvidia-smi and that JAX_PLATFORMS is unset; GPU_CHECK_ALLOW_CPU=1 runs this on the CPU anyway"
     fi ;;
esac

# --- the runs -----------------------------------------------------------------------------------
deadline=$((SECONDS + BUDGET))
status=0

train() {  # train LABEL OVERRIDES...: one quick run, its epochs printed, its numbers kept in results.jsonl
  local label=$1; shift
  local left=$((deadline - SECONDS))
  if ((left < 20)); then
    echo "== $label: SKIPPED, the ${BUDGET} s budget is spent"; status=1; return
  fi
  echo "== $label: python -m rnnlab.train $*"
  local t0=$SECONDS rc
  timeout "$left" "$PY" -m rnnlab.train "$@" data.source=sample trainer.resume=false \
    "hydra.run.dir=$LOGS/runs/$label" > "$LOGS/$label.log" 2>&1
  rc=$?
  "$PY" - "$LOGS" "$label" "$rc" "$((SECONDS - t0))" <<'EOF'
import json, re, sys
from pathlib import Path
logs, label, rc, wall = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
text = (logs / f"{label}.log").read_text(errors="replace")
epochs = re.findall(r"(epoch\s+(\d+)/(\d+)\s.*\((\d+(?:\.\d+)?) s\))\s*$", text, re.M)
for line, *_ in epochs:
    print("   " + line)
run = re.search(r"\brun ([0-9a-f]{32})\b", text)
result = {"label": label, "rc": rc, "command_s": wall, "epochs": [float(e[3]) for e in epochs]}
if run:  # the store's per-epoch timestamps (ms): the steady epochs' time finer than the log's 0.1 s
    folder = next((logs / "mlruns").glob(f"*/{run.group(1)}"), None)
    if folder is not None:
        device = folder / "tags" / "device"
        result["device"] = device.read_text().strip() if device.is_file() else "?"
        stamps = {}
        loss = folder / "metrics" / "loss"
        for row in (loss.read_text().split("\n") if loss.is_file() else []):
            if row.strip():
                ts, _, step = row.split()[:3]
                stamps[int(step)] = int(ts)
        ends = [stamps[s] for s in sorted(stamps)]
        result["steady_epochs_s"] = [(b - a) / 1000 for a, b in zip(ends, ends[1:])]
steady = result.get("steady_epochs_s") or result["epochs"][1:]
result["steady_epoch_s"] = sum(steady) / len(steady) if steady else None
result["training_s"] = sum(result["epochs"])
if rc != 0 or not epochs:
    why = "timed out (the budget)" if rc == 124 else f"exit status {rc}"
    tail = "\n".join("   | " + l for l in text.rstrip().split("\n")[-15:])
    print(f"   FAILED: {why}; the end of {logs / (label + '.log')}:\n{tail}")
else:
    mean = f"{result['steady_epoch_s']:.3f} s" if result["steady_epoch_s"] is not None else "n/a (one epoch)"
    print(f"   device {result.get('device', '?')}; training {result['training_s']:.1f} s, steady epoch {mean} "
          f"(epochs 2..N); the whole command {wall} s (start-up, data, evaluation, MLflow)")
with open(logs / "results.jsonl", "a") as fh:
    fh.write(json.dumps(result) + "\n")
sys.exit(0 if rc == 0 and epochs else 1)
EOF
  [ $? -eq 0 ] || status=1
}

train imdb_lstm experiment=imdb_lstm profile=quick
train stock_lstm experiment=stock_lstm profile=quick
train textgen_lstm experiment=textgen_lstm profile=quick
# recurrent_dropout > 0 keeps Keras off the fused cuDNN kernel: the same model through the generic loop
train imdb_lstm_no_cudnn experiment=imdb_lstm profile=quick model.recurrent_dropout=0.1

# --- the summary --------------------------------------------------------------------------------
"$PY" - "$LOGS" "$SECONDS" "$backend" <<'EOF'
import json, sys
from pathlib import Path
logs, total, backend = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rows = {r["label"]: r for r in map(json.loads, (logs / "results.jsonl").read_text().split("\n")[:-1])} \
    if (logs / "results.jsonl").is_file() else {}
ok = {k: r for k, r in rows.items() if r["rc"] == 0 and r["epochs"]}
print("== summary")
devices = sorted({r.get("device", "?") for r in ok.values()})
print(f"trained on: {', '.join(devices) or 'nothing'} (the runs' MLflow tag `device`)")
for label in ("imdb_lstm", "stock_lstm", "textgen_lstm", "imdb_lstm_no_cudnn"):
    r = rows.get(label)
    if r is None:
        print(f"{label:<20} not run")
    elif label not in ok:
        print(f"{label:<20} FAILED")
    else:
        steady = f"{r['steady_epoch_s']:.3f} s" if r["steady_epoch_s"] is not None else "n/a"
        print(f"{label:<20} {len(r['epochs'])} epochs, training {r['training_s']:6.1f} s, steady epoch {steady}, "
              f"command {r['command_s']} s")
main = [ok[k] for k in ("imdb_lstm", "stock_lstm", "textgen_lstm") if k in ok]
print(f"total training time, {len(main)} experiments: {sum(r['training_s'] for r in main):.1f} s "
      f"(the commands: {sum(r['command_s'] for r in main)} s; this check: {total} s)")
on, off = ok.get("imdb_lstm"), ok.get("imdb_lstm_no_cudnn")
if on and off and on["steady_epoch_s"] and off["steady_epoch_s"]:
    print(f"cuDNN path (imdb_lstm quick, steady epoch): fused kernel {on['steady_epoch_s']:.3f} s, "
          f"off it (model.recurrent_dropout=0.1) {off['steady_epoch_s']:.3f} s: "
          f"{off['steady_epoch_s'] / on['steady_epoch_s']:.2f}x faster on cuDNN")
    if backend != "gpu":
        print("   (JAX runs on the CPU here: there is no cuDNN kernel, so this ratio is only what recurrent_dropout costs)")
else:
    print("cuDNN path: n/a (a run failed or had a single epoch)")
print(f"logs and the MLflow store: {logs}")
EOF
exit $status
