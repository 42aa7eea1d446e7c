"""A fusion is one registered function: written once, here in the test alone, it is a valid
`fusion`, trains (through autograd, or by hand where given its backward) and is evaluated by the
stages, with no other file changed."""
import json

import pytest
import torch

from stages import evaluate, extract, train
from stages.common import params
from stages.common.errors import InputError
from stages.head import backprop, fusions, hateclipper, losses
from tests.conftest import params_dict, write_params


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
    torch.manual_seed(0)
    losses.bce(head(image, text), labels).sum().backward()
    expected, head.weights.grad = head.weights.grad.clone(), None
    torch.manual_seed(0)
    backprop.Step(head)(image, text, labels)
    torch.testing.assert_close(head.weights.grad, expected, rtol=0, atol=1e-12)


def test_an_unregistered_fusion_is_a_one_line_error_naming_the_registered_ones():
    with pytest.raises(InputError, match="'fusion' must be one of align, cross, cross_nd, concat, align_concat"):
        params.parse(params_dict("d", fusion="difference"))
