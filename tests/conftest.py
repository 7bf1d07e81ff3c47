"""Shared fixtures: an isolated project root, a full copy of the project, real data paths."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from rnnlab import paths

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"
VENV_BIN = Path(sys.executable).parent

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests' own process trains on JAX, the faster backend on this machine's CPUs for most of the
# catalog (rnnlab.backends.FASTEST); tests/test_backends.py runs every experiment on TensorFlow.
# KERAS_BACKEND=tensorflow make test swaps the two.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ["DVC_NO_ANALYTICS"] = "1"


@pytest.fixture
def isolated_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every output path (data, models, MLflow store) at a temporary folder."""
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    monkeypatch.setattr(paths, "TRACKING_ROOT", tmp_path)
    monkeypatch.setattr(paths, "RESOLVED_DIR", tmp_path / "resolved")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def subprocess_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment a user's shell would have in `root`, with the venv first on PATH."""
    # KERAS_BACKEND too: a child chooses its backend from its config, as a user's command does.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "RNNLAB_", "DVC_ROOT", "PYTEST", "KERAS_BACKEND"))}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(root / "src"),
               DVC_NO_ANALYTICS="1", TF_CPP_MIN_LOG_LEVEL="2", GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="t@t")
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The project's files as git sees them (tracked and new, not ignored), in a new git repo."""
    return copy_project(tmp_path / "project")


def copy_project(dest: Path) -> Path:
    """Copy the project's files as git sees them into `dest`, a new git repo (for module-scoped fixtures too)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=PROJECT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = PROJECT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    env = subprocess_env(dest)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True)
    return dest


@pytest.fixture
def alice_path() -> Path:
    path = SHARED_DATA / "alice_in_wonderland.txt"
    if not path.is_file():
        pytest.skip(f"{path} is not here (CI and sessions have ../shared beside the project)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_answers(url: str, timeout: float = 120) -> bool:
    """Whether an MLflow server at `url` answers /health within `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return True
        except requests.ConnectionError:
            time.sleep(0.5)
    return False


@contextlib.contextmanager
def running_mlflow_server(folder: Path) -> Iterator[str]:
    """A real `mlflow server` on a free 127.0.0.1 port, its store in `folder`; yields its URL."""
    port = free_port()
    log = open(folder / "server.log", "w")
    server = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "server-artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    if not server_answers(url):
        server.kill()
        pytest.fail("mlflow server did not start: " + (folder / "server.log").read_text()[-2000:])
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
