"""dvc.yaml declares everything its stages read, so `dvc repro` never leaves a result stale.

Two checks, one per kind of input:

- code: every `rnnlab` module a stage's command imports, directly or through other modules,
  is covered by one of the stage's `deps` (found statically, from the source, so it follows
  the module layout as it changes);
- settings: in a built copy of the project, each kind of settings change makes exactly the
  stages that read that setting out of date.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import pytest
import yaml

from conftest import PROJECT, copy_project, run, subprocess_env

SRC = PROJECT / "src"
PACKAGE = "rnnlab"


# ---------------------------------------------------------------------------------------------
# dvc.yaml, its foreach templates expanded


def expanded_stages(dvc_yaml: dict[str, Any], params: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, stage) for every stage of dvc.yaml, a `foreach` stage once per entry (name@entry)
    with `${item}` and `${key}` substituted, as DVC expands it."""
    for name, spec in dvc_yaml["stages"].items():
        if "foreach" not in spec:
            yield name, spec
            continue
        entries = spec["foreach"]
        if isinstance(entries, str):
            match = re.fullmatch(r"\$\{\s*([\w.]+)\s*\}", entries)
            assert match, f"stage {name}: foreach {entries!r} is neither a list nor ${{<params key>}}"
            entries = params
            for part in match.group(1).split("."):
                entries = entries[part]
        pairs = entries.items() if isinstance(entries, dict) else ((str(item), item) for item in entries)
        for key, item in pairs:
            yield f"{name}@{key}", substitute(spec["do"], {"item": item, "key": key})


def substitute(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, str):
        return re.sub(r"\$\{\s*(item|key)\s*\}", lambda m: str(values[m.group(1)]), node)
    if isinstance(node, list):
        return [substitute(n, values) for n in node]
    if isinstance(node, dict):
        return {substitute(k, values): substitute(v, values) for k, v in node.items()}
    return node


def dep_paths(stage: dict[str, Any]) -> list[PurePosixPath]:
    """A stage's `deps`, each a path (a dep may be written `path` or `{path: {options}}`)."""
    deps = []
    for dep in stage.get("deps") or []:
        for path in ([dep] if isinstance(dep, str) else list(dep)):
            deps.append(PurePosixPath(path.rstrip("/")))
    return deps


# ---------------------------------------------------------------------------------------------
# The modules a command runs, statically


def module_file(module: str) -> Path | None:
    """src/<a>/<b>.py or src/<a>/<b>/__init__.py for module a.b; None when it is no module."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def with_parents(module: str) -> list[str]:
    """a.b.c -> [a, a.b, a.b.c]: importing a module runs its packages' __init__.py first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imported_modules(module: str) -> set[str]:
    """The project modules one module imports anywhere in its source (module level, in
    functions, under `if`): `import a.b`, `from a.b import c` (a.b, and a.b.c when c is a
    module), relative imports resolved against the module's package."""
    path = module_file(module)
    assert path is not None, f"no source file for module {module} under {SRC}"
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [source] + [f"{source}.{alias.name}" for alias in node.names
                                if module_file(f"{source}.{alias.name}") is not None]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                assert module_file(name) is not None, f"{path.relative_to(PROJECT)} imports {name}, which has no source file"
                found.update(with_parents(name))
    return found


def import_closure(module: str) -> set[str]:
    """`module`, its packages, and every project module they import, transitively."""
    seen: set[str] = set()
    todo = with_parents(module)
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(imported_modules(current) - seen)
    return seen


def commanded_modules(cmd: str) -> list[str]:
    return re.findall(rf"\bpython3?\s+-m\s+({PACKAGE}(?:\.\w+)*)", cmd)


def covered(file: PurePosixPath, deps: list[PurePosixPath]) -> bool:
    return any(dep == file or dep in file.parents for dep in deps)


def test_every_stage_declares_the_code_it_imports():
    """Each stage's deps cover every source file its command executes: the module `python -m`
    runs, every `rnnlab` module it imports (transitively, imports inside functions included,
    since a stage may call them), and the packages' __init__.py files, which run on import
    (unless empty). A dep covers a file when it is that file or a folder holding it.

    Found statically with `ast`, so only the imports written in the source count (importlib
    or Hydra's `_target_` would not be seen), and conservatively: an import in a function the
    stage never calls still counts."""
    dvc_yaml = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    closures: dict[str, set[str]] = {}
    missing: dict[str, list[str]] = {}
    for name, stage in expanded_stages(dvc_yaml, params):
        modules = commanded_modules(stage["cmd"])
        assert modules, f"stage {name}: its cmd {stage['cmd']!r} runs no `python -m {PACKAGE}...` module"
        deps = dep_paths(stage)
        files = set()
        for module in modules:
            if module not in closures:
                closures[module] = import_closure(module)
            # An empty file (a bare package's __init__.py) runs nothing, and DVC warns about
            # every empty dep on every command: it needs no dep until it holds code.
            files |= {PurePosixPath(path.relative_to(PROJECT).as_posix())
                      for path in map(module_file, closures[module]) if path.stat().st_size > 0}
        absent = sorted(str(f) for f in files if not covered(f, deps))
        if absent:
            missing[name] = absent

    # One line per group of stages missing the same files (a foreach stage's entries, usually).
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, absent in missing.items():
        groups.setdefault(tuple(absent), []).append(name)
    report = "\n".join(f"  {', '.join(names)}: {', '.join(absent)}" for absent, names in groups.items())
    assert not missing, "dvc.yaml: stages run code their deps do not cover (add these files, or a folder holding them, to the deps):\n" + report


# ---------------------------------------------------------------------------------------------
# Settings: which stages each kind of change makes out of date

# Two experiments on two datasets, the gradient study on a few sequences: every kind of stage,
# built in a few minutes. (The same tiny study as tests/test_pipeline.py's TINY_STUDY.)
SMALL_PARAMS = {
    "experiments": {"imdb_lstm": "imdb", "alphabet_window_timesteps": "alphabet"},
    "datasets": ["imdb", "alphabet", "long_memory"],
    "overrides": ["profile=quick"],
    "gradient_study_overrides": ["profile=quick", "data.n_train=64", "data.n_test=32", "n_measure=16",
                                 "trainer.epochs=1"],
}


def edit_text(old: str, new: str):
    def edit(text: str) -> str:
        assert old in text, f"{old!r} is no longer in the file: update this test's edit"
        return text.replace(old, new)
    return edit


def edit_params(key: str, extra: list[str]):
    def edit(text: str) -> str:
        params = yaml.safe_load(text)
        params[key] = [*params[key], *extra]
        return yaml.safe_dump(params, sort_keys=False)
    return edit


IMDB_DOWNSTREAM = {"train@imdb_lstm", "evaluate@imdb_lstm", "report"}

# Each case: the file to edit, the edit, the stages that read the setting (what `dvc status`
# must report once compose has run) and what `dvc repro` would then run (those and everything
# downstream of them). train and evaluate read the whole `data` section of their resolved file
# (the checks, the MLflow params, the alphabet's framing), so every data key makes them stale.
SETTING_CASES = [
    pytest.param("conf/experiment/imdb_lstm.yaml", edit_text("experiment_name: imdb_lstm\n",
                                                             "experiment_name: imdb_lstm\nmodel:\n  units: 32\n"),
                 {"train@imdb_lstm", "evaluate@imdb_lstm"}, IMDB_DOWNSTREAM,
                 id="model-key-units"),
    pytest.param("conf/data/imdb.yaml", edit_text("maxlen: 80", "maxlen: 60"),
                 {"prepare@imdb", "train@imdb_lstm", "evaluate@imdb_lstm"}, {"prepare@imdb", *IMDB_DOWNSTREAM},
                 id="prepare-key-maxlen"),
    pytest.param("conf/profile_data/quick/imdb.yaml", edit_text("sample_train: 3000", "sample_train: 2000"),
                 {"fetch@imdb", "train@imdb_lstm", "evaluate@imdb_lstm"},
                 {"fetch@imdb", "prepare@imdb", *IMDB_DOWNSTREAM},
                 id="fetch-key-sample_train"),
    pytest.param("conf/experiment/alphabet_window_timesteps.yaml",
                 edit_text("framing: window_timesteps", "framing: window_features"),
                 {"train@alphabet_window_timesteps", "evaluate@alphabet_window_timesteps"},
                 {"train@alphabet_window_timesteps", "evaluate@alphabet_window_timesteps", "report"},
                 id="select-key-framing"),
    pytest.param("params.yaml", edit_params("gradient_study_overrides", ["trainer.epochs=2"]),
                 {"gradient_study"}, {"gradient_study", "report"},
                 id="gradient_study_overrides"),
]


def dvc(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = run(["dvc", *args], project, env)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def stale_stages(project: Path, env: dict[str, str], *targets: str) -> set[str]:
    """The stages `dvc status` reports: those whose own deps, params or outs differ from dvc.lock."""
    return set(json.loads(dvc(project, env, "status", "--json", *targets).stdout or "{}"))


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A copy of the project with a small params.yaml, built once by `dvc repro` for every case."""
    project = copy_project(tmp_path_factory.mktemp("dvc_deps") / "project")
    (project / "params.yaml").write_text(yaml.safe_dump(SMALL_PARAMS, sort_keys=False))
    env = subprocess_env(project)
    dvc(project, env, "repro")
    return project, env


@pytest.mark.slow
@pytest.mark.parametrize(("rel_path", "edit", "readers", "reruns"), SETTING_CASES)
def test_each_setting_reruns_exactly_its_stages(built_project, rel_path, edit, readers, reruns):
    """Edit one setting, let compose resolve it, and ask DVC which stages are out of date.

    `dvc status` compares each stage's own deps, params and outs with dvc.lock. After
    `dvc repro -s compose` has rewritten resolved/, the stages it reports are exactly those
    that *declare* the changed setting, and that is what dvc.yaml is answerable for: the
    readers must match exactly (a stage that reads the setting but does not declare it is
    missing; one that declares it without reading it would rerun for nothing). Stages whose
    only link to the change is an upstream output (train after prepare, report after
    evaluate) cannot appear yet: the upstream stage has not run, so its outputs are what
    dvc.lock recorded.

    Why not `dvc repro --dry`: it decides each stage with the same comparison against the
    files as they are (a dry run produces no new outputs), so it lists the same stages as
    `dvc status`. With `--force-downstream` it lists those and everything downstream in the
    DAG, the most a real `dvc repro` would run: an upper bound (a stage whose upstream
    output came out byte-identical would really be skipped), but an exact statement of how
    the DAG carries the change, so the test checks it too. Running `dvc repro` for real would
    train the models twice per case (once for the change, once to undo it) for little more.
    """
    project, env = built_project
    assert stale_stages(project, env) == set(), "the copy is not up to date before the edit (a previous case left it so?)"
    path = project / rel_path
    original = path.read_text()
    try:
        path.write_text(edit(original))
        assert stale_stages(project, env, "compose") == {"compose"}, \
            f"editing {rel_path} does not make compose out of date: compose's deps or params miss it"
        assert ran_stages(dvc(project, env, "repro", "-s", "compose").stdout) == {"compose"}

        stale = stale_stages(project, env)
        assert stale == readers, (
            f"after editing {rel_path}, `dvc status` reports {sorted(stale)}; expected {sorted(readers)}. "
            f"Not reported (their params/deps miss the setting): {sorted(readers - stale)}; "
            f"reported for nothing: {sorted(stale - readers)}")
        dry = dvc(project, env, "repro", "--dry", "--force-downstream")
        assert ran_stages(dry.stdout) == reruns, f"`dvc repro` would run {sorted(ran_stages(dry.stdout))}:\n{dry.stdout}"
    finally:
        path.write_text(original)
        dvc(project, env, "repro", "-s", "compose")
