"""SvhnEvaluator: measures whether the candidate's answers can be trusted, and blesses on it.

For the candidate and the last blessed model it computes, as one Beam pipeline over every
eval split (each split reported on its own, like TFMA slices): accuracy (overall, per
class, digits only), NLL, Brier, ECE before and after temperature scaling, no-digit AUROC
and FPR@95%TPR (and the same for the max-softmax baseline), coverage and risk at the
exported abstention threshold, the confusion matrix and the most confident mistakes. The
eval splits are all splits but train and calibration; the default gates apply to
``eval_split`` and ``split_gates`` name gates for others (e.g. the user's real crops). The
ModelEvaluation artifact gets ``metrics.json``, PNG plots and ``report.html``. Like TFX's
own Evaluator it writes ``BLESSED`` / ``NOT_BLESSED`` and the ``blessed`` /
``current_model_id`` custom properties that Pusher and the LatestBlessedModelStrategy
resolver read.
"""
import dataclasses
import json
import os
import shutil
import tempfile
from typing import List, Optional

import apache_beam as beam
from absl import logging
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import path_utils

from svhn_tfx import schema
from svhn_tfx.components.evaluator import report as report_writer
from svhn_tfx.components.evaluator.blessing import Gates, blessing_decision, parse_split_gates
from svhn_tfx.components.evaluator.metrics import TrustMetrics

CANDIDATE = "candidate"
BASELINE = "baseline"
METRICS_FILE = "metrics.json"
RESULTS_PREFIX = "results"


def reports(pipeline_root: str) -> List[str]:
    """The METRICS_FILEs of the SvhnEvaluator executions under a pipeline root, newest first
    (TFX writes <root>/SvhnEvaluator/evaluation/<execution id>/)."""
    found = tfx.dsl.io.fileio.glob(os.path.join(pipeline_root, "SvhnEvaluator", "evaluation",
                                                "*", METRICS_FILE))
    return sorted(found, key=lambda p: int(os.path.basename(os.path.dirname(p))), reverse=True)


def newest_report(pipeline_root: str) -> Optional[str]:
    """The newest of ``reports``, or None if the evaluator never ran."""
    found = reports(pipeline_root)
    return found[0] if found else None


def _read_results(path_prefix: str) -> dict:
    """{split: {model name: metrics}}."""
    results = {}
    for name in tfx.dsl.io.fileio.glob(path_prefix + "*"):
        with tfx.dsl.io.fileio.open(name) as f:
            for line in f:
                model_name, split, metrics = json.loads(line)
                results.setdefault(split, {})[model_name] = metrics
    return results


def eval_splits(split_names, main_split: str) -> list:
    """The splits to evaluate: the main one first, then every other split not trained or
    calibrated on."""
    if main_split not in split_names:
        raise ValueError(f"eval split {main_split!r} is not among the examples' splits "
                         f"{list(split_names)}")
    fitted = (schema.TRAIN_SPLIT, schema.CALIBRATION_SPLIT)
    return [main_split] + [s for s in split_names if s not in fitted and s != main_split]


def _decide(results: dict, main_split: str, gates: Gates, split_gates: dict) -> tuple:
    """Blessed or not, and every failed gate, over the main split and each gated split."""
    failures = []
    for split, split_gate in [(main_split, gates)] + sorted(split_gates.items()):
        if split not in results:
            failures.append(f"a gate names split {split!r}, which has no examples to "
                            f"evaluate (splits: {', '.join(sorted(results))})")
            continue
        by_model = results[split]
        _, failed = blessing_decision(_gate_view(by_model[CANDIDATE]),
                                      by_model.get(BASELINE) and _gate_view(by_model[BASELINE]),
                                      split_gate)
        failures += failed if split == main_split else [f"split {split!r}: {f}" for f in failed]
    return not failures, failures


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
    split_gates: tfx.dsl.components.Parameter[str] = "",
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    gates = Gates(min_accuracy, max_ece, min_no_digit_auroc, max_accuracy_drop, max_ece_rise,
                  max_auroc_drop)
    named_gates = parse_split_gates(split_gates)
    splits = eval_splits(artifact_utils.decode_split_names(examples.split_names), eval_split)
    model_dirs = {CANDIDATE: path_utils.serving_model_path(model.uri)}
    if baseline_model is not None:
        model_dirs[BASELINE] = path_utils.serving_model_path(baseline_model.uri)
    results_prefix = os.path.join(evaluation.uri, RESULTS_PREFIX)
    with beam_pipeline as p:
        tagged = [p
                  | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
                      os.path.join(artifact_utils.get_split_uri([examples], split), "*"))
                  | f"Tag[{split}]" >> beam.Map(lambda record, s=split: (s, record))
                  for split in splits]
        _ = (tagged
             | "AllSplits" >> beam.Flatten()
             | "Score" >> TrustMetrics(model_dirs)
             | "ToJson" >> beam.MapTuple(
                 lambda key, metrics: json.dumps([key[0], key[1], metrics]))
             | "Write" >> beam.io.WriteToText(results_prefix))
    results = _read_results(results_prefix)
    for by_model in results.values():
        for name, path in model_dirs.items():
            by_model[name]["uri"] = path

    candidate, baseline = results[eval_split][CANDIDATE], results[eval_split].get(BASELINE)
    blessed, failures = _decide(results, eval_split, gates, named_gates)
    if baseline_model is not None and baseline_model.id == model.id:
        # A re-run whose trainer was cached: the candidate *is* the blessed model. Blessing
        # it again would only make Pusher push a duplicate version.
        blessed = False
        failures.append(f"the candidate is the blessed baseline itself (model artifact "
                        f"{model.id}), already pushed: nothing new to push")
    # candidate / baseline: the main eval split, as before; splits: every eval split.
    report = {"blessed": blessed, "failed_gates": failures, "gates": dataclasses.asdict(gates),
              "split_gates": {s: dataclasses.asdict(g) for s, g in named_gates.items()},
              "eval_split": eval_split, "candidate": candidate, "baseline": baseline,
              "splits": {split: {"candidate": results[split][CANDIDATE],
                                 "baseline": results[split].get(BASELINE)} for split in splits}}

    local = tempfile.mkdtemp(prefix="svhn-evaluation-")
    try:
        with open(os.path.join(local, METRICS_FILE), "w") as f:
            json.dump(report, f, indent=2)
        images = report_writer.write_plots(local, candidate)
        for split in splits[1:]:
            images.update(report_writer.write_split_plots(
                local, split, report["splits"][split][CANDIDATE]))
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

    for split in splits:
        for name in (CANDIDATE, BASELINE):
            scored = report["splits"][split][name]
            if scored:
                for line in report_writer.headline_lines(f"{name} on {split!r}", scored):
                    logging.info("SvhnEvaluator: %s", line)
    logging.info("SvhnEvaluator: report %s",
                 os.path.join(evaluation.uri, report_writer.REPORT_HTML))
    if blessed:
        logging.info("SvhnEvaluator: BLESSED")
    else:
        logging.warning("SvhnEvaluator: NOT BLESSED, so Pusher will not push it: %s",
                        "; ".join(failures))
