"""SvhnEvaluator: measures whether the candidate's answers can be trusted, and blesses on it.

For the candidate and the last blessed model it computes, as a Beam pipeline over the eval
split: accuracy (overall, per class, digits only), NLL, Brier, ECE before and after
temperature scaling, no-digit AUROC and FPR@95%TPR (and the same for the max-softmax
baseline), coverage and risk at the exported abstention threshold, the confusion matrix
and the most confident mistakes. The ModelEvaluation artifact gets ``metrics.json``, PNG
plots and ``report.html``. Like TFX's own Evaluator it writes ``BLESSED`` /
``NOT_BLESSED`` and the ``blessed`` / ``current_model_id`` custom properties that Pusher and
the LatestBlessedModelStrategy resolver read.
"""
import dataclasses
import json
import os
import shutil
import tempfile

import apache_beam as beam
from absl import logging
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.evaluator import report as report_writer
from components.evaluator.blessing import Gates, blessing_decision
from components.evaluator.metrics import TrustMetrics

CANDIDATE = "candidate"
BASELINE = "baseline"
METRICS_FILE = "metrics.json"
RESULTS_PREFIX = "results"


def _read_results(path_prefix: str) -> dict:
    results = {}
    for name in tfx.dsl.io.fileio.glob(path_prefix + "*"):
        with tfx.dsl.io.fileio.open(name) as f:
            for line in f:
                model_name, metrics = json.loads(line)
                results[model_name] = metrics
    return results


def _gate_view(scored: dict) -> dict:
    metrics = scored["calibrated"]
    return {key: metrics[key] for key in ("accuracy", "ece", "no_digit_auroc")}


def _publish(local_dir: str, uri: str) -> None:
    """Copies the report files into the artifact (which may be on a remote filesystem)."""
    for name in os.listdir(local_dir):
        tfx.dsl.io.fileio.copy(os.path.join(local_dir, name), os.path.join(uri, name),
                               overwrite=True)


@tfx.dsl.components.component(use_beam=True)
def SvhnEvaluator(
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    evaluation: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    blessing: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    baseline_model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model] = None,
    eval_split: tfx.dsl.components.Parameter[str] = "eval",
    min_accuracy: tfx.dsl.components.Parameter[float] = Gates.min_accuracy,
    max_ece: tfx.dsl.components.Parameter[float] = Gates.max_ece,
    min_no_digit_auroc: tfx.dsl.components.Parameter[float] = Gates.min_no_digit_auroc,
    max_accuracy_drop: tfx.dsl.components.Parameter[float] = Gates.max_accuracy_drop,
    max_ece_rise: tfx.dsl.components.Parameter[float] = Gates.max_ece_rise,
    max_auroc_drop: tfx.dsl.components.Parameter[float] = Gates.max_auroc_drop,
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    gates = Gates(min_accuracy, max_ece, min_no_digit_auroc, max_accuracy_drop, max_ece_rise,
                  max_auroc_drop)
    model_dirs = {CANDIDATE: path_utils.serving_model_path(model.uri)}
    if baseline_model is not None:
        model_dirs[BASELINE] = path_utils.serving_model_path(baseline_model.uri)
    pattern = os.path.join(artifact_utils.get_split_uri([examples], eval_split), "*")
    results_prefix = os.path.join(evaluation.uri, RESULTS_PREFIX)
    with beam_pipeline as p:
        _ = (p
             | "ReadExamples" >> beam.io.ReadFromTFRecord(pattern)
             | "Score" >> TrustMetrics(model_dirs)
             | "ToJson" >> beam.MapTuple(lambda name, metrics: json.dumps([name, metrics]))
             | "Write" >> beam.io.WriteToText(results_prefix))
    results = _read_results(results_prefix)
    for name, path in model_dirs.items():
        results[name]["uri"] = path

    candidate, baseline = results[CANDIDATE], results.get(BASELINE)
    blessed, failures = blessing_decision(
        _gate_view(candidate), baseline and _gate_view(baseline), gates)
    if baseline_model is not None and baseline_model.id == model.id:
        # A re-run whose trainer was cached: the candidate *is* the blessed model. Blessing
        # it again would only make Pusher push a duplicate version.
        blessed = False
        failures.append(f"the candidate is the blessed baseline itself (model artifact "
                        f"{model.id}), already pushed: nothing new to push")
    report = {"blessed": blessed, "failed_gates": failures, "gates": dataclasses.asdict(gates),
              "eval_split": eval_split, "candidate": candidate, "baseline": baseline}

    local = tempfile.mkdtemp(prefix="svhn-evaluation-")
    try:
        with open(os.path.join(local, METRICS_FILE), "w") as f:
            json.dump(report, f, indent=2)
        images = report_writer.write_plots(local, candidate)
        report_writer.write_html(local, report, images)
        _publish(local, evaluation.uri)
    finally:
        shutil.rmtree(local, ignore_errors=True)

    with tfx.dsl.io.fileio.open(
            os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w") as f:
        f.write("\n".join(failures))
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_string_custom_property("current_model", model.uri)
    blessing.set_int_custom_property("current_model_id", model.id)
    if baseline_model is not None:
        blessing.set_string_custom_property("baseline_model", baseline_model.uri)
        blessing.set_int_custom_property("baseline_model_id", baseline_model.id)

    for name, scored in ((CANDIDATE, candidate), (BASELINE, baseline)):
        if scored:
            for line in report_writer.headline_lines(name, scored):
                logging.info("SvhnEvaluator: %s", line)
    logging.info("SvhnEvaluator: report %s",
                 os.path.join(evaluation.uri, report_writer.REPORT_HTML))
    if blessed:
        logging.info("SvhnEvaluator: BLESSED")
    else:
        logging.warning("SvhnEvaluator: NOT BLESSED, so Pusher will not push it: %s",
                        "; ".join(failures))
