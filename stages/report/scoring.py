"""AUROC and the task metrics (F1s, accuracy), their intervals over runs and memes, what constants
score, and the dev threshold (numpy only, quick to import)."""
from __future__ import annotations

import functools
import warnings

import numpy as np

from stages.data.task import HATEFUL, THRESHOLD, Task

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0  # the interval is reproducible: same predictions, same interval


def std_over_runs(values: np.ndarray) -> float:
    """The sample standard deviation over runs (ddof 1); 0 for a single run."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    """AUROC, or NaN where a split holds one class only (AUROC is undefined there)."""
    return float(auroc_rows(np.asarray(labels)[None], np.asarray(probs)[None])[0])


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks within each row of (B, N) values, tied values sharing their mean rank."""
    n = values.shape[1]
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    position = np.broadcast_to(np.arange(n), ordered.shape)
    starts = np.ones(ordered.shape, dtype=bool)  # each tie group's first and last place
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(ordered.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(ordered.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    return ranks


def auroc_rows(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """AUROC of each row of (B, N) labels and probabilities, NaN for a one-class row.

    The Mann-Whitney form (mean rank of the positives, ties averaged) gives the same number
    as sklearn's roc_auc_score; rows are ranked together, so a bootstrap is one call.
    """
    labels = labels.astype(bool)
    n = labels.shape[1]
    ranks = midranks(probs)
    n_pos = labels.sum(axis=1)
    n_neg = n - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.where(labels, ranks, 0).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def mean_auroc_rows(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The AUROC averaged over labels (where defined) of each row of (B, N, L) labels and
    probabilities: one per bootstrap draw or permutation."""
    per_label = [auroc_rows(labels[..., k], probs[..., k]) for k in range(labels.shape[-1])]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw with one class has no AUROC
        return np.nanmean(np.array(per_label), axis=0)


def bootstrap_draws(n: int) -> np.ndarray:
    """(BOOTSTRAP_SAMPLES, n) meme indices drawn with replacement, the same for the same n:
    every interval of a split resamples the same memes."""
    return np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(BOOTSTRAP_SAMPLES, n))


def auroc_interval(labels: np.ndarray, run_probs: np.ndarray, level: float = 0.95
                   ) -> tuple[float, float]:
    """Percentile bootstrap interval over the split's memes of the mean-over-runs AUROC (for
    labels (N, L), the AUROC averaged over labels).

    Each resample draws memes with replacement and scores every run on the same draw, so the
    interval is the uncertainty a split of this size leaves, for this set of runs.
    """
    draws = bootstrap_draws(len(labels))
    labels, run_probs = labels.reshape(len(labels), -1), run_probs.reshape(*run_probs.shape[:2], -1)
    per_run = [mean_auroc_rows(labels[draws], probs[draws]) for probs in run_probs]  # (runs, B)
    tail = 100 * (1 - level) / 2
    # a split of one class (or one meme) has no AUROC on any draw: NaN, without numpy's warnings
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_auroc = np.nanmean(np.array(per_run), axis=0)
        low, high = np.nanpercentile(mean_auroc, [tail, 100 - tail])
    return float(low), float(high)


# The ranking curves of one binary label, as scikit-learn computes them (tests/report/test_scoring.py
# holds them to it): evaluate needs only these, and importing scikit-learn for them cost each
# evaluate run more than a second.

def ranked_counts(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, ...]:
    """At each distinct probability, highest first: the positives and the negatives scoring at
    or above it, and the probability."""
    order = np.argsort(-np.asarray(probs), kind="mergesort")
    probs, labels = np.asarray(probs)[order], np.asarray(labels, dtype=float)[order]
    last = np.r_[np.flatnonzero(np.diff(probs)), len(probs) - 1]  # each value's last meme
    positives = np.cumsum(labels)[last]
    return positives, 1 + last - positives, probs[last]


def roc_curve(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, ...]:
    """False and true positive rates and thresholds, from (0, 0) at threshold inf; points on
    a straight segment dropped (scikit-learn's drop_intermediate); NaN rates where the split
    has no negative or no positive."""
    tps, fps, thresholds = ranked_counts(labels, probs)
    if len(fps) > 2:
        corners = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps, thresholds = tps[corners], fps[corners], thresholds[corners]
    tps, fps, thresholds = np.r_[0, tps], np.r_[0, fps], np.r_[np.inf, thresholds]
    with np.errstate(invalid="ignore", divide="ignore"):
        return fps / fps[-1], tps / tps[-1], thresholds


def precision_recall_curve(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision and recall by decreasing threshold, ending at (recall 0, precision 1);
    recall 1 throughout where the split has no positive (as scikit-learn sets it)."""
    tps, fps, _ = ranked_counts(labels, probs)
    called = tps + fps
    precision = np.divide(tps, called, out=np.zeros_like(tps), where=called != 0)
    recall = tps / tps[-1] if tps[-1] else np.ones_like(tps)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]


def average_precision(labels: np.ndarray, probs: np.ndarray) -> float:
    """Precision averaged over the recall steps (scikit-learn's average_precision_score)."""
    precision, recall = precision_recall_curve(labels, probs)
    return float(0.0 - np.sum(np.diff(recall) * precision[:-1]))  # 0.0, never -0.0


def best_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The decision threshold with the highest accuracy (chosen on the dev split)."""
    candidates = np.unique(np.concatenate([probs, [THRESHOLD]]))
    accuracies = [np.mean((probs >= t) == labels) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


# Scores of a task's labels: labels (N, L) 0/1 and predictions (N, L) in [0, 1]. Predictions are
# 0/1 for a model (Task.predicted); a fraction is a random guess's chance (the uniform
# baseline), and every count below is then its expectation.

def confusion(labels: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each column's true positives, false positives and false negatives."""
    labels, predicted = labels.astype(float), predicted.astype(float)
    return ((predicted * labels).sum(axis=0), (predicted * (1 - labels)).sum(axis=0),
            ((1 - predicted) * labels).sum(axis=0))


def f1_of(tp, fp, fn) -> np.ndarray:
    """F1 from counts; 0 where there is no positive at all (scikit-learn's zero_division=0)."""
    tp, wrong = np.asarray(tp, float), np.asarray(fp, float) + np.asarray(fn, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + wrong > 0, 2 * tp / (2 * tp + wrong), 0.0)


def micro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The standard micro-F1 (scikit-learn's average="micro"): F1 of the positive class pooled
    over every meme x label cell (for one C-class label: its accuracy)."""
    tp, fp, fn = confusion(labels.reshape(-1, 1), predicted.reshape(-1, 1))
    return float(f1_of(tp, fp, fn)[0])


def paper_micro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """What the official code reports as micro-F1: TorchMetrics 0.7-0.10's
    F1Score(mdmc_average="global") on integer (N, L) predictions reads them as multi-class
    (classes 0 and 1) and pools both, which is the accuracy over every meme x label cell,
    negatives included (for one label: plain accuracy)."""
    labels, predicted = labels.astype(float), predicted.astype(float)
    return float(np.mean(predicted * labels + (1 - predicted) * (1 - labels)))


def class_f1(labels: np.ndarray, predicted: np.ndarray, categorical: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:
    """Each class's F1 and support, as scikit-learn's macro and weighted averages count them:
    for one binary label its two classes (1 and 0), otherwise each column (a label of a
    multi-label task, or a class of a C-class one). Of one label's classes only those in the
    truth or the predictions count (scikit-learn's unique labels: Harm-C's test split has
    no organization target)."""
    single = labels.shape[1] == 1
    if single:
        labels, predicted = np.hstack([labels, 1 - labels]), np.hstack([predicted, 1 - predicted])
    f1, support = f1_of(*confusion(labels, predicted)), labels.sum(axis=0)
    if single or categorical:
        present = (support > 0) | (predicted.sum(axis=0) > 0)
        f1, support = f1[present], support[present]
    return f1, support


def macro_f1(labels: np.ndarray, predicted: np.ndarray, categorical: bool = False) -> float:
    """scikit-learn's average="macro": the mean of class_f1 (one binary label: both classes)."""
    return float(np.mean(class_f1(labels, predicted, categorical)[0]))


def weighted_f1(labels: np.ndarray, predicted: np.ndarray, categorical: bool = False) -> float:
    """scikit-learn's average="weighted": class_f1 weighted by each class's support."""
    f1, support = class_f1(labels, predicted, categorical)
    return float((f1 * support).sum() / support.sum()) if support.sum() else 0.0


def exact_match(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The share of memes whose every label is right."""
    labels, predicted = labels.astype(float), predicted.astype(float)
    return float(np.mean(np.prod(predicted * labels + (1 - predicted) * (1 - labels), axis=1)))


def class_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """A C-class label's accuracy: the share of memes given their class (the chance of it)."""
    return float(np.mean((predicted.astype(float) * labels).sum(axis=1)))


TASK_METRICS = {"micro_f1": micro_f1, "paper_micro_f1": paper_micro_f1, "macro_f1": macro_f1,
                "weighted_f1": weighted_f1, "exact_match": exact_match}


def metric_function(name: str, categorical: bool):
    """The task metric `name` as a function of (labels, predicted). For one C-class label,
    TorchMetrics' global F1 on class indices, exact match and accuracy are all its accuracy;
    otherwise accuracy is over every meme x label cell (one label: plain accuracy)."""
    if categorical and name in ("paper_micro_f1", "exact_match", "accuracy"):
        return class_accuracy
    if categorical and name in ("macro_f1", "weighted_f1"):
        return functools.partial(TASK_METRICS[name], categorical=True)
    return paper_micro_f1 if name == "accuracy" else TASK_METRICS[name]


def task_metrics(labels: np.ndarray, predicted: np.ndarray, categorical: bool) -> dict[str, float]:
    """Every task metric of predictions, and `accuracy`."""
    return {name: metric_function(name, categorical)(labels, predicted)
            for name in (*TASK_METRICS, "accuracy")}


def mean_auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    """AUROC (N, L) averaged over the labels where it is defined (both classes present); NaN
    if none."""
    values = auroc_rows(labels.T, probs.T)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def dev_score(select: str, labels: np.ndarray, probs: np.ndarray, task: Task = HATEFUL) -> float:
    """The train.select metric of one run's probabilities (N, L) of the task's primary labels
    on the dev split (`metric`: the task's own); `accuracy` is RGCL's selection, the head's
    accuracy over every cell (one C-class label: over memes)."""
    select = task.metric if select == "metric" else select
    if select == "auroc":
        return mean_auroc(labels, probs)
    return metric_function(select, task.is_categorical)(labels, task.predicted(probs))


def baselines(labels: np.ndarray, train_labels: np.ndarray, task: Task = HATEFUL) -> dict:
    """What constant predictions score, every task metric: the training split's majority
    (each label's, or the most frequent class) and a uniform random guess (each label on
    with chance 1/2, or each class 1/C: its expected counts); for binary labels also none of
    them and all of them. AUROC of any of these is 0.5, average precision each label's share
    of positives, and F1 (one binary label's) its micro-F1."""
    if task.is_categorical:
        share = np.full(labels.shape[1], 1 / labels.shape[1])
        majority = np.eye(labels.shape[1])[np.argmax(train_labels.sum(axis=0))]
        constants = {"majority": majority, "uniform": share}
    else:
        constants = {"all_negative": np.zeros(labels.shape[1]), "all_positive": np.ones(labels.shape[1]),
                     "majority": (train_labels.mean(axis=0) > 0.5).astype(float),
                     "uniform": np.full(labels.shape[1], 0.5)}
    scores = {name: task_metrics(labels, np.broadcast_to(row, labels.shape), task.is_categorical)
              for name, row in constants.items()}
    return {name: {**score, "auroc": 0.5, "average_precision": float(labels.mean()), "f1": score["micro_f1"]}
            for name, score in scores.items()}


def metric_interval(score, labels: np.ndarray, run_predicted: np.ndarray, level: float = 0.95
                    ) -> tuple[float, float]:
    """Percentile bootstrap interval over the split's memes of the mean over runs of
    score(labels, predicted), every run scored on the same draws (as auroc_interval)."""
    draws = bootstrap_draws(len(labels))
    means = [np.mean([score(labels[d], predicted[d]) for predicted in run_predicted]) for d in draws]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def f1_intervals(labels: np.ndarray, run_predicted: np.ndarray, level: float = 0.95
                 ) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals over the split's memes of the mean-over-runs micro-F1 and
    paper micro-F1, every run scored on the same draws (as auroc_interval)."""
    draws = bootstrap_draws(len(labels))
    drawn = labels[draws]  # (B, N, L)
    micro, paper = [], []
    for predicted in run_predicted:
        p = predicted[draws]
        tp = ((p == 1) & (drawn == 1)).sum(axis=(1, 2))
        wrong = (p != drawn).sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            micro.append(np.where(tp + wrong > 0, 2 * tp / (2 * tp + wrong), 0.0))
        paper.append(1 - wrong / drawn[0].size)
    tail = 100 * (1 - level) / 2
    return {name: tuple(float(v) for v in np.percentile(np.mean(scores, axis=0), [tail, 100 - tail]))
            for name, scores in (("micro_f1", micro), ("paper_micro_f1", paper))}
