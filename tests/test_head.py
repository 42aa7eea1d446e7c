import pytest
import torch

from stages.common.errors import InputError
from stages.head import hateclipper, masks
from stages.head.fusions import FUSIONS
from stages.head.hateclipper import HateClipper, HeadConfig


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


def config(**kw):
    base = dict(image_dim=10, text_dim=7, fusion="cross", map_dim=6, num_mapping_layers=2,
                num_pre_output_layers=2, drop_probs=(0.2, 0.4, 0.1))
    return HeadConfig(**{**base, **kw})


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
