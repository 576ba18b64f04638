"""Calibration and trust metrics for the 11-class SVHN model (class 10 = "no digit"), shared
by the trainer (fitting T and the abstention threshold) and the evaluator (scoring).

Pure numpy (scipy only for the 1-D temperature search), so the metrics are testable without
TensorFlow and cheap inside Beam workers. ``TrustAccumulator`` keeps fixed-size sufficient
statistics, so the evaluator never holds the eval set in memory.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import beta

NUM_CLASSES = 11
NO_DIGIT = 10
ECE_BINS = 15
SCORE_BINS = 1000  # histogram resolution of the streaming AUROC / FPR@TPR
SCORE_LOGIT_RANGE = 12.0  # score bins split logit(score) in [-12, 12], i.e. 6e-6 .. 1 - 6e-6
TARGET_TPR = 0.95
TARGET_RISK = 0.01
# The threshold keeps TARGET_RISK with this confidence: the risk it is held to is the
# Clopper-Pearson upper bound of the hold-out's error rate, not the rate itself (a rate
# measured on a few hundred answers is itself a guess, and a threshold picked as the lowest
# one whose measured rate passes is biased towards too low). None: the measured rate.
RISK_CONFIDENCE = 0.95
TOP_MISTAKES = 16
PROB_FLOOR = 1e-12  # NLL of a zero probability is infinite; one such example would swamp the mean
# Returned when no threshold meets the target risk: only predictions at confidence exactly 1.0
# are still answered (a threshold above 1.0 would not survive a float32 cast in serving).
FALLBACK_THRESHOLD = 1.0
LOG_T_BOUNDS = (math.log(1e-2), math.log(1e3))  # temperature search range
LOG_T_TOLERANCE = 1e-6
# Streaming sums are integers in units of 2**-32: integer addition makes merge exactly
# associative and commutative (float addition is not), at a resolution far below reporting.
FIXED_POINT_SCALE = 2 ** 32


# --- Probabilities and proper scoring rules -------------------------------------------------

def log_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Stable log-softmax over the last axis of ``logits / temperature``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Stable softmax of ``logits / temperature`` (shifting by the max avoids overflow)."""
    return np.exp(log_softmax(logits, temperature))


def _probs_labels(probs, labels):
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.int64)
    if probs.ndim != 2 or labels.shape != probs.shape[:1] or not len(labels):
        raise ValueError(f"need probs [n, classes] and labels [n], n > 0; "
                         f"got {probs.shape}, {labels.shape}")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError("labels out of range")
    return probs, labels


def _example_nll(probs, labels):
    return -np.log(np.maximum(probs[np.arange(len(labels)), labels], PROB_FLOOR))


def _example_brier(probs, labels):
    return ((probs - np.eye(probs.shape[1])[labels]) ** 2).sum(axis=1)


def nll(probs, labels) -> float:
    """Mean negative log-likelihood of the true class (probabilities floored at PROB_FLOOR)."""
    return float(_example_nll(*_probs_labels(probs, labels)).mean())


def brier(probs, labels) -> float:
    """Multi-class Brier score: mean over examples of sum over classes of (p - onehot)^2."""
    return float(_example_brier(*_probs_labels(probs, labels)).mean())


# --- Calibration ------------------------------------------------------------------------------

def bin_index(values, bins: int) -> np.ndarray:
    """Equal-width bins [k/bins, (k+1)/bins) on [0, 1]; 1.0 goes in the last bin, 0 in the first."""
    return np.clip(np.floor(np.asarray(values, np.float64) * bins), 0, bins - 1).astype(np.int64)


def _confidence_correct(confidences, correct):
    confidences, correct = np.asarray(confidences, np.float64), np.asarray(correct, bool)
    if confidences.ndim != 1 or confidences.shape != correct.shape or not len(confidences):
        raise ValueError("need non-empty 1-D confidences and correct of the same length")
    return confidences, correct


def _bin_sums(confidences, correct, bins):
    idx = bin_index(confidences, bins)
    return (np.bincount(idx, minlength=bins), np.bincount(idx, confidences, bins),
            np.bincount(idx, correct, bins))


def _ece_from_sums(count, confidence_sum, correct_sum) -> float:
    # sum_b |B_b|/n * |acc_b - conf_b| == sum_b |correct_b - confidence_b| / n; empty bins add 0.
    return float(np.abs(correct_sum - confidence_sum).sum() / count.sum())


def _reliability_from_sums(count, confidence_sum, correct_sum) -> list:
    edges = np.linspace(0.0, 1.0, len(count) + 1)
    return [{"lower": float(edges[k]), "upper": float(edges[k + 1]), "count": int(c),
             "confidence": float(confidence_sum[k] / c) if c else None,
             "accuracy": float(correct_sum[k] / c) if c else None}
            for k, c in enumerate(count)]


def ece(confidences, correct, bins: int = ECE_BINS) -> float:
    """Expected calibration error (Guo et al. 2017): sum_b |B_b|/n * |acc(B_b) - conf(B_b)|."""
    return _ece_from_sums(*_bin_sums(*_confidence_correct(confidences, correct), bins))


def reliability(confidences, correct, bins: int = ECE_BINS) -> list:
    """Per-bin {lower, upper, count, confidence, accuracy} (None where empty), for plots."""
    return _reliability_from_sums(*_bin_sums(*_confidence_correct(confidences, correct), bins))


def fit_temperature(logits, labels) -> float:
    """Temperature T > 0 minimising NLL of softmax(logits / T) on held-out data.

    NLL is convex in 1/T, hence unimodal in log T, so a bounded Brent search is exact and
    deterministic. Logits may be log-probabilities (softmax ignores per-row shifts). Returns a
    bound of LOG_T_BOUNDS when the optimum lies outside it (e.g. perfectly separable data).
    """
    logits = np.asarray(logits, np.float64)
    _, labels = _probs_labels(logits, labels)
    rows = np.arange(len(labels))

    def objective(log_t):
        return -log_softmax(logits, math.exp(log_t))[rows, labels].mean()

    result = minimize_scalar(objective, bounds=LOG_T_BOUNDS, method="bounded",
                             options={"xatol": LOG_T_TOLERANCE})
    return float(math.exp(result.x))


# --- Ranking: AUROC and FPR at fixed TPR --------------------------------------------------------

def _auroc_from_counts(pos, neg) -> Optional[float]:
    """AUROC from counts per score level (ascending); ties count 1/2; None if undefined."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if not n_pos or not n_neg:
        return None
    neg_below = np.cumsum(neg) - neg
    return float(np.dot(pos, neg_below + 0.5 * neg) / (float(n_pos) * float(n_neg)))


def _fpr_at_tpr_from_counts(pos, neg, tpr) -> Optional[float]:
    """FPR at the highest level whose threshold (positive at or above it) reaches the TPR."""
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    n_pos, n_neg = pos.sum(), neg.sum()
    if not n_pos or not n_neg:
        return None
    true_pos = np.cumsum(pos[::-1])[::-1]
    false_pos = np.cumsum(neg[::-1])[::-1]
    level = np.flatnonzero(true_pos / n_pos >= tpr)[-1]
    return float(false_pos[level] / n_neg)


def _level_counts(scores, positives):
    scores, positives = np.asarray(scores, np.float64), np.asarray(positives, bool)
    if scores.ndim != 1 or scores.shape != positives.shape:
        raise ValueError("need 1-D scores and positives of the same length")
    levels, inverse = np.unique(scores, return_inverse=True)
    pos = np.bincount(inverse, positives, len(levels))
    return pos, np.bincount(inverse, minlength=len(levels)) - pos


def _defined(value, what):
    if value is None:
        raise ValueError(f"{what} needs at least one positive and one negative")
    return value


def auroc(scores, positives) -> float:
    """Exact AUROC: P(score of a positive > score of a negative), ties counted as 1/2."""
    return _defined(_auroc_from_counts(*_level_counts(scores, positives)), "auroc")


def fpr_at_tpr(scores, positives, tpr: float = TARGET_TPR) -> float:
    """FPR at the highest threshold (score >= threshold => positive) reaching TPR >= ``tpr``.

    That threshold gives the lowest FPR among all thresholds meeting the TPR target.
    """
    return _defined(_fpr_at_tpr_from_counts(*_level_counts(scores, positives), tpr), "fpr_at_tpr")


# --- Selective prediction (abstention) ----------------------------------------------------------

def selective(confidences, correct, threshold: float) -> tuple[float, float]:
    """(coverage, risk) when answering only at confidence >= threshold.

    risk = errors among answered / answered; 0.0 when nothing is answered (no wrong answers).
    """
    confidences, correct = _confidence_correct(confidences, correct)
    answered = confidences >= threshold
    n_answered = int(answered.sum())
    risk = int((answered & ~correct).sum()) / n_answered if n_answered else 0.0
    return n_answered / len(confidences), risk


def risk_coverage_curve(confidences, correct) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and risk after answering the k most confident examples, k = 1..n (stable ties)."""
    confidences, correct = _confidence_correct(confidences, correct)
    order = np.argsort(-confidences, kind="stable")
    answered = np.arange(1, len(order) + 1)
    return answered / len(order), np.cumsum(~correct[order]) / answered


def risk_upper_bound(errors, answered, confidence: float = RISK_CONFIDENCE) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound of an error rate seen as ``errors`` of
    ``answered``; ``confidence=None`` gives the rate itself."""
    errors, answered = np.asarray(errors, np.float64), np.asarray(answered, np.float64)
    if confidence is None:
        return errors / answered
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = beta.ppf(confidence, errors + 1, answered - errors)
    return np.where(errors >= answered, 1.0, bound)


def min_answers_to_certify(target_risk: float = TARGET_RISK,
                           confidence: float = RISK_CONFIDENCE) -> int:
    """Answered digits a hold-out needs, all right, before any threshold can keep the promise:
    299 for 1% at 95%."""
    if confidence is None:
        return 1
    return math.ceil(math.log(1 - confidence) / math.log(1 - target_risk))


def choose_abstention_threshold(confidences, correct, target_risk: float = TARGET_RISK,
                                confidence: Optional[float] = RISK_CONFIDENCE) -> float:
    """Smallest threshold t whose risk bound (``risk_upper_bound`` of the examples with
    confidence >= t) is <= target_risk, i.e. maximal coverage under the promise.

    Candidates are the observed confidences (ties are answered together). Risk is not monotone
    in t, so every candidate is checked. Returns FALLBACK_THRESHOLD if none meets the target
    (with the bound, always when fewer than ``min_answers_to_certify`` examples are given).
    """
    confidences, correct = _confidence_correct(confidences, correct)
    order = np.argsort(-confidences, kind="stable")
    sorted_conf = confidences[order]
    group_end = np.flatnonzero(np.r_[sorted_conf[1:] != sorted_conf[:-1], True])
    errors = np.cumsum(~correct[order])[group_end]
    meets = risk_upper_bound(errors, group_end + 1, confidence) <= target_risk
    if not meets.any():
        return FALLBACK_THRESHOLD
    return float(sorted_conf[group_end[np.flatnonzero(meets)[-1]]])


# --- Streaming accumulator for Beam ---------------------------------------------------------

def _quantize(values) -> np.ndarray:
    return np.round(np.asarray(values, np.float64) * FIXED_POINT_SCALE).astype(np.int64)


def _zeros(*shape):
    return dataclasses.field(default_factory=lambda: np.zeros(shape, np.int64))


def score_bin(scores) -> np.ndarray:
    """SCORE_BINS bins of equal width in logit(score), for the streaming ranking metrics.

    Confident models put most scores within 1e-3 of 0 or 1, where equal-width bins in the score
    itself would tie them all (and e.g. report FPR 1.0 when the 95%-TPR threshold lies there);
    a monotone transform changes no ranking, so AUROC and FPR@TPR only lose within-bin order.
    """
    s = np.clip(np.asarray(scores, np.float64), PROB_FLOOR, 1 - PROB_FLOOR)
    return bin_index((np.log(s) - np.log1p(-s)) / (2 * SCORE_LOGIT_RANGE) + 0.5, SCORE_BINS)


def _add_histogram(histogram, scores, positives):
    """histogram[1] counts positives, histogram[0] negatives, per score bin."""
    np.add.at(histogram, (positives.astype(np.int64), score_bin(scores)), 1)


def _top_mistakes(mistakes):
    return sorted(mistakes, key=lambda m: (-m[0], repr(m[1]), m[2], m[3]))[:TOP_MISTAKES]


@dataclasses.dataclass(eq=False)
class TrustAccumulator:
    """Fixed-size, picklable sufficient statistics for every trust metric; merge is exact.

    Integer state only (fixed-point sums, counts, histograms), so any batching and merge order
    gives identical results. The AUROC / FPR@95%TPR metrics come from SCORE_BINS-bin score
    histograms (see ``score_bin``): scores sharing a bin count as tied, so they approximate the
    exact values (within 0.01 on the tests' data). ``add_batch`` and ``merge`` update in place
    and return self.
    """
    threshold: Optional[float] = None
    confusion: np.ndarray = _zeros(NUM_CLASSES, NUM_CLASSES)  # rows: label, columns: argmax
    nll_sum: int = 0  # fixed point
    brier_sum: int = 0  # fixed point
    bin_count: np.ndarray = _zeros(ECE_BINS)
    bin_confidence: np.ndarray = _zeros(ECE_BINS)  # fixed point
    bin_correct: np.ndarray = _zeros(ECE_BINS)
    no_digit_histogram: np.ndarray = _zeros(2, SCORE_BINS)  # score = p(no digit)
    max_softmax_histogram: np.ndarray = _zeros(2, SCORE_BINS)  # score = 1 - max digit prob
    answered: int = 0
    answered_wrong: int = 0
    # digit predictions by confidence bin: [0] wrong, [1] right (the risk-coverage curve)
    digit_answer_histogram: np.ndarray = _zeros(2, SCORE_BINS)
    mistakes: list = dataclasses.field(default_factory=list)  # (confidence, example, label, predicted)

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    def _agree_threshold(self, threshold):
        if threshold is None:
            return
        if self.threshold is not None and self.threshold != threshold:
            raise ValueError(f"threshold {threshold} differs from {self.threshold}")
        self.threshold = float(threshold)

    def add_batch(self, probs, labels, threshold: float,
                  examples: Optional[Sequence[Any]] = None):
        """Adds [n, 11] probabilities and [n] labels. ``examples`` are what the mistakes list
        shows for each row (the evaluator passes the base64 image; default: the running index,
        meaningful only for a single sequential accumulator)."""
        probs, labels = _probs_labels(probs, labels)
        if probs.shape[1] != NUM_CLASSES:
            raise ValueError(f"need {NUM_CLASSES} classes, got {probs.shape[1]}")
        self._agree_threshold(threshold)
        n = len(labels)
        examples = list(range(self.count, self.count + n)) if examples is None else list(examples)
        if len(examples) != n:
            raise ValueError("examples and labels differ in length")
        predicted = probs.argmax(axis=1)
        confidence = probs[np.arange(n), predicted]
        correct = predicted == labels

        np.add.at(self.confusion, (labels, predicted), 1)
        self.nll_sum += int(_quantize(_example_nll(probs, labels)).sum())
        self.brier_sum += int(_quantize(_example_brier(probs, labels)).sum())
        bins = bin_index(confidence, ECE_BINS)
        np.add.at(self.bin_count, bins, 1)
        np.add.at(self.bin_confidence, bins, _quantize(confidence))
        np.add.at(self.bin_correct, bins, correct.astype(np.int64))
        positive = labels == NO_DIGIT
        _add_histogram(self.no_digit_histogram, probs[:, NO_DIGIT], positive)
        _add_histogram(self.max_softmax_histogram, 1.0 - probs[:, :NO_DIGIT].max(axis=1), positive)
        says_digit = predicted != NO_DIGIT
        _add_histogram(self.digit_answer_histogram, confidence[says_digit], correct[says_digit])
        answered = says_digit & (confidence >= threshold)
        self.answered += int(answered.sum())
        self.answered_wrong += int((answered & ~correct).sum())

        wrong = np.flatnonzero(~correct)
        if len(wrong) > TOP_MISTAKES:  # keep ties at the cut so the tie-break stays exact
            wrong = wrong[confidence[wrong] >= np.sort(confidence[wrong])[-TOP_MISTAKES]]
        self.mistakes = _top_mistakes(self.mistakes + [
            (float(confidence[i]), examples[i], int(labels[i]), int(predicted[i])) for i in wrong])
        return self

    def merge(self, other: "TrustAccumulator") -> "TrustAccumulator":
        """Adds ``other`` into self (both must use the same threshold)."""
        self._agree_threshold(other.threshold)
        for field in dataclasses.fields(self):
            if field.name not in ("threshold", "mistakes"):
                setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        self.mistakes = _top_mistakes(self.mistakes + other.mistakes)
        return self

    def _risk_coverage(self) -> dict:
        """Coverage (answered digits / all examples) and risk as the threshold is lowered
        through the confidence bins, from the most confident down (histogram resolution)."""
        wrong, right = self.digit_answer_histogram[:, ::-1]
        answered = np.cumsum(wrong + right)
        keep = np.flatnonzero((wrong + right) > 0)
        n = self.count
        return {"coverage": (answered[keep] / n).tolist() if n else [],
                "risk": (np.cumsum(wrong)[keep] / answered[keep]).tolist()}

    def result(self) -> dict:
        """JSON-ready metrics; None wherever a metric is undefined (e.g. no examples of a class)."""
        n = self.count
        diagonal, per_class = np.diag(self.confusion), self.confusion.sum(axis=1)
        digit_examples = int(per_class[:NO_DIGIT].sum())
        bin_confidence = self.bin_confidence / FIXED_POINT_SCALE
        (no_digit_neg, no_digit_pos), (max_softmax_neg, max_softmax_pos) = (
            self.no_digit_histogram, self.max_softmax_histogram)
        return {
            "count": n,
            "accuracy": int(diagonal.sum()) / n if n else None,
            "per_class_accuracy":
                [int(d) / int(c) if c else None for d, c in zip(diagonal, per_class)],
            "digits_only_accuracy":
                int(diagonal[:NO_DIGIT].sum()) / digit_examples if digit_examples else None,
            "nll": self.nll_sum / FIXED_POINT_SCALE / n if n else None,
            "brier": self.brier_sum / FIXED_POINT_SCALE / n if n else None,
            "ece": _ece_from_sums(self.bin_count, bin_confidence, self.bin_correct) if n else None,
            "reliability": _reliability_from_sums(self.bin_count, bin_confidence, self.bin_correct),
            "confusion": self.confusion.tolist(),
            "no_digit_auroc": _auroc_from_counts(no_digit_pos, no_digit_neg),
            "no_digit_fpr_at_95tpr":
                _fpr_at_tpr_from_counts(no_digit_pos, no_digit_neg, TARGET_TPR),
            "max_softmax_auroc": _auroc_from_counts(max_softmax_pos, max_softmax_neg),
            "max_softmax_fpr_at_95tpr":
                _fpr_at_tpr_from_counts(max_softmax_pos, max_softmax_neg, TARGET_TPR),
            "threshold": self.threshold,
            "coverage": self.answered / n if n else None,
            "risk": self.answered_wrong / self.answered if self.answered else 0.0,
            "risk_coverage": self._risk_coverage(),
            "top_mistakes": [{"example": e, "label": label, "predicted": predicted, "confidence": c}
                             for c, e, label, predicted in self.mistakes],
        }
