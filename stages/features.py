"""The feature cache: one HDF5 file, one group per split.

Each group holds `ids` (UTF-8, jsonl order), `labels` (int8, -1 where unlabeled), `image` and
`text` (pooled, pre-projection: the paper's features), `image_proj` and `text_proj` (CLIP's
embedding space). File attributes name the encoder and the data it was computed from; readers
check them so a cache from another encoder or data version is an error, not wrong numbers.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from stages import dataset
from stages.outputs import InputError, atomic_path

CACHE = Path("features/clip_features.h5")
# Which datasets `head.features` selects.
FEATURE_KEYS = {"pooled": ("image", "text"), "projected": ("image_proj", "text_proj")}
# The attributes that decide what the cached numbers are; their digest is the cache fingerprint.
IDENTITY_ATTRS = ("model", "pretrained", "image_size", "open_clip_version", "data_fingerprint",
                  "on_bad_image")


@dataclass
class SplitFeatures:
    ids: list[str]
    labels: np.ndarray  # int8
    image: np.ndarray  # (N, D_image) float32
    text: np.ndarray  # (N, D_text)
    image_proj: np.ndarray | None = None  # absent when only one kind was loaded
    text_proj: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


def cache_fingerprint(attrs: dict) -> str:
    identity = {key: str(attrs[key]) for key in IDENTITY_ATTRS}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def check_finite(split: SplitFeatures, name: str, keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if not np.isfinite(getattr(split, key)).all():
            raise InputError(f"{where}: split '{name}' has non-finite {key} features")


def write(path: str | Path, splits: dict[str, SplitFeatures], attrs: dict) -> None:
    """Write the cache atomically: readers never see a half-written file, nor one they would
    refuse for non-finite values."""
    for name, split in splits.items():
        check_finite(split, name, ("image", "text", "image_proj", "text_proj"),
                     f"{path} not written (an encoder overflow? compare with clip.device: cpu)")
    attrs = {**attrs, "fingerprint": cache_fingerprint(attrs)}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(attrs)
            for name, split in splits.items():
                group = f.create_group(name)
                group.create_dataset("ids", data=split.ids, dtype=h5py.string_dtype("utf-8"))
                group.create_dataset("labels", data=split.labels.astype(np.int8))
                for key in ("image", "text", "image_proj", "text_proj"):
                    group.create_dataset(key, data=getattr(split, key).astype(np.float32))


def read_attrs(path: str | Path) -> dict:
    with _open(path) as f:
        return dict(f.attrs)


def read(path: str | Path, splits: list[str] | None = None, features: str = "pooled"
         ) -> tuple[dict[str, SplitFeatures], dict]:
    """Load the named splits (all if None) with the `features` kind as `image` / `text`."""
    image_key, text_key = FEATURE_KEYS[features]
    with _open(path) as f:
        attrs = dict(f.attrs)
        names = list(f.keys()) if splits is None else splits
        loaded = {}
        for name in names:
            if name not in f:
                raise InputError(
                    f"{path}: no split '{name}' in the feature cache (it has: "
                    f"{', '.join(f.keys())}); check data.dev_split in params.yaml"
                )
            group = f[name]
            split = SplitFeatures(
                ids=list(group["ids"].asstr()[()]),
                labels=group["labels"][()],
                image=group[image_key][()],
                text=group[text_key][()],
            )
            check_finite(split, name, ("image", "text"), str(path))
            loaded[name] = split
    return loaded, attrs


def check_encoder(attrs: dict, model: str, pretrained: str, path: str | Path) -> None:
    """The cache must come from the encoder the params name."""
    if (attrs.get("model"), attrs.get("pretrained")) != (model, pretrained):
        raise InputError(
            f"{path} was extracted with clip.model={attrs.get('model')} "
            f"clip.pretrained={attrs.get('pretrained')}, but params.yaml says "
            f"clip.model={model} clip.pretrained={pretrained}; rerun `dvc repro extract`"
        )


def check_data(attrs: dict, data_fingerprint: str, path: str | Path) -> None:
    if attrs.get("data_fingerprint") != data_fingerprint:
        raise InputError(
            f"{path} was extracted from another version of the data (fingerprint "
            f"{attrs.get('data_fingerprint')}, the data now gives {data_fingerprint}); "
            "rerun `dvc repro extract`"
        )


def _open(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: feature cache not found; run `dvc repro extract` first")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 feature cache ({err})") from None


def load_checked(path: str | Path, p, splits: list[str] | None = None
                 ) -> tuple[dict[str, SplitFeatures], dict]:
    """Read splits for the head, after checking the cache matches params.yaml and the data.

    The data check needs the dataset folder; a cache copied to a machine without the images
    (extract on a GPU box, sweep elsewhere) is used as it is, with a note.
    """
    attrs = read_attrs(path)
    check_encoder(attrs, p.clip.model, p.clip.pretrained, path)
    if Path(p.data.dir).is_dir():
        check_data(attrs, dataset.fingerprint(dataset.read(p.data.dir)), path)
    else:
        print(f"note: {p.data.dir} not found; using {path} without checking it against the data")
    return read(path, splits, p.head.features)
