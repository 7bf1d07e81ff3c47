"""Sweeps in MLflow: one parent run per Hydra multirun, one child run per job.

    python -m rnnlab.train -m experiment=imdb_lstm model.dropout=0.0,0.2,0.5 regularizer=none,l2,l1l2

`SweepTracking` is a Hydra callback (registered under hydra.callbacks in conf/config.yaml).
Hydra calls it in the process that starts the sweep (on_multirun_start, on_multirun_end)
and in every job (on_job_start), whichever launcher runs the jobs: one after another in
this process (the default), in reused worker processes (joblib), or as separate processes
on this machine or a cluster (submitit). What happens, and why:

- on_multirun_start checks every job's config of a grid before any job runs, so a bad value
  stops the sweep with one message, as it stops a single run. Then it creates the parent
  run with MlflowClient, not mlflow.start_run: the fluent API's active-run stack belongs to
  one process, and with the default launcher the jobs run in this very process.
- The parent's id reaches the jobs in RNNLAB_PARENT_RUN_ID, set before the launcher starts
  any process and again at each job's start, because joblib's workers can outlive one sweep.
  Never MLFLOW_RUN_ID: it would make every job resume the parent (mlflow#15713).
- Each job runs through `run_job`, which never raises: its run ends FAILED and the job returns
  NaN. Hydra's basic sweeper re-raises a job's error once the batch is done and then skips
  on_multirun_end, which would leave the parent RUNNING; the Optuna sweeper stops at its
  first failed trial. A job that failed before its run existed gets a FAILED run, so every
  job is one run.
- on_multirun_end counts the children by status, records the count and the best run on the
  parent, ends it, and exits with status 1 when a job failed, so `make` and CI notice.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import shlex
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from mlflow.entities import Param, RunStatus
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from rnnlab import cli, tracking
from rnnlab.config import ConfigError, validate

log = logging.getLogger(__name__)

# Our own variables: MLFLOW_RUN_ID would make every job resume the parent (mlflow#15713).
PARENT_ENV = "RNNLAB_PARENT_RUN_ID"
SWEPT_KEYS_ENV = "RNNLAB_SWEPT_KEYS"
# What a run is ranked by when it lacks the tags evaluate sets (see primary_of).
PRIMARY_METRIC = "test_accuracy"
# Tags on the parent run; rnnlab.compare finds sweeps by the first.
ROLE_TAG = "rnnlab.sweep"
FINISHED = RunStatus.to_string(RunStatus.FINISHED)
FAILED = RunStatus.to_string(RunStatus.FAILED)
KILLED = RunStatus.to_string(RunStatus.KILLED)
RUNNING = RunStatus.to_string(RunStatus.RUNNING)


# ---------------------------------------------------------------------------- the sweep's side


class SweepTracking(Callback):
    """Groups a Hydra multirun's jobs under one MLflow parent run (see the module's docstring).

    Holds only strings: Hydra pickles it to joblib workers and submitit jobs.
    """

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.swept_keys: list[str] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        overrides = sweep_overrides(config)
        self.swept_keys = swept_keys(overrides)
        # Hydra turns a callback's exceptions into warnings and goes on; a bad grid, or a
        # store we cannot reach, must stop the sweep here instead.
        try:
            experiment = _mlflow_experiment(config, self.swept_keys)
            jobs = _check_grid(config, overrides)
        except ConfigError as exc:
            cli.fail(exc)
        try:
            self.parent_run_id = _create_parent(config, experiment, overrides, self.swept_keys, jobs)
        except Exception as exc:  # noqa: BLE001 - whatever MLflow raises, the message says it
            cli.fail(f"cannot create the sweep's parent run in {tracking.redact(tracking.tracking_uri())}: "
                     f"{type(exc).__name__}: {exc}", status=1)
        # Set here, before the launcher starts processes, so that every job inherits it.
        self._export()
        # A sweep stopped early (Ctrl-C, SIGTERM, a crashed sweeper) must not leave the parent RUNNING.
        atexit.register(self._end_if_open)
        signal.signal(signal.SIGTERM, tracking.raise_keyboard_interrupt)
        log.info("sweep: MLflow parent run in experiment %s: %s", experiment,
                 tracking.where_to_see(experiment, tracking.set_experiment(experiment), self.parent_run_id))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Again in the job's own process: a reused joblib worker may hold an earlier sweep's values.
        self._export()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_run_id is None:
            return
        summary = _finish_parent(self.parent_run_id, FINISHED)
        self.parent_run_id = None
        for name in (PARENT_ENV, SWEPT_KEYS_ENV):
            os.environ.pop(name, None)
        log.info("sweep: %s", summary.line())
        if summary.failed:
            # The sweep went on past its failed jobs; its exit status still says they failed.
            cli.fail(f"{summary.line()}\n{summary.failures()}", status=1)

    def _export(self) -> None:
        if self.parent_run_id:
            os.environ[PARENT_ENV] = self.parent_run_id
            os.environ[SWEPT_KEYS_ENV] = ",".join(self.swept_keys)

    def _end_if_open(self) -> None:
        if self.parent_run_id is not None:
            _finish_parent(self.parent_run_id, KILLED)
            self.parent_run_id = None


def sweep_overrides(config: DictConfig) -> list[str]:
    """The command line's task overrides, and the sweeper's `params` (which it adds to them)."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    return [*(f"{key}={value}" for key, value in params.items()), *config.hydra.overrides.task]


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys whose value varies between jobs: `model.dropout=0.0,0.2` or Optuna's `interval(0, 0.5)`."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    keys = [o.key_or_group for o in parsed if o.is_sweep_override()]
    return list(dict.fromkeys(keys))


def _mlflow_experiment(config: DictConfig, keys: list[str]) -> str:
    if "experiment" in keys and not config.tracking.experiment:
        raise ConfigError("a sweep over experiment=... needs one MLflow experiment for its runs: add "
                          "tracking.experiment=<name>, or sweep one experiment at a time.")
    return tracking.experiment_name(config)


def _check_grid(config: DictConfig, overrides: list[str]) -> int | None:
    """Validate every job of a grid as a single run would be; returns the number of jobs.

    Hydra's basic sweeper only checks that each job composes; our ranges (dropout < 1, ...)
    would otherwise fail job by job, after the others had run. Other sweepers (Optuna)
    choose values as they go: their jobs are checked when they run.
    """
    sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_") or "")
    if not sweeper.endswith("BasicSweeper"):
        n_trials = OmegaConf.select(config, "hydra.sweeper.n_trials")
        return int(n_trials) if n_trials is not None else None
    # The basic sweeper's own expansion, so that the jobs checked are the jobs it will launch.
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = OverridesParser.create().parse_overrides(overrides)
    jobs = list(itertools.chain.from_iterable(BasicSweeper.split_arguments(parsed, None)))
    loader = GlobalHydra.instance().config_loader()
    for job in jobs:
        job_config = loader.load_sweep_config(config, job)
        with open_dict(job_config):
            del job_config["hydra"]  # its job-dependent keys (hydra.job.num) are only set at launch
        try:
            validate(job_config)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (job: {' '.join(job)}); nothing was run.") from exc
    return len(jobs)


def _create_parent(config: DictConfig, experiment: str, overrides: list[str], keys: list[str],
                   jobs: int | None) -> str:
    experiment_id = tracking.set_experiment(experiment)
    profile = str(config.profile_name)
    short = short_names(keys)
    name = f"{config.experiment_name} sweep over {', '.join(short[k] for k in keys) or 'nothing'}"
    name += f" ({profile})" if profile != "full" else ""
    tags = {
        ROLE_TAG: "parent",
        "experiment": str(config.experiment_name),
        "profile": profile,
        "sweep.command": command_line(),
        "sweep.overrides": " ".join(map(tracking.masked_override, overrides)),
        "sweep.swept_keys": ",".join(keys),
        "sweep.sweeper": str(OmegaConf.select(config, "hydra.sweeper._target_")),
        "sweep.launcher": str(OmegaConf.select(config, "hydra.launcher._target_")),
        "sweep.dir": str(Path(str(config.hydra.sweep.dir)).resolve()),
        **tracking.git_tags(),
        **tracking.process_tags(),
    }
    client = MlflowClient(tracking.tracking_uri())
    tracking.end_orphaned_runs(client)
    parent = client.create_run(experiment_id, run_name=name, tags=tags)
    run_id = parent.info.run_id
    # The grid as params, one per overridden key: what the UI's compare view lines up.
    parsed = OverridesParser.create().parse_overrides(overrides)
    params = {f"sweep.{o.key_or_group}": str(tracking.masked(o.key_or_group, _split_override(o.input_line)[1]))[:6000]
              for o in parsed}
    if jobs is not None:
        params["sweep.jobs"] = str(jobs)
    client.log_batch(run_id, params=[Param(key, value) for key, value in params.items()])
    client.set_tag(run_id, "mlflow.note.content", f"Sweep: `{command_line()}`\n\nRunning.")
    return run_id


def command_line() -> str:
    """The command that started this process, as a user would type it again."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    program = ["python", "-m", spec.name] if spec is not None and spec.name else [sys.argv[0]]
    return " ".join([*program, *(shlex.quote(tracking.masked_override(arg)) for arg in sys.argv[1:])])


def primary_of(run: Any) -> tuple[str, bool]:
    """The metric a finished run is ranked by, test_<name>, and whether higher is better: from
    the tags evaluate sets (accuracy, RMSE or bits per character by experiment); test accuracy
    for a run without them."""
    tags = run.data.tags
    return f"test_{tags.get('primary_metric', 'accuracy')}", tags.get("primary_higher_is_better", "true") == "true"


def best_run(runs: list[Any]) -> tuple[str, float, str] | None:
    """(run name, value, metric) of the best run by its primary metric; None when no run has
    one, or when the runs are ranked by different metrics (a sweep over experiments)."""
    ranked = {primary_of(run) for run in runs}
    if len(ranked) != 1:
        return None
    (metric, higher_is_better), = ranked
    scored = [(run.info.run_name, run.data.metrics[metric]) for run in runs
              if not math.isnan(run.data.metrics.get(metric, math.nan))]
    if not scored:
        return None
    name, value = (max if higher_is_better else min)(scored, key=lambda item: item[1])
    return name, value, metric


@dataclass
class Summary:
    """How a sweep went: what the parent run records and the sweep prints at its end."""

    total: int
    finished: int
    failed: dict[str, str]  # run name -> error
    best: tuple[str, float, str] | None  # run name, value, metric

    def line(self) -> str:
        text = f"{self.finished} of {self.total} jobs finished"
        if self.failed:
            text += f"; failed: {', '.join(self.failed)}"
        if self.best:
            text += f"; best {self.best[2]} {self.best[1]:.4f}: {self.best[0]}"
        return text

    def failures(self) -> str:
        return "\n".join(f"  {name}: {error[:200]}" for name, error in self.failed.items())


def _finish_parent(parent_run_id: str, status: str) -> Summary:
    """Count the children, record the count and the best child on the parent, and end it."""
    client = MlflowClient(tracking.tracking_uri())
    parent = client.get_run(parent_run_id)
    children = child_runs(client, parent_run_id, parent.info.experiment_id)
    for child in children:
        if child.info.status == RUNNING:
            # Its process is gone (the sweep is over or stopped): it will never end by itself.
            client.set_terminated(child.info.run_id, FAILED if status == FINISHED else status)
    finished = [c for c in children if c.info.status == FINISHED]
    expected = parent.data.params.get("sweep.jobs")
    total = max(len(children), int(expected)) if expected and status == FINISHED else len(children)
    failed = {c.info.run_name: c.data.tags.get("error", c.info.status) for c in children if c.info.status != FINISHED}
    if total > len(children):
        failed[f"{total - len(children)} job(s)"] = "no run (the process died before it could record one)"
    best = best_run(finished)
    summary = Summary(total=total, finished=len(finished), failed=failed, best=best)

    metrics = {"jobs": total, "jobs_finished": len(finished), "jobs_failed": total - len(finished)}
    if best:
        metrics[f"best_{best[2]}"] = best[1]
    for key, value in metrics.items():
        client.log_metric(parent_run_id, key, value)
    client.set_tag(parent_run_id, "sweep.result", summary.line()[:5000])
    if best:
        client.set_tag(parent_run_id, "sweep.best_run", best[0])
    stopped = "" if status == FINISHED else "\n\nThe sweep stopped before its end."
    client.set_tag(parent_run_id, "mlflow.note.content",
                   f"Sweep: `{parent.data.tags.get('sweep.command', '')}`\n\n{summary.line()}.{stopped}")
    client.set_terminated(parent_run_id, status)
    return summary


def child_runs(client: MlflowClient, parent_run_id: str, experiment_id: str) -> list[Any]:
    """Every run nested under `parent_run_id`, oldest first."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                                  max_results=1000, order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


# ------------------------------------------------------------------------------ a job's side


@dataclass(frozen=True)
class SweepJob:
    """The sweep job this process runs: what its MLflow run needs to join the sweep."""

    parent_run_id: str
    num: int
    overrides: list[str]
    swept_keys: list[str]
    job_id: str
    output_dir: str

    def run_name(self, experiment: str) -> str:
        """`imdb_lstm dropout=0.2 regularizer=l2`: the experiment and the values this job varies."""
        varied = [(key, value) for key, value in map(_split_override, self.overrides) if key in self.swept_keys]
        short = short_names([key for key, _ in varied])
        return " ".join([experiment, *(f"{short[key]}={_short_value(value)}" for key, value in varied)])

    def tags(self) -> dict[str, str]:
        return {"hydra.job.num": str(self.num), "hydra.job.id": self.job_id,
                "hydra.job.overrides": " ".join(map(tracking.masked_override, self.overrides)),
                "hydra.job.dir": self.output_dir}


def current_job() -> SweepJob | None:
    """The sweep job running in this process, or None: a single run, a DVC stage, a test."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return SweepJob(parent_run_id=parent, num=int(hydra_cfg.job.num), overrides=list(hydra_cfg.overrides.task),
                    swept_keys=[k for k in os.environ.get(SWEPT_KEYS_ENV, "").split(",") if k],
                    job_id=str(hydra_cfg.job.id), output_dir=str(hydra_cfg.runtime.output_dir))


def run_job(task: Callable[[], float], experiment: str) -> float:
    """Run one sweep job and return its primary metric; on failure record it and return NaN.

    Never raises (see the module's docstring): the other jobs go on. `experiment` names
    the run of a job that failed before starting its own.
    """
    try:
        return task()
    except Exception as exc:  # noqa: BLE001 - any error of one job is recorded, not raised
        log.error("job failed:\n%s", traceback.format_exc())
        job = current_job()
        if job is not None:
            _record_failure(job, experiment, f"{type(exc).__name__}: {exc}")
        return math.nan


def _record_failure(job: SweepJob, experiment: str, error: str) -> None:
    client = MlflowClient(tracking.tracking_uri())
    parent = client.get_run(job.parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], max_results=1,
                              filter_string=f"tags.mlflow.parentRunId = '{job.parent_run_id}' "
                                            f"and tags.`hydra.job.num` = '{job.num}'")
    if runs:
        run_id = runs[0].info.run_id
    else:
        tags = {"mlflow.parentRunId": job.parent_run_id, **job.tags()}
        run_id = client.create_run(parent.info.experiment_id, run_name=job.run_name(experiment), tags=tags).info.run_id
        client.set_terminated(run_id, FAILED)
    client.set_tag(run_id, "error", error.splitlines()[0][:500] if error else "error")


# ------------------------------------------------------------------------------ names


def _split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def short_names(keys: list[str]) -> dict[str, str]:
    """`model.dropout` -> `dropout`, unless two keys would share a short name."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: short if last.count(short) == 1 else key for key, short in zip(keys, last)}


def _short_value(value: str) -> str:
    # Optuna writes floats in full (0.31415926...); the params keep them exact.
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if len(value) > 6 and not number.is_integer() else value
