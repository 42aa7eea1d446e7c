"""Stage 3, evaluate: metrics and curves of the trained heads on every labeled split but train,
and every split's predictions.

    python -m stages.evaluate

Writes reports/metrics.json (DVC metrics): per scored split, each figure once, the means over
runs of the figures readers of the task compare (`headline`), the task's own metric with its
95% bootstrap interval over the split's memes and the runs' ensemble's value, and what
constant predictions score (`baselines`). reports/metrics_detail.json (an output) holds the
rest: every run's figures, their spreads, every interval, the ensemble's figures, the dev
thresholds. With several primary labels the binary figures are averaged over the labels, for
a label of C classes over its classes (one-vs-rest). The summary line leads with the
benchmark's metric. reports/per_label/<split>.csv has every label's support, F1 and AUROC
(auxiliary labels and each class too); reports/probabilities.npz every run's probabilities
(scripts.compare). ROC, precision-recall and confusion data of the runs' ensemble go under
reports/plots/ (DVC plots), and as pictures in reports/plots/images/. Every split, labeled
or not, gets reports/predictions/<split>.csv and its submission file under
reports/submission/ (stages/report/predictions.py), which `python -m stages.predict` also
writes: one stage serves both, reading the head and the cache once.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from stages.cache import features
from stages.common import params as params_module
from stages.common.errors import InputError, run_stage
from stages.common.files import atomic_dir, atomic_path, write_csv, write_json
from stages.data.memes import TRAIN_SPLIT
from stages.data.task import UNKNOWN, Task
from stages.head import hateclipper, inputs, retrieval
from stages.report import plotting, predictions, scoring

METRICS = Path("reports/metrics.json")
DETAIL = Path("reports/metrics_detail.json")  # an output, not a DVC metric: the long tail
PLOTS = Path("reports/plots")
PER_LABEL = Path("reports/per_label")
PROBABILITIES = Path("reports/probabilities.npz")


def binary_summary(labels: np.ndarray, probs: np.ndarray, dev_threshold: float) -> dict:
    """One run's metrics of one label on one split (precision, recall and F1 0 where
    undefined, as scikit-learn's zero_division=0)."""
    predicted = (probs >= scoring.THRESHOLD).astype(int)
    tp, fp, fn = (float(count[0]) for count in scoring.confusion(labels[:, None], predicted[:, None]))
    return {
        "auroc": scoring.auroc(labels, probs),
        "average_precision": scoring.average_precision(labels, probs),
        "accuracy": float(np.mean(predicted == labels)),
        "f1": float(scoring.f1_of(tp, fp, fn)),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "dev_threshold": dev_threshold,
        "accuracy_at_dev_threshold": float(np.mean((probs >= dev_threshold) == labels)),
    }


def run_summary(labels: np.ndarray, probs: np.ndarray, dev_thresholds: np.ndarray,
                task: Task) -> dict:
    """One run's metrics on one split: the binary metrics, averaged over the task's primary
    columns (one label: that label's; one C-class label: one-vs-rest over its classes), and
    the task metrics of its predictions (Task.predicted)."""
    per_label = [binary_summary(labels[:, k], probs[:, k], dev_thresholds[k])
                 for k in range(labels.shape[1])]
    with warnings.catch_warnings():  # a label with one class has no AUROC: it is left out
        warnings.simplefilter("ignore", RuntimeWarning)
        result = {key: float(np.nanmean([m[key] for m in per_label])) for key in per_label[0]}
    result.update(scoring.task_metrics(labels, task.predicted(probs), task.is_categorical))
    return result


# Figures that always equal another for one label: micro-F1 is a binary label's F1, and the
# paper's micro-F1 and exact match its accuracy (for a C-class label, all three are).
TWINS = {"micro_f1": "f1", "paper_micro_f1": "accuracy", "exact_match": "accuracy"}


def headline(task: Task) -> tuple[str, ...]:
    """The figures metrics.json holds for a task, its own metric first under the benchmark's
    name (TamilMemes' paper micro-F1 stands for its accuracy): what readers of that kind of
    task compare, each once."""
    if task.is_categorical:
        figures = ("macro_f1", "accuracy", "auroc")
    elif len(task.labels) > 1:
        figures = ("paper_micro_f1", "micro_f1", "macro_f1", "auroc")
    else:
        figures = ("auroc", "accuracy", "f1", "average_precision")
    if len(task.labels) == 1 or task.is_categorical:
        twin = "accuracy" if task.is_categorical and task.metric in TWINS else TWINS.get(task.metric)
        figures = tuple(figure for figure in figures if figure != twin)
    return tuple(dict.fromkeys((task.metric, *figures)))


def with_interval(task: Task) -> tuple[str, ...]:
    """The figures shown with their interval and the ensemble's: the task's own metric, and
    AUROC for one binary label."""
    binary = len(task.labels) == 1 and not task.is_categorical
    return tuple(dict.fromkeys((task.metric, *(["auroc"] if binary else []))))


def intervals(labels: np.ndarray, run_probs: np.ndarray, task: Task) -> dict[str, tuple[float, float]]:
    """95% bootstrap intervals of the mean over runs: AUROC, the standard and the paper's
    micro-F1, and the task's own metric."""
    run_predicted = task.predicted(run_probs)
    found = {"auroc": scoring.auroc_interval(labels, run_probs), **scoring.f1_intervals(labels, run_predicted)}
    if task.is_categorical:  # its paper micro-F1 is its accuracy, not the cells' (task_metrics)
        found["paper_micro_f1"] = scoring.metric_interval(scoring.class_accuracy, labels, run_predicted)
    if task.metric not in found:
        found[task.metric] = scoring.metric_interval(
            scoring.metric_function(task.metric, task.is_categorical), labels, run_predicted)
    return found


def summary(labels: np.ndarray, run_probs: np.ndarray, dev_thresholds: np.ndarray,
            train_labels: np.ndarray, task: Task) -> tuple[dict, dict]:
    """A split's entries in metrics.json and in the detail file, from every run's
    probabilities (runs, N, L) of the task's primary labels (N, L).

    metrics.json: `n`; the headline figures (means over runs), the task's own metric (and a
    binary label's AUROC) with its interval and the runs' ensemble's figure; what constant
    predictions score on each. The detail file: every figure of every run, their means and
    sample standard deviations over runs, every interval, the ensemble's every figure."""
    per_run = [run_summary(labels, probs, t, task) for probs, t in zip(run_probs, dev_thresholds)]
    mean = {key: float(np.mean([run[key] for run in per_run])) for key in per_run[0]}
    ensemble_probs = run_probs.mean(axis=0)
    ensemble = run_summary(labels, ensemble_probs, dev_thresholds.mean(axis=0), task)
    ensemble["auroc"] = scoring.mean_auroc(labels, ensemble_probs)
    bounds = intervals(labels, run_probs, task)
    shown = headline(task)
    metrics: dict = {"n": int(len(labels))}
    for key in shown:
        metrics[key] = mean[key]
        if key in with_interval(task):
            metrics.update({f"{key}_ci_low": bounds[key][0], f"{key}_ci_high": bounds[key][1],
                            f"ensemble_{key}": ensemble[key]})
    metrics["baselines"] = {name: {key: score[key] for key in shown}
                            for name, score in scoring.baselines(labels, train_labels, task).items()}
    detail = {"runs": len(run_probs), "labels": int(labels.shape[1]), "mean": mean,
              "std": {key: scoring.std_over_runs(np.array([run[key] for run in per_run])) for key in mean},
              "per_run": {key: [run[key] for run in per_run] for key in mean},
              "intervals": {key: list(bound) for key, bound in bounds.items()},
              "ensemble": ensemble}
    return metrics, detail


def per_label(task: Task, labels: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """Every label's (a C-class label: every class's) support, F1 and AUROC (the runs'
    ensemble), over the memes that have it (an auxiliary label covers only the annotated
    memes)."""
    rows = []
    predicted = task.predicted(probs)
    for k, name in enumerate(task.names[:probs.shape[1]]):
        known = labels[:, k] >= 0
        y, prob = labels[known, k], probs[known, k]
        rows.append({"label": name, "auxiliary": name in task.auxiliary, "n": int(known.sum()),
                     "support": int(y.sum()),
                     "f1": scoring.micro_f1(y[:, None], predicted[known, k][:, None]),
                     "auroc": scoring.auroc(y, prob) if len(y) else float("nan")})
    return pd.DataFrame(rows)


def roc_points(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    fpr, tpr, thresholds = scoring.roc_curve(labels, probs)
    return {"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thresholds, 1.0)}


def pr_points(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    precision, recall = scoring.precision_recall_curve(labels, probs)
    return {"recall": recall, "precision": precision}


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """[[true negatives, false positives], [false negatives, true positives]]."""
    tp, fp, fn = (int(count[0]) for count in scoring.confusion(labels[:, None], predicted[:, None]))
    return np.array([[len(labels) - tp - fp - fn, fp], [fn, tp]])


def write_plots(plots: Path, labels: dict[str, np.ndarray], probs: dict[str, np.ndarray]) -> None:
    """Per split, the ensemble's ROC, precision-recall and confusion data for DVC's plots, and
    the same as static pictures, every split in one figure: those need no network."""
    roc = {name: roc_points(labels[name], p) for name, p in probs.items()}
    pr = {name: pr_points(labels[name], p) for name, p in probs.items()}
    predicted = {name: (p >= scoring.THRESHOLD).astype(int) for name, p in probs.items()}
    for name in probs:
        write_csv(plots / "roc" / f"{name}.csv", pd.DataFrame(roc[name]))
        write_csv(plots / "precision_recall" / f"{name}.csv", pd.DataFrame(pr[name]))
        write_csv(plots / "confusion" / f"{name}.csv",
                  pd.DataFrame({"actual": labels[name], "predicted": predicted[name]}))
    images = plots / "images"
    plotting.curves(images / "roc.png", {n: (c["fpr"], c["tpr"]) for n, c in roc.items()},
                    "false positive rate", "true positive rate", "ROC (runs' ensemble)", chance=True)
    plotting.curves(images / "precision_recall.png",
                    {n: (c["recall"], c["precision"]) for n, c in pr.items()},
                    "recall", "precision", "Precision-recall (runs' ensemble)")
    plotting.confusion(images / "confusion.png",
                       {n: confusion_matrix(labels[n], predicted[n]) for n in probs},
                       f"Confusion (prob_hate >= {scoring.THRESHOLD})")


def write_probabilities(path: Path, task: Task, splits: dict[str, features.SplitFeatures],
                        probs: dict[str, np.ndarray]) -> None:
    """Every run's probabilities of every label (auxiliary too) on every labeled split, for
    paired comparisons (scripts.compare): a numpy .npz holding `task` (its JSON), `splits`
    (the names), and per split `<split>.ids` (N,), `<split>.labels` (N, L) int8 and
    `<split>.probs` (runs, N, L) float32, in the cache's order (docs/outputs.md)."""
    arrays = {"task": np.array(task.to_json()), "splits": np.array(list(splits))}
    for name, split in splits.items():
        arrays.update({f"{name}.ids": np.array(split.ids), f"{name}.labels": split.labels,
                       f"{name}.probs": probs[name].astype(np.float32)})
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        np.savez_compressed(out, **arrays)


def side_aurocs(head, split: features.SplitFeatures, task: Task) -> dict[str, float]:
    """Each side output's AUROC of the labels it predicts (a unimodal head: the primary ones;
    the super output: the first), the mean over runs."""
    labels = split.labels[:, task.primary]
    return {f"{side}_auroc": float(np.mean([scoring.mean_auroc(labels[:, :probs.shape[-1]], run)
                                            for run in probs]))
            for side, probs in hateclipper.side_probs(head, split.image, split.text).items()}


def why_not_scored(task: Task, labels: np.ndarray) -> str:
    """Why a split that is not train is not scored: no meme knows every primary label."""
    known = int((labels[:, task.primary] != UNKNOWN).all(axis=1).sum())
    if known:
        return f"only {known} of {len(labels)} memes have every primary label"
    if (labels != UNKNOWN).any():
        return "no meme has a known label of this task; the release labels it for another (data.task)"
    return "unlabeled"


def summary_line(split: str, m: dict, detail: dict, metric: str) -> str:
    """The benchmark's own metric first, with its spread over runs, its interval and what the
    training majority and a uniform guess score, then the split's other headline figures."""
    line = (f"{split:12s} n={m['n']:5d}  {metric} {m[metric]:.4f} ± {detail['std'][metric]:.4f} "
            f"[{m[metric + '_ci_low']:.4f}, {m[metric + '_ci_high']:.4f}]")
    if metric != "auroc":
        line += (f" (majority {m['baselines']['majority'][metric]:.4f}, uniform "
                 f"{m['baselines']['uniform'][metric]:.4f})")
    others = [key for key in m if key not in ("n", "baselines", metric) and not key.startswith(metric + "_")
              and not key.startswith("ensemble_") and not key.endswith(("_ci_low", "_ci_high"))]
    return line + "".join(f"  {key} {m[key]:.4f}" for key in others)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate the trained head.")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    p = params_module.load(args.params)
    head, meta, splits = inputs.trained_head(p)
    task = Task.from_json(meta["task"])
    index = retrieval.index_for(p, head)
    labeled = {name: s for name, s in splits.items()
               if name != TRAIN_SPLIT and task.is_labeled(s.labels)}
    unscored = {name: why_not_scored(task, s.labels) for name, s in splits.items()
                if name != TRAIN_SPLIT and name not in labeled}
    if p.data.dev_split not in labeled:
        raise InputError(f"data.dev_split '{p.data.dev_split}' is not a labeled split of "
                         f"{features.CACHE} (it has: {', '.join(splits)})")
    every = {name: retrieval.classify(p, head, s.image, s.text, index) for name, s in splits.items()}
    probs = {name: every[name] for name in labeled}
    primary = {name: s.labels[:, task.primary] for name, s in labeled.items()}
    primary_probs = {name: run_probs[..., task.primary] for name, run_probs in probs.items()}
    dev, dev_probs = primary[p.data.dev_split], primary_probs[p.data.dev_split]
    thresholds = np.array([[scoring.best_threshold(dev[:, k], run[:, k]) for k in range(dev.shape[1])]
                           for run in dev_probs])  # (runs, labels)
    train_labels = splits[TRAIN_SPLIT].labels[:, task.primary]
    results = {name: summary(primary[name], primary_probs[name], thresholds, train_labels, task)
               for name in labeled}
    metrics, details = ({name: result[k] for name, result in results.items()} for k in (0, 1))
    if head.config.sides:  # the official side outputs' AUROC, means over runs
        for name, split in labeled.items():
            details[name]["sides"] = side_aurocs(head, split, task)
    with atomic_dir(PLOTS) as plots, atomic_dir(PER_LABEL) as per_label_dir:
        # several labels: their cells pooled (micro)
        write_plots(plots, {name: labels.ravel() for name, labels in primary.items()},
                    {name: run_probs.mean(axis=0).ravel() for name, run_probs in primary_probs.items()})
        for name, split in labeled.items():
            write_csv(per_label_dir / f"{name}.csv", per_label(task, split.labels, probs[name].mean(axis=0)))
    for name, m in metrics.items():
        print(summary_line(name, m, details[name], task.metric))
    for name, why in unscored.items():
        print(f"{name:12s} not scored ({why}): predictions only")
    write_probabilities(PROBABILITIES, task, labeled, probs)
    predictions.write({name: (s.ids, every[name].mean(axis=0)) for name, s in splits.items()},
                      task, head.config.runs)
    # one entry per scored split; a split with labels for another task only is said there too
    surprising = {name: why for name, why in unscored.items() if why != "unlabeled"}
    write_json(METRICS, {**metrics, **({"not_scored": surprising} if surprising else {})})
    write_json(DETAIL, details)
    print(f"wrote {METRICS} ({len(thresholds)} run(s): means over runs, 95% bootstrap intervals, "
          f"constant-prediction baselines), {DETAIL} (every run's figures), {PROBABILITIES}, "
          f"{PER_LABEL}/<split>.csv and the ensemble's curves under {PLOTS}/ (pictures in {PLOTS}/images/)")


if __name__ == "__main__":
    run_stage(main)
