"""The hand-written training step (stages/head/backprop.py) against autograd: the same loss,
the same gradient, the same dropout draws, the same trained heads."""
import itertools

import numpy as np
import pytest
import torch

from stages import train
from stages.common import params
from stages.head import backprop, fusions, hateclipper
from tests.helpers import both_gradients, interaction_features, params_dict

FUSIONS = sorted(name for name, fusion in fusions.FUSIONS.items() if fusion.backward)


def head_of(fusion, mapping, pre_output, normalize, runs, outputs, drop=(0.2, 0.4, 0.1)):
    config = hateclipper.HeadConfig(
        image_dim=12, text_dim=10, fusion=fusion, map_dim=6, num_mapping_layers=mapping,
        num_pre_output_layers=pre_output, drop_probs=drop, runs=runs, outputs=outputs,
        normalize=normalize)
    return hateclipper.HateClipper(config, seed=3).double().train()


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("mapping,pre_output,normalize,runs,outputs",
                         [(1, 1, True, 1, 1), (2, 0, False, 3, 4), (1, 2, True, 2, 1),
                          (2, 2, False, 1, 22)])
def test_the_gradient_is_autograds(fusion, mapping, pre_output, normalize, runs, outputs):
    """In float64, the loss and every weight's gradient match autograd's through the same
    dropout masks (the same seed before each, so both must draw them alike)."""
    head = head_of(fusion, mapping, pre_output, normalize, runs, outputs)
    generator = torch.Generator().manual_seed(7)
    image = torch.randn(runs, 9, 12, generator=generator, dtype=torch.float64)
    text = torch.randn(runs, 9, 10, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 2, (runs, 9, outputs), generator=generator).double()
    expected, expected_grad, loss, grad = both_gradients(head, image, text, labels)
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-10)
    assert expected_grad.abs().sum() > 0


def test_dropout_masks_are_drawn_as_the_head_draws_them():
    """Without dropout the two agree regardless of the generator; with it only if each mask
    is the one Dropout would draw: a step with other masks gives another gradient."""
    head = head_of("cross", 1, 1, True, 1, 1)
    image, text = torch.randn(1, 9, 12).double(), torch.randn(1, 9, 10).double()
    labels = torch.randint(0, 2, (1, 9, 1)).double()
    step = backprop.Step(head)
    torch.manual_seed(0)
    step(image, text, labels)
    seeded = head.weights.grad.clone()
    torch.manual_seed(1)
    step(image, text, labels)
    assert not torch.allclose(head.weights.grad, seeded)


@pytest.mark.parametrize("fusion,overrides", [
    ("attention_m", {}), ("cross", {"head__activation": "gelu"}), ("cross", {"train__loss": "rgcl"}),
])
def test_what_it_does_not_write_out_keeps_autograd(fusion, overrides):
    p = params.parse(params_dict("d", fusion=fusion, **overrides))
    head = hateclipper.HateClipper(hateclipper.HeadConfig.from_params(p, 12, 10))
    assert not backprop.supports(head, p.train.loss)


def test_training_by_hand_gives_autograds_heads(monkeypatch):
    """Three epochs of the real loop, two runs, both ways: the same curves and weights (to
    float32 rounding), the same best epochs."""
    splits = {"train": interaction_features(300, 0), "dev": interaction_features(120, 1)}
    p = params.parse(params_dict("d", train__epochs=3, train__patience=3, train__runs=2,
                                 train__lr=3e-3))
    trained = {}
    for by_hand in (True, False):
        monkeypatch.setattr(backprop, "supports", lambda head, loss, by_hand=by_hand: by_hand)
        trained[by_hand] = train.train(p, splits, torch.device("cpu"), log=lambda _: None)
    (fast, fast_history, fast_epochs), (slow, slow_history, slow_epochs) = trained[True], trained[False]
    torch.testing.assert_close(fast.weights, slow.weights, rtol=1e-4, atol=1e-5)
    for a, b in itertools.zip_longest(fast_history, slow_history):
        np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-4)
        np.testing.assert_allclose(a["dev_auroc"], b["dev_auroc"], atol=1e-3)
    np.testing.assert_array_equal(fast_epochs, slow_epochs)
