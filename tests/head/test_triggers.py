"""stages/head/triggers.py: the trigger-vector math (direction, fused vectors, row quantiles)
against direct computations."""
import numpy as np
import pytest
import scipy.sparse
import torch

from stages.head import hateclipper, triggers


def small_head(fusion: str, pre_output_layers: int = 1, seed: int = 3, runs: int = 2):
    config = hateclipper.HeadConfig(image_dim=7, text_dim=5, fusion=fusion, map_dim=6,
                                    num_mapping_layers=1, num_pre_output_layers=pre_output_layers,
                                    drop_probs=(0.2, 0.4, 0.1), runs=runs)
    head = hateclipper.HateClipper(config, seed)
    with torch.no_grad():  # biases of both signs, so ReLU masks some units at the zero input
        head.weights.normal_(generator=torch.Generator().manual_seed(seed))
    return head


def weights(head, part: str, run: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(layer.weight[run].detach().numpy(), layer.bias[run, 0].detach().numpy()) for layer in head.layers()[part]]


@pytest.mark.parametrize("fusion", ["cross", "align", "cross_nd"])
def test_direction_is_minus_the_hateful_loss_gradient_at_zero(fusion):
    """One pre-output layer, by hand: dL/dx = (sigmoid(z) - 1) W1 (relu'(b1) * w2)."""
    head = small_head(fusion)
    (w1, b1), = weights(head, "pre_output")
    (w2, b2), = weights(head, "output")
    z = np.maximum(b1, 0) @ w2[:, 0] + b2[0]
    expected = -(1 / (1 + np.exp(-z)) - 1) * (w1 @ ((b1 > 0) * w2[:, 0]))
    np.testing.assert_allclose(triggers.direction(head, run=0).numpy(), expected, rtol=1e-5, atol=1e-7)


def test_direction_through_several_pre_output_layers_equals_autograd_on_plain_layers():
    head = small_head("cross", pre_output_layers=2)
    layers = []
    for weight, bias in weights(head, "pre_output", run=1) + weights(head, "output", run=1):
        linear = torch.nn.Linear(*weight.shape)
        linear.weight.data, linear.bias.data = torch.from_numpy(weight.T.copy()), torch.from_numpy(bias)
        layers += [linear, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    x = torch.zeros(1, 36, requires_grad=True)
    torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], torch.ones(1)).backward()
    torch.testing.assert_close(triggers.direction(head, run=1), -x.grad[0])


def direct_fim(head, image: np.ndarray, text: np.ndarray, fusion: str) -> np.ndarray:
    """Each meme's fused vector in numpy: projections, L2 norm, outer product, the fusion's part."""
    (wi, bi), = weights(head, "image")
    (wt, bt), = weights(head, "text")
    p_i, p_t = image @ wi + bi, text @ wt + bt
    p_i /= np.linalg.norm(p_i, axis=1, keepdims=True)
    p_t /= np.linalg.norm(p_t, axis=1, keepdims=True)
    fim = p_i[:, :, None] * p_t[:, None, :]
    keep = {"cross": np.ones((6, 6), bool), "align": np.eye(6, dtype=bool),
            "cross_nd": ~np.eye(6, dtype=bool)}[fusion]
    return fim[:, keep]


@pytest.mark.parametrize("fusion", ["cross", "align", "cross_nd"])
def test_trigger_vectors_equal_a_direct_numpy_computation(fusion):
    head = small_head(fusion)
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(9, 7)).astype(np.float32), rng.normal(size=(9, 5)).astype(np.float32)
    # Cut-offs whose quantile positions fall between two values: at a whole position torch
    # (which the official code and this project use) computes q * (n - 1) in float32 and can
    # land an ulp above the value numpy takes, which flips ties at that one position.
    quantiles = triggers.Quantiles((0.23, 0.77), (0.13, 0.87))
    d = triggers.direction(head).numpy()
    vectors = triggers.trigger_vectors(torch.from_numpy(d), triggers.fused_vectors(head, image, text),
                                       quantiles)
    r = direct_fim(head, image, text, fusion)
    np.testing.assert_allclose(np.concatenate(list(triggers.fused_vectors(head, image, text))), r,
                               rtol=1e-5, atol=1e-6)
    d_pos, d_neg = d >= np.quantile(d, 0.77), d <= np.quantile(d, 0.23)
    r_pos = r >= np.quantile(r, 0.87, axis=1, keepdims=True)
    r_neg = r <= np.quantile(r, 0.13, axis=1, keepdims=True)
    expected = (d_pos & r_pos).astype(np.int8) - (d_neg & r_neg).astype(np.int8)
    assert vectors.dtype == np.int8 and scipy.sparse.issparse(vectors)
    np.testing.assert_array_equal(vectors.toarray(), expected)
    assert (expected != 0).any()
    assert [tuple(p) for p in triggers.fim_positions(fusion, 6)] == [
        (i, j) for i in range(6) for j in range(6)
        if {"cross": True, "align": i == j, "cross_nd": i != j}[fusion]]


def quantile_rows():
    """Rows long enough for row_quantiles' band (2^17), each a case of its own."""
    rng = np.random.default_rng(5)
    normal = rng.normal(size=(6, 2 ** 17)).astype(np.float32) * rng.random((6, 1), np.float32)
    ties = np.round(normal * 4) / 4
    half_zero = normal.copy()
    half_zero[:, ::2] = 0
    misleading = normal.copy()  # every sampled entry far above the rest: the band misses
    misleading[:, ::triggers.SAMPLE_STRIDE] += 100
    return {"normal": normal, "ties": ties, "half zero": half_zero, "misleading": misleading,
            "one row": normal[:1]}


@pytest.mark.parametrize("case", ["normal", "ties", "half zero", "misleading", "one row"])
@pytest.mark.parametrize("q", [(0.1, 0.9), (0.0, 0.5, 1.0), (0.33,), (0.13, 0.87)])
def test_row_quantiles_equal_torch_quantile(case, q):
    r, q = torch.from_numpy(quantile_rows()[case]), torch.tensor(q)
    assert r.shape[1] >= triggers.SELECT_FROM  # the band's path, not torch.quantile's
    assert torch.equal(triggers.row_quantiles(r, q), torch.quantile(r, q, dim=1, keepdim=True))


def test_row_quantiles_partition_the_band_and_only_a_missed_one_the_whole_row(monkeypatch):
    partitioned = []
    partition = np.partition
    monkeypatch.setattr(np, "partition", lambda a, kth: partitioned.append(len(a)) or partition(a, kth))
    rows = quantile_rows()
    width = rows["normal"].shape[1]
    triggers.row_quantiles(torch.from_numpy(rows["normal"]), torch.tensor((0.1, 0.9)))
    assert len(partitioned) == 2 * 6 and max(partitioned) < width // 3  # 6 rows, 2 cut-offs
    partitioned.clear()
    triggers.row_quantiles(torch.from_numpy(rows["misleading"]), torch.tensor((0.1, 0.9)))
    assert width in partitioned


def test_a_row_with_a_nan_gets_torch_quantiles_nan():
    r = torch.from_numpy(quantile_rows()["normal"])
    r[2, 7] = float("nan")
    q = torch.tensor((0.1, 0.9))
    torch.testing.assert_close(triggers.row_quantiles(r, q), torch.quantile(r, q, dim=1, keepdim=True),
                               rtol=0, atol=0, equal_nan=True)


def test_trigger_vectors_of_a_million_wide_fim_equal_torch_quantiles_cut_offs():
    """map_dim 1024 (the paper's), where each meme's cut-offs come from row_quantiles' band and
    only D's positive and negative columns are compared: the same vectors as the cut-offs of
    torch.quantile applied to every position."""
    config = hateclipper.HeadConfig(image_dim=7, text_dim=5, fusion="cross", map_dim=1024,
                                    num_mapping_layers=1, num_pre_output_layers=1,
                                    drop_probs=(0.2, 0.4, 0.1), pre_output_dim=4)
    head = hateclipper.HateClipper(config, seed=1)
    rng = np.random.default_rng(1)
    image, text = rng.normal(size=(20, 7)).astype(np.float32), rng.normal(size=(20, 5)).astype(np.float32)
    d = triggers.direction(head)
    quantiles = triggers.Quantiles((0.2, 0.8), (0.1, 0.9))
    vectors = triggers.trigger_vectors(d, triggers.fused_vectors(head, image, text), quantiles)
    r = torch.cat(list(triggers.fused_vectors(head, image, text)))
    d_pos, d_neg = d >= torch.quantile(d, 0.8), d <= torch.quantile(d, 0.2)
    r_pos = r >= torch.quantile(r, 0.9, dim=1, keepdim=True)
    r_neg = r <= torch.quantile(r, 0.1, dim=1, keepdim=True)
    expected = (d_pos & r_pos).to(torch.int8) - (d_neg & r_neg).to(torch.int8)
    assert vectors.has_sorted_indices and vectors.shape == (20, 1024 * 1024)
    np.testing.assert_array_equal(vectors.toarray(), expected.numpy())
    assert (expected == 1).any() and (expected == -1).any()


def test_fused_vectors_follow_the_caption_mode_and_a_pretrained_map():
    """parallel_mean with CLIP's projection copied (bias-free, ReLU, Linear): the fused vector
    of each meme is the mean of the image-text and caption-text FIMs, by numpy."""
    config = hateclipper.HeadConfig(image_dim=7, text_dim=5, fusion="cross", map_dim=4, num_mapping_layers=1,
                                    num_pre_output_layers=1, drop_probs=(0.2, 0.4, 0.1), runs=2,
                                    caption_mode="parallel_mean", pretrained_map=3)
    rng = np.random.default_rng(1)
    clip_projections = {"image": rng.normal(size=(7, 3)).astype(np.float32),
                        "text": rng.normal(size=(5, 3)).astype(np.float32)}
    head = hateclipper.HateClipper(config, 0, clip_projections)
    image, text, caption = (rng.normal(size=(6, width)).astype(np.float32) for width in (7, 5, 5))

    def project(x, part):
        first, second = head.layers()[part]
        assert first.bias is None
        y = np.maximum(x @ first.weight[0].detach().numpy(), 0) @ second.weight[0].detach().numpy() \
            + second.bias[0, 0].detach().numpy()
        return y / np.linalg.norm(y, axis=1, keepdims=True)

    def fim(a, b):
        return (a[:, :, None] * b[:, None, :]).reshape(len(a), -1)

    image_p, text_p, caption_p = project(image, "image"), project(text, "text"), project(caption, "text")
    fused = np.concatenate(list(triggers.fused_vectors(head, image, np.concatenate([text, caption], 1))))
    np.testing.assert_allclose(fused, (fim(image_p, text_p) + fim(caption_p, text_p)) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(head.layers()["image"][0].weight[1].detach().numpy(), clip_projections["image"])
