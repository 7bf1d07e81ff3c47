"""Each course model and the experiment built to beat its baseline, on real files, side by side.

    python benchmarks/real_data.py --alice ../shared/data/alice_in_wonderland.txt \
        --prices ../shared/data/FB_training_data.csv ../shared/data/FB_test_data.csv \
        --reviews ../shared/data/imdb_reviews_1500.csv

Any subset of the three works. Every experiment runs through the project's Hydra app exactly as a
user would (`python -m rnnlab.train experiment=<name> data.source=local data.path=<file>`), each in
its own process, and its final metrics (the JSON on the last line of its output) go into
benchmarks/real_data.md: each model beside its baselines with the paired test's verdict.
Several price files are joined in date order into one (training days, then test days).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# Per dataset: (course experiment, the experiment built to beat its baseline), and extra overrides.
RUNS = {
    "alice": (["textgen_lstm", "textgen_charlm"], []),
    "prices": (["stock_lstm", "stock_lstm_returns"], []),
    "reviews": (["imdb_lstm", "imdb_lstm_tuned"], []),
}


def join_prices(files: list[Path], folder: Path) -> Path:
    """One CSV in yfinance's format from several, sorted by date, duplicates dropped."""
    frames = [pd.read_csv(f) for f in files]
    joined = pd.concat(frames).drop_duplicates(subset="Date").sort_values("Date")
    out = folder / "prices.csv"
    joined.to_csv(out, index=False)
    return out


def run(experiment: str, path: Path, extra: list[str]) -> dict:
    """One experiment on a local file through the Hydra app; returns its final metrics."""
    command = [sys.executable, "-m", "rnnlab.train", f"experiment={experiment}", "data.source=local",
               f"data.path={path}", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    metrics["seconds"] = seconds
    return metrics


def rows(name: str, file: str, metrics: dict) -> list[str]:
    p = metrics["primary"]
    out = [f"| {name} | {metrics['experiment']} | {file} | {p['name']} | {p['model']:.4f} | "
           f"{p['baseline']:.4f} ({metrics['baseline']['name']}) | {p['verdict_text']} | "
           f"{metrics['training'].get('best_epoch', '')}/{metrics['training'].get('epochs_trained', '')} | "
           f"{metrics['seconds']:.0f} |"]
    for other in metrics.get("other_baselines", []):
        test = other["model_vs_ridge"]
        out.append(f"| | | | | | {other[p['name']]:.4f} ({other['name']}) | model vs ridge: "
                   f"{test['verdict']}: difference {test['difference']:.3f}, 95% interval "
                   f"[{test['interval'][0]:.3f}, {test['interval'][1]:.3f}] | | |")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alice", type=Path, help="a book as plain text (Project Gutenberg's Alice)")
    parser.add_argument("--prices", type=Path, nargs="+", help="daily prices in yfinance's CSV format")
    parser.add_argument("--reviews", type=Path, help="reviews as a CSV with columns text,label")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "real_data.md")
    args = parser.parse_args(argv)
    if not (args.alice or args.prices or args.reviews):
        parser.error("give at least one of --alice, --prices, --reviews")
    lines = ["# Results on real data", "",
             f"Written by `python benchmarks/real_data.py` on {dt.date.today()}, on this project's CPU machine "
             "(2 cores; seconds are wall time of the whole command, data preparation and evaluation included). "
             "Verdicts come from paired tests on the test split: exact McNemar for accuracy, a paired block "
             "bootstrap of the difference (95%) for RMSE and bits per character. `better` only where the test "
             "says so. Epochs: the kept epoch / the epochs run.", "",
             "| data | experiment | file | metric | model | baseline | verdict | epochs | seconds |",
             "|---|---|---|---|---:|---|---|---|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {"alice": args.alice, "reviews": args.reviews,
                  "prices": join_prices(args.prices, Path(tmp)) if args.prices else None}
        shown = {"alice": args.alice, "reviews": args.reviews,
                 "prices": " + ".join(p.name for p in args.prices) if args.prices else None}
        for name, path in inputs.items():
            if path is None:
                continue
            experiments, extra = RUNS[name]
            for experiment in experiments:
                print(f"running {experiment} on {path} ...", flush=True)
                metrics = run(experiment, Path(path).resolve(), extra)
                lines += rows(name, Path(str(shown[name])).name if name != "prices" else shown[name], metrics)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
