"""Errors that are the user's to fix. Entry points print them as one line, no traceback."""


class ConfigError(ValueError):
    """A config value the pipeline cannot run with; the message names the key and the fix."""


class DataSourceError(RuntimeError):
    """The data cannot be had from the chosen source; the message says what to do."""
