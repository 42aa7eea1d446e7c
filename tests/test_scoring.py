"""AUROC, the ranking curves and evaluate's binary metrics against sklearn, and the bootstrap
interval against a direct computation."""
import warnings

import numpy as np
import pytest
from sklearn import metrics
from sklearn.metrics import roc_auc_score

from stages import evaluate
from stages.report import scoring


def curve_cases():
    """Labels and float32 probabilities: random, tied, and one-class splits, 1 to 200 memes."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 200):
        for kind in ("mixed", "ties", "positives", "negatives"):
            labels = {"positives": np.ones(n, int), "negatives": np.zeros(n, int)}.get(
                kind, rng.integers(0, 2, n))
            probs = rng.integers(0, 4, n) / 4 if kind == "ties" else rng.random(n)
            yield labels, probs.astype(np.float32)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
@pytest.mark.filterwarnings("ignore:No positive class found in y_true")
def test_curves_and_average_precision_are_sklearns():
    """Exactly equal arrays, NaN where sklearn gives NaN (a split of one class)."""
    for labels, probs in curve_cases():
        for ours, theirs in [(scoring.roc_curve(labels, probs), metrics.roc_curve(labels, probs)),
                             (scoring.precision_recall_curve(labels, probs),
                              metrics.precision_recall_curve(labels, probs)[:2])]:
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs):
                np.testing.assert_array_equal(a, b)
        np.testing.assert_equal(scoring.average_precision(labels, probs),
                                metrics.average_precision_score(labels, probs))


def test_evaluates_binary_metrics_are_sklearns():
    for labels, probs in curve_cases():
        predicted = (probs >= 0.5).astype(int)
        ours = evaluate.binary_summary(labels, probs, 0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.testing.assert_equal(ours["average_precision"], metrics.average_precision_score(labels, probs))
        assert ours["accuracy"] == metrics.accuracy_score(labels, predicted)
        for name, score in [("f1", metrics.f1_score), ("precision", metrics.precision_score),
                            ("recall", metrics.recall_score)]:
            assert ours[name] == pytest.approx(score(labels, predicted, zero_division=0), abs=1e-15), name
        np.testing.assert_array_equal(evaluate.confusion_matrix(labels, predicted),
                                      metrics.confusion_matrix(labels, predicted, labels=[0, 1]))


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    probs = np.round(rng.random(500) * 0.5 + labels * 0.2, 2)  # many ties
    assert scoring.auroc(labels, probs) == pytest.approx(roc_auc_score(labels, probs), abs=1e-12)
    assert np.isnan(scoring.auroc(np.ones(4), probs[:4]))


def test_auroc_rows_is_each_rows_auroc():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, (6, 50))
    probs = np.round(rng.random((6, 50)), 1)  # ties within rows
    labels[5] = 1  # one class only
    expected = [roc_auc_score(l, p) for l, p in zip(labels[:5], probs[:5])]
    result = scoring.auroc_rows(labels, probs)
    np.testing.assert_allclose(result[:5], expected, atol=1e-12)
    assert np.isnan(result[5])


def test_interval_is_the_percentile_bootstrap_of_the_mean_over_runs():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 120)
    run_probs = rng.random((3, 120)) * 0.6 + labels * 0.3
    low, high = scoring.auroc_interval(labels, run_probs)
    draws = np.random.default_rng(scoring.BOOTSTRAP_SEED).integers(
        0, 120, size=(scoring.BOOTSTRAP_SAMPLES, 120))
    direct = [np.mean([roc_auc_score(labels[d], p[d]) for p in run_probs]) for d in draws]
    assert (low, high) == pytest.approx(tuple(np.percentile(direct, [2.5, 97.5])), abs=1e-12)
    mean_auroc = np.mean([scoring.auroc(labels, p) for p in run_probs])
    assert low < mean_auroc < high
    assert scoring.auroc_interval(labels, run_probs) == (low, high)  # seeded


def test_best_threshold_maximises_dev_accuracy():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([0.1, 0.35, 0.3, 0.6, 0.9])
    threshold = scoring.best_threshold(labels, probs)
    assert np.mean((probs >= threshold) == labels) == max(
        np.mean((probs >= t) == labels) for t in [*probs, 0.5])
