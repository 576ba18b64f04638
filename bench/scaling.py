"""How Transform and evaluation time grow with the number of images (should be linear).

Transform: the real component (see transform.py). Evaluation: the evaluator's Beam pipeline
(TrustMetrics over serialized examples, DirectRunner multi-processing) with one model.
"""
import os
import time

import components  # noqa: F401
from bench.transform import transform_pipeline_seconds
from components.data.records import write_split
from components.data.synthetic import generate
from pipeline import configs


def evaluation_seconds(data_root: str, model_dir: str) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from components.evaluator.metrics import TrustMetrics
    start = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(configs.DEFAULT_BEAM_ARGS)) as p:
        _ = (p | beam.io.ReadFromTFRecord(os.path.join(data_root, "*", "*.tfrecord.gz"))
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
        transform_s = transform_pipeline_seconds(os.path.join(root, f"transform-{n}"), data,
                                                 disable_statistics=True)
        eval_s = evaluation_seconds(data, model_dir)
        points.append({"images": images, "transform_seconds": transform_s,
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
    for key, label in (("transform_seconds", "Transform component"),
                       ("evaluation_seconds", "evaluation (TrustMetrics)")):
        y = [p[key] for p in points]
        ax.plot(x, y, "o-", label=label)
    ax.set(xlabel="images", ylabel="seconds", title="Scaling on 2 cores (DirectRunner, 2 workers)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def linear_fit(result: dict, key: str) -> tuple:
    """(fixed seconds, marginal images/s, worst relative residual) of seconds = a + n / b."""
    import numpy as np
    n = np.array([p["images"] for p in result["points"]], float)
    t = np.array([p[key] for p in result["points"]], float)
    slope, intercept = np.polyfit(n, t, 1)
    residual = np.abs(intercept + slope * n - t) / t
    return float(intercept), float(1 / slope), float(residual.max())


def table(result: dict) -> str:
    rows = ["| images | Transform s | images/s | evaluation s | images/s |", "|---|---|---|---|---|"]
    for p in result["points"]:
        rows.append(f"| {p['images']} | {p['transform_seconds']} | "
                    f"{p['images'] / p['transform_seconds']:.0f} | {p['evaluation_seconds']} | "
                    f"{p['images'] / p['evaluation_seconds']:.0f} |")
    fits = []
    if len(result["points"]) >= 3:
        for key, name in (("transform_seconds", "Transform"), ("evaluation_seconds", "evaluation")):
            fixed, rate, worst = linear_fit(result, key)
            fits.append(f"{name}: {fixed:.0f} s fixed + {rate:.0f} images/s "
                        f"(worst residual {worst:.0%})")
    return "\n".join(rows) + ("\n\nLinear fit, seconds = fixed + images / rate: " +
                              "; ".join(fits) + "." if fits else "")
