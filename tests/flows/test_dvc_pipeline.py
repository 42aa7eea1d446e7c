"""The users' DVC flows, with the real `dvc` client in scratch git repos made from the project."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dvc.cli import main as dvc_cli

from scripts.workspace import set_param
from tests.helpers import ROOT, digest, sh, workspace

pytestmark = pytest.mark.slow  # every test here drives the real `dvc` on one workspace of a full `dvc repro`


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A workspace after one full `dvc repro`, committed, on a small synthetic challenge-layout
    set, with the committed params.yaml but for data.* and the tiny random encoder: default lr,
    epochs and clusters, so the head learns little, as on a newcomer's first run. The used-by
    flows (`dvc repro`, `dvc exp run -S fusion=align`, `dvc metrics diff`) run on it below."""
    target = workspace(tmp_path_factory.mktemp("dvc") / "ws", "--n 160 --layout challenge")
    sh("dvc repro", target)
    sh("git add -A && git commit -qm 'first run'", target)
    return target


def dry_run(repo: Path) -> str:
    """What `dvc repro --dry` says of each stage: dvc's own CLI, called in this process, as the
    tests below ask it dozens of times and each new interpreter would start dvc again."""
    said = io.StringIO()
    handler, logger, cwd = logging.StreamHandler(said), logging.getLogger("dvc"), os.getcwd()
    logger.addHandler(handler)
    try:
        assert dvc_cli(["--cd", str(repo), "repro", "--dry"]) == 0, said.getvalue()
    finally:
        logger.removeHandler(handler)
        os.chdir(cwd)  # --cd changes this process's folder
    return said.getvalue()


def test_repro_runs_every_stage_end_to_end(repo):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"extract", "train", "evaluate", "interpret"}
    assert json.loads((repo / "reports/interpret/summary.json").read_text())["applies"]
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics) == {"dev_seen", "dev_unseen", "test_seen"}
    for split in ("dev_seen", "dev_unseen", "test_seen"):
        assert {"auroc", "accuracy", "f1", "average_precision", "n"} <= set(metrics[split])
    jsonl_ids = [str(json.loads(l)["id"]) for l in (repo / "data/synthetic/test_unseen.jsonl").read_text().splitlines()]
    with open(repo / "reports/predictions/test_unseen.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == jsonl_ids
    assert set(rows[0]) == {"id", "prob_hate", "pred_label"}
    assert sorted(p.name for p in (repo / "reports/predictions").iterdir()) == [
        "dev_seen.csv", "dev_unseen.csv", "test_seen.csv", "test_unseen.csv", "train.csv"]
    for kind in ("roc", "precision_recall", "confusion"):
        assert (repo / f"reports/plots/{kind}/dev_seen.csv").is_file()


def test_second_repro_is_a_no_op(repo):
    assert "Data and pipelines are up to date." in sh("dvc repro", repo).stdout


def test_metrics_and_plots_need_no_flags(repo):
    shown = sh("dvc metrics show --json", repo).stdout
    assert "dev_seen" in shown and "best_dev_auroc" in shown
    sh("dvc plots show -o plots_html", repo)
    page = (repo / "plots_html/index.html").read_text()
    # the static pictures: local files beside the page, shown without a network
    pictures = re.findall(r'<img src="(static/[^"]+)"', page)
    assert sorted(Path(p).name.split("reports_")[-1] for p in pictures) == [
        "plots_images_confusion.png", "plots_images_precision_recall.png",
        "plots_images_roc.png", "training_curves.png"]
    assert all((repo / "plots_html" / p).stat().st_size > 0 for p in pictures)


def test_head_only_experiment_skips_extract(repo):
    cache = repo / "features/clip_features.h5"
    before, mtime = digest(cache), cache.stat().st_mtime_ns
    metrics_before = (repo / "reports/metrics.json").read_text()
    run = sh("dvc exp run -S fusion=align", repo)
    assert "Stage 'extract' didn't change, skipping" in run.stdout
    assert "Running stage 'train'" in run.stdout
    assert digest(cache) == before and cache.stat().st_mtime_ns == mtime
    assert (repo / "reports/metrics.json").read_text() != metrics_before
    assert "dev_seen.auroc" in sh("dvc metrics diff", repo).stdout
    params_diff = sh("dvc params diff", repo).stdout
    assert "fusion" in params_diff and "cross" in params_diff and "align" in params_diff
    table = list(csv.DictReader(sh("dvc exp show --csv", repo).stdout.splitlines()))
    experiments = [row for row in table if row["typ"] == "branch_base"]
    assert experiments and experiments[0]["fusion"] == "align"


def test_what_reruns_after_a_param_change(repo):
    """DVC alone decides: encoder params invalidate extract, batch size and device nothing, a
    head param the stage that reads it. (A dry run shows only the stages whose own deps or
    params changed; the stages after them follow when the new output differs.)"""
    params = repo / "params.yaml"
    original = params.read_text()
    # key, value, then what a dry run shows: extract, train, evaluate, interpret
    cases = [("clip.batch_size", "8", False, False, False, False),
             ("clip.device", "cpu", False, False, False, False),
             ("train.lr", "0.001", False, True, False, False),
             ("head.map_dim", "16", False, True, False, False),
             ("train.runs", "5", False, True, False, False),
             ("head.features", "projected", False, True, True, True),  # read from the same cache
             ("clip.model", "ViT-B-32", True, False, False, False),
             ("clip.pretrained", "openai", True, False, False, False),
             ("clip.resize", "shortest", True, False, False, False),
             ("clip.precision", "bf16", True, False, False, False),
             ("clip.augment_views", "2", True, False, False, False),
             ("data.on_bad_image", "skip", True, False, False, False),
             ("train.loss", "rgcl", False, True, False, False),
             ("classifier", "retrieval", False, False, True, False),
             ("retrieval.k", "5", False, False, True, False),
             ("retrieval.hard_negative_pool", "12", False, True, False, False),
             ("interpret.clusters", "4", False, False, False, True),
             ("data.texts", "[caption]", True, False, False, False),
             ("data.task", "intensity", True, False, False, False),  # another label set: another cache
             ("data.dev_fraction", "0.1", True, False, False, False),
             ("fusion", "image", False, True, False, False),  # not align: an experiment above applied it
             ("head.caption_mode", "parallel_mean", False, True, True, True),  # which cached rows it reads
             ("head.caption", "ocr", False, True, True, True),
             ("head.pretrained_map", "true", False, True, False, False),
             ("train.image_loss_weight", "0.5", False, True, False, False)]
    try:
        for key, value, *expected in cases:
            params.write_text(original)
            set_param(params, key, value)
            dry = dry_run(repo)
            shown = [f"Running stage '{stage}'" in dry for stage in ("extract", "train", "evaluate", "interpret")]
            assert shown == expected, key
    finally:
        params.write_text(original)


def test_switching_to_the_retrieval_classifier_reruns_neither_extract_nor_train(repo):
    run = sh("dvc exp run -S classifier=retrieval", repo)
    assert "Stage 'extract' didn't change, skipping" in run.stdout
    assert "Stage 'train' didn't change, skipping" in run.stdout
    assert "Running stage 'evaluate'" in run.stdout
    assert "wrote reports/predictions/<split>.csv" in run.stdout  # evaluate writes them too


def test_editing_the_fine_grained_annotations_reruns_extract(repo):
    """data.fine_grained lies inside data.dir (params.py), so extract's dependency on data.dir
    covers its files."""
    folder = repo / "data/synthetic/fine_grained/annotations"
    folder.mkdir(parents=True)
    try:
        (folder / "train.json").write_text('{"id": 1, "gold_pc": ["pc_empty"], "gold_attack": ["attack_empty"]}\n')
        assert "Running stage 'extract'" in dry_run(repo)
    finally:
        shutil.rmtree(repo / "data/synthetic/fine_grained")
    assert "Running stage 'extract'" not in dry_run(repo)


def test_code_edits_rerun_only_the_stages_that_run_that_code(repo):
    """A comment in the head, the report or the cache reader must not throw away a GPU
    extraction; one in the encoder, a release reader, the cache format or params (which
    resolves the default task, so the cached labels) must."""
    for module, reruns_extract in (("head/inputs", False), ("head/hateclipper", False),
                                   ("report/plotting", False), ("common/params", True),
                                   ("encoder/clip", True), ("data/propaganda", True),
                                   ("cache/features", True)):
        path = repo / f"stages/{module}.py"
        original = path.read_text()
        try:
            path.write_text(original + "# a comment-only edit\n")
            dry = dry_run(repo)
            assert ("Running stage 'extract'" in dry) == reruns_extract, module
            if not reruns_extract:  # (a dry run cannot know that a new cache reruns train)
                assert "Running stage 'train'" in dry, module
        finally:
            path.write_text(original)


# One process imports each stage in turn, dropping the project's modules between them (the
# libraries stay loaded, so only the first pays for torch): each stage's set is what its own
# `python -m stages.<stage>` imports, params.py's registries by name included.
IMPORTS = """
import json, sys
seen = {}
for stage in sys.argv[1:]:
    for name in [m for m in sys.modules if m == 'stages' or m.startswith('stages.')]:
        del sys.modules[name]
    __import__('stages.' + stage)
    seen[stage] = sorted(m for m in sys.modules if m.startswith('stages.'))
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def imported_modules() -> dict[str, set[str]]:
    """The files of every project module that `python -m stages.<stage>` imports, per stage."""
    stages = ["extract", "train", "evaluate", "interpret"]
    seen = json.loads(subprocess.run([sys.executable, "-c", IMPORTS, *stages], cwd=ROOT, check=True,
                                     capture_output=True, text=True).stdout)
    files = {}
    for stage, names in seen.items():
        paths = [Path(*name.split(".")) for name in names]
        files[stage] = {str(path / "__init__.py") if (ROOT / path).is_dir() else f"{path}.py" for path in paths}
    return files


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage", ["extract", "train", "evaluate", "interpret"])
def test_each_stage_depends_on_the_code_it_runs(stage, imported_modules):
    """Whatever a stage runs decides its outputs, so every project module it imports lies
    under one of its deps (dvc.yaml names folders, and no single library module). Extract's
    deps hold nothing it does not run: every module under them is one it imports, so no edit
    to the head, the report or the cache reader reruns it."""
    deps = [d for d in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["deps"]
            if d.startswith("stages")]
    imported = imported_modules[stage] - {"stages/__init__.py"}
    assert [m for m in imported if not covered(m, deps)] == []
    assert [d for d in deps if d.endswith(".py")] == [f"stages/{stage}.py"]
    if stage == "extract":
        under = {str(p.relative_to(ROOT)) for dep in deps if (ROOT / dep).is_dir()
                 for p in (ROOT / dep).rglob("*.py")}
        assert under <= imported


def test_temp_and_queued_experiments_run_head_only(repo, tmp_path):
    """The README's recipe: with the data tracked by `dvc add`, a --temp run and a sweep queued
    in DVC's own syntax, naming its last stage as the README's metric sweeps do, run in fresh
    copies of the repo, find the data in DVC's cache and skip extraction (and the sweep,
    interpret)."""
    run = sh("dvc exp run --temp -S fusion=concat", repo)
    assert "Stage 'extract' didn't change, skipping" in run.stdout, run.stdout
    assert "Running stage 'interpret'" in run.stdout
    sh("dvc exp run --queue evaluate -S 'fusion=cross_nd,cross' -S head.map_dim=8", repo)  # DVC's sweep syntax
    # (through a file: dvc's worker holds its parent's output until it exits, 10 s idle after the
    # last experiment, and through sh's pipe `queue start` would wait for that)
    sh(f"dvc queue start -j 1 > {tmp_path / 'start.log'} 2>&1", repo)
    deadline = time.monotonic() + 300
    while any(word in sh("dvc queue status", repo).stdout for word in ("Queued", "Running")):
        assert time.monotonic() < deadline, "the queue did not finish"
        time.sleep(2)
    status = sh("dvc queue status", repo).stdout
    assert status.count("Success") == 2 and "Failed" not in status, status
    for task in [line.split()[0] for line in status.splitlines()[1:] if "Success" in line]:
        log = sh(f"dvc queue logs {task}", repo).stdout
        assert "Stage 'extract' didn't change, skipping" in log and "Running stage 'interpret'" not in log
    table = list(csv.DictReader(sh("dvc exp show --csv", repo).stdout.splitlines()))
    runs = {(row["fusion"], row["head.map_dim"]): row["dev_seen.auroc"] for row in table}
    for cell in (("concat", "32"), ("cross_nd", "8"), ("cross", "8")):
        assert 0 <= float(runs[cell]) <= 1, (cell, runs)


def test_a_remote_carries_the_cache_to_a_clone_that_sweeps_without_the_data(repo, tmp_path):
    """docs/scaling.md's GPU-machine recipe with a local-folder remote: push on one side, pull only
    the features on the other, and the head stages run there without the images."""
    sh(f"dvc remote add -d --local storage {tmp_path / 'remote'} && dvc push -q", repo)
    clone = tmp_path / "clone"
    sh(f"git clone -q {repo} {clone}", tmp_path)
    sh(f"dvc remote add -d --local storage {tmp_path / 'remote'} && dvc pull -q features/clip_features.h5", clone)
    assert (clone / "features/clip_features.h5").is_file() and not (clone / "data/synthetic").exists()
    run = sh("dvc exp run --allow-missing -S fusion=align", clone)
    assert "Running stage 'extract'" not in run.stdout and "Running stage 'train'" in run.stdout
    assert "using features/clip_features.h5 without checking it against the data" in run.stdout
    assert "dev_seen" in json.loads((clone / "reports/metrics.json").read_text())


def test_an_interpret_param_reruns_interpret_alone(repo):
    """Last of the tests on `repo`: it leaves its experiment applied in the workspace."""
    run = sh("dvc exp run -S interpret.clusters=6", repo)
    for stage in ("extract", "train", "evaluate"):
        assert f"Stage '{stage}' didn't change, skipping" in run.stdout, stage
    assert "Running stage 'interpret'" in run.stdout
    summary = json.loads((repo / "reports/interpret/summary.json").read_text())
    assert summary["clusters"] == 6 and len(summary["per_cluster"]) == 6
