"""Evaluator metrics and the blessing decision, on hand-made confusion matrices."""
import numpy as np
import pytest

from components.evaluator.component import blessing_decision
from components.evaluator.metrics import ConfusionCombineFn, summarize


def _confusion(pairs):
    """[(true, predicted, count)] -> 11x11 matrix."""
    matrix = np.zeros((11, 11), np.int64)
    for true, predicted, count in pairs:
        matrix[true, predicted] += count
    return matrix


def test_summary_counts_overall_digit_and_per_class_accuracy():
    # 8 of 10 "3"s right, 2 called "8"; 5 no-digit images, 1 called "1".
    stats = summarize(_confusion([(3, 3, 8), (3, 8, 2), (10, 10, 4), (10, 1, 1)]))
    assert stats["examples"] == 15
    assert stats["accuracy"] == pytest.approx(12 / 15)
    assert stats["digit_accuracy"] == pytest.approx(8 / 10)
    assert stats["per_class_accuracy"]["3"] == pytest.approx(0.8)
    assert stats["per_class_accuracy"]["no_digit"] == pytest.approx(0.8)
    assert stats["per_class_accuracy"]["5"] is None  # no examples: unknown, not 0
    assert stats["per_class_examples"]["no_digit"] == 5


def test_confusion_combine_fn_adds_batches():
    fn = ConfusionCombineFn()
    one_hot = np.eye(11, dtype=np.float32)
    a = fn.add_input(fn.create_accumulator(), (np.array([1, 2]), one_hot[[1, 5]]))
    b = fn.add_input(fn.create_accumulator(), (np.array([10]), one_hot[[10]]))
    merged = fn.extract_output(fn.merge_accumulators([a, b]))
    assert merged.sum() == 3 and merged[1, 1] == 1 and merged[2, 5] == 1 and merged[10, 10] == 1


def test_blessing_needs_the_threshold_and_no_regression():
    good, better = {"accuracy": 0.90}, {"accuracy": 0.95}
    assert blessing_decision(good, None, min_accuracy=0.85, max_accuracy_drop=0.01) == (True, [])
    blessed, reasons = blessing_decision(good, better, min_accuracy=0.85, max_accuracy_drop=0.01)
    assert not blessed and "regresses from the blessed baseline's 0.9500" in reasons[0]
    blessed, reasons = blessing_decision(good, None, min_accuracy=0.92, max_accuracy_drop=0.01)
    assert not blessed and "below the threshold 0.9200" in reasons[0]
    # Within the allowed drop is fine.
    assert blessing_decision({"accuracy": 0.945}, better, 0.85, 0.01)[0]
