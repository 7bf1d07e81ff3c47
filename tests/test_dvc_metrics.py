"""`dvc metrics show`, `dvc metrics diff` and `dvc exp show`: numbers only, the same few columns
for every experiment (metrics.json; names, matrices and the verdict are in details.json)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT, copy_project, run, subprocess_env

WIDTH = 160


def widest(text: str) -> int:
    return max((len(line.rstrip()) for line in text.splitlines()), default=0)


def test_dvc_metrics_show_fits_in_160_columns():
    result = run(["dvc", "metrics", "show"], PROJECT, subprocess_env(PROJECT), timeout=120)
    assert result.returncode == 0, result.stderr
    experiments = yaml.safe_load((PROJECT / "params.yaml").read_text())["experiments"]
    for experiment in experiments:
        assert f"metrics/{experiment}/metrics.json" in result.stdout
    assert widest(result.stdout) <= WIDTH, result.stdout
    for path in PROJECT.glob("metrics/*/metrics.json"):
        values = json.loads(path.read_text())
        assert values and all(isinstance(v, (int, float)) for v in values.values()), path  # numbers, flat


@pytest.mark.slow
def test_a_one_parameter_change_shows_in_metrics_diff_and_exp_show(tmp_path: Path):
    project = copy_project(tmp_path / "project")
    env = subprocess_env(project)
    params_path = project / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params.update(experiments={"imdb_lstm": "imdb"}, datasets=["imdb", "long_memory"],
                  overrides=["profile=quick"])
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    first = run(["dvc", "repro", "evaluate@imdb_lstm"], project, env)
    assert first.returncode == 0, first.stdout + first.stderr
    subprocess.run(["git", "add", "-A"], cwd=project, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "quick imdb_lstm"], cwd=project, env=env, check=True)

    params["overrides"] = ["profile=quick", "model.dropout=0.5"]
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    second = run(["dvc", "repro", "evaluate@imdb_lstm"], project, env)
    assert second.returncode == 0, second.stdout + second.stderr

    diff = run(["dvc", "metrics", "diff", "--all"], project, env)
    assert diff.returncode == 0, diff.stderr
    rows = [line.split() for line in diff.stdout.splitlines()]
    shown = {row[1] for row in rows if row and row[0] == "metrics/imdb_lstm/metrics.json"}
    assert {"accuracy", "baseline", "p_value"} <= shown, diff.stdout
    assert widest(diff.stdout) <= WIDTH, diff.stdout

    # The command the README gives, in a terminal wide enough that nothing is cut: its natural width.
    command = next(shlex.split(line.split("#")[0]) for line in (PROJECT / "README.md").read_text().splitlines()
                   if line.startswith("dvc exp show --only-changed"))
    exp = run([*command, "--no-pager"], project, {**env, "COLUMNS": "1000"})
    assert exp.returncode == 0, exp.stderr
    print(exp.stdout)
    for column in ("Experiment", "metrics/imdb_lstm/metrics.json:accuracy", "p_value", "overrides",
                   "resolved/imdb_lstm.yaml:model.dropout"):
        assert column in exp.stdout
    assert "fetch.num_words" not in exp.stdout  # unchanged params stay out (resolved/ is committed)
    assert widest(exp.stdout) <= WIDTH, f"{widest(exp.stdout)} columns:\n{exp.stdout}"
