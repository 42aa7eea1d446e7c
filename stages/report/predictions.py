"""Per-meme predictions and the release's submission files, from the runs' ensemble.

reports/predictions/<split>.csv holds `id` (exactly as in the release), `prob_hate` (the first
primary label's probability, the mean over the trained runs: their ensemble) and `pred_label`
(prob_hate >= 0.5), then `prob_<label>` for every further label; reports/submission/<split>
the same numbers in the release's format: `id,proba,label` CSVs, or for a multi-label task
(Propaganda Memes) a JSON list of {"id", "labels": [predicted techniques]}. `evaluate` writes
them for every split in the pipeline; `predict` prints the same table for new memes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stages.common.files import atomic_dir, write_csv, write_json
from stages.data.task import Task
from stages.report import scoring

PREDICTIONS = Path("reports/predictions")
SUBMISSION = Path("reports/submission")


def prediction_table(ids: list[str], probs: np.ndarray, task: Task) -> pd.DataFrame:
    """`id`, `prob_hate` and `pred_label` of the first primary label (the challenge's
    columns), then `prob_<label>` of every further label the head scores. For a C-class task
    `pred_label` is the class index (the release's coding), `pred_class` its name, and
    `prob_<label>=<class>` each class's probability."""
    if task.is_categorical:
        best = probs[:, task.primary].argmax(axis=1)
        table = pd.DataFrame({"id": ids, "pred_label": best,
                              "pred_class": np.array(task.classes)[best]})
        first = 0
    else:
        table = pd.DataFrame({"id": ids, "prob_hate": probs[:, 0],
                              "pred_label": (probs[:, 0] >= scoring.THRESHOLD).astype(int)})
        first = 1
    for k, name in enumerate(task.names[first:probs.shape[1]], start=first):
        table[f"prob_{name}"] = probs[:, k]
    return table


def submission(table: pd.DataFrame, task: Task) -> pd.DataFrame:
    """The challenge's `id`, `proba`, `label` for a binary task; `id`, `label` (the class
    index) for a C-class one."""
    if task.is_categorical:
        return table[["id", "pred_label"]].rename(columns={"pred_label": "label"})
    return table[["id", "prob_hate", "pred_label"]].rename(
        columns={"prob_hate": "proba", "pred_label": "label"})


def technique_submission(ids: list[str], probs: np.ndarray, task: Task) -> list[dict]:
    """Propaganda Memes' shared-task format: each meme's predicted techniques (prob >= 0.5)."""
    chosen = probs[:, task.primary] >= scoring.THRESHOLD
    return [{"id": meme_id, "labels": [name for name, on in zip(task.labels, row) if on]}
            for meme_id, row in zip(ids, chosen)]


def multi_label(task: Task) -> bool:
    return len(task.labels) > 1 and not task.is_categorical


def write(splits: dict[str, tuple[list[str], np.ndarray]], task: Task, runs: int) -> None:
    """Every split's predictions and submission file from its ids and ensemble probabilities
    (N, labels), each folder replaced whole (atomic_dir)."""
    with atomic_dir(PREDICTIONS) as out, atomic_dir(SUBMISSION) as folder:
        for name, (ids, probs) in splits.items():
            table = prediction_table(ids, probs, task)
            write_csv(out / f"{name}.csv", table)
            if multi_label(task):
                write_json(folder / f"{name}.json", technique_submission(ids, probs, task))
            else:
                write_csv(folder / f"{name}.csv", submission(table, task))
            print(f"{name:12s} {len(ids):6d} memes, mean prob_{task.labels[0]} "
                  f"{probs[:, 0].mean():.3f}")
    kind = "json" if multi_label(task) else "csv"
    print(f"wrote {PREDICTIONS}/<split>.csv and {SUBMISSION}/<split>.{kind} "
          f"(the ensemble of {runs} run(s))")
