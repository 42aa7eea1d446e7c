"""4. A head-only `dvc exp run -S fusion=align` on an 8,500-meme cache, DVC itself included;
and the train stage's peak memory on that cache.

The workspace is a scratch copy of the project (scripts/workspace.py) on a small synthetic set.
Its feature cache is then replaced by one of full size (8,500 train and 500 dev memes of random
ViT-L-14-width features, carrying the attributes the real one would) and recorded with
`dvc commit`, so DVC sees extraction as done, exactly as after a real extract.
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

from benchmarks.common import record
from benchmarks.head_training import full_size_splits
from scripts.workspace import make
from stages.cache import features
from stages.common import params
from stages.data import dataset
from stages.encoder import clip

ROOT = Path(__file__).resolve().parents[1]
# dvc exp run commits: give git an identity on machines that have none configured.
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
PEAK = "import resource, runpy, sys\nsys.argv = ['stages.train']\ntry:\n    runpy.run_module('stages.train', run_name='__main__')\nfinally:\n    print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def sh(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **GIT_IDENTITY}
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


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


def main(device: torch.device) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        make(ws, None, 200, "kaggle", [])
        sh(["dvc", "repro"], ws)
        full_size_cache(ws)
        sh(["dvc", "commit", "-f", "extract"], ws)
        sh(["dvc", "repro"], ws)  # the head stages once on the full-size cache, as a user would
        sh(["git", "add", "-A"], ws)
        sh(["git", "commit", "-qm", "full"], ws)
        start = time.perf_counter()
        out = sh(["dvc", "exp", "run", "-S", "fusion=align"], ws)
        wall = time.perf_counter() - start
        assert "Stage 'extract' didn't change, skipping" in out, out
        train_line = next(l for l in out.splitlines() if l.startswith("saved models/head.pt"))
        peak_kb = int(re.search(r"peak_rss_kb (\d+)", sh([sys.executable, "-c", PEAK], ws)).group(1))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    torch_import = time.perf_counter() - start
    record("dvc_exp_run", {
        "device": str(device),
        "dvc exp run -S fusion=align, wall (s)": wall,
        "train stage says": train_line,
        "target wall (s)": 30.0,
        "train stage peak RSS, cross fusion (MB)": peak_kb / 1024,
        "target peak (MB)": 1536.0,
        "python -c 'import torch', wall (s)": torch_import,
    })
