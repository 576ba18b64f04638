"""SvhnEvaluator: scores the candidate (and the last blessed model) and decides the blessing.

Writes ``metrics.json`` into the ModelEvaluation artifact and, like TFX's own Evaluator, a
``BLESSED`` or ``NOT_BLESSED`` file plus the ``blessed`` / ``current_model_id`` custom
properties into the ModelBlessing artifact, which is what Pusher and the
LatestBlessedModelStrategy resolver read.
"""
import json
import os

import apache_beam as beam
from absl import logging
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.evaluator.metrics import ConfusionMatrices, summarize

CANDIDATE = "candidate"
BASELINE = "baseline"
METRICS_FILE = "metrics.json"


def blessing_decision(candidate: dict, baseline, min_accuracy: float,
                      max_accuracy_drop: float):
    """Returns (blessed, reasons): every gate that failed, in words a person can act on."""
    failures = []
    if candidate["accuracy"] < min_accuracy:
        failures.append(f"accuracy {candidate['accuracy']:.4f} is below the threshold "
                        f"{min_accuracy:.4f}")
    if baseline is not None and candidate["accuracy"] < baseline["accuracy"] - max_accuracy_drop:
        failures.append(f"accuracy {candidate['accuracy']:.4f} regresses from the blessed "
                        f"baseline's {baseline['accuracy']:.4f} by more than "
                        f"{max_accuracy_drop:.4f}")
    return not failures, failures


def _read_results(path_prefix: str) -> dict:
    results = {}
    for name in tfx.dsl.io.fileio.glob(path_prefix + "*"):
        with tfx.dsl.io.fileio.open(name) as f:
            for line in f:
                model_name, confusion = json.loads(line)
                results[model_name] = summarize(confusion)
    return results


@tfx.dsl.components.component(use_beam=True)
def SvhnEvaluator(
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    evaluation: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    blessing: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    baseline_model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model] = None,
    eval_split: tfx.dsl.components.Parameter[str] = "eval",
    min_accuracy: tfx.dsl.components.Parameter[float] = 0.5,
    max_accuracy_drop: tfx.dsl.components.Parameter[float] = 0.01,
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    model_dirs = {CANDIDATE: path_utils.serving_model_path(model.uri)}
    if baseline_model is not None:
        model_dirs[BASELINE] = path_utils.serving_model_path(baseline_model.uri)
    pattern = os.path.join(artifact_utils.get_split_uri([examples], eval_split), "*")
    results_prefix = os.path.join(evaluation.uri, "confusion")
    with beam_pipeline as p:
        _ = (p
             | "ReadExamples" >> beam.io.ReadFromTFRecord(pattern)
             | "Score" >> ConfusionMatrices(model_dirs)
             | "ToJson" >> beam.MapTuple(lambda name, c: json.dumps([name, c.tolist()]))
             | "Write" >> beam.io.WriteToText(results_prefix))
    results = _read_results(results_prefix)

    candidate, baseline = results[CANDIDATE], results.get(BASELINE)
    blessed, failures = blessing_decision(candidate, baseline, min_accuracy, max_accuracy_drop)
    report = {
        "blessed": blessed,
        "failed_gates": failures,
        "thresholds": {"min_accuracy": min_accuracy, "max_accuracy_drop": max_accuracy_drop},
        "candidate": {"uri": model.uri, **candidate},
        "baseline": None if baseline is None else {"uri": baseline_model.uri, **baseline},
    }
    with tfx.dsl.io.fileio.open(os.path.join(evaluation.uri, METRICS_FILE), "w") as f:
        json.dump(report, f, indent=2)
    with tfx.dsl.io.fileio.open(
            os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w") as f:
        f.write("\n".join(failures))
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_string_custom_property("current_model", model.uri)
    blessing.set_int_custom_property("current_model_id", model.id)
    if baseline_model is not None:
        blessing.set_string_custom_property("baseline_model", baseline_model.uri)
        blessing.set_int_custom_property("baseline_model_id", baseline_model.id)

    base = "none" if baseline is None else f"{baseline['accuracy']:.4f}"
    logging.info("SvhnEvaluator: accuracy %.4f on %d %s examples (baseline %s)",
                 candidate["accuracy"], candidate["examples"], eval_split, base)
    if blessed:
        logging.info("SvhnEvaluator: BLESSED")
    else:
        logging.warning("SvhnEvaluator: NOT BLESSED, so Pusher will not push it: %s",
                        "; ".join(failures))
