"""HarMeme (Pramanick et al., 2021; `data.layout: harmeme`): Harm-C and Harm-P, read as they ship.

    annotations/train.jsonl, val.jsonl, test.jsonl   (di-dimitrov/mmf's Harm-C: with images/)
    train_v1.jsonl, val_v1.jsonl, test_v1.jsonl      (LCS2-IIITD/MOMENTA's Harm-P, V1; the V0
                                                      files have duplicates: V1 wins where both are)
    images/<image>

Either file set may sit in the folder itself or in annotations/. Lines `{"id", "image",
"labels", "text"}`, `labels` like `["not harmful"]` or `["somewhat harmful", "individual"]`:
its first entry is the intensity, the rest the target(s). Three tasks (`data.task`):
- harmful (default): binary, somewhat or very harmful vs not, as RGCL and ISSUES score it (AUROC);
- intensity: 3 classes, not / somewhat / very harmful (MOMENTA; macro-F1);
- target: 4 classes, individual / organization / community / society, for harmful memes only
  (MOMENTA; macro-F1): memes without a target are left out of every split.
The other two are auxiliary labels; the target is unknown for a meme that is not harmful.
Quirks of the release, read as MOMENTA's own code reads them: an empty intensity (one Harm-P
line) counts as very harmful (`labels[0]` neither "not" nor "somewhat"), and of two targets
(a few Harm-P memes) the first is the meme's.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import InputError
from stages.data.memes import Dataset, Meme, check_image_path, defined, read_jsonl_split
from stages.data.task import Label, Task, encode

SPLITS = ("train", "val", "test")
INTENSITIES = ("not harmful", "somewhat harmful", "very harmful")
TARGETS = ("individual", "organization", "community", "society")
LABELS = {"harmful": Label("harmful"), "intensity": Label("intensity", INTENSITIES),
          "target": Label("target", TARGETS)}
METRICS = {"harmful": "auroc", "intensity": "macro_f1", "target": "macro_f1"}
TASKS = tuple(LABELS)  # the default first


def task_of(name: str) -> tuple[Task, tuple[Label, ...]]:
    """The task with `name` primary, the others auxiliary, and its labels in column order."""
    labels = (LABELS[name],) + tuple(label for key, label in LABELS.items() if key != name)
    return Task.of(labels[:1], labels[1:], METRICS[name]), labels


def read(root: Path, task: str = "harmful") -> Dataset:
    chosen, labels = task_of(task)
    splits = {}
    for split in SPLITS:
        path = split_file(root, split)
        memes = [m for _, m in read_jsonl_split(path, ("id", "image", "labels", "text"),
                                                lambda record, where: to_meme(record, where, labels))]
        splits[split] = defined(memes, chosen)
    return Dataset(root, splits, chosen)


def split_file(root: Path, split: str) -> Path:
    for folder in (root / "annotations", root):
        for name in (f"{split}_v1.jsonl", f"{split}.jsonl"):
            if (folder / name).is_file():
                return folder / name
    raise InputError(f"{root}: no {split}.jsonl or {split}_v1.jsonl, in annotations/ or the folder "
                     "itself (data.layout: harmeme expects Harm-C or Harm-P as released, "
                     "docs/datasets.md)")


def to_meme(record: dict, where: str, labels: tuple[Label, ...]) -> Meme:
    names = record["labels"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"{where}: 'labels' must be a non-empty list of names")
    intensity = names[0].strip()
    if intensity and intensity not in INTENSITIES:
        raise InputError(f"{where}: unknown intensity {names[0]!r} (first of 'labels': "
                         f"{', '.join(INTENSITIES)})")
    level = INTENSITIES.index(intensity) if intensity else 2  # MOMENTA: neither not nor somewhat
    unknown = [n for n in names[1:] if n.strip() not in TARGETS]
    if unknown:
        raise InputError(f"{where}: unknown target {unknown[0]!r} (known: {', '.join(TARGETS)})")
    target = TARGETS.index(names[1].strip()) if level and len(names) > 1 else None
    if not isinstance(record["text"], str):
        raise InputError(f"{where}: 'text' must be a string")
    check_image_path(record["image"], where, "image")
    values = {"harmful": int(level > 0), "intensity": level, "target": target}
    return Meme(id=str(record["id"]), img=f"images/{record['image']}", text=record["text"],
                labels=encode(labels, values))
