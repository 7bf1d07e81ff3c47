"""DVC stage `compose`: conf/ + params.yaml -> one resolved config file per stage input.

    resolved/<experiment>.yaml       the full config of an experiment (train, evaluate)
    resolved/data/<dataset>.yaml     only the data settings and the seed (fetch, prepare)
    resolved/gradient_study.yaml     the gradient study (conf/gradient_study.yaml)

Hydra composes each experiment exactly as `python -m rnnlab.train experiment=<name>`
would, with params.yaml's `overrides` appended. dvc.yaml declares per-key params on
these files, so an edit under conf/ reruns exactly the stages whose keys changed.
A file is rewritten only when its content changes.
"""

from __future__ import annotations

import logging
from typing import Any

import yaml
from omegaconf import OmegaConf

from pathlib import Path

from rnnlab import cli, io, paths
from rnnlab.config import ConfigError, compose, data_part

log = logging.getLogger(__name__)


def read_params(path: Path | None = None) -> dict[str, Any]:
    """params.yaml: which experiments `dvc repro` builds, on which datasets, with which overrides."""
    path = path or paths.params_file()
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; the project's params.yaml says what `dvc repro` builds.")
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params.get("experiments"), dict) or not params["experiments"]:
        raise ConfigError("params.yaml: `experiments` must map experiment names to their dataset, e.g. {imdb_lstm: imdb}.")
    if not isinstance(params.get("datasets"), list) or not params["datasets"]:
        raise ConfigError("params.yaml: `datasets` must be a non-empty list, e.g. [imdb].")
    for key in ("overrides", "gradient_study_overrides"):
        if not isinstance(params.get(key) or [], list):
            raise ConfigError(f"params.yaml: `{key}` must be a list of Hydra overrides, e.g. [profile=quick].")
    return params


def compose_all(params_path: Path | None = None) -> list[str]:
    """Compose, check and write every experiment of params.yaml; returns the files written."""
    params = read_params(params_path)
    overrides = [str(o) for o in params.get("overrides") or []]
    resolved = {name: compose([f"experiment={name}", *overrides]) for name in params["experiments"]}
    study = compose([str(o) for o in params.get("gradient_study_overrides") or []], config_name="gradient_study")

    data_files: dict[str, dict[str, Any]] = {}
    for name, cfg in resolved.items():
        dataset = str(cfg.data.name)
        if params["experiments"][name] != dataset:
            raise ConfigError(f"params.yaml says experiment {name} trains on {params['experiments'][name]!r}, "
                              f"but its config uses data={dataset}; make them agree.")
        if dataset not in params["datasets"]:
            raise ConfigError(f"experiment {name} uses dataset {dataset!r}, which params.yaml does not list "
                              "under `datasets`; add it there.")
        part = data_part(cfg)
        if dataset in data_files and data_files[dataset] != part:
            raise ConfigError(f"experiments disagree on the settings of dataset {dataset!r} (see {name}); "
                              "one prepared dataset serves them all, so give them the same data settings.")
        data_files[dataset] = part

    if str(study.data.name) not in params["datasets"]:
        raise ConfigError(f"the gradient study uses dataset {study.data.name!r}, which params.yaml does not list "
                          "under `datasets`; add it there.")
    data_files[str(study.data.name)] = data_part(study)

    written = _write_if_changed(paths.RESOLVED_DIR / "gradient_study.yaml", OmegaConf.to_container(study))
    for name, cfg in resolved.items():
        written += _write_if_changed(paths.RESOLVED_DIR / f"{name}.yaml", OmegaConf.to_container(cfg))
    for dataset, part in data_files.items():
        written += _write_if_changed(paths.RESOLVED_DIR / "data" / f"{dataset}.yaml", part)
    return written


def _write_if_changed(path, content: dict[str, Any]) -> list[str]:
    text = "# Written by `python -m rnnlab.compose --stage params.yaml` from conf/ and params.yaml: edit those, not this.\n"
    text += yaml.safe_dump(content, sort_keys=False)
    if path.is_file() and path.read_text() == text:
        return []
    io.write_text(path, text)
    return [str(path.relative_to(paths.ROOT))]


def stage_compose(params_path: Path) -> None:
    written = compose_all(params_path)
    log.info("resolved configs %s", "written: " + ", ".join(written) if written else "unchanged")


if __name__ == "__main__":
    cli.main(stage_compose, "DVC stage: resolve conf/ and params.yaml into resolved/.")
