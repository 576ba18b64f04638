"""How Transform and evaluation time grow with the number of images (should be linear).

Transform: the real component (see transform.py), as the pipeline runs it (transform graph
only) and materialising the transformed examples (as it ran before). Evaluation: the evaluator's Beam pipeline
(TrustMetrics over serialized examples, DirectRunner multi-processing) with one model.
"""
import os
import time

import svhn_tfx.components  # noqa: F401
from bench.transform import transform_pipeline_seconds
from svhn_tfx.components.converters.records import write_split
from svhn_tfx.components.generator.synthetic import generate
from svhn_tfx.pipeline import configs


SERIES = {"transform_seconds": "Transform (pipeline: graph only)",
          "materialised_transform_seconds": "Transform, materialised (before)",
          "evaluation_seconds": "evaluation (TrustMetrics)"}


def evaluation_seconds(data_root: str, model_dir: str) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from svhn_tfx.components.evaluator.metrics import TrustMetrics
    start = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(configs.DEFAULT_BEAM_ARGS)) as p:
        _ = (p | beam.io.ReadFromTFRecord(os.path.join(data_root, "*", "*.tfrecord.gz"))
             | beam.Map(lambda serialized: ("all", serialized))
             | TrustMetrics({"model": model_dir})
             | beam.Map(lambda kv: kv[0]))
    return time.perf_counter() - start


def run(root: str, sizes, model_dir: str) -> dict:
    points = []
    for n in sizes:
        data = os.path.join(root, f"data-{n}")
        if not os.path.isdir(os.path.join(data, "train")):
            write_split(generate(n, seed=5), data, "train")
            write_split(generate(max(1, n // 10), seed=6), data, "eval")
        images = n + max(1, n // 10)
        transform_s = transform_pipeline_seconds(os.path.join(root, f"transform-{n}"), data)
        materialised_s = transform_pipeline_seconds(
            os.path.join(root, f"transform-materialised-{n}"), data, materialize=True)
        eval_s = evaluation_seconds(data, model_dir)
        points.append({"images": images, "transform_seconds": transform_s,
                       "materialised_transform_seconds": materialised_s,
                       "evaluation_seconds": round(eval_s, 1)})
        print(f"scaling: {points[-1]}", flush=True)
    return {"points": points}


def plot(result: dict, path: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    points = result["points"]
    x = [p["images"] for p in points]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for key, label in SERIES.items():
        y = [p[key] for p in points]
        ax.plot(x, y, "o-", label=label)
    ax.set(xlabel="images", ylabel="seconds", title="Scaling on 2 cores (DirectRunner, 2 workers)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


# A marginal rate above this is a flat line (under 0.01 s per 100k images).
FLAT_RATE = 1e7


def linear_fit(result: dict, key: str) -> tuple:
    """(fixed seconds, marginal images/s, worst relative residual) of seconds = a + n / b."""
    import numpy as np
    n = np.array([p["images"] for p in result["points"]], float)
    t = np.array([p[key] for p in result["points"]], float)
    slope, intercept = np.polyfit(n, t, 1)
    residual = np.abs(intercept + slope * n - t) / t
    return float(intercept), float(1 / slope) if slope > 0 else float("inf"), \
        float(residual.max())


def table(result: dict) -> str:
    points = [p for p in result["points"] if all(key in p for key in SERIES)]
    rows = ["| images | " + " | ".join(f"{name} s" for name in SERIES.values()) + " |",
            "|---" * (len(SERIES) + 1) + "|"]
    rows += ["| {} | {} |".format(p["images"], " | ".join(str(p[key]) for key in SERIES))
             for p in points]
    fits = []
    if len(points) >= 3:
        for key, name in SERIES.items():
            fixed, rate, worst = linear_fit({"points": points}, key)
            per_image = f"{rate:.0f} images/s" if rate < FLAT_RATE else "no per-image cost"
            fits.append(f"{name}: {fixed:.0f} s fixed + {per_image} (worst residual {worst:.0%})")
    return "\n".join(rows) + ("\n\nLinear fit, seconds = fixed + images / rate: " +
                              "; ".join(fits) + "." if fits else "")
