"""The fine-grained Hateful Memes annotations (Mathias et al., WOAH 2021) as auxiliary labels.

    data.fine_grained: <folder> holding annotations/train.json, dev_seen.json, dev_unseen.json
    (JSON lines despite the name): {"id", "gold_pc": [...], "gold_attack": [...], ...}

The 6 protected categories and 8 attack types, each "empty" value included, are the 14
auxiliary labels of the official Hate-CLIPper code (`disability_pc` ... `slurs_attack`). A meme
of the dataset gets them where an annotation file covers its id (the same id in several files
must agree); every other meme has them unknown, and unknown labels never count in the loss.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from stages.common.errors import InputError
from stages.data.memes import UNLABELED, Dataset, json_records

PROTECTED_CATEGORIES = ("disability", "nationality", "pc_empty", "race", "religion", "sex")
ATTACK_TYPES = ("attack_empty", "contempt", "dehumanizing", "exclusion", "inciting_violence",
                "inferiority", "mocking", "slurs")
LABELS = tuple(f"{c}_pc" for c in PROTECTED_CATEGORIES) + tuple(f"{a}_attack" for a in ATTACK_TYPES)
FILES = ("train", "dev_seen", "dev_unseen")


def attach(data: Dataset, folder: Path) -> Dataset:
    """The dataset with the 14 labels added as auxiliary labels of the memes they cover; an
    annotation set whose ids match no meme (zero-padded ids, another release) is refused."""
    annotated = read(folder)
    ids = {m.id for memes in data.splits.values() for m in memes}
    if not ids & set(annotated):
        raise InputError(f"{folder}/annotations: none of its {len(annotated)} ids is the id of a meme "
                         f"in {data.root} (e.g. {next(iter(annotated), '-')!r} against "
                         f"{next(iter(ids), '-')!r}); data.fine_grained must annotate this release")
    task = dataclasses.replace(data.task, auxiliary=data.task.auxiliary + LABELS)
    unknown = (UNLABELED,) * len(LABELS)
    splits = {name: [dataclasses.replace(m, labels=m.labels + annotated.get(m.id, unknown))
                     for m in memes] for name, memes in data.splits.items()}
    return Dataset(data.root, splits, task)


def annotated(data: Dataset) -> dict[str, int]:
    """Per split, how many memes the annotations cover (their 14 labels known)."""
    return {name: sum(UNLABELED not in m.labels[-len(LABELS):] for m in memes)
            for name, memes in data.splits.items()}


def read(folder: Path) -> dict[str, tuple[int, ...]]:
    """id -> the 14 labels, from every annotation file."""
    labels: dict[str, tuple[int, ...]] = {}
    for name in FILES:
        path = folder / "annotations" / f"{name}.json"
        if not path.is_file():
            raise InputError(f"{path}: not found (data.fine_grained expects the release's "
                             f"annotations/{{{','.join(FILES)}}}.json)")
        for number, record in json_records(path, ("id",)):
            meme_id, row = parse_record(record, f"{path}:{number}")
            if labels.setdefault(meme_id, row) != row:
                raise InputError(f"{path}:{number}: id {meme_id} is annotated differently "
                                 "in another file")
    return labels


def parse_record(record: dict, where: str) -> tuple[str, tuple[int, ...]]:
    values = {}
    for key, names, suffix in (("gold_pc", PROTECTED_CATEGORIES, "_pc"),
                               ("gold_attack", ATTACK_TYPES, "_attack")):
        given = record.get(key)
        if not isinstance(given, list) or not given or not all(isinstance(v, str) for v in given):
            raise InputError(f"{where}: '{key}' must be a non-empty list of names")
        unknown = [v for v in given if v not in names]
        if unknown:
            raise InputError(f"{where}: unknown {key} value {unknown[0]!r} "
                             f"(known: {', '.join(names)})")
        values.update({f"{name}{suffix}": int(name in given) for name in names})
    if isinstance(record["id"], bool):
        raise InputError(f"{where}: 'id' must be an integer or a string")
    return str(record["id"]), tuple(values[label] for label in LABELS)
