"""The official code's caption modes (stages/head/captions.py) and pretrained maps in the head:
the forward against engine.py's written out directly, the official parameter counts, which
step trains them, and learning on synthetic sets that need a stream."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from scripts import synthetic
from stages import train
from stages.cache import features
from stages.common import params
from stages.head import backprop, hateclipper, inputs
from stages.head.captions import CAPTION_MODES
from stages.head.hateclipper import HeadConfig
from tests.helpers import both_gradients, extracted, params_dict

IMAGE, TEXT, PROJECTION, MAP = 48, 40, 24, 8


def head_for(mode, fusion="cross", pretrained=False, runs=1, image=IMAGE, **kw):
    config = HeadConfig(image_dim=TEXT if mode == "replace_image" else image, text_dim=TEXT, fusion=fusion,
                        map_dim=MAP, num_mapping_layers=1, num_pre_output_layers=1,
                        drop_probs=(0.2, 0.4, 0.1), caption_mode=mode, runs=runs,
                        pretrained_map=PROJECTION if pretrained else 0, **kw)
    generator = torch.Generator().manual_seed(1)
    clip_projections = {"image": torch.randn(image, PROJECTION, generator=generator).numpy(),
                        "text": torch.randn(TEXT, PROJECTION, generator=generator).numpy()}
    return hateclipper.HateClipper(config, seed=2, projections=clip_projections), clip_projections


def as_modules(layers) -> nn.Sequential:
    """A part's layers (run 0) as the official code's nn.Linear, ReLU between them."""
    modules = []
    for k, layer in enumerate(layers):
        linear = nn.Linear(*layer.weight.shape[1:], bias=layer.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(layer.weight[0].T)
            if layer.bias is not None:
                linear.bias.copy_(layer.bias[0, 0])
        modules += [nn.ReLU()] * bool(k) + [linear]
    return nn.Sequential(*modules)


def official_logits(head, image, text, caption, mode, fusion):
    """engine.py's forward (eval mode) written out: the maps, L2 norms, the fusion, the
    parallel modes' second fusion of caption and text, pre-output and output."""
    parts = head.layers()
    text_map = as_modules(parts["text"])
    image_features = text_map(caption) if mode == "replace_image" else as_modules(parts["image"])(image)
    text_features = F.normalize(text_map(caption if mode == "replace_text" else text), p=2, dim=1)
    image_features = F.normalize(image_features, p=2, dim=1)

    def fuse(a, b):
        if fusion == "align":
            return a * b
        return torch.bmm(a.unsqueeze(2), b.unsqueeze(1)).reshape(a.shape[0], -1)

    features_ = fuse(image_features, text_features)
    if mode.startswith("parallel"):
        parallel = fuse(F.normalize(text_map(caption), p=2, dim=1), text_features)
        features_ = {"parallel_max": torch.maximum(features_, parallel),
                     "parallel_mean": (features_ + parallel) / 2.0,
                     "parallel_align": features_ * parallel}[mode]
    pre_output = nn.Sequential(as_modules(parts["pre_output"]), nn.ReLU())
    return as_modules(parts["output"])(pre_output(features_))


@pytest.mark.parametrize("mode", list(CAPTION_MODES))
@pytest.mark.parametrize("fusion", ["align", "cross"])
@pytest.mark.parametrize("pretrained", [False, True])
@pytest.mark.parametrize("image_width", [IMAGE, TEXT])  # equal widths: a wrong mapping computes, not crashes
def test_each_caption_mode_computes_the_official_forward(mode, fusion, pretrained, image_width):
    """The head's forward on the inputs the cache gives each mode (tests/stages/test_extract.py
    checks those): replace_text and concat_with_text are none's forward on other text rows;
    the others read the caption where the official code does."""
    head, clip_projections = head_for(mode, fusion, pretrained, image=image_width)
    generator = torch.Generator().manual_seed(3)
    image, text, caption = (torch.randn(5, width, generator=generator) for width in (image_width, TEXT, TEXT))
    inputs_ = {"replace_image": (caption, text), "replace_text": (image, caption)}.get(mode, (image, text))
    if CAPTION_MODES[mode].parallel:
        inputs_ = (image, torch.cat([text, caption], dim=1))
    with torch.no_grad():
        ours = head.eval()(inputs_[0][None], inputs_[1][None])[0]
        theirs = official_logits(head, image, text, caption, mode, fusion)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    if pretrained:  # each map starts as CLIP's projection of its tower, bias-free, as copied
        for part in head.config.mapped:
            first = head.layers()[part][0]
            assert first.bias is None
            torch.testing.assert_close(first.weight[0], torch.from_numpy(clip_projections[part]))


# engine.CLIPClassifier's trainable parameters outside the encoders, counted by running the
# official code on a small random CLIPModel (vision hidden 48, text hidden 40, projection 24,
# map_dim 8, one mapping and one pre-output layer unless said).
OFFICIAL_COUNTS = [
    (dict(mode="none", fusion="align", pretrained=True), 2593),
    (dict(mode="none", fusion="cross", pretrained=True), 3041),
    (dict(mode="replace_image", fusion="cross"), 857),  # no image map
    (dict(mode="replace_image", fusion="cross", pretrained=True), 1689),
    (dict(mode="parallel_mean", fusion="align"), 801),  # the caption shares the text map
    (dict(mode="parallel_max", fusion="cross", pretrained=True, num_pre_output_layers=2,
          sides=("image", "text")), 3419),
]


@pytest.mark.parametrize("case, count", OFFICIAL_COUNTS)
def test_parameter_counts_equal_the_official_codes(case, count):
    case = dict(case)
    deeper = {"num_pre_output_layers": case.pop("num_pre_output_layers")} if "num_pre_output_layers" in case else {}
    sides = {"sides": case.pop("sides")} if "sides" in case else {}
    head, _ = head_for(**case)
    config = HeadConfig(**{**head.config.__dict__, **deeper, **sides})
    assert hateclipper.trainable_params(config) == count


@pytest.mark.parametrize("mode, pretrained, by_hand", [
    ("none", True, True), ("replace_text", False, True), ("concat_with_text", True, True),
    ("replace_image", False, False), ("parallel_mean", False, False),
])
def test_a_mapping_used_twice_trains_through_autograd_and_the_rest_by_hand(mode, pretrained, by_hand):
    """replace_image and the parallel modes use the text map twice: the hand-written step,
    which writes each layer's gradient once, must leave them to autograd, which sums."""
    head, _ = head_for(mode, pretrained=pretrained)
    assert backprop.supports(head, "bce") is by_hand


def test_a_pretrained_maps_hand_written_gradient_is_autograds():
    """The copied projection is bias-free and undropped: the hand-written step's gradient of
    every weight equals autograd's."""
    head, _ = head_for("none", pretrained=True, runs=2)
    head = head.double().train()
    generator = torch.Generator().manual_seed(7)
    image = torch.randn(2, 9, IMAGE, generator=generator, dtype=torch.float64)
    text = torch.randn(2, 9, TEXT, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 2, (2, 9, 1), generator=generator).double()
    _, expected, _, grad = both_gradients(head, image, text, labels)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-10)


def trained_test_auroc(workdir, data, caption, mode):
    """Mean test AUROC over three runs of a head trained with the caption mode."""
    raw = params_dict(data, "val", data__layout="mmhs150k", data__texts=[caption], head__caption=caption,
                      head__caption_mode=mode, head__map_dim=16, train__epochs=60, train__batch_size=32,
                      train__lr=3e-3, train__runs=3)
    p = params.parse(raw)
    splits, _ = inputs.load_checked(workdir / features.CACHE, p, ["train", "val", "test"])
    head, _, _ = train.train(p, splits, torch.device("cpu"), log=lambda _: None)
    probs = hateclipper.predict_probs(head, splits["test"].image, splits["test"].text)[..., 0]
    return float(np.mean([roc_auc_score(splits["test"].labels[:, 0], run) for run in probs]))


@pytest.fixture(scope="module")
def stream_sets(tmp_path_factory):
    """Two MMHS150K sets of 400 tweets, extracted: `caption` carries the image's half of the
    label (the picture is noise), `ocr` (img_txt/) the text's half (the tweet is noise)."""
    made = {}
    for name, carries in (("caption", "image"), ("ocr", "text")):
        root = tmp_path_factory.mktemp(name)
        synthetic.generate(root / "memes", n=400, layout="mmhs150k", seed=1, stream=name, carries=carries)
        extracted(root, params.parse(params_dict(root / "memes", "val", data__layout="mmhs150k", data__texts=[name])))
        made[name] = root
    return made


@pytest.mark.parametrize("mode, learns", [
    ("replace_image", True), ("parallel_mean", True), ("none", False), ("replace_text", False),
])
def test_a_caption_that_stands_for_the_picture_is_learned_where_the_mode_reads_it(stream_sets, mode, learns):
    """label = caption family XOR tweet family, the picture noise: replace_image (caption and
    text fused) and parallel_mean (its caption-text fusion) learn it; none and replace_text
    (the picture beside text or caption) cannot."""
    root = stream_sets["caption"]
    auroc = trained_test_auroc(root, root / "memes", "caption", mode)
    assert auroc > 0.9 if learns else auroc < 0.65


@pytest.mark.parametrize("mode, learns", [("replace_text", True), ("none", False)])
def test_an_ocr_stream_that_carries_the_label_is_learned_only_when_the_head_reads_it(stream_sets, mode, learns):
    """label = scene XOR OCR family, the tweet noise: only a head that reads the OCR stream
    (here in the text's place) learns it."""
    root = stream_sets["ocr"]
    auroc = trained_test_auroc(root, root / "memes", "ocr", mode)
    assert auroc > 0.9 if learns else auroc < 0.65


def test_a_pretrained_map_has_no_dropout_where_the_plain_map_has():
    """With dropout only after the mapping (0.9), a training-mode forward of a pretrained map
    is its eval-mode forward (the official map has no Dropout); a plain map's is not."""
    image, text = torch.randn(1, 6, IMAGE), torch.randn(1, 6, TEXT)
    for pretrained in (True, False):
        head, clip_projections = head_for("none", pretrained=pretrained)
        config = HeadConfig(**{**head.config.__dict__, "drop_probs": (0.9, 0.0, 0.0)})
        head = hateclipper.HateClipper(config, seed=2, projections=clip_projections)
        with torch.no_grad():
            same = torch.equal(head.train()(image, text), head.eval()(image, text))
        assert same is pretrained


def test_a_projection_with_a_bias_is_copied_with_it():
    """Some open_clip towers' projections carry a bias (SigLIP's text tower): the copied layer
    keeps it, as a trainable bias, and counts it."""
    p = params.parse(params_dict("d", head__pretrained_map=True, head__map_dim=MAP))
    generator = torch.Generator().manual_seed(4)
    projections = {"image": torch.randn(IMAGE, PROJECTION, generator=generator).numpy(),
                   "text": torch.randn(TEXT, PROJECTION, generator=generator).numpy(),
                   "text_bias": torch.randn(PROJECTION, generator=generator).numpy()}
    config = HeadConfig.from_params(p, IMAGE, TEXT, None, projections)
    bias_free = HeadConfig.from_params(p, IMAGE, TEXT, None, {k: v for k, v in projections.items() if "bias" not in k})
    assert config.pretrained_map == PROJECTION and config.pretrained_bias == ("text",)
    assert hateclipper.trainable_params(config) == hateclipper.trainable_params(bias_free) + PROJECTION
    layers = hateclipper.HateClipper(config, 0, projections).layers()
    assert layers["image"][0].bias is None
    torch.testing.assert_close(layers["text"][0].bias[0, 0], torch.from_numpy(projections["text_bias"]))
    torch.testing.assert_close(layers["text"][0].weight[0], torch.from_numpy(projections["text"]))


def test_a_pretrained_map_without_clips_projections_is_an_error_not_a_plain_map():
    p = params.parse(params_dict("d", head__pretrained_map=True))
    with pytest.raises(ValueError, match="starts from CLIP's projections"):
        HeadConfig.from_params(p, IMAGE, TEXT)
