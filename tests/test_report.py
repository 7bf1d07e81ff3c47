"""The report (src/rnnlab/report.py) from experiments' details.json files: its header, table of
contents, verdicts, banners per kind of data, and links to MLflow runs tracked on a server."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rnnlab import io, paths
from rnnlab.report import build_report

SETUP = {"implementation": "keras", "cell": "lstm", "units": 8, "layers": 1, "bidirectional": False,
         "optimizer": "adam", "learning_rate": 0.001, "clipvalue": None, "clipnorm": None, "batch_size": 4, "epochs": 2}
PROVENANCE = {
    # The fallback when there is no network: generated data.
    "synthetic": {"source": "sample", "sample": True, "synthetic": True,
                  "label": "synthetic sample: geometric Brownian motion prices, not market data",
                  "requested_ticker": "META"},
    # Real prices, but a sample shipped with a package instead of the configured ticker.
    "real_sample": {"source": "sample", "ticker": "GOOG", "requested_ticker": "META", "sample": True,
                    "synthetic": False, "label": "sample: GOOG daily prices 2004-2013 shipped with the backtesting package"},
    "real": {"source": "remote", "ticker": "META", "sample": False, "synthetic": False,
             "label": "META prices from Yahoo Finance (split- and dividend-adjusted)"},
}
SERVER = "http://127.0.0.1:5000"


def fake_experiment(name: str, kind: str, link: str | None) -> None:
    """What evaluate writes for one experiment, with made-up numbers: details.json, history.csv, data.json."""
    provenance = PROVENANCE[kind]
    outputs = paths.Outputs.pipeline(name)
    test = {"p_value": 0.0123, "difference": -0.5, "interval": [-0.9, -0.1], "confidence": 0.95,
            "test": "paired block bootstrap (L=3)", "verdict": "better"}
    details = {
        "experiment": name,
        "data": {"dataset": "prices", "source": provenance["source"], "synthetic": provenance["synthetic"],
                 "sample": provenance["sample"], "label": provenance["label"], "n_train": 100, "n_test": 20},
        "setup": SETUP,
        "model": {"rmse": 1.5, "mae": 1.0},
        "baseline": {"name": "persistence (tomorrow equals today)", "rmse": 2.0, "mae": 1.2},
        "primary": {"name": "rmse", "higher_is_better": False, "model": 1.5, "baseline": 2.0, "verdict": "better",
                    "test": test, "verdict_text": "better: difference -0.500, 95% interval [-0.900, -0.100] "
                                                  "(paired block bootstrap (L=3))"},
        "training": {"best_epoch": 2, "epochs_trained": 2},
        "run": {"run_id": f"run{name}", "experiment_id": "7", "tracking_uri": SERVER if link else "sqlite:///mlruns.db",
                "link": link},
        "environment": {"keras_backend": "tensorflow", "device": "cpu", "profile": "quick"},
    }
    io.write_json(outputs.metrics / "details.json", details)
    io.write_json(outputs.metrics / "metrics.json", {"rmse": 1.5, "baseline": 2.0, "p_value": 0.0123})
    io.write_text(outputs.metrics / "history.csv", "epoch,loss,mae\n1,0.5,0.4\n2,0.3,0.2\n")
    io.write_json(outputs.figures / "data.json", {"provenance": provenance, "prepared_sha256": "abc", "shapes": {}})


@pytest.fixture
def report(isolated_root: Path) -> dict[str, Any]:
    subprocess.run(["git", "init", "-q"], cwd=isolated_root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=isolated_root, check=True)
    link = f"{SERVER}/#/experiments/7/runs/runstock_real"
    experiments = {"stock_synthetic": ("synthetic", None), "stock_real_sample": ("real_sample", None),
                   "stock_real": ("real", link)}
    for name, (kind, run_link) in experiments.items():
        fake_experiment(name, kind, run_link)
    build_report(list(experiments))
    md = (isolated_root / "reports" / "index.md").read_text()
    sections = {name: md[md.index(f"## {name}\n"):] for name in experiments}
    for name, text in sections.items():  # each section up to the next one
        sections[name] = text[:text.find("\n## ", 4)] if "\n## " in text[4:] else text
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=isolated_root, capture_output=True,
                            text=True, check=True).stdout.strip()
    return {"md": md, "html": (isolated_root / "reports" / "index.html").read_text(), "sections": sections,
            "commit": commit, "link": link}


def test_the_report_opens_with_its_build_and_a_table_of_contents(report: dict[str, Any]):
    md, html = report["md"], report["html"]
    head = md[:md.index("## Results")]
    assert re.search(r"Built \d{4}-\d\d-\d\d \d\d:\d\d UTC from commit <code>" + report["commit"] + "</code> "
                     r"\((clean|with uncommitted changes)\)", head)
    assert "Profile: `quick`; Keras backend: `tensorflow`; device: `cpu`." in head
    for name in ("stock_synthetic", "stock_real_sample", "stock_real"):
        assert f"[{name}](#{name})" in head
        assert f'<h2 id="{name}">' in html  # the anchor the contents link to
    assert "[Results](#results)" in head and '<h2 id="results">' in html
    assert "[Compared on prices](#compared-on-prices)" in head and '<h2 id="compared-on-prices">' in html


def test_verdicts_come_from_the_paired_test_with_their_p_value(report: dict[str, Any]):
    assert "better: difference -0.500, 95% interval [-0.900, -0.100] (paired block bootstrap (L=3)), p = 0.012" in report["md"]
    assert not re.search(r"beats?[ _]baseline", report["md"], re.IGNORECASE)


def test_each_kind_of_data_gets_its_banner(report: dict[str, Any]):
    synthetic, real_sample, real = (report["sections"][n] for n in ("stock_synthetic", "stock_real_sample", "stock_real"))
    assert "<b>SYNTHETIC SAMPLE (GEOMETRIC BROWNIAN MOTION PRICES, NOT MARKET DATA)</b>: not real data" in synthetic
    assert "REAL PRICES FROM A SHIPPED SAMPLE" in real_sample and "not the configured ticker META" in real_sample
    assert "GOOG daily prices 2004-2013 shipped with the backtesting package" in real_sample
    assert "SYNTHETIC" not in real_sample and "not real data" not in real_sample
    assert "SAMPLE" not in real and 'class="s' not in real  # real data: no banner


def test_runs_on_a_tracking_server_link_to_the_mlflow_ui(report: dict[str, Any]):
    assert f"MLflow run: [`runstock_real`]({report['link']})" in report["sections"]["stock_real"]
    assert f'<a href="{report["link"]}">' in report["html"]
    local = report["sections"]["stock_synthetic"]
    assert "MLflow run: `runstock_synthetic` (local store `sqlite:///mlruns.db`)" in local and "](http" not in local


def test_evaluate_writes_the_run_link_only_for_a_server(isolated_root: Path):
    from omegaconf import OmegaConf

    from rnnlab.evaluate import details_file, metrics_file

    metrics = {"experiment": "x", "data": {"dataset": "prices", "source": "remote", "synthetic": False,
                                           "label": "real", "n_train": 1, "n_test": 1},
               "model": {"rmse": 1.0}, "baseline": {"name": "b", "rmse": 2.0}, "run_id": "r1",
               "primary": {"name": "rmse", "higher_is_better": False, "model": 1.0, "baseline": 2.0,
                           "verdict": "better", "beats_baseline": True, "test": {"p_value": 0.01}, "verdict_text": "t"},
               "training": {"best_epoch": 3, "epochs_trained": 5}}
    cfg = OmegaConf.create({"profile_name": "full"})
    assert metrics_file(metrics) == {"rmse": 1.0, "baseline": 2.0, "p_value": 0.01, "best_epoch": 3, "epochs": 5}
    on_server = details_file(metrics, {"run_id": "r1", "experiment_id": "4", "tracking_uri": SERVER}, cfg, {"sample": False})
    assert on_server["run"]["link"].startswith(f"{SERVER}/#/experiments/4/runs/r1")
    local = details_file(metrics, {"run_id": "r1", "experiment_id": "4", "tracking_uri": "sqlite:///m.db"}, cfg, {})
    assert local["run"]["link"] is None and "run_id" not in local and "beats_baseline" not in local["primary"]
    assert local["environment"]["keras_backend"] and local["environment"]["profile"] == "full"
    assert metrics["primary"]["beats_baseline"] is True  # evaluate's return value keeps every key
