"""The official code's side outputs (engine.py: --weight_image_loss, --weight_text_loss,
--weight_super_loss): a unimodal head on each projection and the super output, their
parameter counts, their forward written out, their losses, and a run through the stages."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stages import evaluate, extract, train
from stages.common import params
from stages.common.errors import InputError
from stages.head import hateclipper, losses
from stages.head.hateclipper import HateClipper, HeadConfig
from tests.conftest import params_dict, write_params

# The official engine.py's CLIPClassifier, built with a small random CLIPModel (hidden 48 image,
# 40 text) and map_dim 8, counted outside the frozen encoders: these are its figures.
OFFICIAL = [
    # (fusion, pre-output layers, sides, fine-grained labels, trainable parameters)
    ("align", 1, (), 0, 801),
    ("align", 1, ("image",), 0, 882),
    ("cross", 2, ("image", "text"), 0, 1627),
    ("align", 1, ("super",), 14, 943),
]


@pytest.mark.parametrize("fusion, pre_output, sides, aux, count", OFFICIAL)
def test_parameter_counts_equal_the_official_models(fusion, pre_output, sides, aux, count):
    config = HeadConfig(image_dim=48, text_dim=40, fusion=fusion, map_dim=8, num_mapping_layers=1,
                        num_pre_output_layers=pre_output, drop_probs=(0.2, 0.4, 0.1), aux_outputs=aux,
                        sides=sides)
    assert hateclipper.trainable_params(config) == count


def head_with(sides, aux=0, runs=2):
    return HateClipper(HeadConfig(image_dim=10, text_dim=7, fusion="cross", map_dim=6, num_mapping_layers=1,
                                  num_pre_output_layers=1, drop_probs=(0.2, 0.4, 0.1), runs=runs,
                                  aux_outputs=aux, sides=sides), seed=3).eval()


def test_a_unimodal_head_is_the_official_chain_over_its_projection():
    """pre_output_image (dropout, Linear(map_dim, map_dim), ReLU, dropout) then output_image,
    over the L2-normalised image projection; in eval mode the dropouts are identities."""
    head = head_with(("image", "text"))
    image, text = torch.randn(2, 5, 10), torch.randn(2, 5, 7)
    layers = head.layers()
    sides = head.run(image, text).sides
    for side, x, in_dim in (("image", image, 10), ("text", text, 7)):
        (mapping,), (pre,), (out,) = layers[side], layers[f"{side}_pre_output"], layers[f"{side}_output"]
        projection = F.normalize(x @ mapping.weight + mapping.bias, dim=-1)
        expected = torch.relu(projection @ pre.weight + pre.bias) @ out.weight + out.bias
        torch.testing.assert_close(sides[side], expected)
        assert mapping.weight.shape == (2, in_dim, 6)


def test_the_super_output_reads_the_relu_of_every_logit():
    head = head_with(("super",), aux=14)
    image, text = torch.randn(2, 5, 10), torch.randn(2, 5, 7)
    forward = head.run(image, text)
    assert forward.logits.shape == (2, 5, 15)
    (out,) = head.layers()["super_output"]
    torch.testing.assert_close(forward.sides["super"], torch.relu(forward.logits) @ out.weight + out.bias)


def test_the_side_losses_add_each_weighted_bce_to_the_main_loss():
    p = params.parse(params_dict("d", train__image_loss_weight=0.5, train__text_loss_weight=2.0))
    head = head_with(("image", "text"))
    labels = torch.randint(0, 2, (2, 5, 1)).float()
    sides = head.run(torch.randn(2, 5, 10), torch.randn(2, 5, 7)).sides
    expected = 0.5 * losses.bce(sides["image"], labels) + 2.0 * losses.bce(sides["text"], labels)
    torch.testing.assert_close(train.side_loss(p, sides, labels, train.HATEFUL), expected)


def test_without_side_weights_the_head_has_no_side_layers():
    p = params.parse(params_dict("d"))
    config = HeadConfig.from_params(p, 10, 7)
    parts = {part for part, _, _ in hateclipper.layer_shapes(config)}
    assert config.sides == () and parts == {"image", "text", "pre_output", "output"}


def test_the_super_output_without_fine_grained_labels_is_one_line(kaggle_set, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, kaggle_set[0], train__super_loss_weight=1.0, train__epochs=1)
    extract.main([])
    with pytest.raises(InputError, match="train.super_loss_weight .* needs data.layout hateful_memes "
                                         "with data.fine_grained set"):
        train.main([])


def test_unimodal_heads_train_through_the_stages_and_report_their_auroc(kaggle_set, tmp_path, monkeypatch):
    """On memes whose label is an interaction of picture and caption, each unimodal head stays
    near chance while the fused head learns; their AUROC is in the detail file."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, kaggle_set[0], train__image_loss_weight=1.0, train__text_loss_weight=1.0,
                 train__epochs=12, train__lr=0.003)
    for stage in (extract, train, evaluate):
        stage.main([])
    metrics = json.loads(evaluate.METRICS.read_text())["dev"]
    sides = json.loads(evaluate.DETAIL.read_text())["dev"]["sides"]
    assert set(sides) == {"image_auroc", "text_auroc"}
    assert metrics["auroc"] > 0.75
    assert all(abs(value - 0.5) < 0.2 for value in sides.values()), sides
    assert np.isfinite(list(sides.values())).all()
