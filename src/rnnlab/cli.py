"""What every command shares: logging, the one way a user error ends a command, and the
one shape of a DVC stage command:

    python -m rnnlab.<module> --stage <file>

where <file> is what the stage reads (a resolved config written by the compose stage, or
params.yaml for compose and report). Without --stage, a module with a Hydra app (train,
the gradient study) runs that app on the command line's overrides.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

from rnnlab.errors import ConfigError, DataSourceError

# Errors that are the user's to fix: printed as one line, without a traceback.
USER_ERRORS = (ConfigError, DataSourceError, FileNotFoundError)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def fail(message: object, status: int = 2) -> NoReturn:
    """End the command with one line on stderr: what is wrong and how to fix it."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


@contextlib.contextmanager
def user_errors_exit() -> Iterator[None]:
    """A user error inside ends the command with `fail` (status 2); anything else is a bug
    and keeps its traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        fail(exc)


def main(stage: Callable[[Path], Any], description: str, app: Callable[[], Any] | None = None,
         argv: list[str] | None = None) -> None:
    """The entry point of a stage module: `--stage <file>` runs `stage(file)`; anything else
    goes to the module's Hydra `app`, where it has one."""
    argv = sys.argv[1:] if argv is None else argv
    if app is not None and (not argv or argv[0] != "--stage"):
        app()
        return
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--stage", type=Path, required=True, metavar="FILE",
                        help="what the stage reads: resolved/<name>.yaml (written by the compose stage), "
                             "or params.yaml for compose and report")
    args = parser.parse_args(argv)
    setup_logging()
    with user_errors_exit():
        stage(args.stage)
