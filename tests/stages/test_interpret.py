"""stages/interpret.py: the count sketch, the triggers file and the clustering against direct
computations, and the stage on memes whose hateful concepts are known (the trigger-vector
math: tests/head/test_triggers.py)."""
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from sklearn.metrics import adjusted_rand_score

from scripts import synthetic
from stages import interpret
from tests.helpers import write_params


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
