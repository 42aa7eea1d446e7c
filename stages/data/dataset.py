"""The meme dataset on disk, read by its release's own reader (`data.layout`), and checked.

Layouts: `hateful_memes` (default; Kaggle's, the full challenge's and MMF's,
stages/data/hateful_memes.py), `propaganda`, `tamil`, `harmeme`, `multioff`, `mami`, `pridemm`
(one module each in stages/data/); `data.task` picks a release's primary label set. `data.fine_grained` adds the
fine-grained Hateful Memes annotations as auxiliary labels (stages/data/fine_grained.py), and
`data.dev_fraction` carves a seeded, stratified `dev` split out of `train` for releases that
ship without one. `data.texts` adds each meme's other texts (stages/data/texts.py). Every
reader yields the same records (stages/data/memes.py) and its task: the rest of the pipeline
never asks which release it reads.
"""
from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from stages.common.errors import InputError
from stages.data import (
    fine_grained,
    harmeme,
    hateful_memes,
    mami,
    mmhs150k,
    multioff,
    pridemm,
    propaganda,
    tamil,
    texts,
)
from stages.data.memes import TRAIN_SPLIT, Dataset, Meme, read_new_memes
from stages.data.task import Task


@dataclass(frozen=True)
class Layout:
    read: Callable[[Path, str], Dataset]  # the release's folder, data.task -> splits and task
    tasks: tuple[str, ...]  # data.task's choices, the default first
    caption: Callable[[str], str] = str  # what the reader does to a caption before CLIP sees it
    texts: dict[str, Callable[[Dataset], dict[str, str]]] = dataclasses.field(default_factory=dict)  # own streams


def layout(reader) -> Layout:
    """A release's reader module as a layout: its read, its TASKS, and its caption rule and
    text streams (TEXTS), if any."""
    return Layout(reader.read, reader.TASKS, getattr(reader, "caption", str), getattr(reader, "TEXTS", {}))


# data.layout's choices, each named as its reader module; params.py reads the names here.
LAYOUTS = {reader.__name__.rpartition(".")[2]: layout(reader)
           for reader in (hateful_memes, propaganda, tamil, harmeme, multioff, mami, pridemm, mmhs150k)}
DEV_SPLIT = "dev"  # the split data.dev_fraction carves
DEV_SEED = 0  # the carve is the same on every machine


def read(root: str | Path, layout: str = "hateful_memes", fine_grained_dir: str | None = None,
         dev_fraction: float = 0.0, task: str | None = None, streams: tuple[str, ...] = ()) -> Dataset:
    """The release at `root` read by its layout's reader, for `task` (None: the layout's
    default), with the fine-grained labels, the text streams and a carved dev split where asked."""
    root = Path(root)
    if not root.is_dir():
        hint = (hateful_memes.missing_data_hint(root) if layout == "hateful_memes" else
                f"data.layout {layout} expects its release's folder there (docs/datasets.md)")
        raise InputError(f"data.dir {root} does not exist: {hint}")
    data = LAYOUTS[layout].read(root, task or LAYOUTS[layout].tasks[0])
    if fine_grained_dir:
        data = fine_grained.attach(data, Path(fine_grained_dir))
    if streams:
        data = texts.attach(data, streams, LAYOUTS[layout].texts)
    return carve_dev(data, dev_fraction) if dev_fraction else data


def new_memes(path: Path, layout: str, task: Task) -> list[tuple[int, Meme]]:
    """New memes in the one JSON-lines form of every task (memes.read_new_memes), their
    captions read as the layout's reader reads them."""
    return read_new_memes(path, task, LAYOUTS[layout].caption)


def read_params(data_params) -> Dataset:
    """The dataset params.yaml's `data.*` describes."""
    return read(data_params.dir, data_params.layout, data_params.fine_grained,
                data_params.dev_fraction, data_params.task, data_params.texts)


def carve_dev(data: Dataset, fraction: float) -> Dataset:
    """A `dev` split of round(fraction x N) training memes, stratified by the first primary
    label (stratum) and seeded; the rest stay in train. The test split is never touched."""
    if DEV_SPLIT in data.splits or TRAIN_SPLIT not in data.splits:
        raise InputError(f"data.dev_fraction: {data.root} has a '{DEV_SPLIT}' split already, "
                         f"or no '{TRAIN_SPLIT}' split to carve it from")
    train = data.splits[TRAIN_SPLIT]
    size = round(fraction * len(train))
    if not 0 < size < len(train):
        raise InputError(f"data.dev_fraction {fraction} of {len(train)} training memes leaves "
                         "no dev or no training meme")
    # scikit-learn's splitter takes a second to import: only a carve pays for it
    from sklearn.model_selection import train_test_split

    try:
        _, dev = train_test_split(np.arange(len(train)), test_size=size, random_state=DEV_SEED,
                                  stratify=[stratum(m, data.task) for m in train])
    except ValueError as err:  # a label value too rare to stratify
        raise InputError(f"data.dev_fraction {fraction}: cannot carve a stratified dev split "
                         f"from {len(train)} training memes ({err})") from None
    dev = set(dev.tolist())
    splits = {**data.splits, TRAIN_SPLIT: [m for i, m in enumerate(train) if i not in dev],
              DEV_SPLIT: [m for i, m in enumerate(train) if i in dev]}
    return dataclasses.replace(data, splits=splits)


def stratum(meme: Meme, task: Task) -> int:
    """What the carve stratifies by: the first primary label (a C-class label: its class)."""
    if task.is_categorical:
        return meme.labels[task.primary].index(1)
    return meme.label


def unique_images(dataset: Dataset) -> list[str]:
    """Each image once, in order of first appearance (the same meme can sit in several splits)."""
    return list(dict.fromkeys(m.img for memes in dataset.splits.values() for m in memes))


def unique_texts(dataset: Dataset) -> list[str]:
    """Each text the text tower encodes once: the memes' own, then every cached stream's."""
    every = [m.text for memes in dataset.splits.values() for m in memes]
    for stream in texts.cached(dataset):
        every += [text for memes in dataset.splits.values() for text in texts.texts_of(dataset, memes, stream)]
    return list(dict.fromkeys(every))


def fingerprint(dataset: Dataset) -> str:
    """A digest of the memes as read (splits, ids, captions, labels, the task, the text
    streams) and the image files' sizes.

    Cheap enough to recheck before every stage (no image is read); it changes when a split,
    a caption, a label or an image file's size changes, whatever the release's format.
    """
    digest = hashlib.sha256(dataset.task.to_json().encode())
    for split in sorted(dataset.splits):
        digest.update(split.encode())
        for m in dataset.splits[split]:
            digest.update(f"{m.id}\0{m.img}\0{m.text}\0{m.labels}\n".encode())
    for name, stream in sorted(dataset.texts.items()):
        digest.update(f"stream {name}\n".encode())
        for meme_id, text in sorted(stream.items()):
            digest.update(f"{meme_id}\0{text}\n".encode())
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
