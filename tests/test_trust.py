"""Calibration and trust metrics: hand-computed cases, synthetic calibration, streaming merge."""
import itertools
import math
import pickle

import numpy as np
import pytest

from svhn_tfx.components import trust
from svhn_tfx.components.evaluator import plots
from svhn_tfx.components.trust import TrustAccumulator

PNG_MAGIC = b"\x89PNG"


# --- Scoring rules and calibration on hand-computed cases ------------------------------------

def test_softmax_is_stable_and_applies_temperature():
    np.testing.assert_allclose(trust.softmax([[1000.0, 1000.0]]), [[0.5, 0.5]])
    np.testing.assert_allclose(trust.softmax([0.0, 2 * math.log(3)], temperature=2), [0.25, 0.75])
    with pytest.raises(ValueError):
        trust.softmax([0.0, 1.0], temperature=0)


def test_nll_and_brier_by_hand():
    probs = [[0.7, 0.2, 0.1], [0.1, 0.5, 0.4]]
    labels = [0, 2]
    assert trust.nll(probs, labels) == pytest.approx(-(math.log(0.7) + math.log(0.4)) / 2)
    # (0.3^2 + 0.2^2 + 0.1^2 + 0.1^2 + 0.5^2 + 0.6^2) / 2
    assert trust.brier(probs, labels) == pytest.approx((0.14 + 0.62) / 2)
    assert trust.nll([[1.0, 0.0]], [1]) == pytest.approx(-math.log(trust.PROB_FLOOR))


def test_ece_by_hand():
    # Two bins. [0.5, 1]: conf 2.6/3, acc 2/3 -> 3/4 * 0.2; [0, 0.5): conf 0.3, acc 1 -> 1/4 * 0.7.
    assert trust.ece([0.9, 0.9, 0.8, 0.3], [1, 0, 1, 1], bins=2) == pytest.approx(0.15 + 0.175)
    # Default 15 bins: bin 14 holds (0.95 right, 0.95 wrong), bin 0 holds (0.05 wrong).
    assert trust.ece([0.95, 0.95, 0.05], [1, 0, 0]) == pytest.approx(2 / 3 * 0.45 + 1 / 3 * 0.05)


def test_ece_bin_edges_put_one_last_and_zero_first():
    np.testing.assert_array_equal(trust.bin_index([0.0, 0.5, 14 / 15, 1.0], 15), [0, 7, 14, 14])
    assert trust.ece([1.0, 0.0], [True, False]) == 0.0
    bins = trust.reliability([1.0, 0.0, 0.0], [True, False, True])
    assert [b["count"] for b in bins] == [2] + [0] * 13 + [1]
    assert bins[0]["accuracy"] == 0.5 and bins[7]["accuracy"] is None
    assert bins[-1]["upper"] == 1.0 and len(bins) == trust.ECE_BINS


def test_score_bins_are_monotone_and_cover_zero_to_one():
    bins = trust.score_bin([0.0, 1e-9, 1e-4, 0.5, 1 - 1e-4, 1.0])
    assert bins[0] == 0 and bins[3] == trust.SCORE_BINS // 2 and bins[-1] == trust.SCORE_BINS - 1
    assert np.all(np.diff(bins) >= 0) and bins[2] > bins[1] and bins[4] > bins[3]


# --- Ranking metrics ------------------------------------------------------------------------------

def test_auroc_by_hand_with_ties():
    assert trust.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # Positive 0.5 vs negatives (0.5 tie -> 1/2, 0.2 -> 1); positive 0.9 beats both: 3.5 / 4.
    assert trust.auroc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == pytest.approx(0.875)
    assert trust.auroc([0.3] * 4, [1, 0, 1, 0]) == 0.5
    with pytest.raises(ValueError):
        trust.auroc([0.1, 0.2], [1, 1])


def test_fpr_at_tpr_by_hand():
    positives_scores = np.arange(1, 21) / 100  # 20 positives; 19 needed for TPR 0.95
    negatives_scores = [0.0, 0.015, 0.02, 0.5]  # the 0.02 tie counts as predicted positive
    scores = np.r_[positives_scores, negatives_scores]
    positives = np.r_[np.ones(20, bool), np.zeros(4, bool)]
    assert trust.fpr_at_tpr(scores, positives) == pytest.approx(2 / 4)  # threshold 0.02
    assert trust.fpr_at_tpr(scores, positives, tpr=1.0) == pytest.approx(3 / 4)  # threshold 0.01


def test_ranking_metrics_match_sklearn_on_tied_random_scores():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    positives = rng.random(500) < 0.3
    scores = np.round(rng.normal(positives * 1.0, 1.0), 1)  # rounding creates many ties
    assert trust.auroc(scores, positives) == pytest.approx(metrics.roc_auc_score(positives, scores))
    fpr, tpr, _ = metrics.roc_curve(positives, scores, drop_intermediate=False)
    assert trust.fpr_at_tpr(scores, positives) == pytest.approx(fpr[tpr >= 0.95].min())


# --- Temperature scaling on a known generator ------------------------------------------------

TRUE_TEMPERATURE = 2.0
OVERCONFIDENCE = 10.0


@pytest.fixture(scope="module")
def calibrated_logits():
    """Labels drawn from softmax(z / TRUE_TEMPERATURE): those probabilities are calibrated."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 3.0, (20_000, trust.NUM_CLASSES))
    cdf = np.cumsum(trust.softmax(logits, TRUE_TEMPERATURE), axis=1)
    labels = np.minimum((cdf < rng.random((len(cdf), 1))).sum(axis=1), trust.NUM_CLASSES - 1)
    return logits, labels


def _ece_of(probs, labels):
    return trust.ece(probs.max(axis=1), probs.argmax(axis=1) == labels)


def test_temperature_scaling_repairs_an_overconfident_model(calibrated_logits):
    logits, labels = calibrated_logits
    overconfident = logits * OVERCONFIDENCE
    calibrated_ece = _ece_of(trust.softmax(logits, TRUE_TEMPERATURE), labels)
    raw_ece = _ece_of(trust.softmax(overconfident), labels)
    assert calibrated_ece < 0.02
    assert raw_ece > 0.2

    temperature = trust.fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(OVERCONFIDENCE * TRUE_TEMPERATURE, rel=0.05)
    scaled = trust.softmax(overconfident, temperature)
    assert _ece_of(scaled, labels) < raw_ece / 5
    np.testing.assert_array_equal(scaled.argmax(axis=1), overconfident.argmax(axis=1))
    assert trust.fit_temperature(overconfident, labels) == temperature  # deterministic


# --- Selective prediction -------------------------------------------------------------------------

def test_abstention_threshold_by_hand():
    confidences = [0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [1, 1, 0, 1, 1]
    measured = dict(confidence=None)   # the rate itself, not its bound: countable by hand
    # Risk by threshold: 0, 0, 1/3, 1/4, 1/5 -- not monotone, so the lowest qualifying one wins.
    assert trust.choose_abstention_threshold(confidences, correct, 0.25, **measured) == 0.5
    assert trust.choose_abstention_threshold(confidences, correct, 0.1, **measured) == 0.8
    # Ties are answered together: at 0.9 the risk is 1/2.
    assert trust.choose_abstention_threshold([0.9, 0.9, 0.5], [1, 0, 1], 0.4, **measured) == 0.5
    assert (trust.choose_abstention_threshold([0.9, 0.9, 0.5], [1, 0, 1], 0.2, **measured)
            == trust.FALLBACK_THRESHOLD)
    assert trust.selective(confidences, correct, 0.6) == (0.8, 0.25)
    assert trust.selective(confidences, correct, 0.95) == (0.0, 0.0)
    # With the default 95% bound, two right answers show nothing below 0.78 risk.
    assert (trust.choose_abstention_threshold(confidences, correct, 0.25)
            == trust.FALLBACK_THRESHOLD)


def test_risk_bound_is_clopper_pearson():
    # 0 errors in n: the bound solves (1 - p)^n = 1 - confidence.
    for n in (1, 10, 299):
        assert trust.risk_upper_bound(0, n) == pytest.approx(1 - 0.05 ** (1 / n))
    assert trust.min_answers_to_certify(0.01, 0.95) == 299
    assert trust.risk_upper_bound(0, 299) <= 0.01 < trust.risk_upper_bound(0, 298)
    # 5 errors in 1000: the exact binomial tail at the bound is 5%.
    from scipy.stats import binom
    bound = float(trust.risk_upper_bound(5, 1000))
    assert binom.cdf(5, 1000, bound) == pytest.approx(0.05, abs=1e-9)
    assert trust.risk_upper_bound(3, 3) == 1.0
    assert trust.risk_upper_bound(5, 1000, confidence=None) == 0.005


@pytest.mark.parametrize("confidence", [None, 0.95])
def test_abstention_threshold_meets_target_with_maximal_coverage(confidence):
    rng = np.random.default_rng(2)
    confidences = 0.5 + 0.5 * rng.random(3000)
    correct = rng.random(3000) < confidences  # calibrated
    target = 0.05  # about a fifth of the examples qualify, with some errors among them
    threshold = trust.choose_abstention_threshold(confidences, correct, target, confidence)
    coverage, risk = trust.selective(confidences, correct, threshold)
    assert 0 < risk <= target and 0.1 < coverage < 0.5

    def bound(t):
        answered = confidences >= t
        return trust.risk_upper_bound((answered & ~correct).sum(), answered.sum(), confidence)
    assert bound(threshold) <= target
    for lower in confidences[confidences < threshold]:   # each answers more examples
        assert bound(lower) > target


def test_the_bound_answers_less_than_the_measured_rate_and_keeps_the_promise_more_often():
    """On calibrated confidences, thresholds fitted on 1,000 examples and checked on fresh
    ones: the measured rate's threshold breaks a 5% promise about half the time, the bound's
    far less often."""
    rng = np.random.default_rng(0)
    target, broken = 0.05, {None: 0, 0.95: 0}
    for _ in range(40):
        fit, check = (0.5 + 0.5 * rng.random(1000) for _ in range(2))
        fit_right, check_right = rng.random(1000) < fit, rng.random(1000) < check
        t = {c: trust.choose_abstention_threshold(fit, fit_right, target, c) for c in broken}
        assert t[0.95] > t[None]
        for confidence in broken:
            broken[confidence] += trust.selective(check, check_right, t[confidence])[1] > target
    assert broken[0.95] <= 4 < 12 <= broken[None]


def test_risk_coverage_curve_by_hand():
    coverage, risk = trust.risk_coverage_curve([0.2, 0.9, 0.5], [1, 0, 1])
    np.testing.assert_allclose(coverage, [1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(risk, [1, 1 / 2, 1 / 3])


# --- Streaming accumulator ----------------------------------------------------------------------

def _row(predicted, confidence):
    row = np.full(trust.NUM_CLASSES, (1 - confidence) / (trust.NUM_CLASSES - 1))
    row[predicted] = confidence
    return row


def test_accumulator_by_hand():
    probs = np.array([_row(3, 0.9), _row(2, 0.8), _row(10, 0.7), _row(7, 0.4)])
    labels = np.array([3, trust.NO_DIGIT, 5, 7])
    result = TrustAccumulator().add_batch(probs, labels, threshold=0.5, examples=list("abcd")).result()
    assert result["count"] == 4
    assert result["accuracy"] == 0.5
    assert result["digits_only_accuracy"] == pytest.approx(2 / 3)
    per_class = result["per_class_accuracy"]
    assert [per_class[k] for k in (3, 5, 7, 10, 0)] == [1, 0, 1, 0, None]
    assert result["confusion"][10][2] == 1 and result["confusion"][5][10] == 1
    # Answered: "a" (right) and "b" (a no-digit image called a digit: wrong); "c" predicts
    # no-digit and "d" is below the threshold, so both abstain.
    assert (result["coverage"], result["risk"], result["threshold"]) == (0.5, 0.5, 0.5)
    assert [(m["example"], m["label"], m["predicted"]) for m in result["top_mistakes"]] == [
        ("b", 10, 2), ("c", 5, 10)]
    assert result["top_mistakes"][0]["confidence"] == pytest.approx(0.8)
    correct = probs.argmax(axis=1) == labels
    assert result["nll"] == pytest.approx(trust.nll(probs, labels), abs=1e-9)
    assert result["brier"] == pytest.approx(trust.brier(probs, labels), abs=1e-9)
    assert result["ece"] == pytest.approx(trust.ece(probs.max(axis=1), correct), abs=1e-9)


def test_empty_accumulator_reports_unknowns():
    result = TrustAccumulator().result()
    assert result["count"] == 0
    assert result["accuracy"] is None and result["ece"] is None and result["no_digit_auroc"] is None


@pytest.fixture(scope="module")
def eval_set():
    """Random 11-class predictions with signal, plus 30 identical over-confident mistakes.

    Sharp enough that p(no digit) of some no-digit images is below 1e-3, where histograms
    with equal-width score bins could not place the 95%-TPR threshold.
    """
    rng = np.random.default_rng(3)
    n = 3000
    labels = rng.integers(0, trust.NUM_CLASSES, n)
    logits = rng.normal(0.0, 1.5, (n, trust.NUM_CLASSES))
    logits[np.arange(n), labels] += 2.0
    probs = trust.softmax(logits, temperature=0.5)
    tied = rng.choice(n, 30, replace=False)  # equal top confidences: top-K must break ties by example
    probs[tied] = _row(0, 1.0)
    labels[tied] = 1
    return probs, labels, [f"img-{i}" for i in range(n)]


def test_accumulator_matches_exact_metrics(eval_set):
    probs, labels, examples = eval_set
    result = TrustAccumulator().add_batch(probs, labels, 0.6, examples).result()
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    correct = predicted == labels
    assert result["accuracy"] == pytest.approx(correct.mean())
    assert result["nll"] == pytest.approx(trust.nll(probs, labels), abs=1e-9)
    assert result["brier"] == pytest.approx(trust.brier(probs, labels), abs=1e-9)
    assert result["ece"] == pytest.approx(trust.ece(confidence, correct), abs=1e-9)
    answered = (predicted != trust.NO_DIGIT) & (confidence >= 0.6)
    assert result["coverage"] == pytest.approx(answered.mean())
    assert result["risk"] == pytest.approx((~correct[answered]).mean())
    # SCORE_BINS histograms approximate the exact ranking metrics.
    no_digit = labels == trust.NO_DIGIT
    for name, score in [("no_digit", probs[:, trust.NO_DIGIT]),
                        ("max_softmax", 1 - probs[:, :trust.NO_DIGIT].max(axis=1))]:
        assert result[f"{name}_auroc"] == pytest.approx(trust.auroc(score, no_digit), abs=0.01)
        assert (result[f"{name}_fpr_at_95tpr"]
                == pytest.approx(trust.fpr_at_tpr(score, no_digit), abs=0.01))
    mistakes = result["top_mistakes"]
    assert len(mistakes) == trust.TOP_MISTAKES
    assert all(m["confidence"] == 1.0 for m in mistakes)


def test_accumulator_batching_and_merge_order_do_not_matter(eval_set):
    probs, labels, examples = eval_set
    whole = TrustAccumulator().add_batch(probs, labels, 0.6, examples).result()
    cuts = [0, 1100, 1300, len(labels)]
    parts = [TrustAccumulator().add_batch(probs[a:b], labels[a:b], 0.6, examples[a:b])
             for a, b in zip(cuts, cuts[1:])]

    def fresh(i):  # merge mutates, so each combination starts from pickled copies
        return pickle.loads(pickle.dumps(parts[i]))

    for x, y, z in itertools.permutations(range(3)):
        assert fresh(x).merge(fresh(y)).merge(fresh(z)).result() == whole
        assert fresh(x).merge(fresh(y).merge(fresh(z))).result() == whole
    merged_into_empty = TrustAccumulator()
    for i in range(3):
        merged_into_empty.merge(fresh(i))
    assert merged_into_empty.result() == whole


def test_accumulator_refuses_mixed_thresholds(eval_set):
    probs, labels, _ = eval_set
    accumulator = TrustAccumulator().add_batch(probs[:10], labels[:10], 0.6)
    with pytest.raises(ValueError):
        accumulator.add_batch(probs[10:20], labels[10:20], 0.7)
    with pytest.raises(ValueError):
        accumulator.merge(TrustAccumulator().add_batch(probs[10:20], labels[10:20], 0.7))


# --- Plots ----------------------------------------------------------------------------------------

def _is_png(path):
    with open(path, "rb") as f:
        return f.read(4) == PNG_MAGIC


def test_plots_write_png_files(tmp_path, eval_set):
    probs, labels, _ = eval_set
    result = TrustAccumulator().add_batch(probs, labels, 0.6).result()
    correct = probs.argmax(axis=1) == labels
    coverage, risk = trust.risk_coverage_curve(probs.max(axis=1), correct)
    names = [str(d) for d in range(10)] + ["none"]
    images = np.random.default_rng(4).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    paths = [
        plots.reliability_diagram(result["reliability"], tmp_path / "reliability.png", "test"),
        plots.risk_coverage_plot(coverage, risk, (result["coverage"], result["risk"]),
                                 tmp_path / "risk.png"),
        plots.confusion_matrix_plot(result["confusion"], names, tmp_path / "confusion.png"),
        plots.mistakes_grid(list(images), [f"#{i}" for i in range(5)], tmp_path / "mistakes.png"),
    ]
    for path in paths:
        assert _is_png(path)
