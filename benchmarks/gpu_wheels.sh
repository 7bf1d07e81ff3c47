#!/usr/bin/env bash
# Download, on a machine that reaches PyPI, the wheels that benchmarks/gpu_check.sh installs on the
# GPU machine, which has no network. Versions are the pins of requirements.lock.
#
#   benchmarks/gpu_wheels.sh                                  # into .whl/, for Python 3.12 (the GPU machine)
#   GPU_WHEELS_PYTHON=3.11 GPU_WHEELS_DIR=/tmp/whl311 benchmarks/gpu_wheels.sh   # another Python, another folder
#
# The GPU machine already has numpy, pandas, scipy, scikit-learn, matplotlib (with pillow, contourpy,
# narwhals), h5py, ml-dtypes, absl-py, rich, requests, pyyaml, jinja2, click, cloudpickle, protobuf,
# packaging, psutil, filelock, joblib, pyarrow, typing-extensions, opt-einsum, markdown, jax, jaxlib and
# the CUDA plugins. What the pipeline imports on top of those, for the three quick runs, is below:
# every package is installed with --no-deps, so this list is all there is (gpu_check.sh checks it).
set -euo pipefail
cd "$(dirname "$0")/.."

PY_VERSION=${GPU_WHEELS_PYTHON:-3.12}
DEST=${GPU_WHEELS_DIR:-.whl}
LOCK=requirements.lock

PACKAGES=(
  # Keras 3 and what it imports
  keras namex optree
  # Hydra; antlr4 4.9.3 has no wheel on PyPI: built here from its sdist (pure Python, any version)
  hydra-core omegaconf antlr4-python3-runtime
  # rnnlab.data.download and rnnlab.data.datasets.prices import tenacity at the top
  tenacity
  # The stock sample: `from backtesting.test import GOOG` (datasets/prices.py) imports the whole
  # package, whose plotting module imports bokeh (bokeh's own imports: jinja2, pyyaml, numpy)
  backtesting bokeh
  # MLflow without its server, on a file store: what `import mlflow` (which imports mlflow.genai and
  # mlflow.gateway, hence fastapi), mlflow.data.from_numpy, log_input and pyfunc.log_model import.
  # databricks-sdk only for its namespace: mlflow asks find_spec("databricks.agents"), which raises without it.
  mlflow-skinny sqlparse cachetools pydantic pydantic_core annotated-types typing-inspection
  opentelemetry-api opentelemetry-sdk opentelemetry-semantic-conventions opentelemetry-proto
  fastapi starlette anyio annotated-doc importlib_metadata zipp databricks-sdk
)

pin() {  # the version requirements.lock pins for a package, names compared as pip does (-, _ and . alike)
  awk -F'==' -v want="$1" '
    function norm(s) { s = tolower(s); gsub(/[-_.]+/, "-", s); return s }
    norm($1) == norm(want) { print $2; found = 1; exit }
    END { if (!found) exit 1 }' "$LOCK"
}

platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done

mkdir -p "$DEST"
printf '*\n' > "$DEST/.gitignore"   # the folder ignores itself: never committed, whatever the checkout
rm -f "$DEST"/*.whl "$DEST/MANIFEST"

specs=()
for name in "${PACKAGES[@]}"; do
  version=$(pin "$name") || { echo "gpu_wheels.sh: $name is not pinned in $LOCK" >&2; exit 1; }
  specs+=("$name==$version")
done

for spec in "${specs[@]}"; do
  case "$spec" in
    antlr4-python3-runtime==*)
      python3 -m pip wheel -q --no-deps --no-binary=:all: -w "$DEST" "$spec" ;;
    *)
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
        "${platforms[@]}" -d "$DEST" "$spec" ;;
  esac
done

# What gpu_check.sh verifies before installing: the Python these wheels are for, and one wheel per package.
{
  echo "python $PY_VERSION"
  for spec in "${specs[@]}"; do echo "$spec"; done
} > "$DEST/MANIFEST"

count=$(ls "$DEST"/*.whl | wc -l)
size=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
echo "gpu_wheels.sh: $count wheels for Python $PY_VERSION in $DEST ($(awk -v b="$size" 'BEGIN { printf "%.1f MiB", b / 1048576 }'))"
