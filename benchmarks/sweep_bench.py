"""How much faster is a sweep in parallel? The same 4-job sweep, sequential and with joblib.

    python benchmarks/sweep_bench.py                 # 4 tiny jobs, joblib with one worker per core
    python benchmarks/sweep_bench.py --size quick    # 4 quick-profile jobs
    python benchmarks/sweep_bench.py --n-jobs 2 model.units=16

Runs `python -m rnnlab.train -m ...` twice in one go, first with Hydra's basic launcher (one
job after another), then with hydra/launcher=joblib, and prints both wall times and their
ratio. Both write to a temporary MLflow store, so the project's own stays untouched. The
data are prepared before either sweep starts, so neither pays for it.

Expect less than the number of cores: each job also starts TensorFlow, and TensorFlow
already spreads one job's training over every core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Job sizes: `tiny` is about 10 s a job on CPU, mostly starting up; `quick` is the quick
# profile (3 epochs on 3000 reviews), about 40 s, mostly training.
JOBS = {"tiny": ["experiment=imdb_lstm", "profile=quick", "trainer.epochs=1", "model.units=8",
                 "data.sample_train=400", "data.sample_test=200", "data.limit=null"],
        "quick": ["experiment=imdb_lstm", "profile=quick"]}
GRID = ["model.dropout=0.0,0.2", "regularizer=none,l2"]


def sweep(job: list[str], extra: list[str], out: Path, env: dict[str, str]) -> float:
    """Run one sweep; returns its wall time in seconds, or stops the benchmark if it failed."""
    cmd = [sys.executable, "-m", "rnnlab.train", "-m", *job, *GRID, *extra, f"hydra.sweep.dir={out}"]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"sweep failed ({' '.join(cmd)}):\n{result.stderr[-3000:]}")
    return elapsed


def prepare_data(overrides: list[str], env: dict[str, str]) -> None:
    # In a subprocess too: the same environment as the sweeps, and no TensorFlow in this one.
    code = ("import sys; from rnnlab.config import compose; from rnnlab.data.cache import ensure_prepared; "
            "ensure_prepared(compose(sys.argv[1:]))")
    subprocess.run([sys.executable, "-c", code, *overrides], cwd=ROOT, env=env, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=os.cpu_count() or 2, help="joblib workers (default: one per core)")
    parser.add_argument("--size", choices=sorted(JOBS), default="tiny", help="how big each job is (default: tiny)")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every job, e.g. profile=quick")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlruns.db", "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
        job = JOBS[args.size]
        prepare_data([*job, *args.overrides], env)
        sequential = sweep(job, args.overrides, Path(tmp) / "sequential", env)
        parallel = sweep(job, ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}", *args.overrides],
                         Path(tmp) / "joblib", env)

    print(f"4-job sweep ({args.size} jobs) on {os.cpu_count()} cores: {' '.join(GRID + args.overrides)}")
    print(f"sequential (basic launcher):   {sequential:7.1f} s")
    print(f"parallel (joblib, n_jobs={args.n_jobs}):  {parallel:7.1f} s")
    print(f"speedup: {sequential / parallel:.2f}x")


if __name__ == "__main__":
    main()
