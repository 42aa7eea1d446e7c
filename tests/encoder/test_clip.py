"""stages/encoder/clip.py: loading, preprocessing, tokenizing and encoding, with the tiny random
encoder (tests/encoder/test_fidelity.py holds the features against reference code)."""

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from stages.common.errors import InputError
from stages.encoder import clip


@pytest.fixture(scope="module")
def tiny():
    return clip.load("tiny", "none", device="cpu")


IMAGES = [Image.new("RGB", (90, 70), (200, 30, 30)), Image.new("RGB", (50, 80), (20, 20, 220)),
          Image.new("RGB", (300, 200), (240, 240, 240))]


def pixels(enc):
    """What the decode workers hand over: uint8, resized."""
    return torch.stack([enc.prepare_image(image) for image in IMAGES])


def test_random_init_is_seeded(tiny):
    again = clip.load("tiny", "none", device="cpu")
    x = pixels(tiny)
    assert np.array_equal(tiny.encode_images(x)[0], again.encode_images(x)[0])
    assert np.array_equal(tiny.encode_texts(["a cat"])[0], again.encode_texts(["a cat"])[0])


def test_projected_features_are_clips_own_embeddings():
    """With `resize: shortest`, `*_proj` equal what an untouched open_clip model returns from
    its own preprocessing and encode_image/encode_text (captions within 77 tokens)."""
    shortest = clip.load("tiny", "none", resize="shortest", device="cpu")
    with torch.random.fork_rng():
        torch.manual_seed(clip.RANDOM_INIT_SEED)
        reference, _, preprocess = open_clip.create_model_and_transforms("tiny", pretrained=None)
    reference.eval()
    captions = ["a cat", "", "x " * 70]
    with torch.no_grad():  # open_clip's own preprocessing and forward pass, untouched
        image_embedding = reference.encode_image(torch.stack([preprocess(i) for i in IMAGES])).numpy()
        text_embedding = reference.encode_text(open_clip.get_tokenizer("tiny")(captions)).numpy()
    assert pixels(shortest).dtype == torch.uint8
    image_pooled, image_proj = shortest.encode_images(pixels(shortest))
    text_pooled, text_proj = shortest.encode_texts(captions)
    np.testing.assert_allclose(image_proj, image_embedding, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(text_proj, text_embedding, rtol=1e-5, atol=1e-6)
    # pooled features are the towers' pre-projection widths (the paper's features)
    assert image_pooled.shape == (3, 96) and text_pooled.shape == (3, 128)
    np.testing.assert_allclose(image_pooled @ shortest.projections[0].weight.numpy(), image_proj,
                               rtol=1e-5, atol=1e-6)


def test_squash_resizes_the_whole_image_to_a_square(tiny):
    """The official code's PIL resize((S, S)) keeps every pixel column; a crop would not."""
    image = Image.new("RGB", (300, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 30, 100))  # a red band in the left tenth, outside any crop
    expected = torch.from_numpy(np.array(image.resize((64, 64), Image.BICUBIC))).permute(2, 0, 1)
    assert torch.equal(tiny.prepare_image(image), expected)
    assert clip.load("tiny", "none", resize="shortest", device="cpu").prepare_image(image)[0].max() < 50
    longest = clip.load("tiny", "none", resize="longest", device="cpu").prepare_image(image)
    assert longest.shape == (3, 64, 64) and longest[:, 0].eq(0).all()  # padded above and below


def test_long_captions_keep_their_eot_as_the_official_tokenizer_cuts_them(tiny, monkeypatch):
    """[SOT] + the first 75 BPE tokens + [EOT]: Hugging Face's truncation=True at 77, which the
    official collator uses; short captions are [SOT] + BPE + [EOT], zero-padded."""
    tokenizer = open_clip.get_tokenizer("tiny")
    long_caption = "word " * 100
    seen = []
    encode_text = tiny.model.encode_text
    monkeypatch.setattr(tiny.model, "encode_text",
                        lambda tokens, **kw: seen.append(tokens) or encode_text(tokens, **kw))
    tiny.encode_texts(["a cat", long_caption])
    tokens = seen[0]
    assert tokens[0, :4].tolist() == [tokenizer.sot_token_id, *tokenizer.encode("a cat"),
                                      tokenizer.eot_token_id] and not tokens[0, 4:].any()
    assert tokens[1].tolist() == [tokenizer.sot_token_id, *tokenizer.encode(long_caption)[:75],
                                  tokenizer.eot_token_id]


def test_precision_changes_the_features(tiny):
    """Why clip.precision is part of the cache identity: bf16 is far from the official fp32."""
    bf16 = clip.load("tiny", "none", precision="bf16", device="cpu")
    for ours, theirs in ((tiny.encode_images(pixels(tiny))[0], bf16.encode_images(pixels(bf16))[0]),
                         (tiny.encode_texts(["a cat", "when they bring kites"])[0],
                          bf16.encode_texts(["a cat", "when they bring kites"])[0])):
        error = np.linalg.norm(ours - theirs, axis=1) / np.linalg.norm(ours, axis=1)
        assert (error > 3e-3).all() and (error < 3e-2).all(), error


def test_info_names_the_encoder(tiny):
    assert tiny.info == {"model": "tiny", "pretrained": "none", "resize": "squash",
                         "precision": "fp32", "tokenizer": "model", "activation": "gelu",
                         "image_size": 64, "open_clip_version": open_clip.__version__}


def test_activation_follows_the_pretrained_tag(monkeypatch):
    """OpenAI's tags say quick_gelu: the plain ViT-B-32 config is built with it, without a warning;
    a -quickgelu model with GELU-trained weights is an error, not a warning."""
    assert clip.uses_quick_gelu("ViT-B-32", "openai")
    assert clip.uses_quick_gelu("ViT-B-32-quickgelu", "openai")
    assert not clip.uses_quick_gelu("ViT-B-32", "laion2b_s34b_b79k")
    assert not clip.uses_quick_gelu("ViT-B-32", "none")
    assert clip.uses_quick_gelu("ViT-B-32-quickgelu", "none")
    # no registered pair mismatches today; a future GELU tag of a -quickgelu name must not pass
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda model, tag: {"quick_gelu": False})
    with pytest.raises(InputError, match="uses QuickGELU, but the 'newtag' weights"):
        clip.uses_quick_gelu("ViT-B-16-quickgelu", "newtag")


def test_unknown_model_and_tag_are_clear_errors():
    with pytest.raises(InputError, match="unknown open_clip model 'ViT-Q-99'"):
        clip.load("ViT-Q-99", "none", device="cpu")
    with pytest.raises(InputError, match="'laion9b' is neither a pretrained tag of ViT-L-14.*openai"):
        clip.load("ViT-L-14", "laion9b", device="cpu")


def test_local_checkpoint_path_loads(tmp_path, tiny):
    """The real-weights path: `clip.pretrained` may be a checkpoint file on disk."""
    with torch.random.fork_rng():
        torch.manual_seed(123)
        other = open_clip.create_model("tiny", pretrained=None)
    checkpoint = tmp_path / "tiny-weights.pt"
    torch.save(other.state_dict(), checkpoint)
    loaded = clip.load("tiny", str(checkpoint), resize="shortest", device="cpu")
    with torch.no_grad():
        _, _, preprocess = open_clip.create_model_and_transforms("tiny", pretrained=None)
        expected = other.eval().encode_image(torch.stack([preprocess(i) for i in IMAGES])).numpy()
    np.testing.assert_allclose(loaded.encode_images(pixels(tiny))[1], expected, rtol=1e-5, atol=1e-6)


def test_broken_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="could not load"):
        clip.load("tiny", str(bad), device="cpu")


def test_an_augmented_view_is_a_seeded_crop_and_flip():
    image = Image.new("RGB", (200, 100))
    image.paste((255, 0, 0), (0, 0, 20, 100))  # a red band on the left edge
    views = [clip.augmented_view(image, f"img/1.png\0{v}") for v in range(40)]
    for view in views:
        assert 0.8 * 0.98 <= view.size[0] * view.size[1] / 20000 <= 1.0
        assert 3 / 4 - 0.05 <= (view.size[0] / view.size[1]) / 2 <= 4 / 3 + 0.05
    flipped = [v for v in views if v.getpixel((v.size[0] - 1, 50)) == (255, 0, 0)]
    assert 5 < len(flipped) < 35  # about half are mirrored, moving the band to the right
    assert clip.augmented_view(image, "img/1.png\0" "3").tobytes() == views[3].tobytes()
