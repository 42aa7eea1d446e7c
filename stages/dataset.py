"""The meme dataset on disk: `*.jsonl` splits plus images, read and validated.

Layouts (both real ones work; split names are the file stems):
  Kaggle:          train, dev, test
  Full challenge:  train, dev_seen, dev_unseen, test_seen, test_unseen
Each line: {"id": 42953, "img": "img/42953.png", "label": 0, "text": "..."}. `img` is the only
way to find the image (ids are not file names); `label` is absent in unlabeled splits.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from stages.outputs import InputError

UNLABELED = -1
TRAIN_SPLIT = "train"  # the split the head is fitted on, in both real layouts


@dataclass(frozen=True)
class Meme:
    id: str  # exactly as in the jsonl (ints written as decimal)
    img: str  # relative to the dataset folder
    text: str
    label: int  # 0, 1, or UNLABELED


@dataclass(frozen=True)
class Dataset:
    root: Path
    splits: dict[str, list[Meme]]  # split name -> memes in jsonl order

    def image_path(self, meme: Meme) -> Path:
        return self.root / meme.img

    def is_labeled(self, split: str) -> bool:
        return self.splits[split][0].label != UNLABELED


def missing_data_hint(root: Path) -> str:
    return (
        f"put the Hateful Memes dataset in {root}/ (the *.jsonl files and img/), then "
        f"`dvc add {root}` (see data/README.md), or set data.dir in params.yaml; "
        "to try the pipeline without it, run `make demo`"
    )


def read(root: str | Path) -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"data.dir {root} does not exist: {missing_data_hint(root)}")
    files = sorted(root.glob("*.jsonl"))
    if not files:
        raise InputError(f"no *.jsonl split files in {root}: {missing_data_hint(root)}")
    return Dataset(root, {f.stem: read_split(f) for f in files})


def read_split(path: Path) -> list[Meme]:
    memes: list[Meme] = []
    first_line_of: dict[str, int] = {}
    labeled_lines, unlabeled_lines = [], []
    with open(path, encoding="utf-8-sig") as lines:  # tolerate a byte-order mark
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            meme = parse_line(line, f"{path}:{number}")
            if meme.id in first_line_of:
                raise InputError(
                    f"{path}:{number}: duplicate id {meme.id} "
                    f"(first seen on line {first_line_of[meme.id]})"
                )
            first_line_of[meme.id] = number
            (unlabeled_lines if meme.label == UNLABELED else labeled_lines).append(number)
            memes.append(meme)
    if not memes:
        raise InputError(f"{path}: no memes in this split")
    if labeled_lines and unlabeled_lines:
        raise InputError(
            f"{path}:{unlabeled_lines[0]}: missing 'label' in a labeled split "
            f"({len(unlabeled_lines)} of {len(memes)} lines have none)"
        )
    return memes


def parse_line(line: str, where: str) -> Meme:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: not valid JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object")
    for key in ("id", "img", "text"):
        if key not in record:
            raise InputError(f"{where}: missing '{key}'")
    meme_id, img, text = record["id"], record["img"], record["text"]
    if isinstance(meme_id, bool) or not isinstance(meme_id, (int, str)) or meme_id == "":
        raise InputError(f"{where}: 'id' must be an integer or a non-empty string")
    if not isinstance(img, str) or not img or Path(img).is_absolute() or ".." in Path(img).parts:
        raise InputError(f"{where}: 'img' must be a path inside the dataset folder, got {img!r}")
    if not isinstance(text, str):
        raise InputError(f"{where}: 'text' must be a string")
    label = record.get("label", UNLABELED)
    if "label" in record and (label not in (0, 1) or isinstance(label, bool)):
        raise InputError(f"{where}: 'label' must be 0 or 1, got {label!r}")
    return Meme(id=str(meme_id), img=img, text=text, label=int(label))


def unique_images(dataset: Dataset) -> list[str]:
    """Each image once, in order of first appearance (the same meme can sit in several splits)."""
    return list(dict.fromkeys(m.img for memes in dataset.splits.values() for m in memes))


def unique_texts(dataset: Dataset) -> list[str]:
    return list(dict.fromkeys(m.text for memes in dataset.splits.values() for m in memes))


def fingerprint(dataset: Dataset) -> str:
    """A digest of the annotations and the image files' sizes.

    Cheap enough to recheck before every stage (no image is read); it changes when a split,
    a caption, a label or an image file's size changes.
    """
    digest = hashlib.sha256()
    for split in sorted(dataset.splits):
        digest.update(split.encode())
        digest.update((dataset.root / f"{split}.jsonl").read_bytes())
    for img in sorted(unique_images(dataset)):
        path = dataset.root / img
        size = path.stat().st_size if path.is_file() else -1
        digest.update(f"{img}\0{size}\0".encode())
    return digest.hexdigest()[:16]


def load_image(path: Path) -> Image.Image:
    """Decode an image file to RGB, or raise InputError naming the file and the reason.

    RGBA, palette, grayscale and CMYK images are converted as open_clip does (convert("RGB"));
    the format is read from the bytes, so JPEG data behind a .png name is fine.
    """
    if not path.is_file():
        raise InputError(f"{path}: image file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: image file is empty")
    try:
        with warnings.catch_warnings():
            # Over Pillow's pixel limit is a warning up to 2x and an error beyond: treat both
            # as a decompression bomb so a hostile file never reaches the decoder.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                if image.mode == "P":  # palette transparency needs RGBA first to convert cleanly
                    image = image.convert("RGBA")
                return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            f"{path}: image too large, over Pillow's decompression-bomb limit of "
            f"{Image.MAX_IMAGE_PIXELS} pixels (a possible decompression bomb)"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        reason = "not an image Pillow can read" if "cannot identify" in str(err) else str(err)
        raise InputError(f"{path}: unreadable image ({reason})") from None
