"""A sweep's leaderboard: its runs sorted by the primary metric, beside the baseline.

    python -m rnnlab.compare experiment=imdb_lstm     the latest sweep of an experiment (Hydra overrides)
    python -m rnnlab.compare --parent <run id>        one sweep, by its parent run

Reads the sweep from MLflow (the project's store, or MLFLOW_TRACKING_URI), prints the
leaderboard as Markdown and writes reports/leaderboards/<experiment>.md, .csv and .png:
the runs by the experiment's primary test metric (accuracy, RMSE or bits per character,
best first), the parameters that differ between them, the baseline on the same metric,
and a plot of the metric against dropout, one line per regularizer.
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from mlflow.entities import Run  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from rnnlab import cli, io, paths, tracking  # noqa: E402
from rnnlab.config import ConfigError, compose  # noqa: E402
from rnnlab.sweeps import PRIMARY_METRIC, ROLE_TAG, child_runs, primary_of  # noqa: E402

# The report's sweep figure: the metric against this param, one line per value of the other.
PLOT_X = "model.dropout"
PLOT_LINES = "regularizer.kind"


@dataclass
class Leaderboard:
    """One sweep's runs, best first, with the params that tell them apart."""

    title: str
    parent_run_id: str
    command: str
    synthetic: bool
    varied: list[str]       # param keys whose values differ between the runs
    rows: list[dict[str, Any]]
    metric: str = PRIMARY_METRIC  # test_<primary metric>; baseline_<primary metric> beside it
    higher_is_better: bool = True
    baseline_name: str = "baseline"

    @property
    def baseline_metric(self) -> str:
        return "baseline_" + self.metric.removeprefix("test_")

    def columns(self) -> list[str]:
        return ["rank", "run", "status", self.metric, self.baseline_metric, "vs_baseline", "verdict",
                *self.varied, "run_id"]

    def baseline(self) -> float | None:
        values = {row[self.baseline_metric] for row in self.rows if not _missing(row[self.baseline_metric])}
        return values.pop() if len(values) == 1 else None


def build(parent: Run, children: list[Run]) -> Leaderboard:
    """Sort the children by their primary metric, best first (failed runs last), and find the
    params that differ. The metric is the one evaluate tagged on the runs (rnnlab.sweeps.primary_of)."""
    varied = differing_params([child.data.params for child in children])
    tagged = [child for child in children if "primary_metric" in child.data.tags]
    metric, higher_is_better = primary_of(tagged[0]) if tagged else (PRIMARY_METRIC, True)
    board = Leaderboard(title=parent.info.run_name, parent_run_id=parent.info.run_id,
                        command=parent.data.tags.get("sweep.command", ""),
                        synthetic=any(c.data.tags.get("data.synthetic") == "true" for c in children),
                        varied=varied, rows=[], metric=metric, higher_is_better=higher_is_better,
                        baseline_name=tagged[0].data.tags.get("baseline_name", "baseline") if tagged else "baseline")
    for child in children:
        value = child.data.metrics.get(metric, math.nan)
        baseline = child.data.metrics.get(board.baseline_metric, math.nan)
        board.rows.append({"run": child.info.run_name, "status": child.info.status, metric: value,
                           board.baseline_metric: baseline, "vs_baseline": round(value - baseline, 6),
                           # The paired test's answer (evaluate): better only where it says so.
                           "verdict": child.data.tags.get("verdict_text", ""),
                           **{key: child.data.params.get(key, "") for key in varied}, "run_id": child.info.run_id})
    sign = -1.0 if higher_is_better else 1.0
    board.rows.sort(key=lambda row: (math.isnan(row[metric]), sign * _or(row[metric], 0.0)))
    for rank, row in enumerate(board.rows, 1):
        row["rank"] = rank
    return board


def differing_params(params: list[dict[str, str]]) -> list[str]:
    """The keys whose value is not the same in every run (a key a run lacks counts as differing)."""
    keys = sorted(set().union(*params)) if params else []
    return [key for key in keys if len({p.get(key) for p in params}) > 1]


def to_markdown(board: Leaderboard) -> str:
    lines = [f"# Leaderboard: {board.title}", ""]
    if board.synthetic:
        lines += ["**SYNTHETIC SAMPLE**: trained on an offline synthetic dataset; these numbers show that the "
                  "pipeline works, nothing about real data.", ""]
    finished = sum(row["status"] == "FINISHED" for row in board.rows)
    lines += [f"Sweep `{board.command}`", "",
              f"Parent run `{board.parent_run_id}`; {finished} of {len(board.rows)} runs finished; "
              f"sorted by {board.metric} ({'higher' if board.higher_is_better else 'lower'} is better).", ""]
    baseline = board.baseline()
    if baseline is not None:
        lines += [f"Baseline ({board.baseline_name}, same test split): {board.baseline_metric} "
                  f"{baseline:.4f}.", ""]
    columns = board.columns()
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---:" if _numeric(board.rows, c) else "---" for c in columns) + "|")
    for row in board.rows:
        lines.append("| " + " | ".join(_cell(row[c], signed=c == "vs_baseline") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_csv(board: Leaderboard, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=board.columns())
            writer.writeheader()
            writer.writerows(board.rows)


def plot_metric(board: Leaderboard, out: Path, x: str = PLOT_X, lines: str = PLOT_LINES) -> bool:
    """The report's sweep figure: the board's metric against `x`, one line per value of `lines`,
    and the baseline. Returns False, writing nothing, when the sweep did not vary `x`.
    """
    metric = board.metric
    rows = [row for row in board.rows if not _missing(row[metric]) and row.get(x, "") != ""]
    if x not in board.varied or not rows:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4))
    groups = sorted({str(row.get(lines, "all runs")) for row in rows})
    for group in groups:
        points = sorted((float(row[x]), row[metric]) for row in rows if str(row.get(lines, "all runs")) == group)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=f"{lines}={group}")
    baseline = board.baseline()
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label=f"baseline ({board.baseline_name})")
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(board.title + (" — synthetic sample" if board.synthetic else ""), fontsize=10)
    io.write_figure(fig, out)
    return True


def find_parent(client: MlflowClient, experiment: str) -> Run:
    """The latest sweep's parent run in an MLflow experiment."""
    exp = client.get_experiment_by_name(experiment)
    parents = client.search_runs([exp.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'parent'",
                                 order_by=["attributes.start_time DESC"], max_results=1) if exp else []
    if not parents:
        raise ConfigError(f"no sweep in MLflow experiment {experiment!r} at {tracking.tracking_uri()}; run one with "
                          f"`python -m rnnlab.train -m experiment={experiment} model.dropout=0.0,0.2` first.")
    return parents[0]


def compare(overrides: list[str], parent_run_id: str | None = None,
            out_dir: Path | None = None) -> tuple[Leaderboard, dict[str, Path]]:
    """Build and write a sweep's leaderboard; returns it and the files written."""
    client = MlflowClient(tracking.tracking_uri())
    if parent_run_id:
        parent = client.get_run(parent_run_id)
    else:
        cfg = compose(overrides)
        parent = find_parent(client, tracking.experiment_name(cfg))
    board = build(parent, child_runs(client, parent.info.run_id, parent.info.experiment_id))
    out_dir = out_dir or paths.leaderboards_dir()
    stem = out_dir / parent.data.tags.get("experiment", "sweep")
    files = {"md": stem.with_suffix(".md"), "csv": stem.with_suffix(".csv")}
    io.write_text(files["md"], to_markdown(board))
    write_csv(board, files["csv"])
    if plot_metric(board, stem.with_suffix(".png")):
        files["png"] = stem.with_suffix(".png")
    return board, files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Leaderboard of a sweep: its MLflow runs by their primary test metric.")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides naming the experiment, e.g. experiment=imdb_lstm")
    parser.add_argument("--parent", help="the sweep's parent run id (default: the experiment's latest sweep)")
    parser.add_argument("--out", type=Path, help="folder for the .md, .csv and .png (default: reports/leaderboards)")
    args = parser.parse_args(argv)
    with cli.user_errors_exit():
        board, files = compare(args.overrides, args.parent, args.out)
    print(to_markdown(board))
    print("written: " + ", ".join(str(path) for path in files.values()))


def _missing(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _or(value: float, default: float) -> float:
    return default if math.isnan(value) else value


def _numeric(rows: list[dict[str, Any]], column: str) -> bool:
    return bool(rows) and all(isinstance(row[column], (int, float)) for row in rows)


def _cell(value: Any, signed: bool = False) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:+.4f}" if signed else f"{value:.4f}"
    return str(value).replace("|", "\\|")


if __name__ == "__main__":
    main()
