"""The DVC flows that each need a workspace of their own: a new encoder, a missing or placed
dataset, a kill -9 mid-extraction (beside test_dvc_pipeline.py, so that the two run on
separate workers)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import open_clip
import pytest
import torch

from scripts.workspace import set_param
from stages.encoder import clip  # noqa: F401  (registers the `tiny` config with open_clip)
from tests.helpers import digest, sh, workspace

pytestmark = pytest.mark.slow  # every test here drives the real `dvc` in a workspace of its own


def test_changing_the_encoder_reruns_extract_for_real(tmp_path):
    ws = workspace(tmp_path / "ws", "--n 60", "--set train.epochs=1")
    sh("dvc repro extract", ws)
    set_param(ws / "params.yaml", "clip.pretrained", str(ws / "tiny.pt"))
    torch.manual_seed(5)  # other weights for the same config: a local checkpoint path
    torch.save(open_clip.create_model("tiny").state_dict(), ws / "tiny.pt")
    before = digest(ws / "features/clip_features.h5")
    out = sh("dvc repro extract", ws).stdout
    assert "Running stage 'extract'" in out
    assert digest(ws / "features/clip_features.h5") != before


def test_missing_dataset_stops_with_directions(tmp_path):
    """The committed params.yaml is the paper's real config; it is never swapped for fake data.
    Without the folder DVC itself stops, naming it; data/README.md, beside it, says what to do."""
    ws = workspace(tmp_path / "ws")
    result = sh("dvc repro", ws, ok=False)
    assert result.returncode != 0
    assert "failed to reproduce 'extract'" in result.stderr and "data/hateful_memes" in result.stderr
    assert not (ws / "features/clip_features.h5").exists()
    readme = (ws / "data/README.md").read_text()
    assert "failed to reproduce 'extract'" in readme and "make demo" in readme
    (ws / "data/hateful_memes").mkdir()  # present but empty: the stage's own directions
    result = sh("dvc repro", ws, ok=False)
    assert "no *.jsonl split files in data/hateful_memes" in result.stderr
    assert "dvc add data/hateful_memes" in result.stderr and "make demo" in result.stderr


def test_the_placed_dataset_can_be_dvc_added(tmp_path):
    """`dvc add data/hateful_memes`, as the README says, is accepted (git ignores the folder)."""
    ws = workspace(tmp_path / "ws")
    sh(f"{sys.executable} -m scripts.synthetic data/hateful_memes --n 40", ws)
    sh("dvc add data/hateful_memes && git add data/hateful_memes.dvc", ws)
    assert "data/hateful_memes/" not in sh("git status --porcelain --untracked-files=all", ws).stdout


def test_dvc_repro_after_kill_9_mid_extraction(tmp_path):
    ws = workspace(tmp_path / "ws", "--n 200", "--set clip.batch_size=1", "--set train.epochs=1")
    dvc_yaml = ws / "dvc.yaml"  # small resume units, so that the kill falls between two
    dvc_yaml.write_text(dvc_yaml.read_text().replace("cmd: python -m stages.extract\n",
                                                     "cmd: python -m stages.extract --max-unit 8\n"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    dvc = subprocess.Popen(["dvc", "repro"], cwd=ws, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(ws.glob("features/.clip_features.h5.parts-*/images-*.npz")):
        assert dvc.poll() is None and time.monotonic() < deadline, "extract ended too early"
        time.sleep(0.005)
    os.killpg(dvc.pid, signal.SIGKILL)  # dvc and the stage it runs, with no chance to clean up
    dvc.wait()
    assert not (ws / "features/clip_features.h5").exists()
    out = sh("dvc repro extract", ws).stdout
    assert "resuming images" in out and (ws / "features/clip_features.h5").is_file()
