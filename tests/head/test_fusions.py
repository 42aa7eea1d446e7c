"""stages/head/fusions.py: what each registered fusion computes, against the FIM written out.

A fusion is one registered function: written once, here in the test alone, it is a valid
`fusion`, trains (through autograd, or by hand where given its backward) and is evaluated by the
stages, with no other file changed."""
import json

import pytest
import torch

from stages import evaluate, extract, train
from stages.common import params
from stages.common.errors import InputError
from stages.head import backprop, fusions, hateclipper
from stages.head.fusions import FUSIONS
from stages.head.hateclipper import HateClipper
from tests.helpers import both_gradients, params_dict, write_params
from tests.helpers import head_config as config


def fuse(name, image, text):
    return FUSIONS[name].forward(image, text, None)


def unit_rows(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)


def test_cross_is_the_flattened_outer_product():
    image, text = unit_rows(4, 5, 0), unit_rows(4, 5, 1)
    fused = fuse("cross", image, text)
    for k in range(4):
        assert torch.equal(fused[k], torch.outer(image[k], text[k]).flatten())


def test_align_is_the_fims_diagonal():
    image, text = unit_rows(4, 5, 0), unit_rows(4, 5, 1)
    fused = fuse("align", image, text)
    for k in range(4):
        assert torch.equal(fused[k], torch.diagonal(torch.outer(image[k], text[k])))


def test_cross_nd_is_the_fim_without_its_diagonal():
    image, text = unit_rows(3, 4, 0), unit_rows(3, 4, 1)
    fused = fuse("cross_nd", image, text)
    for k in range(3):
        fim = torch.outer(image[k], text[k])
        expected = torch.stack([fim[i, j] for i in range(4) for j in range(4) if i != j])
        assert torch.equal(fused[k], expected)


def test_other_fusions():
    image, text = unit_rows(2, 3, 0), unit_rows(2, 3, 1)
    assert torch.equal(fuse("concat", image, text), torch.cat([image, text], 1))
    assert torch.equal(fuse("align_concat", image, text), torch.cat([image * text, image, text], 1))
    assert torch.equal(fuse("image", image, text), image)
    assert torch.equal(fuse("text", image, text), text)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fused_width_matches(fusion):
    head = HateClipper(config(fusion=fusion, map_dim=8))
    fused = head.fuse(torch.randn(1, 2, 10), torch.randn(1, 2, 7), head.layers())
    assert fused.shape == (1, 2, FUSIONS[fusion].width(8))


def test_attention_m_is_the_official_cmaf():
    """engine.py: q = relu(gen_query(p)), k = relu(gen_key(p)) for both modalities, scores
    q1.k2 and q2.k1 unscaled, softmax over the two, [p_i * w1, p_t * w2]."""
    head = HateClipper(config(fusion="attention_m", map_dim=8, num_mapping_layers=1), seed=4)
    image, text = torch.randn(1, 5, 10), torch.randn(1, 5, 7)
    layers = head.layers()
    linear = {}
    for part in ("image", "text", "query", "key"):
        (layer,) = layers[part]
        weight, bias = layer.weight, layer.bias
        linear[part] = torch.nn.Linear(*weight.shape[1:])
        linear[part].weight.data, linear[part].bias.data = weight[0].T.detach(), bias[0, 0].detach()
    head.eval()
    with torch.no_grad():
        p_i = torch.nn.functional.normalize(linear["image"](image[0]), dim=1)
        p_t = torch.nn.functional.normalize(linear["text"](text[0]), dim=1)
        q1, k1 = torch.relu(linear["query"](p_i)), torch.relu(linear["key"](p_i))
        q2, k2 = torch.relu(linear["query"](p_t)), torch.relu(linear["key"](p_t))
        scores = torch.cat([torch.bmm(q1.view(-1, 1, 2), k2.view(-1, 2, 1)).reshape(-1, 1),
                            torch.bmm(q2.view(-1, 1, 2), k1.view(-1, 2, 1)).reshape(-1, 1)], 1)
        w = torch.nn.Softmax(dim=1)(scores)
        expected = torch.cat([p_i * w[:, 0, None], p_t * w[:, 1, None]], 1)
        torch.testing.assert_close(head.fuse(image, text, layers)[0], expected)


@pytest.fixture
def difference(monkeypatch):
    """The fusion image - text, registered for this test only."""
    monkeypatch.setitem(fusions.FUSIONS, "difference", None)  # removed again after the test
    fusions.fusion("difference", width=lambda m: m)(lambda image, text, layers: image - text)
    return fusions.FUSIONS["difference"]


def test_a_fusion_written_in_a_test_trains_and_evaluates_through_the_stages(difference, kaggle_set,
                                                                          tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, kaggle_set[0], fusion="difference", train__epochs=2)
    for stage in (extract, train, evaluate):
        stage.main([])
    head, _ = hateclipper.load(hateclipper.CHECKPOINT)
    assert head.config.fusion == "difference" and not backprop.supports(head, "bce")  # autograd's
    image, text = torch.randn(1, 3, head.config.image_dim), torch.randn(1, 3, head.config.text_dim)
    layers = head.layers()
    expected = head.project(image, layers["image"], None) - head.project(text, layers["text"], None)
    torch.testing.assert_close(head.fuse(image, text, layers), expected)
    metrics = json.loads(evaluate.METRICS.read_text())["dev"]
    assert 0 <= metrics["auroc"] <= 1 and metrics["n"] > 0


def test_a_fusion_with_its_backward_trains_by_hand_with_autograds_gradient(difference, monkeypatch):
    monkeypatch.setitem(fusions.FUSIONS, "difference", fusions.Fusion(
        difference.forward, difference.width, backward=lambda g, image, text: (g, -g)))
    p = params.parse(params_dict("d", fusion="difference"))
    head = hateclipper.HateClipper(hateclipper.HeadConfig.from_params(p, 12, 10), seed=1).double().train()
    assert backprop.supports(head, "bce")
    image, text = torch.randn(1, 9, 12, dtype=torch.float64), torch.randn(1, 9, 10, dtype=torch.float64)
    labels = torch.randint(0, 2, (1, 9, 1)).double()
    _, expected, _, grad = both_gradients(head, image, text, labels)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)


def test_an_unregistered_fusion_is_a_one_line_error_naming_the_registered_ones():
    with pytest.raises(InputError, match="'fusion' must be one of align, cross, cross_nd, concat, align_concat"):
        params.parse(params_dict("d", fusion="difference"))
