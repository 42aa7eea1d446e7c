"""stages/head/inputs.py: the head stages' reader of the cache, refusing one that is not the
right one (another encoder, data, format or shape) in one line."""
import dataclasses
import re

import h5py
import numpy as np
import pytest

from stages.cache import features
from stages.common import params
from stages.common.errors import InputError
from stages.head import hateclipper, inputs
from tests.helpers import CACHE_ATTRS as ATTRS
from tests.helpers import head_config, params_dict
from tests.helpers import split_features as split


def test_checks(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "f.h5"
    bad = split(4, rng)
    bad.text_proj[0, 1] = np.inf
    with pytest.raises(InputError, match="f.h5 not written.*split 'dev' has non-finite text_proj"):
        features.write(path, {"train": split(4, rng), "dev": bad}, ATTRS)
    assert list(tmp_path.iterdir()) == []
    features.write(path, {"train": split(4, rng), "dev": split(4, rng)}, ATTRS)
    with h5py.File(path, "r+") as f:  # a cache damaged or written by something else
        f["dev/image"][1, 2] = np.nan
    with pytest.raises(InputError, match="split 'dev' has non-finite image features"):
        inputs.read(path, ["dev"])
    with pytest.raises(InputError, match="no split 'dev_seen'.*it has: dev, train.*data.dev_split"):
        inputs.read(path, ["dev_seen"])
    clip = params.ClipParams(model="tiny", pretrained="none", resize="squash", precision="fp32",
                             tokenizer="model", augment_views=0, batch_size=8, device="cpu")
    inputs.check_encoder(ATTRS, clip, path)  # batch size and device are not identity
    with pytest.raises(InputError, match="extracted with clip.model=tiny clip.pretrained=none.*ViT-L-14"):
        inputs.check_encoder(ATTRS, dataclasses.replace(clip, model="ViT-L-14"), path)
    for key, value in (("resize", "shortest"), ("precision", "bf16"), ("augment_views", 2)):
        with pytest.raises(InputError, match=f"clip.{key}=.*params.yaml says.*clip.{key}={value}"):
            inputs.check_encoder(ATTRS, dataclasses.replace(clip, **{key: value}), path)
    with pytest.raises(InputError, match="another version of the data"):
        inputs.check_data(ATTRS, "def", path)
    with pytest.raises(InputError, match="feature cache not found"):
        inputs.read(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a readable HDF5"):
        inputs.read(tmp_path / "junk.h5")


@pytest.mark.parametrize("old", [None, 1])
def test_a_cache_of_another_format_is_refused(tmp_path, old):
    """Format 1 cut long captions without their EOT: such a cache must be extracted again."""
    path = tmp_path / "f.h5"
    features.write(path, {"train": split(4, np.random.default_rng(0))}, ATTRS)
    with h5py.File(path, "a") as f:
        if old is None:
            del f.attrs["format_version"]  # as written before the version was recorded
        else:
            f.attrs["format_version"] = old
    for read in (inputs.read_attrs, inputs.read):
        with pytest.raises(InputError, match="cache format 1, this code reads formats 3, 4.*dvc repro extract"):
            read(path)


@pytest.mark.parametrize("key, rows, message", [
    ("ids", 3, "split 'dev' has 3 ids but 4 rows of labels"),
    ("image", 5, "split 'dev' has 4 ids but 5 rows of image"),
    ("labels", None, r"split 'dev' has labels of shape \(4, 2\), but its task names 1"),
])
def test_a_cache_whose_rows_do_not_line_up_is_refused_when_read(tmp_path, key, rows, message):
    """A file written by something else: the reader refuses it in one line naming file and split."""
    path = tmp_path / "f.h5"
    rng = np.random.default_rng(0)
    features.write(path, {"train": split(4, rng), "dev": split(4, rng)}, ATTRS)
    with h5py.File(path, "r+") as f:
        data = f[f"dev/{key}"][()]
        del f[f"dev/{key}"]
        f[f"dev/{key}"] = np.concatenate([data, data])[:rows] if rows else np.zeros((4, 2), np.int8)
    with pytest.raises(InputError, match=f"f.h5: {message}"):
        inputs.read(path, ["dev"])


@pytest.mark.parametrize("saved, override, message", [
    ("replace_text", {}, "reads head.caption_mode=replace_text, params.yaml says none"),
    ("none", {"head__caption_mode": "replace_text"}, "reads head.caption_mode=none, params.yaml says replace_text"),
    ("replace_text", {"head__caption_mode": "replace_text", "head__caption": "ocr", "data__texts": ["caption", "ocr"]},
     "reads head.caption=caption, params.yaml says ocr"),
])
def test_a_head_is_read_only_with_the_caption_mode_and_stream_it_was_trained_on(tmp_path, monkeypatch, saved,
                                                                                override, message):
    """Scoring a replace_text head with params of another mode (evaluate, predict or interpret
    run by hand, no retrain) would feed it the wrong text side: a one-line error instead."""
    monkeypatch.chdir(tmp_path)
    head = hateclipper.HateClipper(head_config(caption_mode=saved))
    hateclipper.save(hateclipper.CHECKPOINT, head, {"features": "pooled", "caption": "caption"})
    p = params.parse(params_dict("d", **{"data__texts": ["caption"], **override}))
    with pytest.raises(InputError, match=re.escape(message) + ".*dvc repro train"):
        inputs.trained_head(p)
