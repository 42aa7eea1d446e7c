"""What a meme set asks: named labels, binary or one of C classes, some of them auxiliary.

A task is data, not a branch on the dataset's name: the dataset reader builds it, the cache
records it, and train, evaluate and predict read it back. Hateful Memes and TamilMemes have
one primary binary label; Propaganda Memes has 22 (its persuasion techniques, multi-label);
HarMeme's intensity is one of 3 classes and its target one of 4. The fine-grained Hateful Memes
annotations add 14 auxiliary labels, trained with train.aux_weight and scored per label, never
mixed into the primary metrics.

Label arrays have one column per name in `names`. A binary label is one column (0, 1); a label
of C classes is C columns named `label=class`, one-hot, read through a softmax (its
`categorical` span); UNKNOWN (-1) fills every column a meme does not know.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

UNKNOWN = -1  # a label the meme does not have (an unlabeled split, an unannotated meme)
THRESHOLD = 0.5  # a binary label is predicted where its probability reaches it


@dataclass(frozen=True)
class Label:
    """One label as a release defines it: binary, or one of `classes`."""
    name: str
    classes: tuple[str, ...] = ()  # empty: binary

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"{self.name}={c}" for c in self.classes) if self.classes else (self.name,)

    def encode(self, value: int | None) -> tuple[int, ...]:
        """The label's columns for a value (0/1, or a class index; None: unknown)."""
        if value is None:
            return (UNKNOWN,) * len(self.columns)
        if not self.classes:
            return (int(value),)
        return tuple(int(k == value) for k in range(len(self.classes)))


@dataclass(frozen=True)
class Task:
    labels: tuple[str, ...]  # the primary labels' columns, in output order
    auxiliary: tuple[str, ...] = ()  # after them in every label array
    categorical: tuple[tuple[str, int, int], ...] = ()  # (label, first column, end) of each C-class label
    metric: str = "auroc"  # the benchmark's own metric: what summaries print first

    @classmethod
    def of(cls, primary: tuple[Label, ...], auxiliary: tuple[Label, ...] = (),
           metric: str = "auroc") -> "Task":
        columns, spans = [], []
        for label in primary + auxiliary:
            if label.classes:
                spans.append((label.name, len(columns), len(columns) + len(label.classes)))
            columns += label.columns
        width = sum(len(label.columns) for label in primary)
        return cls(tuple(columns[:width]), tuple(columns[width:]), tuple(spans), metric)

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

    @property
    def is_categorical(self) -> bool:
        """Whether the primary task is one label of C classes (scored by argmax)."""
        return bool(self.categorical) and self.categorical[0][1:] == (0, len(self.labels))

    @property
    def spans(self) -> tuple[tuple[int, int], ...]:
        """The columns each C-class label's softmax covers."""
        return tuple((start, end) for _, start, end in self.categorical)

    @property
    def classes(self) -> tuple[str, ...]:
        """A categorical task's class names (its primary columns without the `label=`)."""
        return tuple(name.split("=", 1)[1] for name in self.labels)

    def is_labeled(self, labels) -> bool:
        """Whether a split's label rows (N, L) know every primary label of every meme: the one
        check of a labeled split (an unlabeled test split knows none)."""
        return bool((np.asarray(labels)[:, self.primary] != UNKNOWN).all())

    def predicted(self, probs: np.ndarray) -> np.ndarray:
        """0/1 predictions of every column of probabilities (..., L): binary labels at
        THRESHOLD, each C-class label its most probable class."""
        predicted = (probs >= THRESHOLD).astype(np.int8)
        for start, end in self.spans:
            if end <= probs.shape[-1]:
                best = probs[..., start:end].argmax(axis=-1)
                predicted[..., start:end] = np.eye(end - start, dtype=np.int8)[best]
        return predicted

    def to_json(self) -> str:
        return json.dumps({"labels": list(self.labels), "auxiliary": list(self.auxiliary),
                           "categorical": [list(span) for span in self.categorical],
                           "metric": self.metric})

    @classmethod
    def from_json(cls, text: str) -> "Task":
        raw = json.loads(text)
        return cls(tuple(raw["labels"]), tuple(raw["auxiliary"]),
                   tuple(tuple(span) for span in raw.get("categorical", ())),
                   raw.get("metric", "auroc"))


def encode(labels: tuple[Label, ...], values: dict[str, int | None]) -> tuple[int, ...]:
    """A meme's label columns, in the order of `labels`, from its value of each."""
    return tuple(column for label in labels for column in label.encode(values[label.name]))


HATEFUL = Task(("hateful",))
