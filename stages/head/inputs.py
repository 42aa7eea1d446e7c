"""What the head stages read: the feature cache, checked to be the right one, and the trained
head with the cache it belongs to.

A cache records the encoder settings and the data it was computed from (stages/cache); the
readers here refuse one that does not match params.yaml or the data, and hand the head the
feature kind that `head.features` names, on the sides the caption mode says
(stages/head/captions.py). Extraction never imports this module, so an edit here never throws
away a cache.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from stages.cache import features
from stages.cache.features import (
    FEATURE_KEYS,
    PROJECTIONS,
    READABLE_VERSIONS,
    STREAMS,
    SplitFeatures,
    check_aligned,
    check_finite,
    label_names,
)
from stages.common.errors import InputError
from stages.common.params import FEATURE_SETTINGS, ClipParams
from stages.data import dataset
from stages.data.memes import TRAIN_SPLIT
from stages.data.task import Task
from stages.data.texts import joined_name
from stages.head import hateclipper
from stages.head.captions import CAPTION_MODES


def read_attrs(path: str | Path) -> dict:
    with _open(path) as f:
        return dict(f.attrs)


def task_of(attrs: dict) -> Task:
    """The task a cache's labels answer (its label names, which are auxiliary)."""
    return Task.from_json(attrs["task"])


def read(path: str | Path, splits: list[str] | None = None, features: str = "pooled",
         views: bool = False, caption_mode: str = "none", caption: str = "caption"
         ) -> tuple[dict[str, SplitFeatures], dict]:
    """Load the named splits (all if None) with the `features` kind as `image` / `text`, and
    with `views` the augmented image views where a split has them (the training split). A
    caption mode puts the stream `caption` on the side it names; a parallel mode's `text`
    carries the text's features, then the caption's."""
    image_key, text_key, views_key = FEATURE_KEYS[features]
    mode = CAPTION_MODES[caption_mode]
    side = {"image": image_key, "text": text_key, "caption": f"{STREAMS}/{caption}/{text_key}",
            "joined": f"{STREAMS}/{joined_name(caption)}/{text_key}"}  # each side's rows in a split
    with _open(path) as f:
        attrs = dict(f.attrs)
        check_kind(attrs, features, path)
        if caption_mode != "none":
            check_stream(attrs, caption, path)
        names = list(f) if splits is None else splits
        loaded = {}
        for name in names:
            if name not in f:
                raise InputError(
                    f"{path}: no split '{name}' in the feature cache (it has: "
                    f"{', '.join(f)}); check data.dev_split in params.yaml"
                )
            group = f[name]
            text = group[side[mode.text]][()]
            if mode.parallel:
                text = np.concatenate([text, group[side["caption"]][()]], axis=1)
            split = SplitFeatures(
                ids=list(group["ids"].asstr()[()]),
                labels=group["labels"][()],
                image=group[side[mode.image]][()],
                text=text,
                image_views=(group[views_key][()] if views and views_key in group and mode.image == "image"
                             else None),
                captions=list(group["captions"].asstr()[()]) if "captions" in group else None,
            )
            check_aligned(split, name, len(label_names(attrs)), str(path))
            check_finite(split, name, ("image", "text", "image_views"), str(path))
            loaded[name] = split
    return loaded, attrs


def check_kind(attrs: dict, features: str, path: str | Path) -> None:
    """`head.features` must name a kind the cache holds: pooled features exist only where the
    encoder's towers end in separable projections (stages/encoder/clip.py)."""
    kinds = str(attrs.get("feature_kinds", "")).split()
    if features not in kinds:
        raise InputError(f"{path} holds no {features} features (clip.model {attrs.get('model')} "
                         f"yields {', '.join(kinds) or 'none'}); set head.features: projected")


def check_stream(attrs: dict, caption: str, path: str | Path) -> None:
    """A caption mode reads a text stream the cache holds."""
    streams = str(attrs.get("texts", "")).split()
    if caption not in streams:
        raise InputError(f"{path} holds no text stream '{caption}' (head.caption; it holds "
                         f"{', '.join(streams) or 'none'}): name it in data.texts and rerun `dvc repro extract`")


def projections(path: str | Path) -> dict[str, np.ndarray]:
    """CLIP's own projections, as extract stored them: what head.pretrained_map starts from."""
    with _open(path) as f:
        group = f.get(f"{TRAIN_SPLIT}/{PROJECTIONS}")
        if group is None:
            raise InputError(f"{path} holds no projections of clip.model {f.attrs.get('model')} (its "
                             "towers have none that separates, or the cache predates them): "
                             "head.pretrained_map needs them; rerun `dvc repro extract`, or set it false")
        return {key: value[()] for key, value in group.items()}


def check_encoder(attrs: dict, clip: ClipParams, path: str | Path) -> None:
    """The cache must come from the encoder settings the params name, with as many views."""
    wanted = {**clip.feature_settings(), "augment_views": clip.augment_views}
    cached = {key: attrs.get(key) for key in FEATURE_SETTINGS}
    cached["augment_views"] = int(attrs.get("augment_views", 0))
    if cached != wanted:
        def describe(settings):
            return " ".join(f"clip.{key}={value}" for key, value in settings.items())
        raise InputError(f"{path} was extracted with {describe(cached)}, but params.yaml says "
                         f"{describe(wanted)}; rerun `dvc repro extract`")


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
        cache = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 feature cache ({err})") from None
    version = int(cache.attrs.get("format_version", 1))
    if version not in READABLE_VERSIONS:
        cache.close()
        raise InputError(f"{path} holds cache format {version}, this code reads formats "
                         f"{', '.join(map(str, READABLE_VERSIONS))}; rerun `dvc repro extract`")
    return cache


def load_checked(path: str | Path, p, splits: list[str] | None = None, views: bool = False
                 ) -> tuple[dict[str, SplitFeatures], dict]:
    """Read splits for the head, after checking the cache matches params.yaml and the data.

    The data check needs the dataset folder; a cache copied to a machine without the images
    (extract on a GPU box, sweep elsewhere) is used as it is, with a note.
    """
    attrs = read_attrs(path)
    check_encoder(attrs, p.clip, path)
    if Path(p.data.dir).is_dir():
        check_data(attrs, dataset.fingerprint(dataset.read_params(p.data)), path)
    else:
        print(f"note: {p.data.dir} not found; using {path} without checking it against the data")
    return read(path, splits, p.head.features, views, p.head.caption_mode, p.head.caption)


def trained_head(p, splits: list[str] | None = None
                 ) -> tuple[hateclipper.HateClipper, dict, dict[str, SplitFeatures]]:
    """The trained head, its meta and the cache splits it reads, checked to belong together."""
    head, meta = hateclipper.load(hateclipper.CHECKPOINT)
    reads = {"features": meta["features"], "caption_mode": head.config.caption_mode}
    if head.config.caption_mode != "none":
        reads["caption"] = meta["caption"]
    for key, value in reads.items():
        if value != getattr(p.head, key):
            raise InputError(f"{hateclipper.CHECKPOINT} reads head.{key}={value}, params.yaml says "
                             f"{getattr(p.head, key)}; rerun `dvc repro train`")
    loaded, attrs = load_checked(features.CACHE, p, splits)
    if meta["cache_fingerprint"] != attrs["fingerprint"]:
        raise InputError(
            f"{hateclipper.CHECKPOINT} was trained on another feature cache (fingerprint "
            f"{meta['cache_fingerprint']}, {features.CACHE} has {attrs['fingerprint']}); "
            "rerun `dvc repro train`"
        )
    return head, meta, loaded
