"""Where things live. Paths are absolute, from the project root, so that Hydra job
folders and DVC's temporary experiment copies never scatter outputs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _find_root() -> Path:
    # The working directory decides (DVC runs stages in the workspace it builds,
    # including its temporary experiment copies); RNNLAB_ROOT overrides it.
    env = os.environ.get("RNNLAB_ROOT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if (candidate / "conf" / "config.yaml").is_file() and (candidate / "dvc.yaml").is_file():
            return candidate
    # Installed non-editable and run from elsewhere: fall back to the source checkout.
    return Path(__file__).resolve().parents[2]


ROOT = _find_root()
CONF_DIR = ROOT / "conf"
RESOLVED_DIR = ROOT / "resolved"
# The MLflow store belongs to the repository the user works in. A queued
# `dvc exp run` executes in a temporary copy and sets DVC_ROOT to the original.
TRACKING_ROOT = Path(os.environ.get("DVC_ROOT") or ROOT).resolve()


# Functions, not constants: tests point ROOT at a temporary folder, and every path follows.
def params_file() -> Path:
    return ROOT / "params.yaml"


def raw_dir(dataset: str) -> Path:
    return ROOT / "data" / "raw" / dataset


def prepared_dir(dataset: str) -> Path:
    return ROOT / "data" / "prepared" / dataset


def cache_dir(dataset: str, digest: str) -> Path:
    """Prepared data of Hydra runs whose data settings differ from the pipeline's (rnnlab.data.cache)."""
    return ROOT / "data" / "cache" / f"{dataset}-{digest[:12]}"


def offline_dir() -> Path:
    """Runs that a tracking server stopped taking, kept to be replayed (rnnlab.tracking.replay)."""
    return ROOT / "outputs" / "offline"


def metrics_dir() -> Path:
    return ROOT / "metrics"


def reports_dir() -> Path:
    return ROOT / "reports"


def compared_dir() -> Path:
    """The report's per-dataset comparisons."""
    return reports_dir() / "compared"


def leaderboards_dir() -> Path:
    """Sweeps' leaderboards (rnnlab.compare)."""
    return reports_dir() / "leaderboards"


@dataclass(frozen=True)
class Outputs:
    """Where one experiment's train and evaluate write.

    `dvc repro` uses the pipeline folders that dvc.yaml declares; a Hydra run or
    sweep job writes into its own job folder, so jobs never overwrite each other
    or the pipeline's outputs.
    """

    model: Path    # model.keras, run.json (the MLflow run id)
    metrics: Path  # metrics.json, details.json, history.csv
    figures: Path  # PNG plots and example predictions

    @classmethod
    def pipeline(cls, experiment: str) -> "Outputs":
        return cls(ROOT / "models" / experiment, metrics_dir() / experiment,
                   reports_dir() / "experiments" / experiment)

    @classmethod
    def gradient_study(cls) -> "Outputs":
        return cls(ROOT / "models" / "gradient_study", metrics_dir() / "gradient_study",
                   reports_dir() / "gradient_study")

    @classmethod
    def job(cls, folder: Path) -> "Outputs":
        return cls(folder / "model", folder / "metrics", folder / "figures")
