"""Writes the evaluation a person reads: PNG plots, an HTML page linking them, and the
headline lines printed at the end of a run."""
import base64
import html
import io
import os

import numpy as np
from PIL import Image

from svhn_tfx.components.evaluator import plots
from svhn_tfx.schema.signatures import CLASS_NAMES

MISTAKE_TILE_PX = 64
RELIABILITY_PNG = "reliability.png"
RELIABILITY_UNCALIBRATED_PNG = "reliability_uncalibrated.png"
RISK_COVERAGE_PNG = "risk_coverage.png"
CONFUSION_PNG = "confusion.png"
MISTAKES_PNG = "mistakes.png"
REPORT_HTML = "report.html"

HEADLINE = [  # (label, key in the calibrated metrics, format)
    ("accuracy", "accuracy", "{:.4f}"),
    ("digits-only accuracy", "digits_only_accuracy", "{:.4f}"),
    ("ECE (15 bins)", "ece", "{:.4f}"),
    ("NLL", "nll", "{:.4f}"),
    ("Brier", "brier", "{:.4f}"),
    ("no-digit AUROC", "no_digit_auroc", "{:.4f}"),
    ("no-digit FPR@95%TPR", "no_digit_fpr_at_95tpr", "{:.4f}"),
    ("max-softmax AUROC", "max_softmax_auroc", "{:.4f}"),
    ("max-softmax FPR@95%TPR", "max_softmax_fpr_at_95tpr", "{:.4f}"),
    ("coverage at threshold", "coverage", "{:.4f}"),
    ("risk at threshold", "risk", "{:.4f}"),
]


def _fmt(fmt, value):
    return "n/a" if value is None else fmt.format(value)


def headline_lines(name: str, scored: dict) -> list:
    metrics, raw = scored["calibrated"], scored["uncalibrated"]
    return [f"{name}: " + ", ".join(f"{label} {_fmt(fmt, metrics[key])}"
                                    for label, key, fmt in HEADLINE),
            f"{name}: temperature {scored['temperature']:.3f} (ECE {_fmt('{:.4f}', raw['ece'])} "
            f"before scaling), abstain below confidence {scored['abstain_threshold']:.4f}"]


def _thumbnail(image_b64: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(image_b64))) as image:
        return np.asarray(image.convert("RGB").resize((MISTAKE_TILE_PX, MISTAKE_TILE_PX)))


def write_split_plots(out_dir: str, split: str, scored: dict) -> dict:
    """The candidate's reliability diagram on one more eval split; returns {title: file}."""
    metrics = scored["calibrated"]
    name = f"reliability-{split}.png"
    plots.reliability_diagram(metrics["reliability"], os.path.join(out_dir, name),
                              f"Split '{split}': calibrated (T={scored['temperature']:.2f}), "
                              f"ECE {_fmt('{:.3f}', metrics['ece'])}")
    return {f"Reliability on split '{split}', calibrated": name}


def write_plots(out_dir: str, scored: dict) -> dict:
    """The candidate's PNGs; returns {title: file name}."""
    metrics, raw = scored["calibrated"], scored["uncalibrated"]
    written = {}
    plots.reliability_diagram(metrics["reliability"], os.path.join(out_dir, RELIABILITY_PNG),
                              f"Calibrated (T={scored['temperature']:.2f}), "
                              f"ECE {_fmt('{:.3f}', metrics['ece'])}")
    written["Reliability, calibrated"] = RELIABILITY_PNG
    plots.reliability_diagram(raw["reliability"],
                              os.path.join(out_dir, RELIABILITY_UNCALIBRATED_PNG),
                              f"Before temperature scaling, ECE {_fmt('{:.3f}', raw['ece'])}")
    written["Reliability, before temperature scaling"] = RELIABILITY_UNCALIBRATED_PNG
    curve = metrics["risk_coverage"]
    if curve["coverage"]:
        plots.risk_coverage_plot(curve["coverage"], curve["risk"],
                                 (metrics["coverage"], metrics["risk"]),
                                 os.path.join(out_dir, RISK_COVERAGE_PNG),
                                 "Digit answers: risk vs coverage")
        written["Risk vs coverage"] = RISK_COVERAGE_PNG
    plots.confusion_matrix_plot(metrics["confusion"], CLASS_NAMES,
                                os.path.join(out_dir, CONFUSION_PNG))
    written["Confusion matrix"] = CONFUSION_PNG
    mistakes = metrics["top_mistakes"]
    if mistakes:
        plots.mistakes_grid(
            [_thumbnail(m["example"]) for m in mistakes],
            [f"{CLASS_NAMES[m['label']]}→{CLASS_NAMES[m['predicted']]} {m['confidence']:.2f}"
             for m in mistakes], os.path.join(out_dir, MISTAKES_PNG))
        written["Most confident mistakes (true→predicted, confidence)"] = MISTAKES_PNG
    return written


def _metrics_table(models: list) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td>" +
        "".join(f"<td>{_fmt(fmt, m['calibrated'][key])}</td>" for _, m in models) + "</tr>"
        for label, key, fmt in HEADLINE)
    rows += "<tr><td>temperature</td>" + "".join(
        f"<td>{m['temperature']:.3f}</td>" for _, m in models) + "</tr>"
    rows += "<tr><td>ECE before temperature scaling</td>" + "".join(
        f"<td>{_fmt('{:.4f}', m['uncalibrated']['ece'])}</td>" for _, m in models) + "</tr>"
    per_class = "".join(
        f"<tr><td>accuracy on {html.escape(name)}</td>" + "".join(
            f"<td>{_fmt('{:.3f}', m['calibrated']['per_class_accuracy'][k])}</td>"
            for _, m in models) + "</tr>" for k, name in enumerate(CLASS_NAMES))
    return (f"<table><tr><th></th>{''.join(f'<th>{n}</th>' for n, _ in models)}</tr>{rows}"
            f"{per_class}</table>")


def _split_section(split: str, by_model: dict, main: bool, gates) -> str:
    models = [(name, by_model[name]) for name in ("candidate", "baseline") if by_model.get(name)]
    role = "main eval split, default gates" if main else (
        f"gates: {html.escape(str(gates))}" if gates else "reported, not gated")
    count = by_model["candidate"]["calibrated"]["count"]
    return (f"<h2>Split '{html.escape(split)}'</h2><p>{count} examples ({role}).</p>"
            f"{_metrics_table(models)}")


def write_html(out_dir: str, report: dict, images: dict) -> str:
    splits = report.get("splits") or {report["eval_split"]: {
        "candidate": report["candidate"], "baseline": report["baseline"]}}
    sections = "".join(
        _split_section(split, by_model, split == report["eval_split"],
                       report.get("split_gates", {}).get(split))
        for split, by_model in splits.items())
    verdict = "BLESSED" if report["blessed"] else "NOT BLESSED: " + "; ".join(
        report["failed_gates"])
    figures = "".join(f"<figure><img src='{name}'><figcaption>{html.escape(title)}"
                      f"</figcaption></figure>" for title, name in images.items())
    page = f"""<!doctype html><meta charset="utf-8"><title>svhn-tfx evaluation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} td,th{{padding:2px 10px}}
figure{{display:inline-block;margin:8px}} img{{max-width:500px}}</style>
<h1>svhn-tfx evaluation</h1><p><b>{html.escape(verdict)}</b></p>
<p>Default gates (split '{html.escape(report['eval_split'])}'):
{html.escape(str(report['gates']))}</p>{sections}
<h2>Plots: the candidate</h2>
{figures}<p>All numbers: <a href="metrics.json">metrics.json</a></p>"""
    path = os.path.join(out_dir, REPORT_HTML)
    with open(path, "w") as f:
        f.write(page)
    return path
