import dataclasses

import h5py
import numpy as np
import pytest

from stages.cache import features
from stages.common import params
from stages.common.errors import InputError
from stages.data.task import HATEFUL
from stages.head import inputs

ATTRS = {"model": "tiny", "pretrained": "none", "resize": "squash", "precision": "fp32",
         "tokenizer": "model", "activation": "gelu", "image_size": 64, "open_clip_version": "x",
         "data_fingerprint": "abc", "on_bad_image": "fail", "task": HATEFUL.to_json()}


def split(n, rng, labeled=True):
    return features.SplitFeatures(
        ids=[f"{i:05d}" for i in range(n)],
        labels=rng.integers(0, 2, (n, 1)).astype(np.int8) if labeled else np.full((n, 1), -1, np.int8),
        image=rng.normal(size=(n, 6)).astype(np.float32),
        text=rng.normal(size=(n, 4)).astype(np.float32),
        image_proj=rng.normal(size=(n, 3)).astype(np.float32),
        text_proj=rng.normal(size=(n, 3)).astype(np.float32),
    )


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    written = {"train": split(5, rng), "test": split(3, rng, labeled=False)}
    path = tmp_path / "f.h5"
    features.write(path, written, ATTRS)
    pooled, attrs = inputs.read(path)
    projected, _ = inputs.read(path, ["test"], "projected")
    assert attrs["fingerprint"] == features.cache_fingerprint(ATTRS)
    for name, s in written.items():
        assert pooled[name].ids == s.ids  # zero-padded string ids survive as written
        assert pooled[name].labels.dtype == np.int8
        np.testing.assert_array_equal(pooled[name].labels, s.labels)
        np.testing.assert_array_equal(pooled[name].image, s.image)
        np.testing.assert_array_equal(pooled[name].text, s.text)
    np.testing.assert_array_equal(projected["test"].image, written["test"].image_proj)
    with h5py.File(path) as f:  # the schema of INTERFACE.md
        assert set(f["train"]) == {"ids", "labels", "image", "text", "image_proj", "text_proj"}
        assert f["train/ids"].dtype.kind == "O" and f.attrs["model"] == "tiny"


def test_failed_write_leaves_the_previous_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "f.h5"
    features.write(path, {"train": split(4, rng)}, ATTRS)
    before = path.read_bytes()
    broken = split(4, rng)
    broken.ids = [object()] * 4  # not storable: fails half way through writing, after "train"
    with pytest.raises(TypeError):
        features.write(path, {"train": split(4, rng), "dev": broken}, ATTRS)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]


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


@pytest.mark.parametrize("key, other", [("resize", "shortest"), ("precision", "bf16"),
                                        ("activation", "quick_gelu"), ("model", "ViT-L-14"),
                                        ("augment_views", 2), ("tokenizer", "tokenizers/x")])
def test_every_feature_setting_is_part_of_the_cache_identity(key, other):
    assert features.cache_fingerprint({**ATTRS, key: other}) != features.cache_fingerprint(ATTRS)


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
        with pytest.raises(InputError, match="cache format 1, this code reads format 3.*dvc repro extract"):
            read(path)


@pytest.mark.parametrize("key", ["labels", "image", "text_proj", "captions", "image_views"])
def test_rows_that_do_not_line_up_with_the_ids_are_refused_when_written(tmp_path, key):
    """Row k of every array is meme k: one row more or less anywhere is an error naming the
    split, not features shifted onto other memes."""
    rng = np.random.default_rng(0)
    bad = split(5, rng)
    bad.captions = ["a caption"] * 5
    bad.image_views = rng.normal(size=(5, 2, 6)).astype(np.float32)
    setattr(bad, key, getattr(bad, key)[:4])
    with pytest.raises(InputError, match=f"f.h5 not written: split 'dev' has 5 ids but 4 rows of {key}"):
        features.write(tmp_path / "f.h5", {"train": split(5, rng), "dev": bad}, ATTRS)
    assert list(tmp_path.iterdir()) == []


def test_labels_of_another_width_than_the_task_are_refused_when_written(tmp_path):
    wide = split(4, np.random.default_rng(0))
    wide.labels = np.zeros((4, 3), np.int8)
    with pytest.raises(InputError, match=r"split 'train' has labels of shape \(4, 3\), but its task names 1"):
        features.write(tmp_path / "f.h5", {"train": wide}, ATTRS)


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
