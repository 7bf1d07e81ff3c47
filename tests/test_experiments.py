"""Every experiment config runs end to end on a tiny budget, through the same code as `dvc repro`."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab import paths
from rnnlab.config import compose
from rnnlab.train import run_experiment

EXPERIMENTS = sorted(p.stem for p in (paths.CONF_DIR / "experiment").glob("*.yaml"))
# Shrinks each dataset further than profile=quick, so the whole catalog stays within a few minutes.
TINY = {"imdb": ["data.sample_train=300", "data.sample_test=100", "data.limit=null"],
        "sine": ["data.n=200", "data.train_size=160"],
        "prices": ["data.source=sample"],
        "gutenberg": ["data.sample_chars=3000"],
        "phrases": [],
        "alphabet": []}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_on_a_tiny_budget(experiment: str, isolated_root: Path):
    cfg = compose([f"experiment={experiment}", "profile=quick", "trainer.epochs=1"])
    cfg = compose([f"experiment={experiment}", "profile=quick", "trainer.epochs=1", *TINY[cfg.data.name]])
    metrics = run_experiment(cfg, paths.Outputs.job(isolated_root / "job"))
    assert metrics["experiment"] == experiment
    assert metrics["data"]["synthetic"] or metrics["data"]["source"] == "sample"
    assert metrics["primary"]["name"] in metrics["model"] and "beats_baseline" in metrics["primary"]
    assert set(metrics["model"]) & set(metrics["baseline"])  # reported on the same metrics as its baseline
    saved = "model.npz" if cfg.model.implementation == "numpy" else "model.keras"
    assert (isolated_root / "job" / "model" / saved).is_file()
    assert (isolated_root / "job" / "figures").is_dir()
