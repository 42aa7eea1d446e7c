"""Encoders through DVC: switching back to an encoder already extracted restores its cache from
DVC's run-cache without encoding, and the encoders table runs one head over each encoder.
(Each open_clip family's extract and train run through the stages' entry points in
tests/flows/test_encoder_families.py.)

Random-init encoders (`clip.pretrained: none`) on a small synthetic set: the plumbing, not any
result on the real task."""
from __future__ import annotations

import json

import pytest

from tests.helpers import digest, sh, workspace

pytestmark = pytest.mark.slow  # every test here drives the real `dvc` over two encoders

ENCODED = "wrote features/clip_features.h5"  # extract prints this when it encoded
RESTORED = "Stage 'extract' is cached - skipping run, checking out outputs"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A committed workspace after `dvc repro extract` with the tiny encoder: all that the
    switches below and the encoders table (queue.check_cache) need of it."""
    target = workspace(tmp_path_factory.mktemp("dvc-encoders") / "ws", "--n 48 --layout challenge")
    sh("dvc repro extract", target)
    sh("git add -A && git commit -qm 'tiny baseline'", target)
    return target


def exp_run(repo, *settings: str, ok: bool = True):
    result = sh("dvc exp run extract " + " ".join(f"-S {s}" for s in settings), repo, ok=ok)
    return result.stdout + result.stderr


def test_switching_back_to_an_encoder_restores_its_cache_without_encoding(repo):
    tiny = digest(repo / "features/clip_features.h5")
    first = exp_run(repo, "clip.model=tiny-timm")
    assert ENCODED in first
    timm_cache = digest(repo / "features/clip_features.h5")
    timm_report = json.loads((repo / "reports/extract.json").read_text())
    back = exp_run(repo, "clip.model=tiny")
    assert RESTORED in back and ENCODED not in back
    assert digest(repo / "features/clip_features.h5") == tiny
    again = exp_run(repo, "clip.model=tiny-timm")
    assert RESTORED in again and ENCODED not in again
    assert digest(repo / "features/clip_features.h5") == timm_cache
    # the restored report keeps the figures of the run that encoded
    assert json.loads((repo / "reports/extract.json").read_text()) == timm_report


def test_the_encoders_table_runs_one_head_over_each_encoder(repo):
    """Two random-init encoders already extracted above: their queued cells restore the caches
    from the run-cache, train and evaluate, and the command prints one table with both."""
    out = sh("python -m scripts.paper_table --table encoders --encoder tiny:none "
             "--encoder tiny-timm:none --set train.epochs=1", repo).stdout
    lines = [line for line in out.splitlines() if line.startswith("| tiny")]
    assert [line.split(" | ")[0] for line in lines] == ["| tiny (none)", "| tiny-timm (none)"]
    for line in lines:
        cells = line.split(" | ")
        assert cells[1] == "projected" and "projected 64/64" in cells[2]
        assert "memes/s on cpu" in cells[3] and "B/meme" in cells[4]
        assert "±" in cells[5] and cells[6] == "50" and "run (" in cells[-1]
    assert "pooled 96/128" in lines[0]  # tiny's ViT separates its projections
    table = (repo / "reports/paper_table_encoders.csv").read_text().splitlines()
    assert len(table) == 3 and table[0].startswith("model,pretrained,features")
