"""rnnlab: a reproducible pipeline for the recurrent-network experiments of a course."""

from __future__ import annotations

import importlib.abc as _abc
import importlib.machinery as _machinery
import os as _os
import re as _re
import sys as _sys
import tempfile as _tempfile
from typing import Any as _Any

# TensorFlow's start-up messages (oneDNN, CPU features, CUDA factories) are not ours to show on
# every command. TF_CPP_MIN_LOG_LEVEL hides what TensorFlow's own logging prints, and the filter
# below the rest; a user who sets it (TF_CPP_MIN_LOG_LEVEL=0) gets them all back. This must run
# before TensorFlow is first imported: the package is imported before any of its modules.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# yfinance's HTTP client, curl_cffi, must load before TensorFlow: loaded after it, curl_cffi
# binds to TensorFlow's bundled TLS symbols and every download fails with "Impersonating
# chrome150 is not supported". The package is imported before any of its modules import keras.
try:
    import curl_cffi  # noqa: F401
except ImportError:  # only the prices source needs it
    pass

__version__ = "0.1.0"

# JAX logs at INFO that it found no TPU (and no GPU) on every start: a line per command, and not news.
import logging as _logging

_logging.getLogger("jax._src.xla_bridge").setLevel(_logging.WARNING)


# TensorFlow 2.21 writes some start-up lines (oneDNN, "All log messages before
# absl::InitializeLog() ...") through absl's C++ logging, which TF_CPP_MIN_LOG_LEVEL does not
# govern. They all come while `import tensorflow` runs, so for that one import the process's
# stderr (file descriptor 2, where C++ writes) goes to a temporary file; afterwards every line of
# it goes back to stderr except absl's lines below TF_CPP_MIN_LOG_LEVEL (0 shows all, 1 hides I,
# 2 also W, 3 also E, as TensorFlow reads it). Anything else printed meanwhile, a Python warning
# or a traceback, comes back as it was. Standard library only: every command imports this.

# absl's prefix: severity, MMDD, time (here 00:00:<epoch seconds>), thread id, file:line]
_ABSL_LINE = _re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]]+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_ABSL_LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}


def _tf_min_log_level() -> int:
    try:
        return int(_os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def _keep_tf_line(line: str, level: int) -> bool:
    """Whether a line TensorFlow's import printed on stderr is shown at TF_CPP_MIN_LOG_LEVEL=level."""
    if level <= 0:
        return True
    if line.rstrip("\n") == _ABSL_PREAMBLE:
        return False
    match = _ABSL_LINE.match(line)
    return match is None or _ABSL_LEVELS[match.group(1)] >= level


class _QuietLoader(_abc.Loader):
    def __init__(self, loader: _Any) -> None:
        self._loader = loader

    def create_module(self, spec: _Any) -> _Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: _Any) -> None:
        module.__loader__ = self._loader  # the module keeps its own loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        level = _tf_min_log_level()
        if level <= 0:
            self._loader.exec_module(module)
            return
        _sys.stderr.flush()
        saved = _os.dup(2)
        with _tempfile.TemporaryFile(mode="w+b") as captured:
            _os.dup2(captured.fileno(), 2)
            try:
                self._loader.exec_module(module)
            finally:
                _sys.stderr.flush()
                _os.dup2(saved, 2)
                _os.close(saved)
                captured.seek(0)
                text = captured.read().decode("utf-8", "replace")
                kept = "".join(line for line in text.splitlines(keepends=True) if _keep_tf_line(line, level))
                if kept:
                    _sys.stderr.write(kept)
                    _sys.stderr.flush()


class _QuietTensorFlowFinder(_abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: _Any, target: _Any = None) -> _Any:
        if fullname != "tensorflow":
            return None
        spec = _machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


# The first `import tensorflow` of the process, filtered (nothing to do if it is loaded already).
if "tensorflow" not in _sys.modules and not any(isinstance(f, _QuietTensorFlowFinder) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _QuietTensorFlowFinder())
