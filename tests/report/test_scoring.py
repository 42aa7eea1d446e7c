"""stages/report/scoring.py: AUROC, the ranking curves and the task metrics against
scikit-learn, the paper's "micro-F1" against the TorchMetrics release the official code
used, the baselines, and the bootstrap intervals against direct computations."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics
from sklearn.metrics import roc_auc_score

from stages.data.task import Label, Task
from stages.report import scoring
from tests.helpers import ROOT, curve_cases, pairwise_auroc


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
    direct = [np.mean([pairwise_auroc(labels[d], p[d]) for p in run_probs]) for d in draws]
    assert (low, high) == pytest.approx(tuple(np.percentile(direct, [2.5, 97.5])), abs=1e-12)
    mean_auroc = np.mean([scoring.auroc(labels, p) for p in run_probs])
    assert low < mean_auroc < high
    assert scoring.auroc_interval(labels, run_probs) == (low, high)  # seeded


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("labels", [[1], [0, 0, 0]])
def test_a_split_of_one_meme_or_one_class_has_no_interval_and_no_warning(labels):
    labels = np.array(labels)
    low, high = scoring.auroc_interval(labels, np.full((2, len(labels)), 0.5))
    assert np.isnan(low) and np.isnan(high)


def test_best_threshold_maximises_dev_accuracy():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([0.1, 0.35, 0.3, 0.6, 0.9])
    threshold = scoring.best_threshold(labels, probs)
    assert np.mean((probs >= threshold) == labels) == max(
        np.mean((probs >= t) == labels) for t in [*probs, 0.5])


REFERENCE = ROOT / ".venv" / "reference"  # TorchMetrics 0.9.3, installed by `make test`


OFFICIAL = """
import json, sys, torch, torchmetrics
assert torchmetrics.__version__ == "0.9.3", torchmetrics.__version__
cases = json.load(sys.stdin)
out = []
for predicted, truth in cases:
    predicted, truth = torch.tensor(predicted), torch.tensor(truth)
    # engine.py: F1Score(mdmc_average="global") for Propaganda Memes, F1Score() for one label
    f1 = torchmetrics.F1Score(mdmc_average="global") if predicted.dim() == 2 else torchmetrics.F1Score()
    out.append(float(f1(predicted, truth)))
print(json.dumps(out))
"""


def official_f1(cases: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """TorchMetrics 0.9.3's F1 of each (predicted, truth), computed by the library itself."""
    if not (REFERENCE / "torchmetrics").is_dir():
        pytest.skip(f"TorchMetrics 0.9.3 is not in {REFERENCE}: `make test` installs it")
    result = subprocess.run([sys.executable, "-c", OFFICIAL], capture_output=True, text=True,
                            input=json.dumps([(p.tolist(), t.tolist()) for p, t in cases]),
                            env={**os.environ, "PYTHONPATH": str(REFERENCE)}, check=True)
    return json.loads(result.stdout)


def multilabel(n=60, labels=22, prevalence=0.12, seed=0):
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, labels)) < prevalence).astype(np.int8)
    probs = np.clip(0.6 * truth + rng.random((n, labels)) * 0.7, 0, 1)
    return truth, (probs >= 0.5).astype(np.int8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_standard_metrics_equal_scikit_learn(seed):
    truth, predicted = multilabel(seed=seed)
    assert scoring.micro_f1(truth, predicted) == pytest.approx(
        metrics.f1_score(truth, predicted, average="micro", zero_division=0))
    assert scoring.macro_f1(truth, predicted) == pytest.approx(
        metrics.f1_score(truth, predicted, average="macro", zero_division=0))
    assert scoring.exact_match(truth, predicted) == pytest.approx(metrics.accuracy_score(truth, predicted))
    nothing = np.zeros_like(truth)
    assert scoring.micro_f1(truth, nothing) == 0.0 == metrics.f1_score(truth, nothing, average="micro",
                                                                        zero_division=0)


def test_paper_micro_f1_is_what_the_official_torchmetrics_call_reports():
    """engine.py's F1Score(mdmc_average="global") on integer (N, 22) predictions, and F1Score()
    on TamilMemes' (N,) predictions, as TorchMetrics 0.9.3 computes them (one process for
    every case: the library's import is most of its cost)."""
    trolls = np.array([1] * 395 + [0] * 272, dtype=np.int8)  # the Tamil test set's mix
    every_troll = np.ones_like(trolls)
    sets = [multilabel(seed=seed) for seed in (0, 1)]
    nothing = np.zeros_like(sets[0][0])  # at 12% prevalence about 0.88, where the standard gives 0
    official = official_f1([case for truth, predicted in sets for case in ((predicted, truth), (nothing, truth))]
                           + [(every_troll, trolls)])
    for i, (truth, predicted) in enumerate(sets):
        assert scoring.paper_micro_f1(truth, predicted) == pytest.approx(official[2 * i], abs=1e-6)
        assert scoring.paper_micro_f1(truth, nothing) == pytest.approx(official[2 * i + 1], abs=1e-6)
        assert scoring.paper_micro_f1(truth, nothing) > 0.8 and scoring.micro_f1(truth, nothing) == 0
    assert scoring.paper_micro_f1(trolls[:, None], every_troll[:, None]) == pytest.approx(official[4], abs=1e-6)
    assert official[4] == pytest.approx(0.5922, abs=1e-4)  # the paper's TamilMemes 59


def test_baselines_are_constant_predictions():
    truth, _ = multilabel()
    train = np.zeros((10, 22), np.int8)
    train[:8, 3] = 1  # label 3 is mostly on in training: its majority prediction is 1
    result = scoring.baselines(truth, train)
    assert result["all_negative"]["micro_f1"] == 0.0
    assert result["all_negative"]["paper_micro_f1"] == pytest.approx(1 - truth.mean())
    assert result["all_positive"]["paper_micro_f1"] == pytest.approx(truth.mean())
    assert result["all_positive"]["micro_f1"] == pytest.approx(
        metrics.f1_score(truth, np.ones_like(truth), average="micro"))
    majority = np.zeros_like(truth)
    majority[:, 3] = 1
    assert result["majority"]["micro_f1"] == pytest.approx(scoring.micro_f1(truth, majority))


def test_the_f1_intervals_hold_the_value_and_are_reproducible():
    truth, predicted = multilabel(n=120)
    runs = np.stack([predicted, 1 - predicted])
    intervals = scoring.f1_intervals(truth, runs)
    for name, (low, high) in intervals.items():
        value = np.mean([scoring.TASK_METRICS[name](truth, p) for p in runs])
        assert low <= value <= high, name
    assert intervals == scoring.f1_intervals(truth, runs)
    for name, (low, high) in intervals.items():  # the 2.5 and 97.5 percentiles of a direct bootstrap
        direct = [np.mean([scoring.TASK_METRICS[name](truth[d], p[d]) for p in runs])
                  for d in scoring.bootstrap_draws(len(truth))]
        assert (low, high) == pytest.approx(tuple(np.percentile(direct, [2.5, 97.5])), abs=1e-12), name
        assert scoring.metric_interval(scoring.TASK_METRICS[name], truth, runs) == pytest.approx((low, high))


def categorical(n=90, classes=4, seed=0):
    """One-hot truth and argmax predictions of a C-class label, as Task.predicted makes them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    guess = np.where(rng.random(n) < 0.6, y, rng.integers(0, classes, n))
    return np.eye(classes, dtype=np.int8)[y], np.eye(classes, dtype=np.int8)[guess], y, guess


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_metrics_equal_scikit_learn_on_class_indices(seed):
    truth, predicted, y, guess = categorical(seed=seed)
    scores = scoring.task_metrics(truth, predicted, categorical=True)
    assert scores["accuracy"] == pytest.approx(metrics.accuracy_score(y, guess))
    assert scores["paper_micro_f1"] == scores["exact_match"] == scores["accuracy"]
    assert scores["micro_f1"] == pytest.approx(metrics.f1_score(y, guess, average="micro"))
    assert scores["macro_f1"] == pytest.approx(metrics.f1_score(y, guess, average="macro"))
    assert scores["weighted_f1"] == pytest.approx(metrics.f1_score(y, guess, average="weighted"))
    rare = (y != 3) & (guess != 3)  # class 3 in neither truth nor predictions: it does not count
    scores = scoring.task_metrics(truth[rare], predicted[rare], categorical=True)
    assert scores["macro_f1"] == pytest.approx(metrics.f1_score(y[rare], guess[rare], average="macro"))


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_and_multi_label_averages_equal_scikit_learn(seed):
    truth, predicted = multilabel(seed=seed, labels=4, prevalence=0.4)
    assert scoring.weighted_f1(truth, predicted) == pytest.approx(
        metrics.f1_score(truth, predicted, average="weighted", zero_division=0))
    one, guess = truth[:, :1], predicted[:, :1]  # one binary label: both classes count
    assert scoring.macro_f1(one, guess) == pytest.approx(metrics.f1_score(one[:, 0], guess[:, 0], average="macro"))
    assert scoring.weighted_f1(one, guess) == pytest.approx(
        metrics.f1_score(one[:, 0], guess[:, 0], average="weighted"))


def test_the_uniform_baseline_is_the_expected_score_of_a_random_guess():
    """Each class with chance 1/C: the F1 of the expected counts, and accuracy 1/C exactly;
    a long simulation of the guess lands on the same F1."""
    truth, _, y, _ = categorical(n=400, classes=3)
    task = Task.of((Label("intensity", ("a", "b", "c")),), metric="macro_f1")
    result = scoring.baselines(truth, truth, task)
    assert set(result) == {"majority", "uniform"}
    assert result["uniform"]["accuracy"] == pytest.approx(1 / 3)
    support = truth.sum(axis=0)
    expected_f1 = 2 * (support / 3) / (support + len(y) / 3)  # 2 TP / (support + predicted)
    assert result["uniform"]["macro_f1"] == pytest.approx(expected_f1.mean())
    rng = np.random.default_rng(0)
    guesses = [metrics.f1_score(y, rng.integers(0, 3, len(y)), average="macro") for _ in range(300)]
    assert np.mean(guesses) == pytest.approx(result["uniform"]["macro_f1"], abs=0.01)
    majority = int(np.argmax(support))
    assert result["majority"]["accuracy"] == pytest.approx(np.mean(y == majority))
    assert result["majority"]["macro_f1"] == pytest.approx(
        metrics.f1_score(y, np.full_like(y, majority), average="macro", zero_division=0))


def test_select_metric_picks_the_epoch_by_the_benchmarks_own_metric():
    truth, predicted, y, guess = categorical(seed=4)
    task = Task.of((Label("target", ("a", "b", "c", "d")),), metric="macro_f1")
    probs = predicted * 0.7 + 0.05  # argmax is the guess
    assert scoring.dev_score("metric", truth, probs, task) == pytest.approx(
        metrics.f1_score(y, guess, average="macro"))
    assert scoring.dev_score("accuracy", truth, probs, task) == pytest.approx(np.mean(y == guess))
