"""The Hateful Memes release (`data.layout: hateful_memes`): `*.jsonl` splits plus images.

Layouts (both real ones work; split names are the file stems):
  Kaggle:          train, dev, test
  Full challenge:  train, dev_seen, dev_unseen, test_seen, test_unseen
Each line: {"id": 42953, "img": "img/42953.png", "label": 0, "text": "..."}. `img` is the only
way to find the image (ids are not file names); `label` is absent in unlabeled splits.
The same files as MMF ships them, `annotations/*.jsonl` with the images under `images/img/`,
are found from the folder's shape (no *.jsonl beside an annotations/ folder).
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import InputError
from stages.data.memes import UNLABELED, Dataset, Meme, meme_fields, read_jsonl_split
from stages.data.task import HATEFUL

TASKS = ("hateful",)


def read(root: Path, task: str = "hateful") -> Dataset:
    files, images = sorted(root.glob("*.jsonl")), ""
    if not files and (root / "annotations").is_dir():  # MMF's shape
        files, images = sorted((root / "annotations").glob("*.jsonl")), "images/"
    if not files:
        raise InputError(f"no *.jsonl split files in {root}: {missing_data_hint(root)}")
    return Dataset(root, {f.stem: read_split(f, images) for f in files}, HATEFUL)


def missing_data_hint(root: Path) -> str:
    return (
        f"put the Hateful Memes dataset in {root}/ (the *.jsonl files and img/), then "
        f"`dvc add {root}` (see data/README.md), or set data.dir in params.yaml; "
        "to try the pipeline without it, run `make demo`"
    )


def read_split(path: Path, images: str = "") -> list[Meme]:
    """A split's memes; `images` is the folder the `img` paths start from (MMF: images/)."""
    lines = read_jsonl_split(path, ("id", "img", "text"),
                             lambda record, where: to_meme(record, where, images))
    unlabeled = [number for number, meme in lines if meme.label == UNLABELED]
    if unlabeled and len(unlabeled) < len(lines):
        raise InputError(
            f"{path}:{unlabeled[0]}: missing 'label' in a labeled split "
            f"({len(unlabeled)} of {len(lines)} lines have none)"
        )
    return [meme for _, meme in lines]


def to_meme(record: dict, where: str, images: str = "") -> Meme:
    meme_id, img, text = meme_fields(record, where)
    label = record.get("label", UNLABELED)
    if "label" in record and (label not in (0, 1) or isinstance(label, bool)):
        raise InputError(f"{where}: 'label' must be 0 or 1, got {label!r}")
    return Meme(id=meme_id, img=images + img, text=text, labels=(int(label),))
