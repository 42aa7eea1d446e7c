"""stages/head/hateclipper.py: the head's layers, parameter counts, forward pass, seeding and
checkpoints (tests/head/test_fusions.py: what the fusions compute)."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from stages.common import params
from stages.common.errors import InputError
from stages.head import hateclipper, masks
from stages.head.hateclipper import HateClipper, HeadConfig
from tests.helpers import head_config as config
from tests.helpers import params_dict, side_head

PAPER = dict(image_dim=1024, text_dim=768, map_dim=1024, num_mapping_layers=1,
             num_pre_output_layers=1, drop_probs=(0.2, 0.4, 0.1))  # ViT-L-14's pooled widths


@pytest.mark.parametrize("fusion, expected", [("align", 2_887_681), ("concat", 3_936_257),
                                              ("attention_m", 4_461_057), ("cross", 1_075_580_929)])
def test_trainable_parameters_equal_the_official_models(fusion, expected):
    count = hateclipper.trainable_params(HeadConfig(fusion=fusion, **PAPER))
    assert count == expected
    deeper = HeadConfig(fusion=fusion, **{**PAPER, "num_pre_output_layers": 3})
    assert hateclipper.trainable_params(deeper) == expected + 2 * 1_049_600
    table2 = HeadConfig(fusion=fusion, outputs=22, **PAPER)  # 22 techniques: 21 more outputs
    assert hateclipper.trainable_params(table2) == expected + 21 * 1_025


def test_the_seeds_head_has_its_34_million_parameters():
    """kanru-wang's model: CLIP ViT-B-32 embeddings (512), 512-d projections without L2 norm,
    the 262,144-d FIM, Linear(262144, 128), GELU, one logit."""
    seed = HeadConfig(image_dim=512, text_dim=512, fusion="cross", map_dim=512, num_mapping_layers=1,
                      num_pre_output_layers=1, drop_probs=(0.0, 0.0, 0.1), normalize=False,
                      pre_output_dim=128, activation="gelu")
    assert hateclipper.trainable_params(seed) == 34_080_001


def test_normalize_pre_output_width_and_activation_are_what_params_say():
    image, text = torch.randn(1, 3, 10), torch.randn(1, 3, 7)
    plain = HateClipper(config(num_pre_output_layers=1), seed=1).eval()
    seedlike = HateClipper(config(num_pre_output_layers=1, normalize=False, pre_output_dim=5,
                                  activation="gelu"), seed=1).eval()
    assert shapes(seedlike, "pre_output") == [((1, 36, 5), (1, 1, 5))]
    assert shapes(seedlike, "output") == [((1, 5, 1), (1, 1, 1))]
    projected = seedlike.project(image, seedlike.layers()["image"], None)
    assert not torch.allclose(projected.norm(dim=-1), torch.ones(1, 3))
    torch.testing.assert_close(plain.project(image, plain.layers()["image"], None).norm(dim=-1), torch.ones(1, 3))
    (pre,), (out,) = seedlike.layers()["pre_output"], seedlike.layers()["output"]
    (w1, b1), (w2, b2) = (pre.weight, pre.bias), (out.weight, out.bias)
    fused = seedlike.fuse(image, text, seedlike.layers())
    expected = torch.baddbmm(b2, torch.nn.functional.gelu(torch.baddbmm(b1, fused, w1)), w2)
    torch.testing.assert_close(seedlike(image, text), expected)


def shapes(head, part):
    return [(tuple(layer.weight.shape), tuple(layer.bias.shape)) for layer in head.layers()[part]]


def test_layers_follow_the_paper():
    head = HateClipper(config(runs=3))
    assert shapes(head, "image") == [((3, 10, 6), (3, 1, 6)), ((3, 6, 6), (3, 1, 6))]  # (runs, in, out)
    assert shapes(head, "text") == [((3, 7, 6), (3, 1, 6)), ((3, 6, 6), (3, 1, 6))]
    assert shapes(head, "pre_output") == [((3, 36, 6), (3, 1, 6)), ((3, 6, 6), (3, 1, 6))]
    assert shapes(head, "output") == [((3, 6, 1), (3, 1, 1))]
    assert shapes(HateClipper(config(num_pre_output_layers=0)), "output") == [((1, 36, 1), (1, 1, 1))]
    image, text, pre_output, output = 10 * 6 + 6 + 6 * 6 + 6, 7 * 6 + 6 + 6 * 6 + 6, 36 * 6 + 6 + 6 * 6 + 6, 6 + 1
    assert head.weights.shape == (3, image + text + pre_output + output)  # one row per run
    # dropout after each mapping layer of both projections, after the fusion, after each pre-output layer
    assert masks.layout(head) == [(6, 0.2)] * 4 + [(36, 0.4)] + [(6, 0.1)] * 2


def test_each_run_is_the_paper_head_computed_directly():
    """Run k's logits equal the head written out with plain matrix products on run k's weights:
    projections, L2 norm, the flattened FIM, pre-output ReLU layers, one logit."""
    head = HateClipper(config(runs=3, num_mapping_layers=2, drop_probs=(0.0, 0.0, 0.0))).eval()
    image, text = torch.randn(3, 5, 10), torch.randn(3, 5, 7)
    layers = {part: [(layer.weight, layer.bias) for layer in each] for part, each in head.layers().items()}

    def project(x, part, k):
        for j, (w, b) in enumerate(layers[part]):
            x = (torch.relu(x) if j else x) @ w[k] + b[k]
        return x / x.norm(dim=1, keepdim=True)

    for k in range(3):
        i, t = project(image[k], "image", k), project(text[k], "text", k)
        x = torch.stack([torch.outer(i[n], t[n]).flatten() for n in range(5)])
        for w, b in layers["pre_output"]:
            x = torch.relu(x @ w[k] + b[k])
        (w, b), = layers["output"]
        torch.testing.assert_close(head(image, text)[k], x @ w[k] + b[k])  # (N, 1): one label
    bound = 10 ** -0.5  # nn.Linear's init: U(-1/sqrt(in), 1/sqrt(in))
    assert layers["image"][0][0].abs().max() <= bound and layers["image"][0][0].abs().max() > 0.9 * bound


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    head = HateClipper(config(fusion="align_concat")).eval()
    path = tmp_path / "head.pt"
    hateclipper.save(path, head, {"cache_fingerprint": "abc", "features": "pooled"})
    raw = torch.load(path, weights_only=True)  # no code is unpickled
    assert raw["cache_fingerprint"] == "abc"
    loaded, meta = hateclipper.load(path)
    assert loaded.config == head.config and meta["features"] == "pooled"
    x, t = torch.randn(1, 4, 10), torch.randn(1, 4, 7)
    assert torch.equal(loaded(x, t), head(x, t))


@pytest.mark.parametrize("content, message", [
    (b"not a torch file", "not a head checkpoint this project can load"),
    ({"state_dict": {}}, "not a head checkpoint this project can load (it holds no 'config')"),
    ({"state_dict": {}, "config": {"map_dim": 4}}, "a head checkpoint of another version"),
])
def test_a_file_that_is_no_head_is_one_line(tmp_path, content, message):
    path = tmp_path / "head.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(InputError) as err:
        hateclipper.load(path)
    assert message in str(err.value) and str(err.value).startswith(str(path))


def test_a_bug_while_building_a_head_is_not_called_a_foreign_file(tmp_path, monkeypatch):
    """Only what makes a file foreign becomes 'not a head checkpoint': a failure inside the
    head's own code is raised as it is."""
    path = tmp_path / "head.pt"
    hateclipper.save(path, HateClipper(config()), {"features": "pooled"})

    def broken(self, *args, **kwargs):
        raise AttributeError("a bug in the head's code")

    monkeypatch.setattr(HateClipper, "load_state_dict", broken)
    with pytest.raises(AttributeError, match="a bug in the head's code"):
        hateclipper.load(path)


def test_all_runs_in_one_weights_only_checkpoint(tmp_path):
    head = HateClipper(config(runs=5), seed=3).eval()
    path = tmp_path / "head.pt"
    hateclipper.save(path, head, {"cache_fingerprint": "abc", "features": "pooled",
                                  "best_epochs": [3, 1, 4, 1, 5]})
    loaded, meta = hateclipper.load(path)
    assert loaded.config.runs == 5 and meta["best_epochs"] == [3, 1, 4, 1, 5]
    x, t = torch.randn(4, 10), torch.randn(4, 7)
    probs = hateclipper.predict_probs(loaded, x, t)
    assert probs.shape == (5, 4, 1) and len({tuple(row) for row in probs[..., 0].round(6).tolist()}) == 5
    assert (probs == hateclipper.predict_probs(head, x, t)).all()


def test_initialisation_follows_each_runs_seed():
    config = hateclipper.HeadConfig(image_dim=10, text_dim=7, fusion="cross", map_dim=6,
                                    num_mapping_layers=2, num_pre_output_layers=2,
                                    drop_probs=(0.2, 0.4, 0.1), runs=4)
    batched = hateclipper.HateClipper(config, seed=5).state_dict()
    for k in range(4):
        alone = hateclipper.HateClipper(dataclasses.replace(config, runs=1), seed=5 + k).state_dict()
        assert all(torch.equal(batched[key][k], alone[key][0]) for key in alone)
    assert not torch.equal(batched["weights"][0], batched["weights"][1])


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
def test_side_output_parameter_counts_equal_the_official_models(fusion, pre_output, sides, aux, count):
    config = HeadConfig(image_dim=48, text_dim=40, fusion=fusion, map_dim=8, num_mapping_layers=1,
                        num_pre_output_layers=pre_output, drop_probs=(0.2, 0.4, 0.1), aux_outputs=aux,
                        sides=sides)
    assert hateclipper.trainable_params(config) == count


def test_a_unimodal_head_is_the_official_chain_over_its_projection():
    """pre_output_image (dropout, Linear(map_dim, map_dim), ReLU, dropout) then output_image,
    over the L2-normalised image projection; in eval mode the dropouts are identities."""
    head = side_head(("image", "text"))
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
    head = side_head(("super",), aux=14)
    image, text = torch.randn(2, 5, 10), torch.randn(2, 5, 7)
    forward = head.run(image, text)
    assert forward.logits.shape == (2, 5, 15)
    (out,) = head.layers()["super_output"]
    torch.testing.assert_close(forward.sides["super"], torch.relu(forward.logits) @ out.weight + out.bias)


def test_without_side_weights_the_head_has_no_side_layers():
    p = params.parse(params_dict("d"))
    config = HeadConfig.from_params(p, 10, 7)
    parts = {shape.part for shape in hateclipper.layer_shapes(config)}
    assert config.sides == () and parts == {"image", "text", "pre_output", "output"}
