"""AUROC against sklearn, and the bootstrap interval against a direct computation."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from stages.report import scoring


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
