"""The command line: the `rnnlab` command, the project's --help, a misspelt key's one-line
error, no TensorFlow start-up noise, one line per epoch, and the download progress bar."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PROJECT, VENV_BIN, run, subprocess_env

import rnnlab
from rnnlab import cli, commands

# What TensorFlow, absl, oneDNN and CUDA print at start-up.
NOISE = re.compile(r"oneDNN|absl::|^[IWEF]\d{4} |tensorflow/core|cpu_feature_guard|(?i:\bcuda|cudnn|cublas)",
                   re.MULTILINE)
PYTHON = sys.executable


def project_env(root: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's shell in `root`, with a throwaway MLflow store and TensorFlow's log level left to
    rnnlab (conftest sets 2 for the other tests)."""
    env = subprocess_env(root, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlruns.db")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return {**env, **extra}


# ---------------------------------------------------------------------------------------------
# rnnlab <command>


def test_rnnlab_help_lists_the_subcommands(tmp_path):
    out = run([PYTHON, "-m", "rnnlab", "--help"], PROJECT, project_env(PROJECT, tmp_path))
    assert out.returncode == 0, out.stderr
    for name in ("train", "study", "compare", "report", "ui"):
        assert re.search(rf"^  {name} ", out.stdout, re.MULTILINE), out.stdout
    assert not NOISE.search(out.stderr), out.stderr
    script = VENV_BIN / "rnnlab"
    if script.exists():  # installed by `make` (pip install -e .)
        installed = run([str(script), "--help"], PROJECT, project_env(PROJECT, tmp_path))
        assert installed.returncode == 0 and installed.stdout == out.stdout


def test_an_unknown_command_names_the_nearest(capsys):
    with pytest.raises(SystemExit) as stopped:
        commands.main(["trian"])
    assert stopped.value.code == 2
    assert "did you mean `rnnlab train`?" in capsys.readouterr().err


def test_train_and_study_check_their_overrides_before_running(capsys, monkeypatch):
    ran = []
    monkeypatch.setattr(commands, "_run_module", lambda module, argv: ran.append((module, argv)))
    for name, key, near in (("train", "model.unitz=3", "model.units"), ("study", "n_measur=3", "n_measure")):
        with pytest.raises(SystemExit) as stopped:
            commands.main([name, key])
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert f"did you mean {near}? (rnnlab {name} --cfg job lists every key)" in err
    assert ran == []
    commands.main(["train", "-m", "experiment=phrase_sentiment", "model.units=8,16", "--cfg", "job"])
    commands.main(["study", "~variants.gru", "trainer.epochs=2"])
    commands.main(["report"])
    assert ran == [("rnnlab.train", ["-m", "experiment=phrase_sentiment", "model.units=8,16", "--cfg", "job"]),
                   ("rnnlab.gradient_study", ["~variants.gru", "trainer.epochs=2"]),
                   ("rnnlab.report", ["--stage", "params.yaml"])]


def test_compare_gets_its_arguments(monkeypatch):
    import rnnlab.compare

    got = []
    monkeypatch.setattr(rnnlab.compare, "main", lambda argv: got.append(argv))
    commands.main(["compare", "experiment=imdb_lstm", "--parent", "abc"])
    assert got == [["experiment=imdb_lstm", "--parent", "abc"]]


def test_ui_delegates_to_rnnlab_ui(monkeypatch):
    ui = pytest.importorskip("rnnlab.ui", reason="rnnlab.ui (the `rnnlab ui` command) is not written yet")
    got = []
    monkeypatch.setattr(ui, "main", lambda argv=None: got.append(argv))
    commands.main(["ui", "--port", "5001"])
    assert got == [["--port", "5001"]]


def test_rnnlab_train_runs_the_hydra_app_with_its_overrides(tmp_path):
    """Through runpy, as `python -m rnnlab.train`: --cfg job prints the config the overrides compose."""
    out = run([PYTHON, "-m", "rnnlab", "train", "experiment=phrase_sentiment", "model.units=7", "--cfg", "job"],
              PROJECT, project_env(PROJECT, tmp_path))
    assert out.returncode == 0, out.stderr
    assert "experiment_name: phrase_sentiment" in out.stdout and "units: 7" in out.stdout
    assert not NOISE.search(out.stderr), out.stderr


# ---------------------------------------------------------------------------------------------
# --help


@pytest.mark.parametrize("module, words", [
    ("rnnlab.train", ["rnnlab train", "experiment: alphabet_one_letter, alphabet_stateful", "profile=quick",
                      "model.units", "model.dropout", "regularizer=", "trainer.epochs", "data.source=sample",
                      "-m model.dropout=0.0,0.2,0.5", "MLflow", "reports/index.html", "--cfg job"]),
    ("rnnlab.gradient_study", ["rnnlab study", "profile=quick", "~variants.gru", "MLflow"]),
])
def test_help_is_the_projects_own(module, words, tmp_path):
    out = run([PYTHON, "-m", module, "--help"], PROJECT, project_env(PROJECT, tmp_path))
    assert out.returncode == 0, out.stderr
    for word in words:
        assert word in out.stdout, (word, out.stdout)
    assert "is powered by Hydra" not in out.stdout
    for experiment in (PROJECT / "conf" / "experiment").glob("*.yaml"):
        if module == "rnnlab.train":
            assert experiment.stem in out.stdout
    assert not NOISE.search(out.stderr), out.stderr


# ---------------------------------------------------------------------------------------------
# A misspelt key or option


def test_a_misspelt_key_stops_at_once_with_the_nearest_key(tmp_path):
    started = time.monotonic()
    out = run([PYTHON, "-m", "rnnlab.train", "model.unitz=3"], PROJECT, project_env(PROJECT, tmp_path))
    seconds = time.monotonic() - started
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["error: model.unitz is not a config key; did you mean model.units? "
                                       "(python -m rnnlab.train --cfg job lists every key)"]
    assert "+model.unitz" not in out.stderr + out.stdout
    assert seconds < 5, f"{seconds:.1f} s: the check should come before Keras loads"


def test_a_misspelt_experiment_names_the_nearest(tmp_path):
    out = run([PYTHON, "-m", "rnnlab.train", "experiment=imdb_lstn"], PROJECT, project_env(PROJECT, tmp_path))
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1
    assert "did you mean experiment=imdb_lstm?" in out.stderr


@pytest.mark.parametrize("argv, message", [
    (["trainer.epoch=3"], "trainer.epoch is not a config key; did you mean trainer.epochs?"),
    (["modle.units=3"], "modle.units is not a config key; did you mean model.units?"),
    (["seeed=1"], "seeed is not a config key; did you mean seed?"),
    (["model.zzz=1"], "model.zzz is not a config key; model has activation, bidirectional"),
    (["-m", "model.dropuot=0.0,0.2", "regularizer=none,l2"], "model.dropuot is not a config key; did you mean model.dropout?"),
    (["experiment=phrase_sentiment", "data.maxln=3"], "data.maxln is not a config key"),
    (["-m", "experiment=imdb_lstm,imdb_gru,imdb_lstn"], "did you mean experiment=imdb_lstm?"),
])
def test_what_the_check_says(argv, message):
    problem = cli._override_problem("config", argv)
    assert problem is not None and message in problem, problem


@pytest.mark.parametrize("argv", [
    [],
    ["experiment=imdb_lstm", "model.dropout=0.3"],
    ["-m", "model.dropout=0.0,0.2,0.5", "regularizer=none,l2,l1l2"],
    ["-m", "model.dropout=choice(0.1,0.2)", "trainer.epochs=range(1,3)", "experiment=imdb_lstm,imdb_gru"],
    ["-m", "hydra/sweeper=imdb_lstm_optuna", "experiment=imdb_lstm", "profile=quick", "hydra.sweeper.n_trials=2"],
    ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model.units=8,16"],
    ["-m", "experiment=imdb_lstm,phrase_sentiment", "data.language=ru"],  # a key of one of the sweep's datasets
    ["+model.unitz=3"], ["++trainer.new_key=1"], ["~model.units"],
    ["hydra.job.chdir=true", "hydra.run.dir=/tmp/x"],
    ["--cfg", "job", "profile=quick"], ["--help"], ["model.units=", "trainer.epochs=[1,2"],  # Hydra's to judge
    ["experiment=phrase_sentiment", "data.source=sample", "trainer.early_stopping.enabled=true"],
])
def test_valid_command_lines_pass_the_check(argv):
    assert cli._override_problem("config", argv) is None


def test_the_study_keeps_its_variants_overrides():
    assert cli._override_problem("gradient_study", ["~variants.gru", "trainer.epochs=60", "profile=quick"]) is None
    assert "did you mean n_measure?" in cli._override_problem("gradient_study", ["n_measur=3"])


# ---------------------------------------------------------------------------------------------
# No TensorFlow noise; one line per epoch


@pytest.mark.parametrize("experiment", ["phrase_sentiment", "phrase_numpy_rnn"])
def test_a_quick_run_prints_one_line_per_epoch_and_no_tensorflow_noise(project_copy, tmp_path, experiment):
    out = run([PYTHON, "-m", "rnnlab.train", f"experiment={experiment}", "profile=quick", "trainer.epochs=3"],
              project_copy, project_env(project_copy, tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert not NOISE.search(out.stderr), out.stderr
    lines = re.findall(r"epoch (\d+)/3  (.*)\((\d+\.\d) s\)$", out.stdout + out.stderr, re.MULTILINE)
    assert [int(n) for n, _, _ in lines] == [1, 2, 3], out.stdout
    assert all("loss " in values and "accuracy " in values for _, values, _ in lines)
    assert "Epoch 1/3" not in out.stdout  # Keras' own lines stay off
    metrics = json.loads(out.stdout.strip().splitlines()[-1])  # the final metrics stay the last line
    assert metrics["primary"]["name"] == "accuracy"


def test_long_runs_print_about_a_hundred_lines(caplog):
    from rnnlab.models.progress import EpochProgress

    for epochs, expected in ((3, [1, 2, 3]), (1000, [1, *range(10, 1001, 10)]), (150, [1, *range(2, 151, 2)])):
        caplog.clear()
        progress = EpochProgress(epochs)
        with caplog.at_level("INFO", logger="rnnlab.models.progress"):
            for epoch in range(epochs):
                progress.on_epoch_end(epoch, {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.0004})
        numbers = [int(re.match(r"epoch +(\d+)/", r.getMessage()).group(1)) for r in caplog.records]
        assert numbers == expected
    assert re.fullmatch(r"epoch 150/150  loss 0.5  accuracy 0.75  val_loss 4.000e-04  \(\d+\.\d s\)",
                        caplog.records[-1].getMessage())


@pytest.mark.parametrize("level, kept", [
    ("3", ["Traceback (most recent call last):\n"]),
    ("2", ["E0000 00:00:1796170740.653122    4908 cuda_dnn.cc:1] Unable to register cuDNN factory\n",
           "Traceback (most recent call last):\n"]),
    ("0", None),
])
def test_the_import_filter_follows_tf_cpp_min_log_level(level, kept, monkeypatch):
    lines = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
             "I0000 00:00:1796170740.653122    4908 port.cc:153] oneDNN custom operations are on.\n",
             "W0000 00:00:1796170740.653122    4908 gpu.cc:1] a warning\n",
             "E0000 00:00:1796170740.653122    4908 cuda_dnn.cc:1] Unable to register cuDNN factory\n",
             "Traceback (most recent call last):\n"]
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    assert [line for line in lines if rnnlab._keep_tf_line(line, rnnlab._tf_min_log_level())] == (lines if kept is None else kept)


def test_a_user_can_still_ask_for_tensorflows_messages(tmp_path):
    """TF_CPP_MIN_LOG_LEVEL=0 shows everything (the other tests check the default hides it)."""
    loud = run([PYTHON, "-c", "import rnnlab, tensorflow"], PROJECT,
               project_env(PROJECT, tmp_path, TF_CPP_MIN_LOG_LEVEL="0"))
    assert loud.returncode == 0, loud.stderr
    assert NOISE.search(loud.stderr), loud.stderr  # TF_CPP_MIN_LOG_LEVEL=0: everything TensorFlow says


# ---------------------------------------------------------------------------------------------
# Download progress bar


DOWNLOAD = ("import sys\nfrom rnnlab.data.download import download\n"
            "download([sys.argv[1]], sys.argv[2], timeout=5, max_bytes=10_000_000, retries=0)\n")
BODY = b"x" * 300_000


def _download_with_stderr_on_a_terminal(url: str, dest: Path, env: dict[str, str]) -> tuple[int, str]:
    import pty  # POSIX only

    master, slave = pty.openpty()
    try:
        child = subprocess.Popen([PYTHON, "-c", DOWNLOAD, url, str(dest)], cwd=PROJECT, env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        return child.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(master)


def test_a_download_shows_a_bar_on_a_terminal_and_none_in_a_log(httpserver, tmp_path):
    httpserver.expect_request("/book.txt").respond_with_data(BODY)
    url = httpserver.url_for("/book.txt")
    env = project_env(PROJECT, tmp_path, TERM="xterm", COLUMNS="100")
    status, terminal = _download_with_stderr_on_a_terminal(url, tmp_path / "a.txt", env)
    assert status == 0, terminal
    assert "downloading book.txt" in terminal and "━" in terminal, terminal
    assert (tmp_path / "a.txt").read_bytes() == BODY
    logged = run([PYTHON, "-c", DOWNLOAD, url, str(tmp_path / "b.txt")], PROJECT, env)
    assert logged.returncode == 0, logged.stderr
    assert "downloading" not in logged.stderr and "━" not in logged.stderr, logged.stderr
    assert (tmp_path / "b.txt").read_bytes() == BODY
