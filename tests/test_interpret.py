"""interpret: the trigger-vector math against direct computations, and the stage on memes whose
hateful concepts are known."""
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch
from sklearn.metrics import adjusted_rand_score

from scripts import synthetic
from stages import interpret
from stages.head import hateclipper, triggers
from tests.conftest import write_params


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


def test_the_count_sketch_is_the_product_with_its_seeded_hash_matrix():
    """Each column j of the vectors lands in bucket h(j) with sign s(j), as drawn from the seed:
    the sketch equals vectors @ S for S[j, h(j)] = s(j), written out."""
    rng = np.random.default_rng(0)
    vectors = scipy.sparse.random(30, 5000, density=0.05, format="csr", random_state=1,
                                  data_rvs=lambda n: rng.choice([-1, 1], n)).astype(np.int8)
    draws = np.random.default_rng(42)
    bucket = draws.integers(0, 64, 5000, dtype=np.int32)
    sign = draws.choice(np.array([-1, 1], dtype=np.float32), 5000)
    hash_matrix = scipy.sparse.csr_matrix((sign, (np.arange(5000), bucket)), shape=(5000, 64))
    sketch = interpret.count_sketch(vectors, 64, seed=42)
    assert sketch.dtype == np.float32 and sketch.shape == (30, 64)
    np.testing.assert_array_equal(sketch, (vectors.astype(np.float32) @ hash_matrix).toarray())
    assert not np.array_equal(sketch, interpret.count_sketch(vectors, 64, seed=43))


def test_triggers_npz_holds_what_scipys_save_npz_writes(tmp_path):
    vectors = scipy.sparse.random(40, 3000, density=0.05, format="csr", random_state=2).astype(np.int8)
    interpret.write_npz(tmp_path / "ours.npz", vectors)
    scipy.sparse.save_npz(tmp_path / "scipy.npz", vectors)
    with np.load(tmp_path / "ours.npz") as ours, np.load(tmp_path / "scipy.npz") as theirs:
        assert sorted(ours.files) == sorted(theirs.files)
        for name in theirs.files:
            np.testing.assert_array_equal(ours[name], theirs[name])
            assert ours[name].dtype == theirs[name].dtype
    assert (scipy.sparse.load_npz(tmp_path / "ours.npz") != vectors).nnz == 0


def test_k_means_runs_on_the_sketch_only_where_the_fused_vector_is_wider():
    vectors = scipy.sparse.random(10, 1024, density=0.1, format="csr", random_state=0)
    assert scipy.sparse.issparse(interpret.cluster_points(vectors, 4096, seed=0))
    assert scipy.sparse.issparse(interpret.cluster_points(vectors, 0, seed=0))
    assert scipy.sparse.issparse(interpret.cluster_points(vectors, 1024, seed=0))  # as wide: no gain
    assert interpret.cluster_points(vectors, 1023, seed=0).shape == (10, 1023)


@pytest.fixture(scope="module")
def concept_workspace(tmp_path_factory):
    """Memes whose hateful ones come from 4 known (scene, caption family) concepts, extracted
    and a cross head trained on them (lr 1e-3, so that 20 epochs learn the concepts)."""
    from stages import extract, train

    work = tmp_path_factory.mktemp("concepts")
    splits = synthetic.generate(work / "memes", n=600, seed=7, concepts=4)
    write_params(work, work / "memes", fusion="cross", interpret__clusters=4, train__lr=1e-3)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        extract.main([])
        train.main([])
    return work, {str(m.id): m.scene for m in splits["train"] if m.label == 1}


def run_interpret(work, monkeypatch, **overrides):
    monkeypatch.chdir(work)
    write_params(work, work / "memes", fusion="cross", train__lr=1e-3,
                 **{"interpret__clusters": 4, **overrides})
    interpret.main([])
    report = work / interpret.REPORT
    return (pd.read_csv(report / "clusters.csv", dtype={"id": str}),
            json.loads((report / "summary.json").read_text()))


@pytest.mark.parametrize("sketch_dim", [4096, 256])  # the FIM's 1024 entries themselves; a sketch
def test_clusters_recover_the_known_concepts_reproducibly(concept_workspace, monkeypatch, sketch_dim):
    work, scene = concept_workspace  # of each hateful training meme
    clusters, summary = run_interpret(work, monkeypatch, interpret__sketch_dim=sketch_dim)
    assert summary["applies"] and summary["clusters"] == 4 and summary["hateful_memes"] == len(clusters)
    assert summary["clustered"] == ("the trigger vectors" if sketch_dim == 4096 else
                                    "a count sketch of the trigger vectors, 256 wide, seeded by "
                                    "train.seed (interpret.sketch_dim)")
    assert sorted(clusters["id"]) == sorted(scene)
    assert adjusted_rand_score([scene[i] for i in clusters["id"]], clusters["cluster"]) >= 0.8
    vectors = scipy.sparse.load_npz(work / interpret.REPORT / "triggers.npz")
    assert vectors.shape == (len(clusters), 32 * 32)
    np.testing.assert_array_equal(np.diff(vectors.indptr), clusters["triggered"])
    assert sorted(p.name for p in (work / interpret.REPORT / "sheets").iterdir()) == [
        f"cluster_{c:02d}.png" for c in range(4)]
    assert (work / interpret.REPORT / "positions.png").stat().st_size > 0
    again, _ = run_interpret(work, monkeypatch, interpret__sketch_dim=sketch_dim)
    pd.testing.assert_frame_equal(clusters, again)


def test_sheets_list_captions_when_the_data_is_elsewhere(concept_workspace, monkeypatch, tmp_path):
    work, _ = concept_workspace
    (work / "memes").rename(work / "away")
    try:
        _, summary = run_interpret(work, monkeypatch)
    finally:
        (work / "away").rename(work / "memes")
    assert "not found: sheets list ids and captions instead of images" in summary["pictures"]
    assert len(list((work / interpret.REPORT / "sheets").iterdir())) == 4
    _, summary = run_interpret(work, monkeypatch, interpret__pictures=False)
    assert summary["pictures"] == "off" and not (work / interpret.REPORT / "sheets").exists()


def test_a_fusion_without_a_fim_says_interpret_does_not_apply(kaggle_set, tmp_path, monkeypatch):
    from stages import extract, train

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, kaggle_set[0], fusion="concat", train__epochs=1)
    for stage in (extract, train, interpret):
        stage.main([])
    summary = json.loads((tmp_path / interpret.REPORT / "summary.json").read_text())
    assert summary == {"applies": False, "fusion": "concat",
                       "reason": "fusion concat has no feature interaction matrix; interpret "
                                 "applies to align, cross, cross_nd"}
    assert [p.name for p in (tmp_path / interpret.REPORT).iterdir()] == ["summary.json"]


def test_a_contact_sheet_pastes_each_thumbnail_centred_in_its_cell(tmp_path):
    """The grid's size, a wide and a tall thumbnail each centred in its box, the title, ids and
    captions drawn, and a long text-only caption kept inside its own cell."""
    from PIL import Image

    from stages.report import plotting

    wide, tall = tmp_path / "wide.png", tmp_path / "tall.png"
    Image.new("RGB", (600, 200), (255, 0, 0)).save(wide)  # thumbnail 200 x 67
    Image.new("RGB", (100, 400), (0, 0, 255)).save(tall)  # thumbnail 50 x 200
    memes = [("m0", wide, "a caption"), ("m1", tall, "another one")]
    memes += [(f"m{k}", None, "Жарко! " * 80) for k in range(2, 7)]
    sheet_path = tmp_path / "sheet.png"
    plotting.contact_sheet(sheet_path, memes, "one line of title")
    with Image.open(sheet_path) as sheet:
        pixels = np.asarray(sheet.convert("RGB")).astype(int)
    (width, height), thumb, line = plotting.CELL, plotting.THUMBNAIL, plotting.LINE
    top = 2 * line  # a title of one line, then a blank one
    assert pixels.shape == (top + 2 * height, 6 * width, 3)  # 7 memes: two rows of 6

    def box(colour):
        rows, columns = np.nonzero(np.all(pixels == colour, axis=-1))
        return rows.min(), rows.max(), columns.min(), columns.max()

    dy = (thumb - 67) // 2
    assert box((255, 0, 0)) == (top + dy, top + dy + 66, 5, 5 + thumb - 1)
    dx = (thumb - 50) // 2
    assert box((0, 0, 255)) == (top, top + thumb - 1, width + 5 + dx, width + 5 + dx + 49)
    dark = pixels.sum(axis=-1) < 200  # black text, anti-aliased
    assert dark[:line + 5].any()  # the title
    for k in (0, 1):  # id and caption under each thumbnail
        assert dark[top + thumb:top + height, k * width:(k + 1) * width].any()
    text_cell = dark[top:top + height, 2 * width:3 * width]
    assert text_cell.any() and not dark[top:top + height, 3 * width - 4:3 * width].any()
