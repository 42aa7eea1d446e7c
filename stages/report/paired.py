"""Paired comparisons of two models' predictions on the same memes (numpy only).

Both sides score the same memes, so their errors are correlated: two unpaired intervals can
overlap where the paired difference is clearly not zero. Here each figure resamples or
permutes memes for both sides at once:
- the paired bootstrap interval of the difference of the run means: BOOTSTRAP_SAMPLES draws
  of the memes with replacement (scoring.bootstrap_draws, the draws of every interval of a
  split), every run of both sides scored on each draw;
- the paired permutation p-value: each meme's two ensemble predictions swapped between the
  sides with chance 1/2, PERMUTATIONS times (seeded); p = (1 + #{|delta*| >= |delta|}) /
  (1 + PERMUTATIONS), so it never reads 0;
- DeLong's test for two correlated ROC curves (DeLong, DeLong & Clarke-Pearson 1988, in Sun &
  Xu's midrank form), for AUROC of one binary label, on the ensembles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stages.data.task import Task
from stages.report import scoring

PERMUTATIONS = 2000
PERMUTATION_SEED = 0


def run_scores(metric: str, task: Task, labels: np.ndarray, run_probs: np.ndarray) -> np.ndarray:
    """Each run's `metric` (runs,) from probabilities (runs, N, L) of the primary labels."""
    if metric == "auroc":
        return np.array([scoring.mean_auroc(labels, probs) for probs in run_probs])
    score = scoring.metric_function(metric, task.is_categorical)
    return np.array([score(labels, task.predicted(probs)) for probs in run_probs])


def bootstrap_interval(metric: str, task: Task, labels: np.ndarray, a: np.ndarray, b: np.ndarray,
                       level: float = 0.95) -> tuple[float, float]:
    """The paired bootstrap interval of mean(a's runs) - mean(b's runs)."""
    draws = scoring.bootstrap_draws(len(labels))
    if metric == "auroc":
        drawn = labels[draws]
        deltas = (np.mean([scoring.mean_auroc_rows(drawn, probs[draws]) for probs in a], axis=0)
                  - np.mean([scoring.mean_auroc_rows(drawn, probs[draws]) for probs in b], axis=0))
    else:
        deltas = [run_scores(metric, task, labels[d], a[:, d]).mean()
                  - run_scores(metric, task, labels[d], b[:, d]).mean() for d in draws]
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(deltas, [tail, 100 - tail])
    return float(low), float(high)


def permutation_p(metric: str, task: Task, labels: np.ndarray, a: np.ndarray, b: np.ndarray,
                  permutations: int = PERMUTATIONS) -> float:
    """The paired permutation p-value of the difference of the ensembles' `metric`: a, b
    are each side's ensemble probabilities (N, L)."""
    swaps = np.random.default_rng(PERMUTATION_SEED).random((permutations, len(labels)))[..., None] < 0.5
    first, second = np.where(swaps, b, a), np.where(swaps, a, b)  # (P, N, L)
    if metric == "auroc":
        rows = np.broadcast_to(labels, first.shape)
        observed = scoring.mean_auroc_rows(labels[None], a[None])[0] - scoring.mean_auroc_rows(labels[None], b[None])[0]
        deltas = scoring.mean_auroc_rows(rows, first) - scoring.mean_auroc_rows(rows, second)
    else:
        score = scoring.metric_function(metric, task.is_categorical)
        observed = score(labels, task.predicted(a)) - score(labels, task.predicted(b))
        deltas = np.array([score(labels, task.predicted(x)) - score(labels, task.predicted(y))
                           for x, y in zip(first, second)])
    extreme = np.sum(np.abs(deltas) >= abs(observed) - 1e-12)
    return float((1 + extreme) / (1 + permutations))


def delong(labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """DeLong's test of AUROC(a) = AUROC(b) for scores of the same memes with binary
    labels (N,): (auroc_a, auroc_b, two-sided p)."""
    positive = labels.astype(bool)
    m, n = int(positive.sum()), int((~positive).sum())
    if not m or not n:
        return float("nan"), float("nan"), float("nan")
    aucs, v10, v01 = [], [], []
    for scores in (a, b):
        x, y = scores[positive], scores[~positive]
        tz = scoring.midranks(np.concatenate([x, y])[None])[0]
        tx, ty = scoring.midranks(x[None])[0], scoring.midranks(y[None])[0]
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tz[:m] - tx) / n)  # each positive's share of negatives ranked below it
        v01.append(1 - (tz[m:] - ty) / m)  # each negative's share of positives ranked above it
    s = np.cov(np.array(v10)) / m + np.cov(np.array(v01)) / n
    variance = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    if variance <= 0:
        return float(aucs[0]), float(aucs[1]), 1.0 if aucs[0] == aucs[1] else 0.0
    z = (aucs[0] - aucs[1]) / math.sqrt(variance)
    return float(aucs[0]), float(aucs[1]), math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Comparison:
    metric: str
    n: int
    a: float  # mean over A's runs
    b: float
    delta: float  # a - b
    ci_low: float
    ci_high: float
    p_value: float  # paired permutation, of the ensembles
    delong_p: float | None  # AUROC of one binary label
    runs: tuple[int, int]
    delta_std: float  # the spread of the difference of run means, from each side's runs
    ensemble_delta: float

    def verdict(self, alpha: float) -> str:
        """By the paired permutation p-value (DeLong's stands beside it)."""
        if not self.p_value < alpha:
            return "no difference detected"
        return "A better" if self.delta > 0 else "B better"


def compare(task: Task, labels: np.ndarray, a: np.ndarray, b: np.ndarray,
            metric: str | None = None, permutations: int = PERMUTATIONS) -> Comparison:
    """A against B on one split: labels (N, L) of the primary labels, each side's run
    probabilities (runs, N, L) of the same memes."""
    metric = metric or task.metric
    a_runs, b_runs = run_scores(metric, task, labels, a), run_scores(metric, task, labels, b)
    low, high = bootstrap_interval(metric, task, labels, a, b)
    ens_a, ens_b = a.mean(axis=0), b.mean(axis=0)
    ensemble = run_scores(metric, task, labels, ens_a[None])[0] - run_scores(metric, task, labels, ens_b[None])[0]
    delong_p = (delong(labels[:, 0], ens_a[:, 0], ens_b[:, 0])[2]
                if metric == "auroc" and labels.shape[1] == 1 else None)
    spread = math.sqrt(sum(scoring.std_over_runs(r) ** 2 / len(r) for r in (a_runs, b_runs)))
    return Comparison(metric, len(labels), float(a_runs.mean()), float(b_runs.mean()),
                      float(a_runs.mean() - b_runs.mean()), low, high,
                      permutation_p(metric, task, labels, ens_a, ens_b, permutations), delong_p,
                      (len(a), len(b)), spread, float(ensemble))
