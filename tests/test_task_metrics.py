"""Metrics beyond one binary label: the standard ones against scikit-learn, the paper's
"micro-F1" against the TorchMetrics release the official code used, and the baselines."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn import metrics

from stages.head import losses
from stages.report import scoring
from tests.conftest import ROOT

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


@pytest.mark.parametrize("seed", [0, 1])
def test_paper_micro_f1_is_what_the_official_torchmetrics_call_reports(seed):
    """engine.py's F1Score(mdmc_average="global") on integer (N, 22) predictions, and F1Score()
    on TamilMemes' (N,) predictions, as TorchMetrics 0.9.3 computes them."""
    truth, predicted = multilabel(seed=seed)
    nothing = np.zeros_like(truth)  # at 12% prevalence about 0.88, where the standard gives 0
    trolls = np.array([1] * 395 + [0] * 272, dtype=np.int8)  # the Tamil test set's mix
    every_troll = np.ones_like(trolls)
    official = official_f1([(predicted, truth), (nothing, truth), (every_troll, trolls)])
    assert scoring.paper_micro_f1(truth, predicted) == pytest.approx(official[0], abs=1e-6)
    assert scoring.paper_micro_f1(truth, nothing) == pytest.approx(official[1], abs=1e-6)
    assert scoring.paper_micro_f1(truth, nothing) > 0.8 and scoring.micro_f1(truth, nothing) == 0
    assert scoring.paper_micro_f1(trolls[:, None], every_troll[:, None]) == pytest.approx(official[2], abs=1e-6)
    assert official[2] == pytest.approx(0.5922, abs=1e-4)  # the paper's TamilMemes 59


def test_baselines_are_constant_predictions():
    truth, _ = multilabel()
    train = np.zeros((10, 22), np.int8)
    train[:8, 3] = 1  # label 3 is mostly on in training: its majority prediction is 1
    result = scoring.baselines(truth, train)
    assert result["all_negative"] == {"micro_f1": 0.0, "paper_micro_f1": pytest.approx(1 - truth.mean())}
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


def test_the_multi_label_loss_is_the_mean_bce_and_unknown_cells_never_count():
    logits = torch.randn(2, 5, 3)
    labels = torch.randint(0, 2, (2, 5, 3)).float()
    expected = torch.nn.BCEWithLogitsLoss()(logits[1], labels[1])  # the official loss, one run
    torch.testing.assert_close(losses.bce(logits, labels)[1], expected)
    partly = labels.clone()
    partly[:, :2] = -1  # the first two memes lack these labels
    torch.testing.assert_close(losses.masked_bce(logits, partly)[0],
                               torch.nn.BCEWithLogitsLoss()(logits[0, 2:], labels[0, 2:]))
    assert losses.masked_bce(logits, torch.full_like(labels, -1)).tolist() == [0.0, 0.0]
