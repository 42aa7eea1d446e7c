"""MAMI (Fersini et al., SemEval-2022 Task 5; `data.layout: mami`), read as it ships.

    training.csv   (tab-separated, in the folder or its TRAINING/ or training/, beside the
                   images): `file_name`, `misogynous`, `shaming`, `stereotype`,
                   `objectification`, `violence`, `Text Transcription`
    Test.csv       (tab-separated, in the folder or its test/ or Test/, beside the images):
                   `file_name`, `Text Transcription`
    test labels    either `test_labels.txt` beside Test.csv or in the folder (tab-separated, no
                   header: file_name, misogynous, then the four types where the copy has them),
                   or the label columns in Test.csv itself. Without either the test split is
                   unlabeled.

Two tasks (`data.task`): `misogynous` (default; sub-task A, binary, macro-F1 over both
classes) and `types` (sub-task B: shaming, stereotype, objectification, violence, multi-label,
weighted F1); the other is auxiliary. The release has no dev split: `data.dev_fraction`
carves one out of train. Ids are the file names' stems.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import InputError
from stages.data import tables
from stages.data.memes import Dataset, Meme, check_image_path
from stages.data.task import Label, Task, encode

TYPES = ("shaming", "stereotype", "objectification", "violence")
TASKS = ("misogynous", "types")  # sub-task A (the default), B
TEXT = "Text Transcription"
GOLD = "test_labels.txt"
HINT = "data.layout: mami expects the release's training.csv and Test.csv with their images"


def task_of(name: str) -> tuple[Task, tuple[Label, ...]]:
    a, b = (Label("misogynous"),), tuple(Label(t) for t in TYPES)
    if name == "types":
        return Task.of(b, a, "weighted_f1"), b + a
    return Task.of(a, b, "macro_f1"), a + b


def read(root: Path, task: str = "misogynous") -> Dataset:
    chosen, labels = task_of(task)
    train_csv = find(root, "training.csv", ("TRAINING", "training"))
    test_csv = find(root, "Test.csv", ("test", "Test"))
    train = tables.read_table(train_csv, ("file_name", "misogynous", *TYPES, TEXT), HINT, sep="\t")
    test = tables.read_table(test_csv, ("file_name", TEXT), HINT, sep="\t")
    gold = test_gold(root, test_csv, test)
    splits = {"train": [to_meme(root, train_csv, where, row, row, labels)
                        for where, row in tables.rows(train, train_csv)],
              "test": [to_meme(root, test_csv, where, row, gold_of(gold, row, where), labels)
                       for where, row in tables.rows(test, test_csv)]}
    return Dataset(root, splits, chosen)


def gold_of(gold: dict[str, dict], row: dict, where: str) -> dict:
    """A test meme's labels ({} where the copy ships none at all)."""
    name = row["file_name"].strip()
    if gold and name not in gold:
        raise InputError(f"{where}: {name!r} has no row in the test labels")
    return gold.get(name, {})


def find(root: Path, name: str, folders: tuple[str, ...]) -> Path:
    for folder in (root, *(root / f for f in folders)):
        if (folder / name).is_file():
            return folder / name
    return root / name  # read_table says it is missing


def test_gold(root: Path, test_csv: Path, test) -> dict[str, dict]:
    """file_name -> its label cells, from Test.csv's own label columns or from
    test_labels.txt (a name given twice must be labeled alike)."""
    if "misogynous" in test.columns:
        return tables.gold(tables.rows(test, test_csv), "file_name", label_cells)
    path = next((p for p in (test_csv.parent / GOLD, root / GOLD) if p.is_file()), None)
    if path is None:
        return {}
    first = path.read_text(encoding="utf-8-sig").splitlines()[0].split("\t")
    names = ("file_name", "misogynous", *TYPES)[:len(first)]
    if len(first) not in (2, 6):
        raise InputError(f"{path}:1: expected file_name and misogynous, or those and the four "
                         f"types, tab-separated; got {len(first)} columns")
    table = tables.read_table(path, names, HINT, sep="\t", names=names)
    return tables.gold(tables.rows(table, path, header=False), "file_name", label_cells)


def label_cells(row: dict) -> dict[str, str]:
    return {name: row[name].strip() for name in ("misogynous", *TYPES) if name in row}


def to_meme(root: Path, csv: Path, where: str, row: dict, gold: dict, labels: tuple[Label, ...]) -> Meme:
    name = row["file_name"].strip()
    check_image_path(name, where, "file_name")
    values = {label.name: tables.binary(gold[label.name], where, label.name) if label.name in gold
              else None for label in labels}
    folder = csv.parent.relative_to(root).as_posix()
    img = name if folder == "." else f"{folder}/{name}"
    return Meme(id=Path(name).stem, img=img, text=row[TEXT], labels=encode(labels, values), where=where)
