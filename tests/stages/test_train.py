"""The head learns the image-caption interaction; single modalities cannot; K runs in one loop
are K independent heads."""
import dataclasses
import json
import re

import numpy as np
import pytest
import torch
import yaml

from stages import evaluate, extract, train
from stages.common import params
from stages.common.errors import InputError
from stages.data.task import HATEFUL
from stages.head import losses
from stages.head.fusions import FUSIONS
from tests.helpers import ROOT, interaction_features, params_dict, side_head, write_params

DEVICE = torch.device("cpu")


@pytest.fixture(scope="module")
def splits():
    return {"train": interaction_features(800, 0), "dev": interaction_features(300, 1)}


def run(splits, fusion, **overrides):
    settings = dict(fusion=fusion, train__epochs=12, train__patience=12, train__lr=3e-3,
                    train__batch_size=32)
    p = params.parse(params_dict("d", **{**settings, **overrides}))
    return train.train(p, splits, DEVICE, log=lambda _: None)


def best_dev_auroc(history, run=0):
    return max(h["dev_auroc"][run] for h in history)


@pytest.mark.parametrize("fusion", ["cross", "align", "cross_nd", "align_concat", "concat"])
def test_fused_heads_learn_the_interaction(splits, fusion):
    _, history, _ = run(splits, fusion)
    if fusion == "concat":  # no multiplicative term, but the MLP on top can still fit XOR
        assert best_dev_auroc(history) > 0.6
    else:
        assert best_dev_auroc(history) >= 0.9, fusion
    assert history[-1]["train_loss"][0] < history[0]["train_loss"][0]


@pytest.mark.parametrize("fusion", ["image", "text"])
def test_single_modalities_stay_near_chance(splits, fusion):
    _, history, _ = run(splits, fusion)
    assert 0.4 < best_dev_auroc(history) < 0.62


def same_history(a, b) -> bool:
    return all(x["epoch"] == y["epoch"] and np.array_equal(x["train_loss"], y["train_loss"])
               and np.array_equal(x["dev_auroc"], y["dev_auroc"]) for x, y in zip(a, b))


def test_same_seed_same_run_other_seed_other_run(splits):
    head_a, history_a, _ = run(splits, "align")
    head_b, history_b, _ = run(splits, "align")
    _, history_c, _ = run(splits, "align", train__seed=7)
    assert same_history(history_a, history_b)
    assert all((x == y).all() for x, y in zip(head_a.state_dict().values(), head_b.state_dict().values()))
    assert not same_history(history_a, history_c)


def test_early_stopping_keeps_the_best_epoch(splits):
    head, history, best_epochs = run(splits, "align", train__patience=2, train__epochs=40)
    best = max(history, key=lambda h: h["dev_auroc"][0])
    assert best_epochs.tolist() == [best["epoch"]]
    assert len(history) == best["epoch"] + 2 < 40
    dev = splits["dev"]
    probs = train.predict_probs(head, dev.image, dev.text)
    assert probs.shape == (1, len(dev), 1)
    assert train.scoring.auroc(dev.labels[:, 0], probs[0, :, 0]) == pytest.approx(best["dev_auroc"][0])


NO_DROPOUT = dict(head__drop_probs=[0.0, 0.0, 0.0], train__epochs=4, train__patience=4)


def test_k_batched_runs_are_k_separately_seeded_runs(splits):
    """Run k of one batched loop is the one-run computation seeded seed + k: the same
    initialisation, batch order and, with dropout off, the same losses and dev AUROCs."""
    head, history, _ = run(splits, "cross", train__runs=3, **NO_DROPOUT)
    for k in range(3):
        single, single_history, _ = run(splits, "cross", train__seed=42 + k, **NO_DROPOUT)
        for batched_row, single_row in zip(history, single_history):
            np.testing.assert_allclose(batched_row["train_loss"][k], single_row["train_loss"][0],
                                       rtol=1e-5)
            assert batched_row["dev_auroc"][k] == pytest.approx(single_row["dev_auroc"][0], abs=1e-5)
        for batched, alone in zip(head.state_dict().values(), single.state_dict().values()):
            np.testing.assert_allclose(batched[k].numpy(), alone[0].numpy(), rtol=1e-4, atol=1e-6)


def test_runs_differ_with_dropout_and_their_own_batch_order(splits):
    _, history, _ = run(splits, "align", train__runs=3, train__epochs=3)
    losses = history[-1]["train_loss"]
    assert len(set(losses.tolist())) == 3


def test_gradient_clipping_is_per_run():
    """Each run's gradient row is scaled by its own norm, as clip_grad_norm_ would do alone."""
    grads = [torch.randn(3, 4, 5), torch.randn(3, 1, 5)]
    grads[0][1] *= 100  # run 1 explodes; runs 0 and 2 stay below the limit
    grad = torch.cat([g.flatten(1) for g in grads], dim=1)
    train.clip_grad_norm_per_run(grad, max_norm=5.0)
    assert not torch.equal(grad, torch.cat([g.flatten(1) for g in grads], dim=1))
    for k in range(3):
        alone = [torch.zeros_like(g[k], requires_grad=True) for g in grads]
        for parameter, g in zip(alone, grads):
            parameter.grad = g[k].clone()
        torch.nn.utils.clip_grad_norm_(alone, 5.0)
        torch.testing.assert_close(grad[k], torch.cat([a.grad.flatten() for a in alone]))


def test_a_run_that_stops_keeps_its_epoch_while_others_go_on(splits):
    head, history, best_epochs = run(splits, "align", train__runs=4, train__patience=2,
                                     train__epochs=30, train__lr=1e-2)
    aurocs = np.stack([h["dev_auroc"] for h in history])  # (epochs, runs)
    for k, epoch in enumerate(best_epochs):
        # the saved epoch is the run's best up to the point where its patience ran out
        assert aurocs[epoch - 1, k] == aurocs[:epoch + 2, k].max()
    probs = train.predict_probs(head, splits["dev"].image, splits["dev"].text)
    for k, epoch in enumerate(best_epochs):
        assert train.scoring.auroc(splits["dev"].labels[:, 0], probs[k, :, 0]) == pytest.approx(aurocs[epoch - 1, k])


def test_rgcl_loss_learns_at_least_as_well_as_bce():
    """RGCL (contrastive on the head's embedding + BCE) on data where both modalities matter,
    with a weaker signal than above so that neither saturates; three runs of each."""
    hard = {"train": interaction_features(800, 0, signal=1.3), "dev": interaction_features(300, 1, signal=1.3)}

    def best(loss):
        _, history, _ = run(hard, "align", train__epochs=15, train__runs=3, train__loss=loss)
        return np.stack([h["dev_auroc"] for h in history]).max(axis=0).mean()

    assert best("rgcl") >= best("bce") > 0.8


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_trains_with_rgcl_over_several_runs(splits, fusion):
    head, history, _ = run(splits, fusion, train__epochs=2, train__loss="rgcl", train__runs=2)
    assert np.isfinite(history[-1]["train_loss"]).all() and head.config.runs == 2


def test_training_draws_augmented_views(splits):
    """With views cached, each step sees one of a meme's plain and augmented image rows: views
    that carry no signal at all pull the dev AUROC down; views equal to the plain rows change
    nothing."""
    plain = splits["train"]
    same = dataclasses.replace(plain, image_views=np.repeat(plain.image[:, None], 2, axis=1))
    noise = dataclasses.replace(plain, image_views=np.random.default_rng(0).normal(
        size=(len(plain), 2, plain.image.shape[1])).astype(np.float32))
    _, reference, _ = run(splits, "cross", train__epochs=4)
    _, with_same, _ = run({**splits, "train": same}, "cross", train__epochs=4)
    _, with_noise, _ = run({**splits, "train": noise}, "cross", train__epochs=4)
    np.testing.assert_allclose([h["train_loss"][0] for h in with_same],
                               [h["train_loss"][0] for h in reference], rtol=1e-5)
    assert best_dev_auroc(with_noise) < best_dev_auroc(reference)


def documented_rgcl_recipe() -> dict:
    """The `-S` settings of RGCL's shipped recipe, read from the command docs/methods.md shows."""
    text = (ROOT / "docs" / "methods.md").read_text()
    block = text[text.index("dvc exp run -S clip.model=ViT-L-14-336"):]
    block = block[:block.index("```")].split("\n# ")[0]
    return {key: yaml.safe_load(value) for key, value in
            (pair.strip("'").split("=", 1) for pair in re.findall(r"-S ('[^']+'|\S+)", block))}


@pytest.mark.slow
def test_rgcls_shipped_recipe_parses_and_learns(splits):
    recipe = documented_rgcl_recipe()
    assert recipe["clip.model"] == "ViT-L-14-336" and recipe["retrieval.hard_negative_pool"] == 12
    raw = params_dict("d")
    for dotted, value in recipe.items():
        node = raw
        *sections, key = dotted.split(".")
        for section in sections:
            node = node[section]
        node[key] = value
    p = params.parse(raw)  # the encoder's settings included; training reads the cached rows
    assert (p.train.rgcl_form, p.retrieval.self_positive, p.train.select, p.fusion) == (
        "triplet", True, "accuracy", "align")
    head, history, _ = train.train(p, splits, DEVICE, log=lambda _: None)
    assert head.config.map_dim == 1024 and head.config.num_pre_output_layers == 3
    assert best_dev_auroc(history) >= 0.9
    assert max(h["dev_score"][0] for h in history) >= 0.8  # the selecting accuracy


@pytest.mark.parametrize("primary", [1, 3])
def test_the_auxiliary_loss_covers_exactly_the_auxiliary_columns(primary):
    """task_loss = mean BCE over the primary cells + aux_weight x mean BCE over the known
    auxiliary cells, written out cell by cell: a primary column in the auxiliary term (or an
    auxiliary one in the primary term) changes the value."""
    from stages.data.task import Task

    task = Task(tuple(f"p{k}" for k in range(primary)), ("a0", "a1", "a2", "a3"))
    g = torch.Generator().manual_seed(primary)
    logits = 3 * torch.randn(2, 6, len(task.names), generator=g)
    labels = torch.randint(0, 2, logits.shape, generator=g).float()
    labels[..., primary:][torch.rand(labels[..., primary:].shape, generator=g) < 0.4] = -1  # unknown
    x, y = logits.double().numpy(), labels.double().numpy()

    def cell(z, t):  # binary cross-entropy of one logit
        return max(z, 0) - z * t + np.log1p(np.exp(-abs(z)))

    for run in range(2):
        primary_cells = [cell(x[run, i, k], y[run, i, k]) for i in range(6) for k in range(primary)]
        aux_cells = [cell(x[run, i, k], y[run, i, k]) for i in range(6)
                     for k in range(primary, len(task.names)) if y[run, i, k] >= 0]
        expected = np.mean(primary_cells) + 0.7 * np.mean(aux_cells)
        assert train.task_loss(logits, labels, task, 0.7)[run].item() == pytest.approx(expected, rel=1e-5)
        assert train.task_loss(logits, labels, task, 0.0)[run].item() == pytest.approx(np.mean(primary_cells), rel=1e-5)


def test_the_side_losses_add_each_weighted_bce_to_the_main_loss():
    p = params.parse(params_dict("d", train__image_loss_weight=0.5, train__text_loss_weight=2.0))
    head = side_head(("image", "text"))
    labels = torch.randint(0, 2, (2, 5, 1)).float()
    sides = head.run(torch.randn(2, 5, 10), torch.randn(2, 5, 7)).sides
    expected = 0.5 * losses.bce(sides["image"], labels) + 2.0 * losses.bce(sides["text"], labels)
    torch.testing.assert_close(train.side_loss(p, sides, labels, HATEFUL), expected)


def test_the_super_output_without_fine_grained_labels_is_one_line(kaggle_set, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, kaggle_set[0], train__super_loss_weight=1.0, train__epochs=1)
    extract.main([])
    with pytest.raises(InputError, match="train.super_loss_weight .* needs data.layout hateful_memes "
                                         "with data.fine_grained set"):
        train.main([])


@pytest.mark.slow
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
