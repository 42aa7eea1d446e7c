"""Stage 3, evaluate: metrics and curves of the trained heads on every labeled split but train.

    python -m stages.evaluate

Writes reports/metrics.json (DVC metrics): per split, `auroc` is the mean over runs, with
`auroc_std` (sample std over runs), `auroc_ci_low`/`auroc_ci_high` (95% percentile bootstrap
over the split's memes of that mean) and `ensemble_auroc` (AUROC of the runs' mean
probability); every other metric is a mean over runs. Each run's threshold with the best dev
accuracy gives `dev_threshold` and `accuracy_at_dev_threshold`. ROC, precision-recall and
confusion data of the runs' ensemble go under reports/plots/ (DVC plots), and as static
pictures in reports/plots/images/ (roc.png, precision_recall.png, confusion.png).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics

from stages import features, head as head_module, params as params_module, plotting, retrieval, scoring
from stages.dataset import TRAIN_SPLIT
from stages.outputs import InputError, atomic_dir, run_stage, write_csv, write_json

METRICS = Path("reports/metrics.json")
PLOTS = Path("reports/plots")


def run_summary(labels: np.ndarray, probs: np.ndarray, dev_threshold: float) -> dict:
    """One run's metrics on one split."""
    predicted = (probs >= scoring.THRESHOLD).astype(int)
    return {
        "auroc": scoring.auroc(labels, probs),
        "average_precision": float(metrics.average_precision_score(labels, probs)),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
        "dev_threshold": dev_threshold,
        "accuracy_at_dev_threshold": float(np.mean((probs >= dev_threshold) == labels)),
    }


def summary(labels: np.ndarray, run_probs: np.ndarray, dev_thresholds: np.ndarray) -> dict:
    """A split's entry in metrics.json from every run's probabilities (runs, N)."""
    per_run = [run_summary(labels, probs, t) for probs, t in zip(run_probs, dev_thresholds)]
    result = {key: float(np.mean([run[key] for run in per_run])) for key in per_run[0]}
    aurocs = np.array([run["auroc"] for run in per_run])
    low, high = scoring.auroc_interval(labels, run_probs)
    result.update(n=int(len(labels)), runs=len(run_probs),
                  auroc_std=scoring.std_over_runs(aurocs),
                  auroc_ci_low=low, auroc_ci_high=high,
                  ensemble_auroc=scoring.auroc(labels, run_probs.mean(axis=0)))
    return result


def roc_points(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    fpr, tpr, thresholds = metrics.roc_curve(labels, probs)
    return {"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thresholds, 1.0)}


def pr_points(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    precision, recall, _ = metrics.precision_recall_curve(labels, probs)
    return {"recall": recall, "precision": precision}


def write_curves(plots: Path, name: str, labels: np.ndarray, probs: np.ndarray) -> None:
    write_csv(plots / "roc" / f"{name}.csv", pd.DataFrame(roc_points(labels, probs)))
    write_csv(plots / "precision_recall" / f"{name}.csv",
              pd.DataFrame(pr_points(labels, probs)))
    write_csv(plots / "confusion" / f"{name}.csv",
              pd.DataFrame({"actual": labels, "predicted": (probs >= scoring.THRESHOLD).astype(int)}))


def write_figures(folder: Path, labels: dict[str, np.ndarray], probs: dict[str, np.ndarray]) -> None:
    """The same curves as static pictures, every split in one figure: they need no network."""
    roc = {name: roc_points(labels[name], p) for name, p in probs.items()}
    pr = {name: pr_points(labels[name], p) for name, p in probs.items()}
    plotting.curves(folder / "roc.png", {n: (c["fpr"], c["tpr"]) for n, c in roc.items()},
                    "false positive rate", "true positive rate", "ROC (runs' ensemble)", chance=True)
    plotting.curves(folder / "precision_recall.png",
                    {n: (c["recall"], c["precision"]) for n, c in pr.items()},
                    "recall", "precision", "Precision-recall (runs' ensemble)")
    plotting.confusion(folder / "confusion.png",
                       {name: metrics.confusion_matrix(labels[name], (p >= scoring.THRESHOLD).astype(int),
                                                       labels=[0, 1]) for name, p in probs.items()},
                       f"Confusion (prob_hate >= {scoring.THRESHOLD})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate the trained head.")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    p = params_module.load(args.params)
    head, _, splits = head_module.load_checked(p)
    index = retrieval.index_for(p, head)
    labeled = {name: s for name, s in splits.items()
               if name != TRAIN_SPLIT and (s.labels >= 0).all()}
    if p.data.dev_split not in labeled:
        raise InputError(f"data.dev_split '{p.data.dev_split}' is not a labeled split of "
                         f"{features.CACHE} (it has: {', '.join(splits)})")
    probs = {name: retrieval.classify(p, head, s.image, s.text, index) for name, s in labeled.items()}
    dev = labeled[p.data.dev_split]
    thresholds = np.array([scoring.best_threshold(dev.labels, run) for run in probs[p.data.dev_split]])
    results = {name: summary(s.labels, probs[name], thresholds) for name, s in labeled.items()}
    with atomic_dir(PLOTS) as plots:
        for name, split in labeled.items():
            write_curves(plots, name, split.labels, probs[name].mean(axis=0))
        write_figures(plots / "images", {name: s.labels for name, s in labeled.items()},
                      {name: run_probs.mean(axis=0) for name, run_probs in probs.items()})
    for name, m in results.items():
        print(f"{name:12s} n={m['n']:5d}  AUROC {m['auroc']:.4f} ± {m['auroc_std']:.4f} "
              f"[{m['auroc_ci_low']:.4f}, {m['auroc_ci_high']:.4f}]  ensemble "
              f"{m['ensemble_auroc']:.4f}  acc {m['accuracy']:.4f}  F1 {m['f1']:.4f}")
    write_json(METRICS, results)  # one entry per split, nothing else, for dvc and scripts alike
    print(f"wrote {METRICS} ({len(thresholds)} run(s); AUROC mean ± std over runs, 95% bootstrap "
          f"interval) and the ensemble's curves under {PLOTS}/ (pictures in {PLOTS}/images/)")


if __name__ == "__main__":
    run_stage(main)
