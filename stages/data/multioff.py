"""MultiOFF (Suryawanshi et al., 2020; `data.layout: multioff`), read as it ships.

    Training_meme_dataset.csv, Validation_meme_dataset.csv, Testing_meme_dataset.csv
        (in the folder or its `Split Dataset/`): `image_name`, `sentence`, `label`
    Labelled Images/<image_name>   (or images/)

One binary label, `offensive`: `offensive` is 1, `Non-offensiv` (as the release spells it) 0.
Splits train / val / test. Scored by macro-F1 over both classes.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import InputError
from stages.data import tables
from stages.data.memes import Dataset, Meme, check_image_path
from stages.data.task import Label, Task

FILES = {"train": "Training_meme_dataset.csv", "val": "Validation_meme_dataset.csv",
         "test": "Testing_meme_dataset.csv"}
IMAGE_FOLDERS = ("Labelled Images", "images")
CLASSES = {"offensive": 1, "non-offensiv": 0, "non-offensive": 0}
TASK = Task.of((Label("offensive"),), metric="macro_f1")
TASKS = ("offensive",)
HINT = "data.layout: multioff expects the release's three CSVs and its Labelled Images/ folder"


def read(root: Path, task: str = "offensive") -> Dataset:
    images = next((name for name in IMAGE_FOLDERS if (root / name).is_dir()), None)
    if images is None:
        raise InputError(f"{root}: no image folder ({' or '.join(IMAGE_FOLDERS)}; {HINT})")
    return Dataset(root, {split: read_split(find(root, name), images) for split, name in FILES.items()},
                   TASK)


def find(root: Path, name: str) -> Path:
    for folder in (root, root / "Split Dataset"):
        if (folder / name).is_file():
            return folder / name
    return root / name  # read_table says it is missing


def read_split(path: Path, images: str) -> list[Meme]:
    table = tables.read_table(path, ("image_name", "sentence", "label"), HINT)
    memes = []
    for where, row in tables.rows(table, path):
        name, label = row["image_name"].strip(), row["label"].strip().lower()
        if label not in CLASSES:
            raise InputError(f"{where}: 'label' must be offensive or Non-offensiv, got {row['label']!r}")
        check_image_path(name, where, "image_name")
        memes.append(Meme(id=Path(name).stem, img=f"{images}/{name}", text=row["sentence"],
                          labels=(CLASSES[label],), where=where))
    if not memes:
        raise InputError(f"{path}: no memes in this split")
    return memes
