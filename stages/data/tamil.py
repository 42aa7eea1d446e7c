"""TamilMemes (Suryawanshi et al., 2020; `data.layout: tamil`), read as it ships.

    train_captions.csv       an unnamed index column, `imagename`, `captions`; images under
                             uploaded_tamil_memes/, the label from the file name
                             (`troll_*` = 1, `Not_troll_*` = 0)
    test_captions.csv        the same columns; images under test_img/
    gold_labels_for_test.csv `ref_caption` (the image name), `label` (`troll` or not)

One label, `troll`. The release has no dev split: `data.dev_fraction` carves one out of train
(the official Hate-CLIPper run selected its epoch on the test set instead).
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import InputError
from stages.data import tables
from stages.data.memes import Dataset, Meme, check_image_path
from stages.data.task import Task

TASK = Task(("troll",), metric="paper_micro_f1")  # the paper's TamilMemes figure (Sec. 4.4)
TASKS = ("troll",)


def read(root: Path, task: str = "troll") -> Dataset:
    gold_csv = root / "gold_labels_for_test.csv"
    test_labels = tables.gold(tables.rows(read_csv(gold_csv, ("ref_caption", "label")), gold_csv),
                              "ref_caption", lambda row: int(row["label"].strip().lower() == "troll"))
    train = [meme(root, "uploaded_tamil_memes", name, caption, label_from_name(name, where), where)
             for name, caption, where in rows(root / "train_captions.csv")]
    test = []
    for name, caption, where in rows(root / "test_captions.csv"):
        if name not in test_labels:
            raise InputError(f"{where}: image {name!r} has no row in {root}/gold_labels_for_test.csv")
        test.append(meme(root, "test_img", name, caption, test_labels[name], where))
    return Dataset(root, {"train": train, "test": test}, TASK)


def read_csv(path: Path, columns: tuple[str, ...]):
    return tables.read_table(path, columns, "data.layout: tamil expects train_captions.csv, "
                             "test_captions.csv and gold_labels_for_test.csv")


def rows(path: Path):
    """(image name, caption, where) per line; line numbers count the header as line 1."""
    table = read_csv(path, ("imagename", "captions"))
    for number, (name, caption) in enumerate(zip(table["imagename"], table["captions"]), start=2):
        if not name.strip():
            raise InputError(f"{path}:{number}: empty 'imagename'")
        yield name.strip(), caption, f"{path}:{number}"


def label_from_name(name: str, where: str) -> int:
    lowered = name.lower()
    if lowered.startswith("not_troll"):
        return 0
    if lowered.startswith("troll"):
        return 1
    raise InputError(f"{where}: image name {name!r} starts with neither troll_ nor Not_troll_, "
                     "so it has no label")


def meme(root: Path, folder: str, name: str, caption: str, label: int, where: str) -> Meme:
    check_image_path(name, where, "imagename")
    return Meme(id=Path(name).stem, img=f"{folder}/{name}", text=caption, labels=(label,), where=where)
