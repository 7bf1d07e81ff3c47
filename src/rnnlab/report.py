"""DVC stage `report`: reports/index.md and reports/index.html from every experiment's
metrics, figures and data provenance.

    python -m rnnlab.report
"""

from __future__ import annotations

import html
import logging
from typing import Any

import markdown

from rnnlab import io, paths
from rnnlab.cli import setup_logging
from rnnlab.compose import read_params

log = logging.getLogger(__name__)

HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rnnlab report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1em 0; }} th, td {{ border: 1px solid #ccc; padding: 4px 10px; }}
th {{ background: #f3f3f3; }} img {{ max-width: 100%; }} code {{ background: #f5f5f5; padding: 1px 4px; }}
.synthetic {{ background: #fff3cd; border: 1px solid #e0c36a; padding: 0.6em 1em; }}
</style></head><body>
{body}
</body></html>
"""


def section(experiment: str) -> str:
    outputs = paths.Outputs.pipeline(experiment)
    metrics = io.read_json(outputs.metrics / "metrics.json")
    data_info = io.read_json(outputs.figures / "data.json")
    example_rows = io.read_json(outputs.figures / "examples.json")
    data, model, baseline = metrics["data"], metrics["model"], metrics["baseline"]
    provenance = data_info["provenance"]
    lines = [f"## {experiment}", ""]
    if data["synthetic"]:
        lines += [f'<p class="synthetic"><b>{data["label"].upper()}</b>: these numbers come from the '
                  "project's generated reviews, not from IMDB. They show the pipeline works and that word "
                  "order matters; they say nothing about real reviews.</p>", ""]
    lines += [
        f"Data: **{data['dataset']}** from source **{data['source']}** ({data['label']}); "
        f"{data['n_train']} training and {data['n_test']} test reviews.", "",
        "| | accuracy | log loss | ROC AUC |", "|---|---|---|---|",
        f"| model ({experiment}) | {model['accuracy']:.4f} | {model['loss']:.4f} | {model['roc_auc']:.4f} |",
        f"| baseline ({baseline['name']}) | {baseline['accuracy']:.4f} | {baseline['loss']:.4f} | "
        f"{baseline['roc_auc']:.4f} |", "",
        f"MLflow run: `{metrics['run_id']}`", "",
        f"![training curves](experiments/{experiment}/training_curves.png)", "",
        f"![confusion matrices](experiments/{experiment}/confusion_matrix.png)", "",
        "### Test reviews and predictions", "",
        "| review | label | P(positive) model | P(positive) baseline |", "|---|---|---|---|",
    ]
    for row in example_rows:
        text = html.escape(row["text"][:300] + ("…" if len(row["text"]) > 300 else "")).replace("|", "\\|")
        label = "positive" if row["label"] else "negative"
        lines.append(f"| {text} | {label} | {row['p_model']:.3f} | {row['p_baseline']:.3f} |")
    lines += ["", "### Where the data came from", "", "| | |", "|---|---|"]
    for key in ("source", "requested_source", "fallback_reason", "url", "path", "loader", "generator", "seed",
                "sha256", "fetched_at"):
        if key in provenance:
            lines.append(f"| {key} | `{provenance[key]}` |")
    lines.append(f"| prepared sha256 | `{data_info['prepared_sha256']}` |")
    counts = provenance.get("counts", {})
    if counts:
        lines.append("| counts | " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " |")
    return "\n".join(lines) + "\n"


def build_report(experiments: list[str]) -> dict[str, Any]:
    body = ["# rnnlab report", "",
            "Each experiment beside a simple baseline on the same test split. "
            "Rebuilt by `dvc repro`; compare runs in the MLflow UI (`make mlflow-ui`).", ""]
    body += [section(name) for name in experiments]
    text = "\n".join(body)
    reports = paths.ROOT / "reports"
    io.write_text(reports / "index.md", text)
    io.write_text(reports / "index.html",
                  HTML_PAGE.format(body=markdown.markdown(text, extensions=["tables"])))
    return {"experiments": experiments, "path": str(reports / "index.md")}


def main() -> None:
    setup_logging()
    result = build_report(list(read_params()["experiments"]))
    log.info("report written: %s", result["path"])


if __name__ == "__main__":
    main()
