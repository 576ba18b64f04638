"""PNG plots of the trust metrics for the evaluator's report.

Uses the Agg backend and bare ``Figure`` objects (no pyplot global state), so plotting is
headless and safe in Beam worker threads. Each function writes ``path`` and returns it.
"""
from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

import numpy as np  # noqa: E402

DPI = 100
FIGSIZE = (5, 5)
CONFUSION_FIGSIZE = (7, 6)
MISTAKE_TILE_INCHES = 1.6
GAP_COLOR = "tab:red"
BAR_COLOR = "tab:blue"


def _save(fig: Figure, path) -> str:
    path = os.fspath(path)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")
    return path


def reliability_diagram(bins, path, title: str = "Reliability") -> str:
    """Accuracy per confidence bin against the diagonal; red bars show the calibration gap.

    ``bins`` is ``trust.reliability(...)`` / ``TrustAccumulator.result()["reliability"]``.
    """
    fig = Figure(figsize=FIGSIZE)
    ax = fig.add_subplot()
    filled = [b for b in bins if b["count"]]
    left = [b["lower"] for b in filled]
    width = [b["upper"] - b["lower"] for b in filled]
    accuracy = [b["accuracy"] for b in filled]
    confidence = [b["confidence"] for b in filled]
    ax.bar(left, accuracy, width, align="edge", color=BAR_COLOR, edgecolor="black",
           label="accuracy")
    ax.bar(left, np.subtract(confidence, accuracy), width, bottom=accuracy, align="edge",
           color=GAP_COLOR, alpha=0.3, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.legend(loc="upper left")
    return _save(fig, path)


def risk_coverage_plot(coverage, risk, threshold_point, path,
                       title: str = "Risk vs coverage") -> str:
    """Selective risk against coverage, marking ``threshold_point`` = (coverage, risk) if given."""
    fig = Figure(figsize=FIGSIZE)
    ax = fig.add_subplot()
    ax.plot(coverage, risk, color=BAR_COLOR)
    if threshold_point is not None:
        ax.scatter(*threshold_point, color=GAP_COLOR, zorder=3, label="chosen threshold")
        ax.legend(loc="upper left")
    ax.set(xlim=(0, 1), ylim=(0, None), xlabel="coverage",
           ylabel="risk (error rate when answering)", title=title)
    return _save(fig, path)


def confusion_matrix_plot(confusion, class_names, path, title: str = "Confusion matrix") -> str:
    """Row-normalised colours (recall per true class) annotated with raw counts."""
    confusion = np.asarray(confusion)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    fig = Figure(figsize=CONFUSION_FIGSIZE)
    ax = fig.add_subplot()
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of true class")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45)
    ax.set_yticks(ticks, class_names)
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize="x-small",
                    color="white" if normalised[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)


def mistakes_grid(images, captions, path) -> str:
    """Square-ish grid of HxWx3 uint8 images, each titled with its caption."""
    if len(images) != len(captions) or not len(images):
        raise ValueError("need one caption per image and at least one image")
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    fig = Figure(figsize=(cols * MISTAKE_TILE_INCHES, rows * MISTAKE_TILE_INCHES))
    for k, ax in enumerate(fig.subplots(rows, cols, squeeze=False).ravel()):
        ax.axis("off")
        if k < len(images):
            ax.imshow(np.asarray(images[k], np.uint8))
            ax.set_title(captions[k], fontsize="small")
    return _save(fig, path)
