"""Every open_clip family extracts and trains through the stages' entry points: projected
features for all, pooled ones where both towers end in a separable final projection, and a
cache without pooled features refused for them in one line (the families' encoders against
open_clip itself: tests/encoder/test_fidelity.py).

The real configs run with random weights (`clip.pretrained: none`): they test the loading and
the towers' plumbing, not any result on the real task."""
from __future__ import annotations

import json

import h5py
import pytest

from scripts import synthetic
from stages import extract, train
from stages.cache import features
from stages.common import params
from stages.common.errors import InputError
from stages.head import hateclipper, inputs
from tests.helpers import FAMILIES, params_dict, run_entry, write_params


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """The smallest synthetic set (40 memes, 13 pictures): a full-size random encoder on the
    CPU costs seconds an image."""
    root = tmp_path_factory.mktemp("families") / "memes"
    synthetic.generate(root, n=40, seed=3)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("model", ["RN50", "EVA02-B-16", "MobileCLIP-S1", "coca_ViT-B-32"])
def test_each_family_extracts_and_trains_on_projected_features(small_set, model, tmp_path,
                                                               monkeypatch, capsys):
    """Through the stages' entry points: extract writes the family's cache, a head trains on
    its projected features, and the pooled kind is refused in one line where the family has
    none or trained from the same cache where it has."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, small_set, clip__model=model, head__features="projected", train__epochs=2)
    code, err, out = run_entry(extract, monkeypatch, capsys)
    assert code == 0, err
    assert "wrote features/clip_features.h5" in out
    report = json.loads((tmp_path / extract.EXTRACT_REPORT).read_text())
    assert report["memes_per_second"] > 0 and report["cache_bytes"] > 0
    code, err, _ = run_entry(train, monkeypatch, capsys)
    assert code == 0, err
    assert json.loads((tmp_path / train.TRAIN_SUMMARY).read_text())["trainable_params"] > 0
    write_params(tmp_path, small_set, clip__model=model, head__features="pooled", train__epochs=2)
    code, err, _ = run_entry(train, monkeypatch, capsys)
    if FAMILIES[model]:  # pooled features too: the same cache serves both kinds
        assert code == 0, err
        head, meta = hateclipper.load(tmp_path / hateclipper.CHECKPOINT)
        assert meta["features"] == "pooled"  # built on the pooled arrays, at their widths
        assert (head.config.image_dim, head.config.text_dim) == (report["widths"]["image"],
                                                                 report["widths"]["text"])
    else:
        assert code == 2 and err.count("\n") == 1
        assert (f"holds no pooled features (clip.model {model} yields projected); set "
                "head.features: projected") in err


@pytest.fixture(scope="module")
def projected_only(challenge_set, tmp_path_factory):
    """A workspace whose cache comes from `tiny-rn`, a small attention-pooled ResNet: an encoder
    without separable projections, as RN50."""
    root, _ = challenge_set
    work = tmp_path_factory.mktemp("projected-only")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        extract.extract(params.parse(params_dict(root, "dev_seen", clip__model="tiny-rn",
                                                 head__features="projected")))
    return work, root


def test_a_cache_without_pooled_features_says_which_kinds_it_holds(projected_only):
    work, _ = projected_only
    cache = work / features.CACHE
    with h5py.File(cache) as f:
        assert f.attrs["feature_kinds"] == "projected" and f.attrs["tokenizer"] == "model"
        assert {"image_proj", "text_proj"} <= set(f["train"]) and "image" not in f["train"]
    report = json.loads((work / extract.EXTRACT_REPORT).read_text())
    assert report["feature_kinds"] == "projected" and set(report["widths"]) == {"image_proj", "text_proj"}
    assert report["bytes_per_meme"] == cache.stat().st_size / report["memes"]
    loaded, _ = inputs.read(cache, ["train"], "projected")
    assert loaded["train"].image.shape[1] == 64
    with pytest.raises(InputError) as raised:
        inputs.read(cache, ["train"], "pooled")
    assert str(raised.value) == (f"{cache} holds no pooled features (clip.model tiny-rn yields "
                                 "projected); set head.features: projected")


def test_training_on_pooled_features_of_such_a_cache_is_one_line(projected_only, monkeypatch, capsys):
    work, root = projected_only
    monkeypatch.chdir(work)
    write_params(work, root, "dev_seen", clip__model="tiny-rn", train__epochs=1)
    code, err, _ = run_entry(train, monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "set head.features: projected" in err
    write_params(work, root, "dev_seen", clip__model="tiny-rn", train__epochs=1,
                 head__features="projected")
    code, err, _ = run_entry(train, monkeypatch, capsys)
    assert code == 0, err
