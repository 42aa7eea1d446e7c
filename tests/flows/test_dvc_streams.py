"""Text streams and the official code's options through the users' DVC flows: MMHS150K with
its OCR stream through `dvc repro`, then each caption mode, pretrained map and side loss as a
head-only `dvc exp run -S ...` that never reruns extract."""
from __future__ import annotations

import json

import pytest

from tests.helpers import digest, sh, workspace

pytestmark = pytest.mark.slow  # the real `dvc` on a workspace of a full `dvc repro`


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A committed workspace after `dvc repro` on a synthetic MMHS150K set whose OCR text
    (img_txt/) is the stream `ocr` (data.texts: [ocr]), the committed params otherwise."""
    target = workspace(tmp_path_factory.mktemp("dvc") / "ws", "--n 160 --layout mmhs150k --stream ocr")
    sh("dvc repro", target)
    sh("git add -A && git commit -qm 'first run'", target)
    return target


def test_repro_caches_the_layouts_ocr_stream_and_counts_it(repo):
    report = json.loads((repo / "reports/extract.json").read_text())
    counts = report["texts"]["ocr"]
    assert set(counts) == {"train", "val", "test"} and 0 < counts["val"] < 160
    assert "auroc" in json.loads((repo / "reports/metrics.json").read_text())["val"]


@pytest.mark.parametrize("target, settings", [
    ("", "-S head.caption_mode=parallel_mean -S head.caption=ocr -S head.pretrained_map=true "
         "-S train.image_loss_weight=0.5 -S train.text_loss_weight=0.5"),  # interpret too
    ("evaluate", "-S head.caption_mode=concat_with_text -S head.caption=ocr"),
    ("evaluate", "-S head.caption_mode=replace_image -S head.caption=ocr -S fusion=align"),
])
def test_each_option_is_a_head_only_experiment(repo, target, settings):
    sh("git checkout -q -- params.yaml", repo)  # each option on the committed params alone
    cache = repo / "features/clip_features.h5"
    before = digest(cache)
    run = sh(f"dvc exp run {target} {settings}", repo)
    assert "Stage 'extract' didn't change, skipping" in run.stdout
    assert "Running stage 'train'" in run.stdout and "Running stage 'evaluate'" in run.stdout
    assert digest(cache) == before
    assert "val.auroc" in sh("dvc metrics diff", repo).stdout
    assert "head.caption_mode" in sh("dvc params diff", repo).stdout
    if "image_loss_weight" in settings:  # the unimodal heads' AUROC beside the main one
        detail = json.loads((repo / "reports/metrics_detail.json").read_text())
        assert set(detail["val"]["sides"]) == {"image_auroc", "text_auroc"}
