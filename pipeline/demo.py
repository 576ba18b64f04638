"""The last step of `make demo`: serve the pushed model over gRPC and ask it about pictures.

It writes one sample picture per digit plus pictures with no digit at all (a generated
wall, a plain colour, random noise) as ordinary PNG/JPEG files of several sizes, starts
`svhn-tfx-serve` on the pushed model directory, sends the files' raw bytes with the
client, prints each answer, and stops the server.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import svhn_tfx.components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
import numpy as np
import tensorflow as tf
from PIL import Image

from svhn_tfx import schema
from svhn_tfx.pipeline import configs
from svhn_tfx.pipeline.console import newest_run_log
from svhn_tfx.serving.model_store import versions_on_disk
from svhn_tfx.serving.process import free_port

SAMPLE_SEED = 20_251_124
STARTUP_TIMEOUT_S = 180


def _save(pixels: np.ndarray, path: str, size: int) -> str:
    image = Image.fromarray(pixels).resize((size, size), Image.BICUBIC)
    image.save(path, format="JPEG" if path.endswith(".jpg") else "PNG")
    return path


def write_samples(out_dir: str) -> list:
    """Returns [(path, expected label)] for a digit of each class and three no-digit images."""
    from svhn_tfx.components.generator.settings import GeneratorSettings
    from svhn_tfx.components.generator.synthetic import render_example
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(SAMPLE_SEED)
    settings = GeneratorSettings()
    samples = []
    for digit in range(schema.NUM_DIGITS):
        ext, size = (".jpg", 227) if digit % 3 == 0 else (".png", 32 + 16 * (digit % 3))
        path = os.path.join(out_dir, f"digit-{digit}{ext}")
        samples.append((_save(render_example(rng, settings, label=digit), path, size), digit))
    no_digit = {
        "no-digit-wall.png": render_example(rng, settings, label=schema.NO_DIGIT),
        "no-digit-plain.png": np.full((32, 32, 3), (182, 160, 131), np.uint8),
        "no-digit-noise.jpg": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
    }
    for name, pixels in no_digit.items():
        samples.append((_save(pixels, os.path.join(out_dir, name), 64), schema.NO_DIGIT))
    return samples


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_split_metrics(metrics_path: str) -> None:
    """The evaluated model on each eval split: the generated one and, given, the user's."""
    with tf.io.gfile.GFile(metrics_path) as f:
        report = json.load(f)
    splits = report.get("splits") or {report["eval_split"]: {"candidate": report["candidate"]}}
    verdict = "blessed" if report["blessed"] else "NOT blessed"
    print(f"\nthe evaluated model on each eval split ({verdict}):")
    print(f"{'split':<10} {'images':>6} {'accuracy':>8} {'no-digit':>8} {'ECE':>6} "
          f"{'coverage':>8} {'risk':>6} {'AUROC':>6}")
    for split, by_model in splits.items():
        m = by_model["candidate"]["calibrated"]
        confusion = m["confusion"]
        digits = sum(sum(row) for row in confusion[:schema.NO_DIGIT])
        called_none = sum(row[schema.NO_DIGIT] for row in confusion[:schema.NO_DIGIT])
        print(f"{split:<10} {m['count']:>6} {_number(m['accuracy']):>8} "
              f"{_number(called_none / digits if digits else None):>8} {_number(m['ece']):>6} "
              f"{_number(m['coverage']):>8} {_number(m['risk']):>6} "
              f"{_number(m['no_digit_auroc']):>6}")
    print("(no-digit: the share of digit images answered 'no digit'; coverage and risk: "
          "digits answered at the exported threshold, and the share of them that are wrong)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_base_path", default=configs.SERVING_MODEL_DIR)
    parser.add_argument("--model_name", default=configs.MODEL_NAME)
    parser.add_argument("--samples_dir", default=os.path.join(
        configs.ARTIFACTS_ROOT if "://" not in configs.ARTIFACTS_ROOT else tempfile.gettempdir(),
        "samples"), help="a local folder: the sample files a person can open")
    args = parser.parse_args(argv)
    if not tf.io.gfile.isdir(args.model_base_path) or \
            not tf.io.gfile.listdir(args.model_base_path):
        print(f"error: no pushed model in {args.model_base_path}; was it blessed? "
              "See the SvhnEvaluator lines in the pipeline log.", file=sys.stderr)
        return 1

    from svhn_tfx.serving.client import predict_files, wait_until_available
    samples = write_samples(args.samples_dir)
    port = free_port()
    server = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "svhn_tfx.serving.server", f"--port={port}", "--rest_api_port=0",
               f"--model_name={args.model_name}", f"--model_base_path={args.model_base_path}"]
    os.makedirs(configs.LOG_DIR, exist_ok=True)
    server_log = os.path.join(configs.LOG_DIR, "demo-server.log")
    print(f"serving {args.model_base_path} (log: {server_log})", flush=True)
    with open(server_log, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        def check_alive():
            if process.poll() is not None:
                raise RuntimeError(f"the model server exited with code {process.returncode}; "
                                   f"see {server_log}")
        wait_until_available(server, args.model_name, STARTUP_TIMEOUT_S, check_alive)
        results = predict_files(server, [path for path, _ in samples], model_name=args.model_name)
    finally:
        process.terminate()
        process.wait(timeout=30)

    print(f"\n{'file':<22} {'truth':<9} {'answer':<12} {'prob':>6}  top-3")
    names = {schema.NO_DIGIT: "no digit"}
    for (path, expected), result in zip(samples, results):
        top3 = ", ".join(f"{label}:{p:.2f}" for label, p in result["top3"])
        print(f"{os.path.basename(path):<22} {names.get(expected, str(expected)):<9} "
              f"{result['answer']:<12} {result['probability']:>6.3f}  {top3}")
    print("\nprob: the calibrated probability of the answer; 'unsure' means the model's best "
          "digit is below the abstention threshold it was exported with.")
    from svhn_tfx.components.evaluator.component import newest_report
    metrics_path, report = newest_report(configs.PIPELINE_ROOT), None
    if metrics_path:
        print_split_metrics(metrics_path)
        report = os.path.join(os.path.dirname(metrics_path), "report.html")
    versions = sorted(versions_on_disk(args.model_base_path))
    run_log = newest_run_log(configs.LOG_DIR, configs.PIPELINE_NAME)
    print("\nsummary")
    print(f"  model:  {args.model_base_path}/{versions[-1] if versions else '?'} "
          f"(svhn-tfx-serve --model_base_path={args.model_base_path}, or TF Serving)")
    if report:
        print(f"  report: {report} (reliability, risk-coverage, confusion, mistakes)")
    if run_log:
        print(f"  log:    {run_log} (the whole pipeline run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
