"""Every evaluation of the seeds end to end, through the stages' entry points as
`python -m stages.X` runs them: Propaganda Memes (22 labels), RGCL as its authors ran it,
TamilMemes with a carved dev split, fine-grained auxiliary labels, and the seed's own head.
(DVC's part, what reruns after which change, is tests/flows/test_dvc_pipeline.py's.)"""
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts import synthetic
from stages import evaluate, extract, interpret, predict, train
from stages.cache import features
from stages.head import hateclipper, inputs
from tests.helpers import format_overrides, run_entry, run_stages, write_params

pytestmark = pytest.mark.slow  # every stage on 600 memes, and a random ViT-B-32


# Propaganda Memes with the committed defaults but for a learning rate at which the head
# learns and the benchmark's own selection
PROPAGANDA = {**format_overrides("propaganda"), "train__lr": 0.003, "train__select": "micro_f1"}


@pytest.fixture(scope="module")
def propaganda_run(tmp_path_factory):
    """Every stage on a synthetic Propaganda Memes set of 600 memes (in memes/)."""
    work = tmp_path_factory.mktemp("prop")
    synthetic.generate(work / "memes", n=600, layout="propaganda", seed=0)
    write_params(work, work / "memes", **PROPAGANDA)
    run_stages(work, extract, train, evaluate, interpret)
    return work


def rerun(run: Path, target: Path, stages, **overrides) -> Path:
    """A copy of the run's outputs in `target`, with these params, and these stages run again
    there: what a head-only `dvc exp run -S ...` does (which stages it reruns:
    tests/flows/test_dvc_pipeline.py)."""
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("memes"))
    write_params(target, run / "memes", **PROPAGANDA, **overrides)
    run_stages(target, *stages)
    return target


def test_propaganda_scores_22_techniques_beside_their_baselines(propaganda_run):
    metrics = json.loads((propaganda_run / "reports/metrics.json").read_text())
    test = metrics["test"]
    # the paper's figure with its interval and ensemble first, then what readers compare, once each
    assert set(test) == {"n", "paper_micro_f1", "paper_micro_f1_ci_low", "paper_micro_f1_ci_high",
                         "ensemble_paper_micro_f1", "micro_f1", "macro_f1", "auroc", "baselines"}
    detail = json.loads((propaganda_run / "reports/metrics_detail.json").read_text())["test"]
    assert detail["labels"] == 22 and {"exact_match", "weighted_f1"} <= set(detail["mean"])
    assert detail["intervals"]["micro_f1"][0] <= test["micro_f1"] <= detail["intervals"]["micro_f1"][1]
    baselines = test["baselines"]
    assert test["micro_f1"] > baselines["all_positive"]["micro_f1"] + 0.3  # cross learns
    assert baselines["all_negative"]["micro_f1"] == 0 < baselines["all_negative"]["paper_micro_f1"]
    per_label = pd.read_csv(propaganda_run / "reports/per_label/test.csv")
    assert len(per_label) == 22 and {"label", "support", "f1", "auroc"} <= set(per_label.columns)
    submission = json.loads((propaganda_run / "reports/submission/test.json").read_text())
    assert len(submission) == test["n"] and set(submission[0]) == {"id", "labels"}


def test_attention_m_trains_with_the_official_parameter_count(propaganda_run, tmp_path):
    work = rerun(propaganda_run, tmp_path / "attention_m", (train, evaluate, interpret),
                 fusion="attention_m")
    cache = inputs.read(work / features.CACHE, ["train"])[0]["train"]
    i, t, m = cache.image.shape[1], cache.text.shape[1], 32
    # engine.py: two projections, gen_query and gen_key (m -> m // 4), Linear(2m, m), Linear(m, 22)
    official = (i * m + m) + (t * m + m) + 2 * (m * (m // 4) + m // 4) + (2 * m * m + m) + (m * 22 + 22)
    summary = json.loads((work / "reports/train.json").read_text())
    assert summary["trainable_params"] == official


def test_the_retrieval_classifier_votes_every_technique(propaganda_run, tmp_path):
    """classifier=retrieval (evaluate alone, on the trained head), on a task of 22 labels:
    each neighbour votes its label vector."""
    work = rerun(propaganda_run, tmp_path / "retrieval", (evaluate,), classifier="retrieval")
    metrics = json.loads((work / "reports/metrics.json").read_text())["test"]
    assert json.loads((work / "reports/metrics_detail.json").read_text())["test"]["labels"] == 22
    assert metrics["micro_f1"] > metrics["baselines"]["all_positive"]["micro_f1"] + 0.3
    per_label = pd.read_csv(work / "reports/per_label/test.csv")
    assert len(per_label) == 22 and per_label["f1"].notna().all()
    predictions = pd.read_csv(work / "reports/predictions/test.csv").filter(like="prob_")
    assert predictions.shape[1] == 22
    logistic = pd.read_csv(propaganda_run / "reports/predictions/test.csv").filter(like="prob_")
    assert not np.allclose(predictions, logistic)  # the neighbours voted, not the head's logit


def test_rgcl_as_its_authors_ran_it_learns_and_its_retrieval_classifier_votes(tmp_path):
    """RGCL's shipped settings (triplet loss, the anchor as its own positive, hard negatives
    among the 12 nearest, accuracy selection), then its retrieval classifier on that head."""
    synthetic.generate(tmp_path / "memes", n=160, layout="challenge", seed=0)
    rgcl = {**format_overrides("challenge"), "train__loss": "rgcl", "train__rgcl_form": "triplet",
            "retrieval__self_positive": True, "retrieval__hard_negative_pool": 12, "train__select": "accuracy",
            "train__epochs": 15, "train__lr": 0.003}
    write_params(tmp_path, tmp_path / "memes", **rgcl)
    run_stages(tmp_path, extract, train, evaluate)
    trained = json.loads((tmp_path / "reports/train.json").read_text())
    assert trained["selected_by"] == "accuracy" and trained["best_dev_accuracy"] > 0.6
    assert json.loads((tmp_path / "reports/metrics.json").read_text())["dev_seen"]["auroc"] > 0.7
    logistic = (tmp_path / "reports/predictions/dev_seen.csv").read_text()
    write_params(tmp_path, tmp_path / "memes", **rgcl, classifier="retrieval")
    run_stages(tmp_path, evaluate)
    assert json.loads((tmp_path / "reports/metrics.json").read_text())["dev_seen"]["auroc"] > 0.7
    assert (tmp_path / "reports/predictions/dev_seen.csv").read_text() != logistic  # the kNN vote scored


def test_tamil_selects_on_a_carved_dev_split_and_reports_the_majority_baseline(tmp_path):
    ws = tmp_path
    synthetic.generate(ws / "memes", n=300, layout="tamil", seed=0)
    write_params(ws, ws / "memes", **format_overrides("tamil"), train__epochs=3)
    run_stages(ws, extract, train, evaluate, interpret)
    metrics = json.loads((ws / "reports/metrics.json").read_text())
    assert set(metrics) == {"dev", "test"}  # the carved dev split selects; test stays test
    data_train = [l for l in (ws / "memes/train_captions.csv").read_text().splitlines()[1:]]
    assert metrics["dev"]["n"] == round(0.1 * len(data_train))
    # the benchmark's paper micro-F1 (its accuracy, for one label) stands once, under its own name
    assert set(metrics["test"]) == {"n", "paper_micro_f1", "paper_micro_f1_ci_low", "paper_micro_f1_ci_high",
                                    "ensemble_paper_micro_f1", "auroc", "auroc_ci_low", "auroc_ci_high",
                                    "ensemble_auroc", "f1", "average_precision", "baselines"}
    majority = metrics["test"]["baselines"]["majority"]
    assert 0 < majority["paper_micro_f1"] < 1


@pytest.fixture(scope="module")
def fine_grained_workspace(kaggle_set, tmp_path_factory):
    """The kaggle-layout set with synthetic fine-grained annotations, extracted once."""
    source, splits = kaggle_set
    work = tmp_path_factory.mktemp("fine")
    root = work / "memes"  # a copy: the annotations go inside data.dir, where DVC tracks them
    shutil.copytree(source, root)
    synthetic.write_fine_grained(root / "fine", splits, coverage=0.9)
    for name, folder in (("plain", None), ("annotated", str(root / "fine"))):
        (work / name).mkdir()
        write_params(work / name, root, data__fine_grained=folder, train__epochs=4)
        run_stages(work / name, extract)
    return work, root


def train_and_evaluate(work, root, name, **overrides):
    folder = str(root / "fine") if name == "annotated" else None
    write_params(work / name, root, data__fine_grained=folder, train__epochs=4, **overrides)
    run_stages(work / name, train, evaluate)
    return (json.loads((work / name / "reports/metrics.json").read_text()),
            pd.read_csv(work / name / "reports/per_label/dev.csv"))


def test_auxiliary_labels_train_with_aux_weight_and_change_nothing_at_zero(fine_grained_workspace):
    work, root = fine_grained_workspace
    plain, _ = train_and_evaluate(work, root, "plain")
    off, off_labels = train_and_evaluate(work, root, "annotated", train__aux_weight=0.0)
    for key in ("auroc", "accuracy", "f1", "average_precision"):
        assert off["dev"][key] == pytest.approx(plain["dev"][key], abs=1e-6), key
    on, per_label = train_and_evaluate(work, root, "annotated", train__aux_weight=1.0)
    auxiliary = per_label[per_label["auxiliary"]]
    covered = auxiliary[(auxiliary["support"] > 0) & (auxiliary["support"] < auxiliary["n"])]
    assert len(covered) >= 4 and covered["auroc"].notna().all()  # race/religion, mocking/..., empties
    assert on["dev"]["auroc"] != pytest.approx(off["dev"]["auroc"], abs=1e-9)  # the loss did change


def test_the_seeds_head_learns_within_three_epochs(tmp_path):
    """kanru-wang's head on CLIP embeddings of a random ViT-B-32: no L2 norm, 512-d projections,
    Linear(262144, 128), GELU, dropout 0.1."""
    root = tmp_path / "memes"
    synthetic.generate(root, n=150, seed=11)
    seed_head = dict(clip__model="ViT-B-32", head__features="projected", head__map_dim=512,
                     head__normalize=False, head__pre_output_dim=128, head__activation="gelu",
                     head__drop_probs=[0.0, 0.0, 0.1], train__epochs=3, train__lr=1e-4,
                     train__batch_size=16)
    write_params(tmp_path, root, **seed_head)
    run_stages(tmp_path, extract, train)
    summary = json.loads((tmp_path / "reports/train.json").read_text())
    assert summary["trainable_params"] == 34_080_001
    assert summary["best_dev_auroc"] > 0.9  # 15 dev memes whose labels need both modalities
    head, _ = hateclipper.load(tmp_path / hateclipper.CHECKPOINT)
    assert not head.config.normalize and head.config.activation == "gelu"
    assert np.isfinite(summary["best_dev_auroc"])


def test_new_memes_in_the_one_form_score_as_the_pipeline_scores_them(propaganda_run, monkeypatch, capsys):
    """predict --jsonl on a Propaganda Memes head: the release's own captions (upper case,
    newlines) go through its reader's caption rule, so each meme scores as in the pipeline."""
    data = propaganda_run / "memes"
    lines = [json.loads(line) for line in (data / "annotations/test.jsonl").read_text().splitlines()][:5]
    new = data / "new.jsonl"
    new.write_text("".join(json.dumps({"id": line["id"], "img": f"images/{line['image']}",
                                       "text": line["text"].upper() + "\n", "labels": line["labels"]}) + "\n"
                           for line in lines))
    monkeypatch.chdir(propaganda_run)
    try:
        code, err, out = run_entry(predict, monkeypatch, capsys, "--jsonl", str(new))
    finally:
        new.unlink()
    assert code == 0, err
    scored = pd.read_csv(io.StringIO(out), dtype={"id": str})
    pipeline = pd.read_csv(propaganda_run / "reports/predictions/test.csv", dtype={"id": str})
    pipeline = pipeline.set_index("id").loc[scored["id"]].reset_index()
    assert scored.filter(like="prob_").shape[1] == 22
    np.testing.assert_allclose(scored.filter(like="prob_"), pipeline.filter(like="prob_"), atol=1e-5)


def test_the_super_output_trains_through_the_stages_with_fine_grained_labels(fine_grained_workspace):
    """train.super_loss_weight on the 14 fine-grained labels: one more output (Linear(15, 1))
    trains beside the head, and its AUROC is in the detail file."""
    work, root = fine_grained_workspace
    train_and_evaluate(work, root, "plain")
    train_and_evaluate(work, root, "annotated", train__aux_weight=1.0, train__super_loss_weight=1.0)
    sides = json.loads((work / "annotated" / "reports/metrics_detail.json").read_text())["dev"]["sides"]
    assert set(sides) == {"super_auroc"} and 0 <= sides["super_auroc"] <= 1
    summary = json.loads((work / "annotated" / "reports/train.json").read_text())
    plain = json.loads((work / "plain" / "reports/train.json").read_text())
    assert summary["trainable_params"] == plain["trainable_params"] + 14 * 33 + 16  # aux layer, then super
