"""4. A head-only `dvc exp run` on an 8,500-meme cache, DVC itself included, against a textbook
training loop alone on the same cache; where the experiment's seconds go; and the train
stage's peak memory on that cache.

The workspace is a scratch copy of the project (scripts/workspace.py) on a small synthetic set.
Its feature cache is then replaced by one of full size (8,500 train and 500 dev memes of random
ViT-L-14-width features, carrying the attributes the real one would) and recorded with
`dvc commit`, so DVC sees extraction as done, exactly as after a real extract. The experiment
trains the paper's head (`-S train.seed=43`: only the seed changes), and the textbook loop
(benchmarks/head_training.py) trains the same head on the same cache, in the same minute.
Each stage's time is read from when DVC's lines announcing it arrive; within a stage, its
process start and imports (`python -c "import stages.<stage>"`), the train stage's cache load
and checks (timed in this process) and its loop (the stage's own line) are timed apart.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import record, seconds, working_directory
from benchmarks.head_training import full_size_splits, paper_params, textbook_loop
from scripts.workspace import make
from stages.cache import features
from stages.common import params
from stages.data import dataset
from stages.data.memes import TRAIN_SPLIT
from stages.encoder import clip
from stages.head import inputs

ROOT = Path(__file__).resolve().parents[1]
# dvc exp run commits: give git an identity on machines that have none configured.
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
PEAK = "import resource, runpy, sys\nsys.argv = ['stages.train']\ntry:\n    runpy.run_module('stages.train', run_name='__main__')\nfinally:\n    print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def environment(**extra: str) -> dict[str, str]:
    """This interpreter's tools (dvc) first on PATH, and a git identity."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            **GIT_IDENTITY, **extra}


def sh(cmd: list[str], cwd: Path) -> str:
    return subprocess.run(cmd, cwd=cwd, env=environment(), check=True, capture_output=True,
                          text=True).stdout


def full_size_cache(ws: Path) -> None:
    p = params.load(ws / "params.yaml")
    enc_info = clip.load(**p.clip.feature_settings(), device="cpu").info
    data = dataset.read(ws / p.data.dir)
    attrs = {**enc_info, "data_fingerprint": dataset.fingerprint(data), "task": data.task.to_json(),
             "on_bad_image": p.data.on_bad_image, "augment_views": p.clip.augment_views}
    splits = full_size_splits()
    for split in splits.values():  # the projected rows are not read by the default head
        split.image_proj, split.text_proj = split.image[:, :64], split.text[:, :64]
    features.write(ws / features.CACHE, splits, attrs)


STAGE = re.compile(r"Running stage '(\w+)'")


def streamed(cmd: list[str], cwd: Path) -> tuple[float, list[tuple[float, str]]]:
    """Run cmd; its wall time, and each output line with the seconds at which it arrived."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=environment(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = [(time.perf_counter() - start, line.rstrip()) for line in proc.stdout]
    wall = time.perf_counter() - start
    if proc.wait():
        raise subprocess.CalledProcessError(proc.returncode, cmd, "\n".join(l for _, l in lines))
    return wall, lines


def stage_seconds(lines: list[tuple[float, str]]) -> dict[str, float]:
    """Each stage DVC ran: from the line announcing it to the next line DVC itself prints."""
    starts = [(t, m.group(1)) for t, line in lines if (m := STAGE.search(line))]
    ends = [t for t, line in lines if STAGE.search(line) or line.startswith(("Updating lock", "Ran experiment"))]
    return {name: min(e for e in ends if e > t) - t for t, name in starts}


def import_seconds(stage: str, ws: Path) -> float:
    start = time.perf_counter()
    sh([sys.executable, "-c", f"import stages.{stage}"], ws)
    return time.perf_counter() - start


def loop_seconds(train_line: str) -> float:
    return float(re.search(r"epochs in ([\d.]+)s", train_line).group(1))


def cache_load_seconds(ws: Path) -> float:
    """The train stage's read of the cache, with every check it makes."""
    with working_directory(ws):
        p = params.load("params.yaml")
        start = time.perf_counter()
        inputs.load_checked(features.CACHE, p, [TRAIN_SPLIT, p.data.dev_split], views=True)
        return time.perf_counter() - start


def breakdown(tag: str, wall: float, lines: list[tuple[float, str]], ws: Path) -> dict[str, float]:
    """Where an experiment's seconds go: per stage, its imports and, for train, the cache
    load and the loop; what is left of the wall time is DVC's own."""
    stages = stage_seconds(lines)
    train_line = next(line for _, line in lines if line.startswith("saved models/head.pt"))
    figures = {}
    for stage, elapsed in stages.items():
        figures[f"{tag}: stage {stage} (s)"] = elapsed
        figures[f"{tag}:   {stage}: python start + imports (s)"] = import_seconds(stage, ws)
        if stage == "train":
            figures[f"{tag}:   train: cache load + checks (s)"] = cache_load_seconds(ws)
            figures[f"{tag}:   train: the loop (s)"] = loop_seconds(train_line)
    figures[f"{tag}: DVC itself, the rest of the wall time (s)"] = wall - sum(stages.values())
    return figures


# Both ways a head-only experiment runs: every stage, and a sweep's, which names its last stage
# (README; scripts.paper_table) and so skips interpret. Each changes only the seed.
EXPERIMENTS = {"every stage": ["dvc", "exp", "run", "-S", "train.seed=43"],
               "a sweep's": ["dvc", "exp", "run", "evaluate", "-S", "train.seed=44"]}


def main(device: torch.device) -> None:
    figures = {"device": str(device)}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        make(ws, None, 200, "kaggle", [])
        sh(["dvc", "repro"], ws)
        full_size_cache(ws)
        sh(["dvc", "commit", "-f", "extract"], ws)
        sh(["dvc", "repro"], ws)  # the head stages once on the full-size cache, as a user would
        sh(["git", "add", "-A"], ws)
        sh(["git", "commit", "-qm", "full"], ws)
        textbook = seconds(lambda: textbook_loop(paper_params(), training_split(ws), device), device)
        figures["textbook training loop alone, same cache, the paper's head (s)"] = textbook
        for tag, cmd in EXPERIMENTS.items():
            wall, lines = streamed(cmd, ws)
            assert any("Stage 'extract' didn't change, skipping" in line for _, line in lines), lines
            figures[f"{tag}: `{' '.join(cmd)}`, wall (s)"] = wall
            figures[f"{tag}: x the textbook loop (target <= 0.7)"] = wall / textbook
            figures.update(breakdown(tag, wall, lines, ws))
        peak_kb = int(re.search(r"peak_rss_kb (\d+)", sh([sys.executable, "-c", PEAK], ws)).group(1))
    record("dvc_exp_run", {**figures, "train stage peak RSS, cross fusion (MB)": peak_kb / 1024,
                           "target peak (MB)": 1536.0})


def training_split(ws: Path) -> features.SplitFeatures:
    return inputs.read(ws / features.CACHE, [TRAIN_SPLIT])[0][TRAIN_SPLIT]
