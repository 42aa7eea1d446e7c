"""Sharded extraction with torch.distributed: torchrun (gloo, on the CPU) writes the cache one
process writes, every rank encoding a fair share; a failing rank leaves no cache and the rerun
resumes every rank's units."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from scripts import synthetic
from stages import extract
from stages.cache import features
from stages.common import distributed, params
from stages.common.errors import run_stage
from stages.data import dataset
from stages.head import inputs
from tests.helpers import ROOT, extracted, run_stages, write_params

UNIT = 32  # several units per rank on the 240-meme set, for the tests that break a run


def torchrun_command(*flags: str, ranks: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={ranks}", "-m", "stages.extract", *flags]


def torchrun(workdir: Path, *flags: str, ranks: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_command(*flags, ranks=ranks), cwd=workdir, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def images_per_rank(stdout: str, ranks: int) -> list[int]:
    """What each rank says it encoded."""
    said = dict(re.findall(r"rank (\d+) of \d+ encoded (\d+) images", stdout))
    return [int(said[str(rank)]) for rank in range(ranks)]


def reused_images(stdout: str) -> int:
    """How many images a rerun took from the interrupted run's saved units, as extract says."""
    return int(re.search(r"resuming images: \d+ finished units reused \((\d+) img\)", stdout).group(1))


@pytest.fixture(scope="module")
def single_process(challenge_set, tmp_path_factory):
    root, _ = challenge_set
    work = tmp_path_factory.mktemp("single")
    return inputs.read(extracted(work, params.load(write_params(work, root, "dev_seen"))))[0]


def assert_same_cache(cache: Path, reference: dict) -> None:
    sharded, _ = inputs.read(cache)
    assert list(sharded) == list(reference)
    for name, split in reference.items():
        assert sharded[name].ids == split.ids
        np.testing.assert_array_equal(sharded[name].labels, split.labels)
        for key in ("image", "text"):
            # Rows encoded in batches of another make-up differ in float rounding alone
            # (~1e-6 of an entry): compare each row by its relative L2 error, as test_fidelity.
            ours, theirs = getattr(sharded[name], key), getattr(split, key)
            error = np.linalg.norm(ours - theirs, axis=1) / np.linalg.norm(theirs, axis=1)
            assert error.max() < 1e-5, (name, key, error.max())


@pytest.mark.slow
def test_torchrun_two_ranks_share_the_work_and_write_the_single_process_cache(
        challenge_set, single_process, tmp_path):
    """The default command on a set far below one 1024-row unit: both ranks encode."""
    write_params(tmp_path, challenge_set[0], "dev_seen")
    result = torchrun(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes" in result.stdout and result.stdout.count("wrote features/") == 1
    n_images = len(dataset.unique_images(dataset.read(challenge_set[0])))
    shares = images_per_rank(result.stdout, 2)
    assert sum(shares) == n_images and max(shares) <= 0.6 * n_images
    assert_same_cache(tmp_path / features.CACHE, single_process)
    assert not list((tmp_path / "features").glob(".clip_features.h5.parts-*"))


@pytest.mark.slow
def test_four_ranks_on_1700_images_each_encode_a_fair_share(tmp_path_factory):
    root = tmp_path_factory.mktemp("memes1700") / "memes"
    synthetic.generate(root, n=1_700, layout="kaggle", seed=5)
    single, sharded = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("four")
    for work in (single, sharded):
        write_params(work, root, "dev")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(single)
        extract.extract(params.load())
    result = torchrun(sharded, ranks=4)
    assert result.returncode == 0, result.stderr[-3000:]
    shares = images_per_rank(result.stdout, 4)
    assert sum(shares) == len(dataset.unique_images(dataset.read(root))) == 1_700
    assert max(shares) <= 1.4 * sum(shares) / 4
    assert_same_cache(sharded / features.CACHE, inputs.read(single / features.CACHE)[0])


@pytest.mark.slow
def test_a_failing_rank_fails_the_run_and_the_rerun_resumes(challenge_set, copy_of, single_process,
                                                            tmp_path):
    """The rerun is one process, as `python -m stages.extract` runs on the CPU: it resumes the
    units rank 0 saved with another number of ranks and the default unit size."""
    root = copy_of(challenge_set[0])
    work = tmp_path / "work"
    work.mkdir()
    write_params(work, root, "dev_seen")
    images = dataset.unique_images(dataset.read(root))
    broken = root / images[UNIT + 3]  # in the second unit: rank 1's
    original = broken.read_bytes()
    broken.write_bytes(b"\0" * len(original))  # same size: the data fingerprint, and so the
    # resume folder, stay those of the repaired set (as after a crash or a kill)
    result = torchrun(work, "--max-unit", str(UNIT))
    assert result.returncode != 0
    assert f"{broken}: unreadable image" in result.stderr
    assert not (work / features.CACHE).exists()
    saved = list((work / "features").glob(".clip_features.h5.parts-*/images-*.npz"))
    assert saved  # rank 0's finished units wait for the rerun
    broken.write_bytes(original)
    encoded, encode_share = {}, extract.encode_share

    def counting(table, units, *args):
        encoded[table.name] = sum(len(unit) for unit in units)
        return encode_share(table, units, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(extract, "encode_share", counting)
        out = run_stages(work, extract)
    reused = reused_images(out)
    assert 0 < reused and encoded["images"] == len(images) - reused  # the rest, and only the rest
    assert_same_cache(work / features.CACHE, single_process)


@pytest.mark.slow
def test_spawned_processes_write_the_same_cache(challenge_set, single_process, tmp_path, monkeypatch):
    """The one-machine path (one process per GPU, started by extract itself), here on the CPU."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, challenge_set[0], "dev_seen")
    distributed.spawn(2, run_stage, partial(extract.extract_main, params.load(), UNIT))
    assert_same_cache(tmp_path / features.CACHE, single_process)


def test_one_process_per_visible_gpu_unless_launched_or_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.local_processes("auto") == 4 == distributed.local_processes("cuda")
    assert distributed.local_processes("cpu") == 1
    monkeypatch.setenv("WORLD_SIZE", "8")  # torchrun started the processes already
    assert distributed.local_processes("auto") == 1
    shard = distributed.Shard(rank=5, world=8, local_rank=1, local_world=4)
    assert shard.device("auto") == "cuda:1" and not shard.is_main


@pytest.mark.slow
def test_killing_one_rank_stops_the_run_and_the_rerun_resumes(challenge_set, single_process, tmp_path):
    import psutil  # (installed with dvc)
    write_params(tmp_path, challenge_set[0], "dev_seen", clip__batch_size=1)
    launcher = subprocess.Popen(torchrun_command("--max-unit", "8"), cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("features/.clip_features.h5.parts-*/images-*.npz")):
        assert launcher.poll() is None and time.monotonic() < deadline, "extract ended too early"
        time.sleep(0.005)
    ranks = [p for p in psutil.Process(launcher.pid).children(recursive=True)
             if "stages.extract" in " ".join(p.cmdline())]
    ranks[-1].kill()  # one rank, with no chance to clean up
    assert launcher.wait(timeout=120) != 0
    assert not (tmp_path / features.CACHE).exists()
    result = torchrun(tmp_path, "--max-unit", "8")
    assert result.returncode == 0, result.stderr[-3000:]
    reused = reused_images(result.stdout)
    n_images = len(dataset.unique_images(dataset.read(challenge_set[0])))
    assert 0 < reused and sum(images_per_rank(result.stdout, 2)) == n_images - reused
    assert_same_cache(tmp_path / features.CACHE, single_process)
