"""What a meme set asks: named binary labels, some of them auxiliary.

A task is data, not a branch on the dataset's name: the dataset reader builds it, the cache
records it, and train, evaluate and predict read it back. Hateful Memes and TamilMemes have
one primary label; Propaganda Memes has 22 (its persuasion techniques, multi-label); the
fine-grained Hateful Memes annotations add 14 auxiliary labels, trained with train.aux_weight
and scored per label, never mixed into the primary metrics.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

UNKNOWN = -1  # a label the meme does not have (an unlabeled split, an unannotated meme)


@dataclass(frozen=True)
class Task:
    labels: tuple[str, ...]  # the primary labels, in output order
    auxiliary: tuple[str, ...] = ()  # after them in every label array

    @property
    def names(self) -> tuple[str, ...]:
        return self.labels + self.auxiliary

    @property
    def primary(self) -> slice:
        """The primary labels' columns in a label array."""
        return slice(0, len(self.labels))

    @property
    def aux(self) -> slice:
        return slice(len(self.labels), len(self.names))

    def is_labeled(self, labels) -> bool:
        """Whether a split's label rows (N, L) know every primary label of every meme: the one
        check of a labeled split (an unlabeled test split knows none)."""
        return bool((np.asarray(labels)[:, self.primary] != UNKNOWN).all())

    def to_json(self) -> str:
        return json.dumps({"labels": list(self.labels), "auxiliary": list(self.auxiliary)})

    @classmethod
    def from_json(cls, text: str) -> "Task":
        raw = json.loads(text)
        return cls(tuple(raw["labels"]), tuple(raw["auxiliary"]))


HATEFUL = Task(("hateful",))
