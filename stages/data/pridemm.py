"""PrideMM (Shah et al., EMNLP 2024, MemeCLIP; `data.layout: pridemm`), read as it ships.

    PrideMM.csv (or the folder's one CSV): `name`, `text`, `split` (train / val / test),
        `hate` (0/1), `target` (0-3), `stance` (0-2), `humour` (0/1)
    Images/<name>   (or images/)

Four tasks (`data.task`): `hate` (default, binary), `target` (4 classes: undirected,
individual, community, organization), `stance` (3: neutral, support, oppose), `humour`
(binary); the others are auxiliary. Every task is scored by macro-F1 (MemeCLIP reports
accuracy, AUROC and macro-F1). An empty cell is an unknown label; memes without the chosen
task's label are left out.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import InputError
from stages.data import tables
from stages.data.memes import Dataset, Meme, check_image_path, defined
from stages.data.task import Label, Task, encode

LABELS = {"hate": Label("hate"),
          "target": Label("target", ("undirected", "individual", "community", "organization")),
          "stance": Label("stance", ("neutral", "support", "oppose")),
          "humour": Label("humour")}
TASKS = tuple(LABELS)  # the default first
SPLITS = ("train", "val", "test")
IMAGE_FOLDERS = ("Images", "images")
HINT = "data.layout: pridemm expects PrideMM.csv and its Images/ folder"


def read(root: Path, task: str = "hate") -> Dataset:
    labels = (LABELS[task],) + tuple(label for key, label in LABELS.items() if key != task)
    chosen = Task.of(labels[:1], labels[1:], "macro_f1")
    path = csv_file(root)
    images = next((name for name in IMAGE_FOLDERS if (root / name).is_dir()), None)
    if images is None:
        raise InputError(f"{root}: no image folder ({' or '.join(IMAGE_FOLDERS)}; {HINT})")
    table = tables.read_table(path, ("name", "text", "split", *LABELS), HINT)
    splits: dict[str, list[Meme]] = {name: [] for name in SPLITS}
    for where, row in tables.rows(table, path):
        split = row["split"].strip().lower()
        if split not in splits:
            raise InputError(f"{where}: 'split' must be one of {', '.join(SPLITS)}, got {row['split']!r}")
        splits[split].append(to_meme(row, where, images, labels))
    for split, memes in splits.items():
        if not memes:
            raise InputError(f"{path}: no meme in split '{split}'")
    return Dataset(root, {name: defined(memes, chosen) for name, memes in splits.items()}, chosen)


def csv_file(root: Path) -> Path:
    if (root / "PrideMM.csv").is_file():
        return root / "PrideMM.csv"
    found = sorted(root.glob("*.csv"))
    if len(found) != 1:
        raise InputError(f"{root}: no PrideMM.csv ({HINT})")
    return found[0]


def to_meme(row: dict, where: str, images: str, labels: tuple[Label, ...]) -> Meme:
    name = row["name"].strip()
    check_image_path(name, where, "name")
    values = {label.name: tables.class_index(row[label.name], len(label.classes) or 2, where, label.name)
              for label in labels}
    return Meme(id=Path(name).stem, img=f"{images}/{name}", text=row["text"], labels=encode(labels, values),
                where=where)
