"""stages/cache/features.py: the HDF5 cache as written (its schema, identity and the checks
before a byte is written); tests/head/test_inputs.py reads it back."""
import h5py
import numpy as np
import pytest

from stages.cache import features
from stages.common.errors import InputError
from stages.head import inputs
from tests.helpers import CACHE_ATTRS as ATTRS
from tests.helpers import split_features as split


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


@pytest.mark.parametrize("key, other", [("resize", "shortest"), ("precision", "bf16"),
                                        ("activation", "quick_gelu"), ("model", "ViT-L-14"),
                                        ("augment_views", 2), ("tokenizer", "tokenizers/x")])
def test_every_feature_setting_is_part_of_the_cache_identity(key, other):
    assert features.cache_fingerprint({**ATTRS, key: other}) != features.cache_fingerprint(ATTRS)


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
