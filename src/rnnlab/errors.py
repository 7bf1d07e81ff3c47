"""Errors that are the user's to fix. Entry points print them as one line, no traceback."""


class ConfigError(ValueError):
    """A config value the pipeline cannot run with; the message names the key and the fix."""


class DataSourceError(RuntimeError):
    """The data cannot be had from the chosen source; the message says what to do."""


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be reached; the message names the URI and the fix."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that runs end KILLED as on Ctrl-C; the command
    then exits 128 + the signal's number (143), as a process killed by it would (rnnlab.cli)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum
