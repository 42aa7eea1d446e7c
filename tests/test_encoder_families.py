"""Every open_clip family extracts: projected features for all, pooled ones where both towers
end in a separable final projection, each model with its own tokenizer and preprocessing.

The real configs run with random weights (`clip.pretrained: none`): they test the loading and
the towers' plumbing, not any result on the real task."""
from __future__ import annotations

import json

import h5py
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from scripts import synthetic
from stages import extract, train
from stages.cache import features
from stages.common import params
from stages.common.errors import InputError
from stages.encoder import clip
from stages.head import hateclipper, inputs
from tests.conftest import params_dict, write_params
from tests.test_bad_input import run_entry

# model -> whether both towers separate their final projection, so the cache holds pooled features
FAMILIES = {"RN50": False,  # attention pooling ends in its own output projection
            "EVA02-B-16": True,  # timm tower, open_clip uses its classifier as the projection
            "MobileCLIP-S1": True,
            "coca_ViT-B-32": True,  # attentional pooler, then proj; towers return tuples
            "convnext_base": True,  # timm tower with open_clip's head proj
            "ViT-B-16-SigLIP": False}  # no image projection (its MAP pooling is the embedding)
IMAGES = [Image.new("RGB", (300, 200), (200, 30, 30)), Image.new("RGB", (90, 170), (20, 120, 30))]
CAPTIONS = ["a cat on a mat", "when they bring kites to the party"]
WORDS = sorted(set(" ".join(CAPTIONS).split()))


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory):
    """A small Hugging Face tokenizer saved to a folder: the 'local copy' a SigLIP user points
    clip.tokenizer at, built in memory (never downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path_factory.mktemp("tokenizer") / "siglip-copy"
    PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    return folder


def untouched(model: str):
    """open_clip's own model, preprocessing and forward pass, with the encoder's seeded init."""
    with torch.random.fork_rng():
        torch.manual_seed(clip.RANDOM_INIT_SEED)
        reference, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=None)
    return reference.eval(), preprocess


@pytest.mark.parametrize("model", FAMILIES)
def test_every_family_encodes_its_own_embeddings(model, tokenizer_folder):
    tokenizer = str(tokenizer_folder) if "SigLIP" in model else clip.MODEL_TOKENIZER
    enc = clip.load(model, "none", resize=clip.MODEL_RESIZE, tokenizer=tokenizer, device="cpu")
    reference, preprocess = untouched(model)
    with torch.no_grad():
        image_embedding = reference.encode_image(torch.stack([preprocess(i) for i in IMAGES]),
                                                 normalize=False).numpy()
        text_embedding = reference.encode_text(enc.tokenizer(CAPTIONS), normalize=False).numpy()
    image_pooled, image_proj = enc.encode_images(torch.stack([enc.prepare_image(i) for i in IMAGES]))
    text_pooled, text_proj = enc.encode_texts(CAPTIONS)
    # the projected features are the model's own embeddings, whatever the family
    np.testing.assert_allclose(image_proj, image_embedding, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(text_proj, text_embedding, rtol=1e-4, atol=1e-5)
    assert enc.kinds == (("pooled", "projected") if FAMILIES[model] else ("projected",))
    if FAMILIES[model]:
        image_width, embed_dim = enc.image_widths
        assert image_pooled.shape == (2, image_width) and image_proj.shape == (2, embed_dim)
        assert text_pooled.shape[0] == 2 and not np.allclose(text_pooled[:, :embed_dim], text_proj)
    else:
        assert image_pooled is None and text_pooled is None and enc.image_widths[0] is None


def test_a_projection_that_does_not_separate_leaves_the_model_whole(monkeypatch):
    """The probe at load: if projecting the detached tower's output does not give the whole
    model's embedding, the projection is put back and the encoder yields projected only."""
    real = clip.image_projection

    def wrong(visual):  # claims a projection twice the real one
        found = real(visual)
        return clip.Projection(found.owner, found.name, torch.nn.Parameter(2 * found.weight), None)

    monkeypatch.setattr(clip, "image_projection", wrong)
    enc = clip.load("tiny", "none", resize="shortest", device="cpu")
    assert enc.kinds == ("projected",) and enc.model.visual.proj is not None
    reference, preprocess = untouched("tiny")
    with torch.no_grad():
        expected = reference.encode_image(torch.stack([preprocess(i) for i in IMAGES])).numpy()
    pooled, projected = enc.encode_images(torch.stack([enc.prepare_image(i) for i in IMAGES]))
    assert pooled is None
    np.testing.assert_allclose(projected, expected, rtol=1e-5, atol=1e-6)


def test_a_hugging_face_tokenizer_truncates_as_its_own_library_does(tokenizer_folder):
    """SigLIP's text tower reads 64 tokens: a longer caption is cut there (truncation=True),
    a short one padded; the words map to the local copy's ids."""
    enc = clip.load("ViT-B-16-SigLIP", "none", tokenizer=str(tokenizer_folder), device="cpu")
    tokens = enc.tokenizer(["a cat", "cat " * 100])
    assert tokens.shape == (2, 64)
    vocab = json.loads((tokenizer_folder / "tokenizer.json").read_text())["model"]["vocab"]
    assert tokens[0, :2].tolist() == [vocab["a"], vocab["cat"]] and not tokens[0, 2:].any()
    assert (tokens[1] == vocab["cat"]).all()


def test_a_tokenizer_that_would_download_is_one_line_offline():
    with pytest.raises(InputError) as raised:
        clip.load("ViT-B-16-SigLIP", "none", device="cpu")
    message = str(raised.value)
    assert "\n" not in message
    assert "timm/ViT-B-16-SigLIP from the Hugging Face hub" in message  # what was tried
    assert "set clip.tokenizer: tokenizers/ViT-B-16-SigLIP" in message  # how to point at a copy


def test_a_local_tokenizer_is_refused_for_clips_own_bpe(tokenizer_folder, tmp_path):
    with pytest.raises(InputError, match="built-in BPE tokenizer, which needs no copy"):
        clip.load("tiny", "none", tokenizer=str(tokenizer_folder), device="cpu")
    raw = params_dict(tmp_path)
    raw["clip"]["tokenizer"] = str(tmp_path / "nowhere")
    with pytest.raises(InputError, match="'clip.tokenizer' must be `model`.*no folder"):
        params.parse(raw)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """The smallest synthetic set (40 memes, 13 pictures): a full-size random encoder on the
    CPU costs seconds an image."""
    root = tmp_path_factory.mktemp("families") / "memes"
    synthetic.generate(root, n=40, seed=3)
    return root


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
