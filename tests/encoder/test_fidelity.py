"""The cache holds the official Hate-CLIPper features: checked against code this project did not write.

The official code (gokulkarthik/hateclipper, datasets.py and engine.py) computes its frozen
features with Hugging Face's CLIPModel on OpenAI's weights:
  image: PIL open -> convert("RGB") -> resize((224, 224)) (PIL's bicubic) -> CLIPProcessor
         (a no-op resize and crop at 224, then /255 and OpenAI's mean/std) ->
         vision_model(...).pooler_output
  text:  CLIPTokenizer (transformers 4's slow one, cleaning with ftfy; model_max_length 77)
         called with padding=True, truncation=True -> text_model(...).pooler_output
         (a caption past 75 BPE tokens keeps its first 75 and its EOT, where CLIP pools)
in fp32, with the QuickGELU activation of OpenAI's config. Here the weights are random (no
download is possible), written in OpenAI's layout and loaded twice: by `dvc repro`'s code path
through the real `openai` tag (open_clip's download replaced by the local file), and into a
transformers CLIPModel converted key by key. The cached rows must equal the CLIPModel's.
The tokenizer driven here is the installed transformers' CLIPTokenizer (5.x: the `tokenizers`
backend; 5.24.0 when this was last run), given captions cleaned as transformers 4's slow
tokenizer cleaned them (ftfy, whitespace, lower case), so its ids are the official code's.

Every open_clip family (below): its projected features are the model's own embeddings, as an
untouched open_clip model computes them, with its own tokenizer and preprocessing; the real
configs run with random weights (`clip.pretrained: none`). Each family's extract and train run
through the stages' entry points in tests/flows/test_encoder_families.py.
"""
from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import ftfy
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from scripts import synthetic
from stages import extract
from stages.cache import features
from stages.common import params
from stages.common.errors import InputError
from stages.data import dataset
from stages.data.memes import Meme
from stages.encoder import clip
from stages.head import inputs
from tests.helpers import FAMILIES, params_dict

transformers = pytest.importorskip("transformers")


from transformers import CLIPConfig, CLIPModel  # noqa: E402
from transformers.convert_slow_tokenizer import bytes_to_unicode  # noqa: E402
from transformers.models.clip.tokenization_clip import CLIPTokenizer  # noqa: E402

MODEL = "ViT-B-32"  # the smallest ViT with an `openai` tag


OPENAI_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)


OPENAI_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


# Captions the synthetic sets lack: past CLIP's 77 tokens (about 120 BPE tokens), and odd
# spacing and case.
EXTRA_CAPTIONS = ["the same joke again and again " * 20, "  WHEN   they   SAY\tit  "]


@pytest.fixture(scope="module")
def random_openai_weights(tmp_path_factory):
    """A random ViT-B-32 in OpenAI's state-dict layout (QuickGELU changes no parameter)."""
    torch.manual_seed(11)
    clip = open_clip.create_model(f"{MODEL}-quickgelu")
    path = tmp_path_factory.mktemp("weights") / f"{MODEL}-openai-random.pt"
    torch.save(clip.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def official(random_openai_weights):
    """transformers' CLIPModel with the same weights, set up as OpenAI's hub config."""
    cfg = open_clip.get_model_config(MODEL)
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    config = CLIPConfig(
        projection_dim=cfg["embed_dim"],
        vision_config=dict(hidden_size=vision["width"], intermediate_size=4 * vision["width"],
                           num_hidden_layers=vision["layers"],
                           num_attention_heads=vision["width"] // 64,
                           image_size=vision["image_size"], patch_size=vision["patch_size"],
                           hidden_act="quick_gelu", layer_norm_eps=1e-5),
        text_config=dict(vocab_size=text["vocab_size"], hidden_size=text["width"],
                         intermediate_size=4 * text["width"], num_hidden_layers=text["layers"],
                         num_attention_heads=text["heads"],
                         max_position_embeddings=text["context_length"],
                         hidden_act="quick_gelu", layer_norm_eps=1e-5,
                         # as in openai/clip-vit-*: pooled at the highest token id (argmax)
                         bos_token_id=0, eos_token_id=2),
    )
    model = CLIPModel(config).eval()
    state = to_transformers(torch.load(random_openai_weights, weights_only=True))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in key for key in missing), (missing, unexpected)
    return model, official_tokenizer()


def to_transformers(openai: dict) -> dict:
    """OpenAI/open_clip CLIP keys -> transformers CLIPModel keys."""
    out = {"logit_scale": openai["logit_scale"],
           "text_projection.weight": openai["text_projection"].T,
           "visual_projection.weight": openai["visual.proj"].T,
           "text_model.embeddings.token_embedding.weight": openai["token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": openai["positional_embedding"],
           "text_model.final_layer_norm.weight": openai["ln_final.weight"],
           "text_model.final_layer_norm.bias": openai["ln_final.bias"],
           "vision_model.embeddings.class_embedding": openai["visual.class_embedding"],
           "vision_model.embeddings.patch_embedding.weight": openai["visual.conv1.weight"],
           "vision_model.embeddings.position_embedding.weight": openai["visual.positional_embedding"]}
    for ours, theirs in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for kind in ("weight", "bias"):
            out[f"vision_model.{theirs}.{kind}"] = openai[f"visual.{ours}.{kind}"]
    for tower, prefix in (("text_model", "transformer"), ("vision_model", "visual.transformer")):
        layers = {int(k.split(".")[len(prefix.split(".")) + 1]) for k in openai
                  if k.startswith(prefix + ".resblocks.")}
        for i in layers:
            src, dst = f"{prefix}.resblocks.{i}", f"{tower}.encoder.layers.{i}"
            for kind in ("weight", "bias"):
                q, k, v = openai[f"{src}.attn.in_proj_{kind}"].chunk(3)
                out.update({f"{dst}.self_attn.q_proj.{kind}": q, f"{dst}.self_attn.k_proj.{kind}": k,
                            f"{dst}.self_attn.v_proj.{kind}": v})
                for ours, theirs in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                                     ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                                     ("mlp.c_proj", "mlp.fc2")):
                    out[f"{dst}.{theirs}.{kind}"] = openai[f"{src}.{ours}.{kind}"]
    return out


def official_tokenizer() -> CLIPTokenizer:
    """CLIP's BPE vocabulary (as shipped in open_clip's merges file), in transformers' tokenizer."""
    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(path).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    merges = [tuple(merge.split()) for merge in merges]
    byte_tokens = list(bytes_to_unicode().values())
    vocab = [*byte_tokens, *(t + "</w>" for t in byte_tokens), *("".join(m) for m in merges),
             "<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: i for i, token in enumerate(vocab)}, merges=merges,
                         model_max_length=77)  # as openai/clip-vit-large-patch14's config


def cleaned_captions(memes: list[Meme]) -> list[str]:
    """What transformers 4's slow CLIPTokenizer did before its BPE (ftfy is in the official
    requirements): the 5.x tokenizer used here is then given exactly that text."""
    return [" ".join(ftfy.fix_text(m.text).split()).lower() for m in memes]


@torch.no_grad()
def official_features(model_and_tokenizer, root: Path, memes: list[Meme]):
    model, tokenizer = model_and_tokenizer
    size = model.config.vision_config.image_size
    pixels = []
    for meme in memes:
        image = Image.open(root / meme.img).convert("RGB").resize((size, size))
        array = (np.asarray(image, np.float32) / 255 - OPENAI_MEAN) / OPENAI_STD
        pixels.append(torch.from_numpy(array).permute(2, 0, 1))
    image = model.vision_model(pixel_values=torch.stack(pixels)).pooler_output
    tokens = tokenizer(cleaned_captions(memes), padding=True, truncation=True,
                       return_tensors="pt")  # as the official collator calls it
    text = model.text_model(**tokens).pooler_output
    return image.numpy(), text.numpy()


def relative_error(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.linalg.norm(ours - reference, axis=1) / np.linalg.norm(reference, axis=1)


@pytest.fixture(scope="module", params=["kaggle", "challenge"])
def extracted(request, random_openai_weights, tmp_path_factory):
    """A synthetic set (RGBA, palette, grayscale, JPEG-behind-.png images) extracted with the
    committed params but for the data and the download; the warnings it raised."""
    work = tmp_path_factory.mktemp(f"reference-{request.param}")
    root = work / "memes"
    synthetic.generate(root, n=48, layout=request.param, seed=3)
    train = root / "train.jsonl"
    lines = [json.loads(line) for line in train.read_text().splitlines()]
    for line, caption in zip(lines, EXTRA_CAPTIONS):
        line["text"] = caption
    train.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    raw = params_dict(root, "dev" if request.param == "kaggle" else "dev_seen")
    raw["clip"].update(model=MODEL, pretrained="openai")  # the rest as committed
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mp.setattr(open_clip.factory, "download_pretrained", lambda cfg, **_: str(random_openai_weights))
        mp.chdir(work)
        extract.extract(params.parse(raw))
    return root, work / features.CACHE, caught


@pytest.mark.slow
def test_committed_params_compute_the_official_features(extracted, official):
    root, cache, caught = extracted
    data = dataset.read(root)
    kinds = {Image.open(root / m.img).format + "/" + Image.open(root / m.img).mode
             for memes in data.splits.values() for m in memes}
    assert {"PNG/RGBA", "PNG/P", "PNG/L", "JPEG/RGB"} <= kinds  # the real set's odd images
    cached, attrs = inputs.read(cache)
    assert (attrs["resize"], attrs["precision"], attrs["activation"]) == ("squash", "fp32", "quick_gelu")
    _, tokenizer = official
    assert max(len(ids) for ids in tokenizer(cleaned_captions(data.splits["train"]))["input_ids"]) > 100
    for name, memes in data.splits.items():
        image, text = official_features(official, root, memes)
        assert relative_error(cached[name].image, image).max() < 1e-4, name
        assert relative_error(cached[name].text, text).max() < 1e-4, name
    assert not [w for w in caught if "QuickGELU" in str(w.message)]


def test_each_fidelity_setting_matters(extracted, official):
    """The comparison above has teeth: GELU instead of QuickGELU, open_clip's centre crop instead
    of the squash, and a cut that drops the EOT (`input_ids[:, :77]` of the untruncated
    tokens) each move some rows 10x past it."""
    root, _, _ = extracted
    memes = dataset.read(root).splits["train"][:8]  # holds the extra captions, portrait images
    image, text = official_features(official, root, memes)
    model, tokenizer = official
    layers = [*model.vision_model.encoder.layers, *model.text_model.encoder.layers]
    quick_gelu = layers[0].mlp.activation_fn
    try:
        for layer in layers:
            layer.mlp.activation_fn = torch.nn.GELU()
        gelu_image, gelu_text = official_features(official, root, memes)
    finally:
        for layer in layers:
            layer.mlp.activation_fn = quick_gelu
    assert relative_error(gelu_image, image).max() > 1e-3
    assert relative_error(gelu_text, text).max() > 1e-3
    _, _, crop = open_clip.create_model_and_transforms(MODEL)  # shortest side to 224, centre crop
    with torch.no_grad():
        cropped = model.vision_model(pixel_values=torch.stack(
            [crop(dataset.load_image(root / m.img)) for m in memes])).pooler_output.numpy()
    assert relative_error(cropped, image).max() > 1e-3
    untruncated = tokenizer(cleaned_captions(memes), padding=True, return_tensors="pt")
    assert untruncated["input_ids"].shape[1] > 77
    with torch.no_grad():
        eot_dropped = model.text_model(input_ids=untruncated["input_ids"][:, :77],
                                       attention_mask=untruncated["attention_mask"][:, :77]
                                       ).pooler_output.numpy()
    long_caption = [k for k, m in enumerate(memes) if m.text == EXTRA_CAPTIONS[0]]
    assert long_caption and relative_error(eot_dropped, text)[long_caption].min() > 1e-3
    np.testing.assert_allclose(np.delete(eot_dropped, long_caption, 0), np.delete(text, long_caption, 0),
                               rtol=1e-4, atol=1e-5)  # short captions: the same tokens


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
