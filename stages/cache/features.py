"""The feature cache's format and its writer: one HDF5 file, one group per split.

Each group holds `ids` (UTF-8, the release's order), `captions` (the memes' text, UTF-8),
`labels` (int8, one column per label of the task, -1 where unknown; the file's `task`
attribute names them, stages/data/task.py), `image_proj` and `text_proj` (the encoder's
embeddings, every model has them) and, where the encoder separates its final projections,
`image` and `text` (pooled, pre-projection: the paper's features). The `feature_kinds`
attribute names the kinds the file holds. With clip.augment_views > 0 the training split also
holds `image_proj_views` (and `image_views` with pooled features), (N, views, D): augmented
views of each meme's image, for training only.

Each text stream of data.texts, and its join with the meme's text (stages/data/texts.py), is
a subgroup `streams/<name>` of the split: `texts`, `text_proj` and, with pooled features,
`text`. The file's `texts` attribute names the streams. Where pooled features exist, the
training split's `projections/image` and `projections/text` hold the towers' own final
projections (in, out), and `projections/<tower>_bias` a bias where one has it:
`head.pretrained_map` starts from them.

File attributes name the encoder settings and the data the features were computed from;
`stages/head/inputs.py` checks them, so a cache from another encoder or data version is an
error, not wrong numbers. Extraction imports this module and not the reader, so that DVC
reruns a GPU extraction only for code that decides the features.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from stages.common.errors import InputError
from stages.common.files import atomic_path

CACHE = Path("features/clip_features.h5")
# Which datasets `head.features` selects: image, text, and the image's augmented views.
FEATURE_KEYS = {"pooled": ("image", "text", "image_views"),
                "projected": ("image_proj", "text_proj", "image_proj_views")}
VIEW_KEYS = ("image_views", "image_proj_views")
# What this code writes. 2: long captions keep their EOT (version 1 cut them without one, which
# the official code never did), labels are a column per task label, captions are kept. 3: every
# open_clip model; pooled features only where they exist (`feature_kinds`), the tokenizer
# recorded. 4: text streams and the towers' projections. A format-3 cache is a format-4 cache
# without them and is read as one; readers refuse any other version, so an old cache is
# re-extracted.
FORMAT_VERSION = 4
READABLE_VERSIONS = (3, 4)
STREAMS = "streams"
PROJECTIONS = "projections"
# The attributes that decide what the cached numbers are; their digest is the cache fingerprint.
IDENTITY_ATTRS = ("format_version", "model", "pretrained", "resize", "precision", "tokenizer",
                  "activation", "image_size", "open_clip_version", "data_fingerprint",
                  "on_bad_image", "augment_views")


@dataclass
class Stream:
    """A text stream's rows for a split: its texts and their features."""
    texts: list[str]
    text: np.ndarray | None  # pooled; None without pooled features
    text_proj: np.ndarray


@dataclass
class SplitFeatures:
    ids: list[str]
    labels: np.ndarray  # int8 (N, labels): the task's labels, primary then auxiliary; -1 unknown
    image: np.ndarray | None  # (N, D_image) float32: pooled, or what the reader was asked for
    text: np.ndarray | None  # (N, D_text); None in a cache without pooled features
    image_proj: np.ndarray | None = None  # absent when only one kind was loaded
    text_proj: np.ndarray | None = None
    image_views: np.ndarray | None = None  # (N, views, D): training split, augment_views > 0
    image_proj_views: np.ndarray | None = None
    captions: list[str] | None = None  # the memes' text, for pictures made without the data
    streams: dict[str, Stream] = field(default_factory=dict)  # data.texts and their joins
    projections: dict[str, np.ndarray] = field(default_factory=dict)  # CLIP's own, training split only

    def __len__(self) -> int:
        return len(self.ids)


def cache_fingerprint(attrs: dict) -> str:
    """The digest of what decides a cache's numbers; unset, the format is this code's."""
    defaults = {"augment_views": 0, "format_version": FORMAT_VERSION}
    identity = {key: str(attrs.get(key, defaults.get(key))) for key in IDENTITY_ATTRS}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def check_finite(split: SplitFeatures, name: str, keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if getattr(split, key) is not None and not np.isfinite(getattr(split, key)).all():
            raise InputError(f"{where}: split '{name}' has non-finite {key} features")


def label_names(attrs: dict) -> list[str]:
    """The label columns the file's `task` attribute names (stages/data/task.py's JSON):
    primary, then auxiliary."""
    task = json.loads(attrs["task"])
    return [*task["labels"], *task["auxiliary"]]


def check_aligned(split: SplitFeatures, name: str, labels: int, where: str) -> None:
    """Row k of every array is meme ids[k]: ids, captions, labels and every feature kind
    (views included) have one row per meme, and labels one column per label of the task."""
    columns = {key: getattr(split, key) for key in ("captions", "labels", "image", "text", "image_proj",
                                                    "text_proj", *VIEW_KEYS)}
    for stream, rows in split.streams.items():
        columns.update({f"stream '{stream}' {key}": getattr(rows, key) for key in ("texts", "text", "text_proj")})
    for key, value in columns.items():
        if value is not None and len(value) != len(split.ids):
            raise InputError(f"{where}: split '{name}' has {len(split.ids)} ids but "
                             f"{len(value)} rows of {key}; re-extract it (`dvc repro extract`)")
    if split.labels.ndim != 2 or split.labels.shape[1] != labels:
        raise InputError(f"{where}: split '{name}' has labels of shape {split.labels.shape}, but "
                         f"its task names {labels} label columns; re-extract it (`dvc repro extract`)")


def kinds_of(splits: dict[str, SplitFeatures]) -> list[str]:
    """The `head.features` kinds every split holds, image and text."""
    return [kind for kind, (image, text, _) in FEATURE_KEYS.items()
            if all(getattr(s, image) is not None and getattr(s, text) is not None
                   for s in splits.values())]


def write(path: str | Path, splits: dict[str, SplitFeatures], attrs: dict) -> None:
    """Write the cache atomically: readers never see a half-written file, nor one they would
    refuse for non-finite values."""
    for name, split in splits.items():
        check_aligned(split, name, len(label_names(attrs)), f"{path} not written")
        check_finite(split, name, ("image", "text", "image_proj", "text_proj", *VIEW_KEYS),
                     f"{path} not written (an encoder overflow? compare with clip.device: cpu)")
        for stream, rows in split.streams.items():
            check_finite(rows, f"{name}' stream '{stream}", ("text", "text_proj"), f"{path} not written")
    attrs = {**attrs, "format_version": FORMAT_VERSION, "feature_kinds": " ".join(kinds_of(splits))}
    attrs["fingerprint"] = cache_fingerprint(attrs)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(attrs)
            for name, split in splits.items():
                group = f.create_group(name)
                group.create_dataset("ids", data=split.ids, dtype=h5py.string_dtype("utf-8"))
                if split.captions is not None:
                    group.create_dataset("captions", data=split.captions,
                                         dtype=h5py.string_dtype("utf-8"))
                group.create_dataset("labels", data=split.labels.astype(np.int8))
                for key in ("image", "text", "image_proj", "text_proj", *VIEW_KEYS):
                    if getattr(split, key) is not None:
                        group.create_dataset(key, data=getattr(split, key).astype(np.float32))
                for stream, rows in split.streams.items():
                    write_stream(group.create_group(f"{STREAMS}/{stream}"), rows)
                for key, matrix in split.projections.items():
                    group.create_dataset(f"{PROJECTIONS}/{key}", data=matrix.astype(np.float32))


def write_stream(group: h5py.Group, rows: Stream) -> None:
    group.create_dataset("texts", data=rows.texts, dtype=h5py.string_dtype("utf-8"))
    for key in ("text", "text_proj"):
        if getattr(rows, key) is not None:
            group.create_dataset(key, data=getattr(rows, key).astype(np.float32))
