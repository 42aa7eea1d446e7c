"""The meme records every dataset reader produces, whatever its release's own format."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stages.outputs import InputError
from stages.task import UNKNOWN, Task

UNLABELED = UNKNOWN
TRAIN_SPLIT = "train"  # the split the head is fitted on, in every layout


@dataclass(frozen=True)
class Meme:
    id: str  # exactly as the release writes it (ints as decimal)
    img: str  # relative to the dataset folder
    text: str
    labels: tuple[int, ...]  # one per task label (primary, then auxiliary): 0, 1 or UNLABELED

    @property
    def label(self) -> int:
        """The first primary label (Hateful Memes' `hateful`)."""
        return self.labels[0]


@dataclass(frozen=True)
class Dataset:
    root: Path
    splits: dict[str, list[Meme]]  # split name -> memes in the release's order
    task: Task

    def image_path(self, meme: Meme) -> Path:
        return self.root / meme.img

    def is_labeled(self, split: str) -> bool:
        return self.splits[split][0].label != UNLABELED


def check_image_path(img, where: str, key: str) -> None:
    """An image path from an annotation file must stay inside the dataset folder."""
    if not isinstance(img, str) or not img or Path(img).is_absolute() or ".." in Path(img).parts:
        raise InputError(f"{where}: '{key}' must be a path inside the dataset folder, got {img!r}")
