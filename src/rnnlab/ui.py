"""`rnnlab ui`: serve the project's MLflow store and print the link to a runs table.

    rnnlab ui                          the experiment of the latest run
    rnnlab ui experiment=stock_lstm    that experiment
    rnnlab ui --port 5001

The first line printed is the link, in the UI's training view (not its GenAI view, where
MLflow 3 opens otherwise). With MLFLOW_TRACKING_URI pointing at a tracking server, that
server already serves the UI: the command prints its link and ends.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from typing import Any

from rnnlab import cli, paths, tracking


def latest_experiment(client: Any) -> Any | None:
    """The experiment of the most recent run in the store (None when it holds no run)."""
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              order_by=["attributes.start_time DESC"], max_results=1)
    return client.get_experiment(runs[0].info.experiment_id) if runs else None


def choose_experiment(client: Any, name: str | None) -> Any | None:
    if name is None:
        return latest_experiment(client)
    found = client.get_experiment_by_name(name)
    if found is None:
        known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        cli.fail(f"no MLflow experiment named {name!r} in {tracking.ui_base(tracking.tracking_uri()) or tracking.tracking_uri()}; "
                 f"choose one of: {', '.join(known) or '(none yet: train something first)'}")
    return found


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rnnlab ui", description=__doc__.split("\n")[0])
    parser.add_argument("selection", nargs="?", metavar="experiment=NAME",
                        help="the experiment whose runs the link opens (default: that of the latest run)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    if args.selection is not None and not args.selection.startswith("experiment="):
        parser.error(f"expected experiment=<name>, got {args.selection!r}")
    args.experiment = args.selection.split("=", 1)[1] if args.selection else None
    return args


def main(argv: list[str] | None = None) -> None:
    import mlflow

    args = parse(sys.argv[1:] if argv is None else argv)
    uri = tracking.tracking_uri()
    client = mlflow.MlflowClient(uri)
    for experiment in client.search_experiments():
        tracking.mark_as_training(client, experiment)  # runs from before the tag, too
    chosen = choose_experiment(client, args.experiment)
    base = tracking.ui_base(uri) or f"http://{args.host}:{args.port}"
    link = tracking.experiment_link(base, chosen.experiment_id) if chosen else f"{base}/#/experiments"
    print(f"MLflow UI: {link}" + (f"  (experiment {chosen.name})" if chosen else "  (no runs yet)"), flush=True)
    if tracking.ui_base(uri):
        return  # a tracking server serves its own UI
    print(f"serving {uri}; Ctrl-C stops it", flush=True)
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
                               "--default-artifact-root", (paths.TRACKING_ROOT / "mlartifacts").as_uri(),
                               "--host", args.host, "--port", str(args.port)],
                              # Its job runners serve GenAI features (judges); training runs need none.
                              env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ})
    signal.signal(signal.SIGTERM, tracking.raise_keyboard_interrupt)
    try:
        sys.exit(server.wait())
    except KeyboardInterrupt:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    with cli.user_errors_exit():
        main()
