"""The meme records every dataset reader produces, whatever its release's own format."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from stages.common.errors import InputError
from stages.data.task import UNKNOWN, Task

UNLABELED = UNKNOWN
TRAIN_SPLIT = "train"  # the split the head is fitted on, in every layout


@dataclass(frozen=True)
class Meme:
    id: str  # exactly as the release writes it (ints as decimal)
    img: str  # relative to the dataset folder
    text: str
    labels: tuple[int, ...]  # one per task label (primary, then auxiliary): 0, 1 or UNLABELED
    where: str = field(default="", compare=False)  # "file:line" of its row, for errors

    @property
    def label(self) -> int:
        """The first primary label (Hateful Memes' `hateful`)."""
        return self.labels[0]


@dataclass(frozen=True)
class Dataset:
    root: Path
    splits: dict[str, list[Meme]]  # split name -> memes in the release's order
    task: Task
    texts: dict[str, dict[str, str]] = field(default_factory=dict)  # data.texts: stream -> id -> text

    def __post_init__(self) -> None:
        check_ids(self.splits)

    def image_path(self, meme: Meme) -> Path:
        return self.root / meme.img

    def is_labeled(self, split: str) -> bool:
        return self.task.is_labeled([m.labels for m in self.splits[split]])


def check_ids(splits: dict[str, list[Meme]]) -> None:
    """Every meme has one id, and two memes never share one: an id appears once in a split,
    and across splits it names one image (Hateful Memes' dev_unseen repeats dev_seen's memes).
    A release whose file names give two memes one id (`dup.jpg`, `dup.png`) is refused in one
    line naming both rows."""
    first: dict[str, Meme] = {}
    for memes in splits.values():
        in_split: set[str] = set()
        for meme in memes:
            seen = first.setdefault(meme.id, meme)
            if meme.id in in_split or seen.img != meme.img:
                what = (f"two memes ({seen.img}, {meme.img}) cannot share one id" if seen.img != meme.img
                        else "a split lists each meme once")
                raise InputError(f"{meme.where}: duplicate id {meme.id} (first seen "
                                 f"{place(seen.where, meme.where)}): {what}")
            in_split.add(meme.id)


def place(where: str, here: str) -> str:
    """`on line 3` within the same file, else `at file:line`."""
    file, _, line = where.rpartition(":")
    return f"on line {line}" if file and here.rpartition(":")[0] == file else f"at {where or 'an earlier row'}"


def defined(memes: list[Meme], task: Task) -> list[Meme]:
    """A split's memes that have the task's primary label: a task defined on part of a
    release (HarMeme's target, on harmful memes) leaves the others out. A split that knows
    no label at all (an unlabeled test split) keeps every meme."""
    known = [m for m in memes if UNLABELED not in m.labels[task.primary]]
    return known if known else memes


def meme_fields(record: dict, where: str, img_key: str = "img") -> tuple[str, str, str]:
    """A JSON record's id (as a string), image path and caption, checked."""
    meme_id, img, text = record["id"], record[img_key], record["text"]
    if isinstance(meme_id, bool) or not isinstance(meme_id, (int, str)) or meme_id == "":
        raise InputError(f"{where}: 'id' must be an integer or a non-empty string")
    check_image_path(img, where, img_key)
    if not isinstance(text, str):
        raise InputError(f"{where}: 'text' must be a string")
    return str(meme_id), img, text


def check_image_path(img, where: str, key: str) -> None:
    """An image path from an annotation file must stay inside the dataset folder."""
    if not isinstance(img, str) or not img or Path(img).is_absolute() or ".." in Path(img).parts:
        raise InputError(f"{where}: '{key}' must be a path inside the dataset folder, got {img!r}")


def json_records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSON-lines file (a byte-order mark is
    fine); a line that is no JSON object with the `required` keys is a one-line error naming
    file and line."""
    with open(path, encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{where}: expected a JSON object")
            for key in required:
                if key not in record:
                    raise InputError(f"{where}: missing '{key}'")
            yield number, record


def read_jsonl_split(path: Path, required: tuple[str, ...],
                     to_meme: Callable[[dict, str], Meme]) -> list[tuple[int, Meme]]:
    """A JSON-lines split file's memes with their line numbers, in order: each object made a
    Meme by `to_meme(object, "file:line")`; a repeated id or an empty file is an error."""
    memes = [(number, dataclasses.replace(to_meme(record, f"{path}:{number}"), where=f"{path}:{number}"))
             for number, record in json_records(path, required)]
    if not memes:
        raise InputError(f"{path}: no memes in this split")
    check_ids({path.stem: [meme for _, meme in memes]})
    return memes


def read_new_memes(path: Path, task: Task, caption: Callable[[str], str] = str
                   ) -> list[tuple[int, Meme]]:
    """New memes for `predict --jsonl` / `--add-to-index`, for any task, with line numbers.

    One JSON object a line: `id`, `img` (relative to the file's folder), `text`, and the
    labels, if known, either by name (`"labels": [the task's labels that apply]`, the others
    0: Propaganda Memes' own form) or, for a task of one label, as `"label": 0 or 1` (the
    Hateful Memes line as it ships). `caption` is what the release's reader does to a caption
    before CLIP sees it, so a new meme gets the features the pipeline gives it.
    """
    def to_meme(record: dict, where: str) -> Meme:
        meme_id, img, text = meme_fields(record, where)
        unknown_aux = (UNLABELED,) * len(task.auxiliary)
        return Meme(meme_id, img, caption(text), labels_by_name(record, task, where) + unknown_aux)

    return read_jsonl_split(path, ("id", "img", "text"), to_meme)


def labels_by_name(record: dict, task: Task, where: str) -> tuple[int, ...]:
    """A new meme's primary labels: from `labels` (names) or `label` (0/1), else unknown."""
    if "labels" in record and "label" in record:
        raise InputError(f"{where}: give 'labels' (names) or 'label' (0 or 1), not both")
    if "labels" in record:
        names = record["labels"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"{where}: 'labels' must be a list of label names")
        unknown = [n for n in names if n not in task.labels]
        if unknown:
            raise InputError(f"{where}: unknown label {unknown[0]!r} (this task's: "
                             f"{', '.join(task.labels)})")
        return tuple(int(name in names) for name in task.labels)
    if "label" in record:
        label = record["label"]
        if len(task.labels) > 1:
            raise InputError(f"{where}: this task has {len(task.labels)} labels: give them by "
                             "name as 'labels': [...]")
        if isinstance(label, bool) or label not in (0, 1):
            raise InputError(f"{where}: 'label' must be 0 or 1, got {label!r}")
        return (int(label),)
    return (UNLABELED,) * len(task.labels)
