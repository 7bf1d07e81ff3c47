"""The shared shape of the DVC stage commands: `python -m rnnlab.<stage> <resolved.yaml>`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable

from rnnlab.config import load_resolved
from rnnlab.errors import ConfigError, DataSourceError

# Errors that are the user's to fix: printed as one line, without a traceback.
USER_ERRORS = (ConfigError, DataSourceError, FileNotFoundError)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def run_stage(stage: Callable[[Any], Any], description: str, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config", help="a config file written by the compose stage (resolved/...yaml)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        stage(load_resolved(args.config))
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
