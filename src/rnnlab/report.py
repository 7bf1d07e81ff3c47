"""DVC stage `report`: reports/index.md and reports/index.html from every experiment's
details.json (beside its metrics.json), figures and data provenance.

At the top: when and from which commit it was built, the profile(s), the Keras backend and
device, and a table of contents. Each experiment's data is labelled where its numbers appear:
a synthetic sample as not real data, a real sample (the prices' GOOG sample) as real data that
is not what was configured; real data carries no banner.

    python -m rnnlab.report
"""

from __future__ import annotations

import csv
import datetime
import html
import logging
import subprocess
from pathlib import Path
from typing import Any

import markdown
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from rnnlab import cli, io, paths
from rnnlab.compose import read_params

log = logging.getLogger(__name__)

HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rnnlab report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1em 0; }} th, td {{ border: 1px solid #ccc; padding: 4px 10px; }}
th {{ background: #f3f3f3; }} img {{ max-width: 100%; }} code {{ background: #f5f5f5; padding: 1px 4px; }}
.synthetic {{ background: #fff3cd; border: 1px solid #e0c36a; padding: 0.6em 1em; }}
.sample {{ background: #e7f1fb; border: 1px solid #8db4d9; padding: 0.6em 1em; }}
.built {{ color: #444; }}
</style></head><body>
{body}
</body></html>
"""


FIGURE_TITLES = {"training_curves.png": "training curves", "confusion_matrix.png": "confusion matrices",
                 "predictions.png": "test predictions"}


def leaderboard(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| experiment | data | metric | model | baseline | verdict (paired test) | trained on |",
             "|---|---|---|---|---|---|---|"]
    for m in rows:
        p = m["primary"]
        better = "higher" if p["higher_is_better"] else "lower"
        data = m["data"]["label"] if m["data"]["synthetic"] or is_sample(m["data"]) else "real"
        lines.append(f"| [{m['experiment']}](#{m['experiment']}) | {m['data']['dataset']}: {data} | "
                     f"{p['name']} ({better} is better) | {p['model']:.4f} | {p['baseline']:.4f} "
                     f"({m['baseline']['name']}) | {_verdict(p)} | {trained_on(m)} |")
    return lines


def trained_on(metrics: dict[str, Any]) -> str:
    """The Keras backend (NumPy for the from-scratch models) and device that produced the model's
    numbers: they differ between backends, whose random streams differ."""
    if metrics.get("setup", {}).get("implementation") == "numpy":
        return "NumPy"
    env = metrics.get("environment", {})
    return " ".join(str(v) for v in (env.get("keras_backend", "?"), env.get("device")) if v)


def _verdict(primary: dict[str, Any]) -> str:
    """better / tie / worse, from the paired significance test (rnnlab.significance)."""
    text = primary.get("verdict_text", primary.get("verdict", "n/a"))
    p_value = primary.get("test", {}).get("p_value")
    if p_value is not None and "p <" not in text and "p =" not in text:
        text += f", p {'< 0.001' if p_value < 0.001 else f'= {p_value:.3f}'}"
    return f"**{text}**" if primary.get("verdict") == "worse" else text


def section(experiment: str, metrics: dict[str, Any]) -> str:
    figures_dir = paths.Outputs.pipeline(experiment).figures
    data_info = io.read_json(figures_dir / "data.json")
    data, model, baseline = metrics["data"], metrics["model"], metrics["baseline"]
    provenance = data_info["provenance"]
    lines = [f"## {experiment}", ""]
    banner = data_banner(data, provenance)
    if banner:
        lines += [banner, ""]
    lines += [f"Data: **{data['dataset']}** from source **{data['source']}** ({data['label']}); "
              f"{data['n_train']} training and {data['n_test']} test examples.", ""]
    keys = [k for k, v in model.items() if isinstance(v, float) and isinstance(baseline.get(k), float)]
    lines += ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|",
              f"| model ({experiment}) | " + " | ".join(f"{model[k]:.4f}" for k in keys) + " |",
              f"| baseline ({baseline['name']}) | " + " | ".join(f"{baseline[k]:.4f}" for k in keys) + " |", ""]
    if "verdict" in metrics["primary"]:
        lines += [f"Against the baseline on {metrics['primary']['name']}: {_verdict(metrics['primary'])}.", ""]
    extras = {k: v for k, v in model.items() if isinstance(v, float) and k not in keys}
    if "noise_floor_mse" in metrics:
        extras["noise floor (mse)"] = metrics["noise_floor_mse"]
    if extras:
        lines += ["Also: " + ", ".join(f"{k} {v:.4f}" for k, v in extras.items()) + ".", ""]
    lines += [f"Trained on: {trained_on(metrics)}; MLflow run: {run_reference(metrics.get('run', {}))}", ""]
    for png in sorted(figures_dir.glob("*.png")):
        lines += [f"![{FIGURE_TITLES.get(png.name, png.stem)}](experiments/{experiment}/{png.name})", ""]
    if (figures_dir / "examples.json").is_file():
        lines += ["### Test reviews and predictions", "",
                  "| review | label | P(positive) model | P(positive) baseline |", "|---|---|---|---|"]
        for row in io.read_json(figures_dir / "examples.json"):
            text = html.escape(row["text"][:300] + ("…" if len(row["text"]) > 300 else "")).replace("|", "\\|")
            label = "positive" if row["label"] else "negative"
            lines.append(f"| {text} | {label} | {row['p_model']:.3f} | {row['p_baseline']:.3f} |")
        lines.append("")
    predictions = figures_dir / "predictions.json"
    if predictions.is_file() and isinstance(io.read_json(predictions), list):
        lines += ["### Every input and the model's answer", "", "| input | expected | predicted |", "|---|---|---|"]
        lines += [f"| {row['input']} | {row['expected']} | {row['predicted']}"
                  f"{'' if row['predicted'] == row['expected'] else ' ✗'} |" for row in io.read_json(predictions)]
        lines.append("")
    if (figures_dir / "samples.json").is_file():
        lines += ["### Generated text", "", "200 characters after each seed window: greedy, as the course "
                  "generated, and sampled at two temperatures.", ""]
        for row in io.read_json(figures_dir / "samples.json"):
            lines.append(f"Seed `{row['seed']!r}`:")
            lines.append("")
            for key, text in row.items():
                if key != "seed":
                    lines.append(f"- {key}: `{text!r}`")
            lines.append("")
    lines += ["### Where the data came from", "", "| | |", "|---|---|"]
    for key in ("source", "label", "requested_source", "fallback_reason", "url", "path", "ticker", "loader",
                "generator", "seed", "first_date", "last_date", "sha256", "fetched_at"):
        if key in provenance:
            lines.append(f"| {key} | `{provenance[key]}` |")
    lines.append(f"| prepared sha256 | `{data_info['prepared_sha256']}` |")
    counts = provenance.get("counts", {})
    if counts:
        lines.append("| counts | " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " |")
    return "\n".join(lines) + "\n"


def is_sample(data: dict[str, Any]) -> bool:
    """Real data from a sample the project ships or a package ships (not what was configured)."""
    return bool(data.get("sample", data["source"] == "sample"))


def data_banner(data: dict[str, Any], provenance: dict[str, Any]) -> str | None:
    """The warning over an experiment's numbers: a synthetic sample is not real data; a real
    sample (the backtesting package's GOOG prices) is real data, but not the configured ticker
    or dataset; real data gets none."""
    label = html.escape(data["label"])
    if data["synthetic"]:
        return (f'<p class="synthetic"><b>{synthetic_heading(data["label"])}</b>: not real data. These numbers '
                "come from the project's generated offline sample: they show the pipeline works and say "
                "nothing about real data.</p>")
    if is_sample(data):
        requested = provenance.get("requested_ticker")
        instead = (f"not the configured ticker {html.escape(str(requested))}" if requested
                   and requested != provenance.get("ticker") else "not the configured dataset")
        kind = "PRICES" if data["dataset"] == "prices" else "DATA"
        return (f'<p class="sample"><b>REAL {kind} FROM A SHIPPED SAMPLE</b> ({label}): these are real '
                f"{kind.lower()} from a sample shipped for offline use, {instead}. The numbers are real, for "
                "this sample's series and dates.</p>")
    return None


def synthetic_heading(label: str) -> str:
    """SYNTHETIC SAMPLE, and what the label says beyond that: SYNTHETIC SAMPLE (THE ALPHABET A-Z)."""
    rest = label[len("synthetic sample"):].lstrip(" :") if label.lower().startswith("synthetic sample") else label
    return "SYNTHETIC SAMPLE" + (f" ({html.escape(rest).upper()})" if rest else "")


def run_reference(run: dict[str, Any]) -> str:
    """The MLflow run: a link to its page in the MLflow UI when it was tracked on an HTTP(S)
    server, else its id (open it with `rnnlab ui`)."""
    run_id = run.get("run_id")
    if not run_id:
        return "n/a"
    link = run.get("link")  # evaluate's rnnlab.tracking.run_link: None for a database or file store
    return f"[`{run_id}`]({link})" if link else f"`{run_id}` (local store `{run.get('tracking_uri', '')}`)"


def read_history(experiment: str) -> dict[str, list[float]]:
    with open(paths.Outputs.pipeline(experiment).metrics / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {key: [float(r[key]) for r in rows] for key in (rows[0] if rows else {})}


def describe(setup: dict[str, Any]) -> str:
    cell = {"simplernn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}[setup["cell"]]
    layers = f"{setup['layers']} x " if setup["layers"] > 1 else ""
    bi = "bidirectional " if setup["bidirectional"] else ""
    clip = "".join(f", {k} {setup[k]:g}" for k in ("clipvalue", "clipnorm") if setup.get(k) is not None)
    return (f"{setup['implementation']}: {layers}{bi}{cell}({setup['units']}); {setup['optimizer']} "
            f"lr {setup['learning_rate']:g}{clip}, batch {setup['batch_size']}")


def dataset_comparison(dataset: str, rows: list[dict[str, Any]], figures: Path) -> list[str]:
    """Experiments on one dataset side by side: setup, training course, test metric; and their
    training curves in one figure when any of them trained for more than one epoch."""
    primary = rows[0]["primary"]
    lines = [f"## Compared on {dataset}", "",
             f"Same data and test split; {rows[0]['data']['label']}. "
             "\"First 100%\": the first epoch whose training accuracy (over the epoch's batches, as "
             "Keras reports it) reached 1.0.", "",
             f"| experiment | model and training | epochs | first 100% | final training loss | "
             f"test {primary['name']} | baseline |", "|---|---|---:|---:|---:|---:|---:|"]
    histories = {m["experiment"]: read_history(m["experiment"]) for m in rows}
    for m in rows:
        history = histories[m["experiment"]]
        accuracy = history.get("accuracy", [])
        first = next((str(i + 1) for i, a in enumerate(accuracy) if a >= 1.0), "never" if accuracy else "-")
        loss = f"{history['loss'][-1]:.4f}" if history.get("loss") else "-"
        lines.append(f"| [{m['experiment']}](#{m['experiment']}) | {describe(m['setup'])} | {len(accuracy or history.get('loss', []))} | "
                     f"{first} | {loss} | {m['primary']['model']:.4f} | {m['primary']['baseline']:.4f} |")
    lines.append("")
    if max(len(h.get("loss", [])) for h in histories.values()) > 1:
        plot_curves(dataset, histories, figures / f"{dataset}.png")
        lines += [f"![training curves on {dataset}](compared/{dataset}.png)", ""]
    return lines


def plot_curves(dataset: str, histories: dict[str, dict[str, list[float]]], out: Path) -> None:
    metrics = ["loss"] + (["accuracy"] if any("accuracy" in h for h in histories.values()) else [])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, history in histories.items():
            values = history.get(metric, [])
            if values:
                ax.plot(range(1, len(values) + 1), values, "-" if len(values) > 1 else "o", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"training {metric}")
        if metric == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Training curves on {dataset}")
    io.write_figure(fig, out)


REMEDIES = """What each remedy does to the product of step Jacobians that carries dL/dh_T back to h_1:

- **gradient clipping** (clipnorm) caps the update when that product explodes, which keeps
  training from jumping away; it cannot bring back a gradient that has vanished;
- **orthogonal or identity recurrent weights** start the product with all singular values at 1,
  so only the activation's derivative shrinks it; the identity with ReLU (IRNN) starts as a
  running sum of the inputs, where nothing shrinks while the units stay active;
- **ReLU instead of tanh** has derivative 1 where it is active, where tanh's is at most 1;
- **gated cells** (LSTM, GRU) add a path, the cell state or the update gate's carry, whose
  factor per step is a gate value the network can learn to hold near 1. It starts where the
  gate's bias puts it: Keras' forget-gate bias of 1 keeps sigmoid(1) = 0.73 of the cell per
  step, 0.73^99 = 10^-13.5 over 99 steps; a bias of 3 keeps 0.95 per step, 10^-2.1 over 99."""


def gradient_study_section(metrics: dict[str, Any]) -> list[str]:
    """The study's table, figures and the answer its numbers give (src/rnnlab/gradient_study.py)."""
    data, chance = metrics["data"], metrics["baseline"]["accuracy"]
    variants = {name: metrics["variants"][name] for name in metrics.get("order", metrics["variants"])}
    trainer = metrics["trainer"]
    lines = ["## gradient_study", "",
             f'<p class="synthetic"><b>{synthetic_heading(data["label"])}</b>: not real data. A '
             "generated task, built to need a long memory; the numbers compare cells, they say nothing "
             "about real data.</p>", "",
             "How far back can each cell carry a gradient? Each variant learns sequences of "
             f"{data['length']} symbols whose first symbol is the label ({data['n_train']} training, "
             f"{data['n_test']} test sequences), {metrics['units']} units, Adam lr {trainer['learning_rate']:g}, "
             f"batch {trainer['batch_size']}, {trainer['epochs']} epochs, the same seed. g_t is the mean of "
             f"||dL_i/dh_t|| over {data['n_measure']} test sequences; g_1/g_T is the share of the loss's pull on "
             "the last state that reaches the first one; n/a where the trained model is so sure of every answer "
             "that the loss gradient is exactly 0 in float32.", "",
             "| variant | what it is | test accuracy | training accuracy | log10 g_1/g_T at init | "
             "log10 g_1/g_T trained | training time (s) |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, v in variants.items():
        lines.append(f"| {name} | {v['label']} | {v['test_accuracy']:.3f} | {v['train_accuracy']:.3f} | "
                     f"{_ratio(v['log10_ratio_init'])} | {_ratio(v['log10_ratio_trained'])} | {v['train_seconds']:.0f} |")
    lines += [f"| baseline | {metrics['baseline']['name']} | {chance:.3f} | | | | |", "",
              "![gradient norms](gradient_study/gradient_norms.png)", "",
              "![training accuracy](gradient_study/training_curves.png)", ""]
    remedies = [(n, v) for n, v in variants.items() if v.get("remedy_of") in variants]
    if remedies:
        lines += ["### Each remedy against the variant it changes", "",
                  "One change at a time: each row's variant differs from the one it is set against in the "
                  "respect its description names.", "",
                  "| variant | against | test accuracy | log10 g_1/g_T at init | log10 g_1/g_T trained |",
                  "|---|---|---:|---:|---:|"]
        for name, v in remedies:
            ref = variants[v["remedy_of"]]
            lines.append(f"| {name} | {v['remedy_of']} | {ref['test_accuracy']:.3f} → {v['test_accuracy']:.3f} | "
                         f"{_ratio(ref['log10_ratio_init'])} → {_ratio(v['log10_ratio_init'])} | "
                         f"{_ratio(ref['log10_ratio_trained'])} → {_ratio(v['log10_ratio_trained'])} |")
        lines.append("")
    learned = [n for n, v in variants.items() if v["test_accuracy"] >= 0.9]
    near_chance = [n for n, v in variants.items() if v["test_accuracy"] < chance + 0.1]
    by_init = sorted((n for n in variants if variants[n]["log10_ratio_init"] is not None),
                     key=lambda n: variants[n]["log10_ratio_init"], reverse=True)
    lines += ["### The course's question: what gets around the vanishing gradient?", "",
              f"- Learned the task (test accuracy at least 0.9): {', '.join(learned) or 'none'}.",
              f"- Stayed within 0.1 of chance ({chance:.2f}): {', '.join(near_chance) or 'none'}.",
              "- At initialisation, the share of the gradient that reaches t = 1, largest first: " +
              ", ".join(f"{n} 10^{variants[n]['log10_ratio_init']:.1f}" for n in by_init) + ".",
              *(f"- After training, log10 g_1/g_T of the variants that {group}: {min(ratios):.1f} to {max(ratios):.1f}"
                + (f" ({', '.join(undefined)}: undefined, see the table)" if undefined else "") + "."
                for group, names in (("learned", learned), ("stayed near chance", near_chance))
                for ratios, undefined in [([variants[n]["log10_ratio_trained"] for n in names
                                            if variants[n]["log10_ratio_trained"] is not None],
                                           [n for n in names if variants[n]["log10_ratio_trained"] is None])]
                if ratios),
              "", REMEDIES, ""]
    return lines


def _ratio(value: float | None) -> str:
    return "n/a (g_T = 0)" if value is None else f"{value:.1f}"


def git_state() -> tuple[str, str]:
    """The short commit the report is built from, and whether its code or config differ from it
    (the pipeline's outputs and dvc.lock, which `dvc repro` rewrites as it goes, do not count)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=paths.ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", "src", "conf", "params.yaml", "dvc.yaml")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown", ""
    return commit, " (with uncommitted changes)" if changed else " (clean)"


def build_header(all_details: list[dict[str, Any]]) -> list[str]:
    """When and from what the report was built: date, commit, profile(s), Keras backend and device."""
    commit, dirty = git_state()
    environments = [d.get("environment", {}) for d in all_details]

    def distinct(key: str) -> str:
        values = sorted({str(e[key]) for e in environments if e.get(key) is not None})
        return ", ".join(f"`{v}`" for v in values) or "unknown"

    built = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [f'<p class="built">Built {built} from commit <code>{commit}</code>{dirty}.</p>', "",
            f"Profile: {distinct('profile')}; Keras backend: {distinct('keras_backend')}; "
            f"device: {distinct('device')}.", ""]


def table_of_contents(experiments: list[str], compared: list[str], study: bool) -> list[str]:
    """Links to every section; the ids are those the Markdown toc extension gives the headings
    (and that GitHub gives them too: lower case, spaces as hyphens)."""
    lines = ["**Contents**", "", "- [Results](#results)"]
    lines += [f"- [Compared on {d}](#compared-on-{d})" for d in compared]
    lines += ["- Experiments: " + ", ".join(f"[{name}](#{name})" for name in experiments)]
    if study:
        lines.append("- [Gradient study](#gradient_study)")
    return lines + [""]


def build_report(experiments: list[str]) -> dict[str, Any]:
    all_metrics = [io.read_json(paths.Outputs.pipeline(name).metrics / "details.json") for name in experiments]
    study = paths.Outputs.gradient_study().metrics / "details.json"
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for metrics in all_metrics:
        by_dataset.setdefault(metrics["data"]["dataset"], []).append(metrics)
    compared = [dataset for dataset, rows in by_dataset.items() if len(rows) > 1]
    body = ["# rnnlab report", "", *build_header(all_metrics), *table_of_contents(experiments, compared, study.is_file()),
            "## Results", "",
            "Each experiment beside a simple baseline on the same test split; the verdict is a paired "
            "test's (better, tie or worse, with its p-value or interval). Rebuilt by `dvc repro`; "
            "compare runs in the MLflow UI (`rnnlab ui`)."
            + (" The [gradient study](#gradient_study) closes the report." if study.is_file() else ""),
            "", *leaderboard(all_metrics), ""]
    # Rebuilt whole, so a dataset that no longer has two experiments leaves no old figure behind.
    with io.atomic_dir(paths.compared_dir()) as figures:
        for dataset, rows in by_dataset.items():
            if len(rows) > 1:
                body += dataset_comparison(dataset, rows, figures)
    body += [section(name, metrics) for name, metrics in zip(experiments, all_metrics)]
    if study.is_file():
        body.append("\n".join(gradient_study_section(io.read_json(study))))
    text = "\n".join(body)
    reports = paths.reports_dir()
    io.write_text(reports / "index.md", text)
    io.write_text(reports / "index.html",
                  HTML_PAGE.format(body=markdown.markdown(text, extensions=["tables", "toc"])))
    return {"experiments": experiments, "path": str(reports / "index.md")}


def stage_report(params_path: Path) -> None:
    result = build_report(list(read_params(params_path)["experiments"]))
    log.info("report written: %s", result["path"])


if __name__ == "__main__":
    cli.main(stage_report, "DVC stage: reports/index.md and index.html from every experiment of params.yaml.")
