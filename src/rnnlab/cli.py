"""What every command shares: logging, the one way a user error ends a command, and the
one shape of a DVC stage command:

    python -m rnnlab.<module> --stage <file>

where <file> is what the stage reads (a resolved config written by the compose stage, or
params.yaml for compose and report). Without --stage, a module with a Hydra app (train,
the gradient study) runs that app on the command line's overrides, once `check_overrides`
has found every key they set in the config (a misspelt key stops in seconds, with the
nearest valid key, rather than after TensorFlow has loaded and with Hydra's `+key` hint).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import itertools
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

from rnnlab.errors import ConfigError, DataSourceError, Terminated, TrackingError

# Errors that are the user's to fix: printed as one line, without a traceback.
USER_ERRORS = (ConfigError, DataSourceError, TrackingError, FileNotFoundError)


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
    with exit_status_of_signals():
        if app is not None and (not argv or argv[0] != "--stage"):
            config_name = _app_config_name(app)
            if config_name is not None:
                check_overrides(config_name, argv)
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


@contextlib.contextmanager
def exit_status_of_signals() -> Iterator[None]:
    """A command stopped by SIGTERM (its runs ended KILLED on the way out) exits 143, as a
    process the signal killed would; Ctrl-C keeps Python's own handling."""
    try:
        yield
    except Terminated as exc:
        print(f"stopped by signal {exc.signum}", file=sys.stderr)
        sys.exit(128 + exc.signum)


# ---------------------------------------------------------------------------------------------
# The Hydra apps' overrides, checked before Hydra (and Keras) start


# The commands that run each primary config, named in the hint of an error.
APP_COMMANDS = {"config": "python -m rnnlab.train", "gradient_study": "python -m rnnlab.gradient_study"}
# Sweeps over groups: at most this many combinations of group choices are composed to find the keys.
MAX_COMPOSED = 16
_checked: set[tuple[str, tuple[str, ...]]] = set()


def check_overrides(config_name: str, argv: list[str], command: str | None = None) -> None:
    """Stop with one line and status 2 where the command line sets a key that the config does not
    have (`model.unitz=3`: did you mean model.units?) or chooses an option a config group does not
    have (`experiment=imdb_lstn`). Hydra's own errors say `To append to your config use
    +model.unitz=3`, which then fails later, or list every option on many lines.

    Only plain `key=value` overrides are checked (not `+key`, `++key`, `~key`, nor anything under
    hydra), against the config composed with the command line's group choices (for a sweep over
    groups, every combination up to MAX_COMPOSED: a key present in any is accepted). Anything this
    check cannot read (a syntax error, --help, another config dir) is left to Hydra, so a valid
    command line runs exactly as without it. Imports Hydra only, never Keras or TensorFlow.
    """
    key = (config_name, tuple(argv))
    if key in _checked:
        return
    _checked.add(key)
    problem = _override_problem(config_name, argv)
    if problem is not None:
        command = command or APP_COMMANDS.get(config_name, "python -m rnnlab.train")
        fail(problem.replace("{command}", command))


def check_app_argv(config_name: str, argv: list[str] | None = None) -> None:
    """`check_overrides` on a module's command line unless it runs a DVC stage (--stage)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "--stage":
        check_overrides(config_name, argv)


def before_keras(config_name: str | None, argv: list[str] | None = None) -> None:
    """What a command that trains or evaluates does before it imports Keras: `check_app_argv`
    (for a module with a Hydra app, `config_name`), the whole config validated (a wrong value
    stops in a second or two, not after Keras has loaded), and the Keras backend it chooses
    (rnnlab.backends), which Keras reads once, when first imported. A sweep's first job stands
    for all of them; each job is validated again when it runs."""
    argv = sys.argv[1:] if argv is None else argv
    if config_name is not None:
        check_app_argv(config_name, argv)
    from rnnlab import backends

    with user_errors_exit():
        found = backends.command_config(config_name, argv)
        if found is None:
            return
        config, is_stage = found
        if not is_stage:
            from rnnlab import config as configs

            config = (configs.validate_study if config_name == "gradient_study" else configs.validate)(config)
        backends.select_for_config(config)


def _app_config_name(app: Callable[..., Any]) -> str | None:
    """The config_name a @hydra.main function was decorated with (in its wrapper's closure)."""
    try:
        import inspect

        return inspect.getclosurevars(app).nonlocals.get("config_name")
    except (TypeError, ValueError):
        return None


def _override_problem(config_name: str, argv: list[str]) -> str | None:
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = get_args_parser().parse_args(argv)
    except SystemExit:
        return None  # Hydra's own argument parser will say what is wrong
    if (args.help or args.hydra_help or args.shell_completion or args.info or args.experimental_rerun
            or args.config_path or args.config_dir or (args.config_name and args.config_name != config_name)):
        return None
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except HydraException:
        return None  # a syntax error: Hydra's message says where
    from rnnlab.paths import CONF_DIR

    def is_group(name: str) -> bool:
        return "." not in name and (name.startswith("hydra/") or (CONF_DIR / name).is_dir())

    groups = [o for o in overrides if is_group(o.key_or_group)]
    keys = [o for o in overrides if o not in groups]
    added = [o.key_or_group for o in keys if o.is_add() or o.is_force_add()]
    plain = [o for o in keys if o.type.name == "CHANGE" and not o.key_or_group.startswith("hydra.")
             and o.key_or_group != "hydra"]

    choices = []
    for o in groups:
        name = o.key_or_group + (f"@{o.package}" if o.package else "")
        prefix = {"ADD": "+", "FORCE_ADD": "++", "DEL": "~"}.get(o.type.name, "")
        if o.is_sweep_override():
            try:
                values = list(o.sweep_string_iterator())
            except Exception:  # noqa: BLE001 - glob() and the like: leave them to Hydra
                return None
            choices.append([f"{prefix}{name}={v}" for v in values])
        else:
            choices.append([o.input_line])
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    composed = []
    was_initialized = GlobalHydra.instance().is_initialized()
    if was_initialized:
        return None  # inside another Hydra app or compose (tests): leave it to Hydra
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            loader = GlobalHydra.instance().config_loader()
            for o in groups:
                group = o.key_or_group
                if group.startswith("hydra/") or o.is_delete() or group == "profile_data":
                    continue
                options = loader.get_group_options(group)
                values = [v for v in (list(o.sweep_string_iterator()) if o.is_sweep_override()
                                      else [o.value()]) if isinstance(v, str)]
                for value in values:
                    if value not in options and value != "null":
                        near = difflib.get_close_matches(value, options, n=1, cutoff=0.5)
                        hint = f"did you mean {group}={near[0]}? " if near else ""
                        return (f"{group}={value} is not an option of the config group {group}; {hint}"
                                f"choose one of {', '.join(options)} (conf/{group}/)")
            if not plain:
                return None
            for combo in itertools.islice(itertools.product(*choices), MAX_COMPOSED):
                try:
                    cfg = compose(config_name=config_name, overrides=list(combo))
                except Exception:  # noqa: BLE001 - Hydra will report it, in its words
                    return None
                composed.append(OmegaConf.to_container(cfg, resolve=False))
    except Exception:  # noqa: BLE001 - the check never stops a command it cannot read
        return None
    if not composed:
        return None
    for o in plain:
        key = o.key_or_group
        if any(key == a or key.startswith(a + ".") for a in added):
            continue
        if any(_has_key(cfg, key) for cfg in composed):
            continue
        known = sorted(set().union(*(_dotted_keys(cfg) for cfg in composed)))
        return f"{key} is not a config key{_suggestion(key, known)} ({{command}} --cfg job lists every key)"
    return None


def _has_key(node: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def _dotted_keys(node: Any, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        for name, value in node.items():
            if str(name) == "hydra" and not prefix:
                continue
            full = f"{prefix}{name}"
            keys.add(full)
            keys |= _dotted_keys(value, full + ".")
    return keys


def _suggestion(key: str, known: list[str]) -> str:
    """'; did you mean <nearest>?': a key beside it (same parent) where the parent exists, else
    the nearest key anywhere (a misspelt parent); without one close enough, the keys its parent has."""
    parent, _, leaf = key.rpartition(".")
    if not parent or parent in known:
        siblings = sorted(k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent)
        near = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
        if near:
            return f"; did you mean {parent + '.' if parent else ''}{near[0]}?"
        return f"; {parent} has {', '.join(siblings)}" if parent and siblings else ""
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {near[0]}?" if near else ""
