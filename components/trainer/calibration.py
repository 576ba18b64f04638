"""Post-training calibration on a held-out split: a temperature and an abstention threshold.

Softmax outputs of a trained CNN are over-confident. Temperature scaling (Guo et al. 2017,
"On Calibration of Modern Neural Networks") divides the logits by one scalar T fitted by
minimising NLL on data training never saw; it cannot change the arg-max, so accuracy is
untouched. The abstention threshold is then chosen on the same held-out data: the lowest
calibrated confidence at which answered digits are wrong at most ``target_risk`` of the time,
with 95% confidence (``trust.RISK_CONFIDENCE``: the upper bound of the measured rate).
"""
import numpy as np
import tensorflow as tf
from absl import logging

from svhn_tfx.components import trust
from svhn_tfx.schema.signatures import ANSWER_KINDS, ANSWER_SHARES

# One training record in CALIBRATION_BUCKETS is held out (by a hash of its bytes, so the
# split is deterministic and a duplicated image never lands on both sides).
CALIBRATION_BUCKETS = 10


def is_calibration_record(serialized: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.to_hash_bucket_fast(serialized, CALIBRATION_BUCKETS), 0)


def logits_and_labels(model, dataset: tf.data.Dataset):
    logits, labels = [], []
    for images, batch_labels in dataset:
        logits.append(model(images, training=False).numpy())
        labels.append(batch_labels.numpy())
    if not logits:
        raise ValueError("the calibration split is empty: too few training examples")
    return np.concatenate(logits), np.concatenate(labels)


def calibrate(logits: np.ndarray, labels: np.ndarray, target_risk: float) -> dict:
    """Fits T and the threshold; returns them with before/after numbers for the record."""
    temperature = np.float32(trust.fit_temperature(logits, labels))
    before = trust.softmax(logits)
    # The threshold is compared in float32 in the serving graph: choose it on exactly the
    # float32 confidences that graph computes, so the example at the threshold is answered.
    after = tf.nn.softmax(tf.constant(logits, tf.float32) / temperature).numpy()
    predicted = after.argmax(axis=1)
    confidence = after.max(axis=1)
    says_digit = predicted != trust.NO_DIGIT
    if says_digit.any():
        digit_confidence, digit_right = confidence[says_digit], (predicted == labels)[says_digit]
        threshold = trust.choose_abstention_threshold(digit_confidence, digit_right, target_risk)
        coverage, risk = trust.selective(digit_confidence, digit_right, threshold)
        needed = trust.min_answers_to_certify(target_risk)
        if threshold == trust.FALLBACK_THRESHOLD and says_digit.sum() < needed:
            logging.warning(
                "calibration: %d held-out digits cannot show risk <= %g with %g confidence "
                "(it takes at least %d, all right): the model will answer almost nothing; "
                "train on more examples or give a larger calibration split",
                says_digit.sum(), target_risk, trust.RISK_CONFIDENCE, needed)
    else:
        threshold, coverage, risk = trust.FALLBACK_THRESHOLD, 0.0, 0.0
    answered = says_digit & (confidence >= np.float32(threshold))
    return {
        "temperature": float(temperature),
        "abstain_threshold": float(threshold),
        "target_risk": target_risk,
        "risk_confidence": trust.RISK_CONFIDENCE,
        "examples": int(len(labels)),
        "accuracy": float(np.mean(predicted == labels)),
        "nll_before": trust.nll(before, labels),
        "nll_after": trust.nll(after, labels),
        "ece_before": trust.ece(before.max(axis=1), before.argmax(axis=1) == labels),
        "ece_after": trust.ece(confidence, predicted == labels),
        # among examples predicted as a digit: the share answered, and their error rate
        "digit_coverage": float(coverage),
        "digit_risk": float(risk),
        # what the served model's answers look like on data like this: the server watches
        # its live answers drift away from these shares
        ANSWER_SHARES: dict(zip(ANSWER_KINDS, (float(np.mean(~says_digit)),
                                               float(np.mean(~answered))))),
    }
