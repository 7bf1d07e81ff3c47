"""The `rnnlab` command (also `python -m rnnlab`): one entry point for the project's commands.

    rnnlab train [overrides]        one run, or a sweep with -m (python -m rnnlab.train)
    rnnlab study [overrides]        the gradient study (python -m rnnlab.gradient_study)
    rnnlab compare [overrides]      a sweep's leaderboard (python -m rnnlab.compare)
    rnnlab report                   reports/index.md and index.html (python -m rnnlab.report --stage params.yaml)
    rnnlab ui [options]             the MLflow UI on the project's store, and the runs table's link

Each subcommand runs its module exactly as `python -m <module>` does, with the rest of the
command line as that module's arguments: Hydra's overrides, -m, --cfg job, --help. Before a
Hydra app loads Keras, `rnnlab.cli.check_overrides` stops a misspelt key in under a second.
"""

from __future__ import annotations

import runpy
import sys
from typing import Callable

from rnnlab import __version__, cli

PROG = "rnnlab"


def _run_module(module: str, argv: list[str]) -> None:
    """`python -m <module> <argv>`, in this process."""
    sys.argv = [sys.argv[0] if sys.argv and sys.argv[0] else PROG, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _train(argv: list[str]) -> None:
    if not argv or argv[0] != "--stage":
        cli.check_overrides("config", argv, command=f"{PROG} train")
    _run_module("rnnlab.train", argv)


def _study(argv: list[str]) -> None:
    if not argv or argv[0] != "--stage":
        cli.check_overrides("gradient_study", argv, command=f"{PROG} study")
    _run_module("rnnlab.gradient_study", argv)


def _compare(argv: list[str]) -> None:
    from rnnlab.compare import main

    main(argv)


def _report(argv: list[str]) -> None:
    _run_module("rnnlab.report", argv or ["--stage", "params.yaml"])


def _ui(argv: list[str]) -> None:
    try:
        from rnnlab.ui import main
    except ModuleNotFoundError as exc:
        if exc.name != "rnnlab.ui":
            raise
        cli.fail("`rnnlab ui` needs rnnlab.ui, which this checkout does not have yet; "
                 "`make mlflow-ui` serves the MLflow UI meanwhile")
    main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], None], str]] = {
    "train": (_train, "train one experiment, or sweep with -m (Hydra overrides; `rnnlab train --help` lists them)"),
    "study": (_study, "the gradient study: how far back each cell carries a gradient (Hydra overrides)"),
    "compare": (_compare, "a sweep's leaderboard from its MLflow runs (`rnnlab compare experiment=imdb_lstm`)"),
    "report": (_report, "write reports/index.md and index.html from the experiments of params.yaml"),
    "ui": (_ui, "serve the MLflow UI on the project's store and print the runs table's link"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} <command> [arguments]", "",
             "A reproducible pipeline of recurrent-network experiments (DVC, Hydra, Keras, MLflow).", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", f"`{PROG} <command> --help` tells more about one. The whole pipeline: dvc repro.",
              "Examples:",
              f"  {PROG} train experiment=imdb_lstm profile=quick",
              f"  {PROG} train -m experiment=imdb_lstm model.dropout=0.0,0.2,0.5",
              f"  {PROG} train --cfg job            (the composed config, every key)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        if not argv:
            sys.exit(2)
        return
    if argv[0] == "--version":
        print(f"{PROG} {__version__}")
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        near = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f"did you mean `{PROG} {near[0]}`? " if near else ""
        cli.fail(f"{name!r} is not an {PROG} command; {hint}choose one of {', '.join(COMMANDS)} ({PROG} --help)")
    COMMANDS[name][0](rest)


if __name__ == "__main__":
    main()
