"""Text streams and the official code's options through the users' DVC flows: MMHS150K with
its OCR stream through `dvc repro evaluate`, then a caption mode, the pretrained map and the
side losses as a head-only `dvc exp run -S ...` that never reruns extract, and the other
caption modes through the head stages on the cache DVC made."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from scripts.workspace import set_param
from stages import evaluate, train
from stages.head import hateclipper
from tests.helpers import digest, run_stages, sh, workspace

pytestmark = pytest.mark.slow  # the real `dvc` on a workspace of a `dvc repro`


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A committed workspace after `dvc repro evaluate` on a synthetic MMHS150K set whose OCR
    text (img_txt/) is the stream `ocr` (data.texts: [ocr]), the committed params otherwise.
    Interpret first runs in the experiment below."""
    target = workspace(tmp_path_factory.mktemp("dvc") / "ws", "--n 160 --layout mmhs150k --stream ocr")
    sh("dvc repro evaluate", target)
    sh("git add -A && git commit -qm 'first run'", target)
    return target


def test_repro_caches_the_layouts_ocr_stream_and_counts_it(repo):
    report = json.loads((repo / "reports/extract.json").read_text())
    counts = report["texts"]["ocr"]
    assert set(counts) == {"train", "val", "test"} and 0 < counts["val"] < 160
    assert "auroc" in json.loads((repo / "reports/metrics.json").read_text())["val"]


def test_the_official_options_are_a_head_only_experiment(repo):
    """A caption mode, the pretrained map and the unimodal side losses, set as a researcher sets
    them; interpret, which the workspace has not run yet, runs on them too."""
    cache = repo / "features/clip_features.h5"
    before = digest(cache)
    run = sh("dvc exp run -S head.caption_mode=parallel_mean -S head.caption=ocr "
             "-S head.pretrained_map=true -S train.image_loss_weight=0.5 "
             "-S train.text_loss_weight=0.5", repo)
    assert "Stage 'extract' didn't change, skipping" in run.stdout
    for stage in ("train", "evaluate", "interpret"):
        assert f"Running stage '{stage}'" in run.stdout, stage
    assert digest(cache) == before
    assert "val.auroc" in sh("dvc metrics diff", repo).stdout
    assert "head.caption_mode" in sh("dvc params diff", repo).stdout
    detail = json.loads((repo / "reports/metrics_detail.json").read_text())
    assert set(detail["val"]["sides"]) == {"image_auroc", "text_auroc"}  # beside the main AUROC


@pytest.mark.parametrize("settings", [
    {"head.caption_mode": "concat_with_text", "head.caption": "ocr"},
    {"head.caption_mode": "replace_image", "head.caption": "ocr", "fusion": "align"},
])
def test_each_other_caption_mode_runs_the_head_stages_on_the_cached_stream(repo, tmp_path, settings):
    """The head stages, as DVC runs them, on a copy of the cache DVC made. That these params
    rerun the head alone is tests/flows/test_dvc_pipeline.py's dry-run table."""
    shutil.copytree(repo / "features", tmp_path / "features")
    committed = sh("git show HEAD:params.yaml", repo).stdout  # not the experiment applied above
    (tmp_path / "params.yaml").write_text(committed)
    (tmp_path / "data").symlink_to(repo / "data")
    for dotted, value in settings.items():
        set_param(tmp_path / "params.yaml", dotted, value)
    before = digest(tmp_path / "features/clip_features.h5")
    run_stages(tmp_path, train, evaluate)
    head, _ = hateclipper.load(tmp_path / hateclipper.CHECKPOINT)
    assert (head.config.caption_mode, head.config.fusion) == (
        settings["head.caption_mode"], settings.get("fusion", yaml.safe_load(committed)["fusion"]))
    assert not head.config.pretrained_map
    assert 0 <= json.loads((tmp_path / "reports/metrics.json").read_text())["val"]["auroc"] <= 1
    assert digest(tmp_path / "features/clip_features.h5") == before
