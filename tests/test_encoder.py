import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from stages import encoder
from stages.outputs import InputError


@pytest.fixture(scope="module")
def tiny():
    return encoder.load("tiny", "none", "cpu")


IMAGES = [Image.new("RGB", (90, 70), (200, 30, 30)), Image.new("RGB", (50, 80), (20, 20, 220)),
          Image.new("RGB", (300, 200), (240, 240, 240))]


def pixels(enc):
    """What the decode workers hand over: uint8, resized and cropped."""
    return torch.stack([enc.prepare_image(image) for image in IMAGES])


def test_random_init_is_seeded(tiny):
    again = encoder.load("tiny", "none", "cpu")
    x = pixels(tiny)
    assert np.array_equal(tiny.encode_images(x)[0], again.encode_images(x)[0])
    assert np.array_equal(tiny.encode_texts(["a cat"])[0], again.encode_texts(["a cat"])[0])


def test_projected_features_are_clips_own_embeddings(tiny):
    """`*_proj` must equal what an untouched open_clip model returns from encode_image/text."""
    with torch.random.fork_rng():
        torch.manual_seed(encoder.RANDOM_INIT_SEED)
        reference, _, preprocess = open_clip.create_model_and_transforms("tiny", pretrained=None)
    reference.eval()
    tokens = open_clip.get_tokenizer("tiny")(["a cat", "", "x " * 200])
    with torch.no_grad():  # open_clip's own preprocessing and forward pass, untouched
        image_embedding = reference.encode_image(torch.stack([preprocess(i) for i in IMAGES])).numpy()
        text_embedding = reference.encode_text(tokens).numpy()
    assert pixels(tiny).dtype == torch.uint8
    image_pooled, image_proj = tiny.encode_images(pixels(tiny))
    text_pooled, text_proj = tiny.encode_texts(["a cat", "", "x " * 200])
    np.testing.assert_allclose(image_proj, image_embedding, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(text_proj, text_embedding, rtol=1e-5, atol=1e-6)
    # pooled features are the towers' pre-projection widths (the paper's features)
    assert image_pooled.shape == (3, 96) and text_pooled.shape == (3, 128)
    np.testing.assert_allclose(image_pooled @ tiny.image_projection.numpy(), image_proj, rtol=1e-5, atol=1e-6)


def test_info_names_the_encoder(tiny):
    assert tiny.info == {"model": "tiny", "pretrained": "none", "image_size": 64,
                         "open_clip_version": open_clip.__version__, "precision": "fp32"}


def test_unknown_model_and_tag_are_clear_errors():
    with pytest.raises(InputError, match="unknown open_clip model 'ViT-Q-99'"):
        encoder.load("ViT-Q-99", "none", "cpu")
    with pytest.raises(InputError, match="'laion9b' is neither a pretrained tag of ViT-L-14.*openai"):
        encoder.load("ViT-L-14", "laion9b", "cpu")


def test_local_checkpoint_path_loads(tmp_path, tiny):
    """The real-weights path: `clip.pretrained` may be a checkpoint file on disk."""
    with torch.random.fork_rng():
        torch.manual_seed(123)
        other = open_clip.create_model("tiny", pretrained=None)
    checkpoint = tmp_path / "tiny-weights.pt"
    torch.save(other.state_dict(), checkpoint)
    loaded = encoder.load("tiny", str(checkpoint), "cpu")
    with torch.no_grad():
        _, _, preprocess = open_clip.create_model_and_transforms("tiny", pretrained=None)
        expected = other.eval().encode_image(torch.stack([preprocess(i) for i in IMAGES])).numpy()
    np.testing.assert_allclose(loaded.encode_images(pixels(tiny))[1], expected, rtol=1e-5, atol=1e-6)


def test_broken_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="could not load"):
        encoder.load("tiny", str(bad), "cpu")
