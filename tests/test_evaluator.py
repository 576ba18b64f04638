"""The blessing gates and the evaluator's Beam combine, on hand-made inputs."""
import dataclasses

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that

from svhn_tfx.components.evaluator.blessing import Gates, blessing_decision
from svhn_tfx.components.evaluator.metrics import CALIBRATED, UNCALIBRATED, TrustCombineFn

GATES = Gates(min_accuracy=0.85, max_ece=0.05, min_no_digit_auroc=0.95, max_accuracy_drop=0.01,
              max_ece_rise=0.01, max_auroc_drop=0.01)
GOOD = {"accuracy": 0.90, "ece": 0.02, "no_digit_auroc": 0.98}


def test_a_model_clearing_every_gate_is_blessed():
    assert blessing_decision(GOOD, None, GATES) == (True, [])
    assert blessing_decision(GOOD, dict(GOOD, accuracy=0.905), GATES) == (True, [])  # within margin


@pytest.mark.parametrize("change, message", [
    (dict(accuracy=0.80), "accuracy 0.8000 is below the threshold 0.8500"),
    (dict(ece=0.08), "ECE 0.0800 is above the threshold 0.0500"),
    (dict(no_digit_auroc=0.90), "no-digit AUROC 0.9000 is below the threshold 0.9500"),
    (dict(no_digit_auroc=None), "no-digit AUROC is undefined"),
])
def test_each_absolute_gate_fails_alone_and_says_which(change, message):
    blessed, failures = blessing_decision(dict(GOOD, **change), None, GATES)
    assert not blessed and len(failures) == 1 and message in failures[0]


@pytest.mark.parametrize("baseline_change, message", [
    (dict(accuracy=0.93), "accuracy 0.9000 regresses from the blessed baseline's 0.9300"),
    (dict(ece=0.005), "ECE 0.0200 is worse than the blessed baseline's 0.0050"),
    (dict(no_digit_auroc=0.995), "no-digit AUROC 0.9800 regresses from the blessed baseline's"),
])
def test_a_candidate_worse_than_the_baseline_on_any_gate_is_not_blessed(baseline_change, message):
    blessed, failures = blessing_decision(GOOD, dict(GOOD, **baseline_change), GATES)
    assert not blessed and len(failures) == 1 and message in failures[0]


def test_gates_are_configurable():
    strict = dataclasses.replace(GATES, max_ece=0.01)
    assert not blessing_decision(GOOD, None, strict)[0]


def _scored_batch(labels, probabilities, threshold=0.5):
    probabilities = np.asarray(probabilities, np.float64)
    examples = [f"image{i}" for i in range(len(labels))]
    calibration = {"temperature": 1.0, "abstain_threshold": threshold}
    return (np.asarray(labels), probabilities, probabilities, examples, calibration)


def test_trust_combine_over_beam_equals_one_accumulator():
    """The Beam combine (batches split across bundles) gives the metrics of the whole set."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 11)) * 3
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 11, 300)
    batches = [_scored_batch(labels[i:i + 50], probabilities[i:i + 50]) for i in range(0, 300, 50)]
    fn = TrustCombineFn()
    whole = fn.extract_output(fn.add_input(fn.create_accumulator(),
                                           _scored_batch(labels, probabilities)))

    def check(results):
        (result,) = results
        assert result[CALIBRATED]["count"] == 300
        for key in ("accuracy", "nll", "brier", "ece", "no_digit_auroc", "coverage", "risk"):
            assert result[CALIBRATED][key] == pytest.approx(whole[CALIBRATED][key], abs=1e-9)
        assert result[UNCALIBRATED]["ece"] == pytest.approx(whole[UNCALIBRATED]["ece"])
        assert result["abstain_threshold"] == 0.5 and result["temperature"] == 1.0

    with beam.Pipeline() as p:
        combined = p | beam.Create(batches) | beam.CombineGlobally(TrustCombineFn())
        assert_that(combined, check)


def test_split_gates_name_only_the_gates_they_set():
    from svhn_tfx.components.evaluator.blessing import OPEN_GATES, parse_split_gates, split_gates_json
    gates = parse_split_gates('{"real": {"min_accuracy": 0.9, "max_ece": 0.05}}')
    assert gates == {"real": dataclasses.replace(OPEN_GATES, min_accuracy=0.9, max_ece=0.05)}
    assert parse_split_gates(split_gates_json(gates)) == gates
    assert parse_split_gates("") == {}
    with pytest.raises(ValueError, match="unknown gate.*min_acuracy"):
        parse_split_gates('{"real": {"min_acuracy": 0.9}}')


def test_a_split_without_no_digit_examples_passes_when_no_auroc_gate_is_set():
    """Real digit crops have no backgrounds: AUROC is undefined, and only a set gate fails."""
    from svhn_tfx.components.evaluator.blessing import OPEN_GATES
    digits_only = dict(GOOD, no_digit_auroc=None)
    assert blessing_decision(digits_only, None, dataclasses.replace(
        OPEN_GATES, min_accuracy=0.85)) == (True, [])
    assert not blessing_decision(digits_only, None, GATES)[0]


def test_eval_splits_are_all_but_the_ones_fitted_on():
    from svhn_tfx.components.evaluator.component import eval_splits
    assert eval_splits(["train", "eval", "calibration", "real"], "eval") == ["eval", "real"]
    assert eval_splits(["train", "eval", "real"], "real") == ["real", "eval"]
    with pytest.raises(ValueError, match="'test' is not among"):
        eval_splits(["train", "eval"], "test")
