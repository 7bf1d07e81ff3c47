"""`dvc plots show` and `dvc plots diff`: every experiment's training and validation curves
together, the gradient study's curves together, drawn offline (Vega inlined in the page that
.dvc/config's plots.html_template names; tools/build_plots_page.py builds it)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT, copy_project, run, subprocess_env

# Nothing may come from the network: no proxy answers, no name resolves.
OFFLINE = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND", "--disable-background-networking",
           "--disable-component-update", "--no-first-run"]


def top_level_plots() -> dict[str, dict]:
    dvc_yaml = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    return {name: spec for entry in dvc_yaml["plots"] for name, spec in entry.items()}


def history_columns(experiment: str) -> list[str]:
    return (PROJECT / "metrics" / experiment / "history.csv").read_text().splitlines()[0].split(",")


def test_every_experiment_has_its_training_and_validation_curves_plotted():
    plots = top_level_plots()
    experiments = yaml.safe_load((PROJECT / "params.yaml").read_text())["experiments"]
    for experiment in experiments:
        path = f"metrics/{experiment}/history.csv"
        drawn = [sorted(spec["y"][path]) for spec in plots.values() if path in spec.get("y", {})]
        columns = set(history_columns(experiment))
        metric = "accuracy" if "accuracy" in columns else "mae"
        for name in ("loss", metric):
            expected = sorted({name, f"val_{name}"} & columns)
            assert expected in drawn, f"{experiment}: no plot of {expected} in dvc.yaml's plots (it has {drawn})"
    study = [spec for spec in plots.values() if "metrics/gradient_study/gradient_norms.csv" in spec.get("y", {})]
    columns = (PROJECT / "metrics/gradient_study/gradient_norms.csv").read_text().splitlines()[0].split(",")[1:]
    assert sorted(c for spec in study for c in spec["y"]["metrics/gradient_study/gradient_norms.csv"]) == sorted(columns)
    # Stage-level plots would add one plot per file that shows only its last column.
    for stage in yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"].values():
        assert "plots" not in stage.get("do", stage)


def render(html: Path, folder: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium without network."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed: `make test` installs it as root (apt-get install chromium)")
    result = run([browser, "--headless", "--no-sandbox", "--disable-gpu", *OFFLINE, f"--user-data-dir={folder / 'chromium'}",
                  "--window-size=1400,1000", "--virtual-time-budget=20000", "--dump-dom", html.as_uri()],
                 folder, subprocess_env(folder), timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def plot_svgs(dom: str, names: list[str]) -> dict[str, str]:
    """Each plot's part of the DOM: from its div (DVC's id is the plot's name) to the next plot's."""
    starts = sorted((m.start(), name) for name in names for m in [re.search(f'<div id="{re.escape(name)}"', dom)] if m)
    assert len(starts) == len(names), f"plots missing from the page: {set(names) - {n for _, n in starts}}"
    return {name: dom[start:(starts[i + 1][0] if i + 1 < len(starts) else len(dom))]
            for i, (start, name) in enumerate(starts)}


def line_paths(svg: str) -> list[str]:
    """The drawn lines of a Vega SVG: the path of every series in the line marks' groups."""
    groups = re.findall(r'<g class="mark-line role-mark[^"]*"[^>]*>(.*?)</g>', svg, re.DOTALL)
    return [d for group in groups for d in re.findall(r'<path[^>]* d="([^"]+)"', group)]


def test_dvc_plots_show_draws_every_plot_offline(tmp_path: Path):
    project = copy_project(tmp_path / "project")
    result = run(["dvc", "plots", "show"], project, subprocess_env(project), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    page = project / "dvc_plots" / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr.net" not in html and not re.search(r"<script[^>]+src=", html)  # all inline
    names = list(top_level_plots())
    dom = render(page, tmp_path)
    plots = plot_svgs(dom, names)
    for name, part in plots.items():
        assert "<svg" in part and 'role-mark' in part, f"{name}: nothing drawn"
        assert line_paths(part) or "mark-symbol" in part, f"{name}: no line or point drawn"
    for experiment in yaml.safe_load((project / "params.yaml").read_text())["experiments"]:
        part = plots[f"{experiment}_loss"]
        # Both series, each with its own stroke (a one-epoch history: one point each).
        if "val_loss" in history_columns(experiment):
            assert ">val_loss<" in part and ">loss<" in part, f"{experiment}: the legend lacks a series"
            assert len(line_paths(part)) >= 2, f"{experiment}: fewer than two lines drawn"
    study = plots["gradient_study_init"]
    assert len(line_paths(study)) >= 10  # every variant's curve in one plot


def test_dvc_plots_diff_sets_a_change_beside_the_commit(tmp_path: Path):
    project = copy_project(tmp_path / "project")
    history = project / "metrics/stock_lstm/history.csv"
    lines = history.read_text().splitlines()
    history.write_text("\n".join([lines[0], *(",".join([r.split(",")[0], *(str(float(v) * 2) for v in r.split(",")[1:])])
                                              for r in lines[1:])]) + "\n")
    out = tmp_path / "diff"
    result = run(["dvc", "plots", "diff", "HEAD", "-o", str(out)], project, subprocess_env(project), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    dom = render(out / "index.html", tmp_path)
    part = plot_svgs(dom, ["stock_lstm_loss"])["stock_lstm_loss"]
    assert ">HEAD<" in part and ">workspace<" in part  # the legend's revisions
    assert len(line_paths(part)) >= 2
