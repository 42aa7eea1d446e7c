import pytest
import torch

from stages import head as head_module
from stages.head import HateClipper, HeadConfig, fuse, fused_dim
from stages.params import FUSIONS


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
    assert fuse(fusion, unit_rows(2, 6, 0), unit_rows(2, 6, 1)).shape == (2, fused_dim(fusion, 6))


def config(**kw):
    base = dict(image_dim=10, text_dim=7, fusion="cross", map_dim=6, num_mapping_layers=2,
                num_pre_output_layers=2, drop_probs=(0.2, 0.4, 0.1))
    return HeadConfig(**{**base, **kw})


def shapes(head, part):
    return [(tuple(w.shape), tuple(b.shape)) for w, b in head.layers()[part]]


def test_layers_follow_the_paper():
    head = HateClipper(config(runs=3))
    assert shapes(head, "image") == [((3, 10, 6), (3, 1, 6)), ((3, 6, 6), (3, 1, 6))]  # (runs, in, out)
    assert shapes(head, "text") == [((3, 7, 6), (3, 1, 6)), ((3, 6, 6), (3, 1, 6))]
    assert shapes(head, "pre_output") == [((3, 36, 6), (3, 1, 6)), ((3, 6, 6), (3, 1, 6))]
    assert shapes(head, "output") == [((3, 6, 1), (3, 1, 1))]
    assert shapes(HateClipper(config(num_pre_output_layers=0)), "output") == [((1, 36, 1), (1, 1, 1))]
    image, text, pre_output, output = 10 * 6 + 6 + 6 * 6 + 6, 7 * 6 + 6 + 6 * 6 + 6, 36 * 6 + 6 + 6 * 6 + 6, 6 + 1
    assert head.weights.shape == (3, image + text + pre_output + output)  # one row per run
    assert (head.map_dropout.p, head.fusion_dropout.p, head.pre_output_dropout.p) == (0.2, 0.4, 0.1)


def test_each_run_is_the_paper_head_computed_directly():
    """Run k's logits equal the head written out with plain matrix products on run k's weights:
    projections, L2 norm, the flattened FIM, pre-output ReLU layers, one logit."""
    head = HateClipper(config(runs=3, num_mapping_layers=2, drop_probs=(0.0, 0.0, 0.0))).eval()
    image, text = torch.randn(3, 5, 10), torch.randn(3, 5, 7)
    layers = head.layers()
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
        torch.testing.assert_close(head(image, text)[k], (x @ w[k] + b[k]).squeeze(1))
    bound = 10 ** -0.5  # nn.Linear's init: U(-1/sqrt(in), 1/sqrt(in))
    assert layers["image"][0][0].abs().max() <= bound and layers["image"][0][0].abs().max() > 0.9 * bound


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    head = HateClipper(config(fusion="align_concat")).eval()
    path = tmp_path / "head.pt"
    head_module.save(path, head, {"cache_fingerprint": "abc", "features": "pooled"})
    raw = torch.load(path, weights_only=True)  # no code is unpickled
    assert raw["cache_fingerprint"] == "abc"
    loaded, meta = head_module.load(path)
    assert loaded.config == head.config and meta["features"] == "pooled"
    x, t = torch.randn(1, 4, 10), torch.randn(1, 4, 7)
    assert torch.equal(loaded(x, t), head(x, t))


def test_all_runs_in_one_weights_only_checkpoint(tmp_path):
    head = HateClipper(config(runs=5), seed=3).eval()
    path = tmp_path / "head.pt"
    head_module.save(path, head, {"cache_fingerprint": "abc", "features": "pooled",
                                  "best_epochs": [3, 1, 4, 1, 5]})
    loaded, meta = head_module.load(path)
    assert loaded.config.runs == 5 and meta["best_epochs"] == [3, 1, 4, 1, 5]
    x, t = torch.randn(4, 10), torch.randn(4, 7)
    probs = head_module.predict_probs(loaded, x, t)
    assert probs.shape == (5, 4) and len({tuple(row) for row in probs.round(6).tolist()}) == 5
    assert (probs == head_module.predict_probs(head, x, t)).all()
