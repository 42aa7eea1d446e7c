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


def test_layers_follow_the_paper():
    head = HateClipper(config())
    linear = [m for m in head.image_projection if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linear] == [(10, 6), (6, 6)]
    pre = [m for m in head.pre_output if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in pre] == [(36, 6), (6, 6)]
    assert head.output.in_features == 6
    assert HateClipper(config(num_pre_output_layers=0)).output.in_features == 36
    drops = [m.p for m in head.pre_output if isinstance(m, head_module.Dropout)]
    assert drops == [0.4, 0.1, 0.1]


def test_projections_are_l2_normalised_before_fusion():
    head = HateClipper(config(fusion="image", num_pre_output_layers=0)).eval()
    image = torch.randn(5, 10)
    projected = torch.nn.functional.normalize(head.image_projection(image), dim=1)
    expected = head.output(projected).squeeze(1)
    assert torch.allclose(head(image, torch.randn(5, 7)), expected)


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    head = HateClipper(config(fusion="align_concat")).eval()
    path = tmp_path / "head.pt"
    head_module.save(path, head, {"cache_fingerprint": "abc", "features": "pooled"})
    raw = torch.load(path, weights_only=True)  # no code is unpickled
    assert raw["cache_fingerprint"] == "abc"
    loaded, meta = head_module.load(path)
    assert loaded.config == head.config and meta["features"] == "pooled"
    x, t = torch.randn(4, 10), torch.randn(4, 7)
    assert torch.equal(loaded(x, t), head(x, t))
