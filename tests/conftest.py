"""Shared test helpers. Every test that needs data makes it: synthetic memes or small arrays."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from scripts import synthetic

ROOT = Path(__file__).resolve().parents[1]
# No test reaches the network: a tokenizer that would download fails at once, as offline
# (without this the Hugging Face hub retries for about a minute first). Stages run by `dvc`
# in the tests inherit it.
os.environ["HF_HUB_OFFLINE"] = "1"


# `make test` runs the files on two workers in this order, heaviest first (by each file's
# seconds in `pytest --durations=0` on a two-core machine like CI's), so that neither worker
# is left running a file of a minute while the other has nothing to do. xdist's own order, by
# number of tests, had put the one-test files of a minute (test_gpu_check) last. Files not
# named keep their order, after these.
HEAVIEST_FIRST = (
    "test_dvc_pipeline.py", "test_tasks_end_to_end.py", "test_benchmarks_dvc.py",
    "test_distributed.py", "test_dvc_encoders.py", "test_benchmarks_learning.py",
    "test_gpu_check.py", "test_compare.py", "test_encoder_families.py", "test_dvc_workspaces.py",
    "test_reference.py", "test_degenerate.py", "test_interpret.py", "test_train.py",
    "test_bad_input.py",
)


@pytest.hookimpl(trylast=True)  # after any other reordering: this order is the one xdist gets
def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order


def params_dict(data_dir: str | Path, dev_split: str = "dev", **overrides) -> dict:
    """The committed params.yaml, switched to the tiny random encoder and the given data."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(dir=str(data_dir), dev_split=dev_split)
    raw["clip"].update(model="tiny", pretrained="none", batch_size=32, device="cpu")
    for dotted, value in overrides.items():
        *sections, key = dotted.split("__")
        node = raw
        for section in sections:
            node = node[section]
        node[key] = value
    return raw


def write_params(workdir: Path, data_dir, dev_split: str = "dev", **overrides) -> Path:
    path = workdir / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict(data_dir, dev_split, **overrides)))
    return path


@pytest.fixture(scope="session")
def kaggle_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("kaggle") / "memes"
    splits = synthetic.generate(out, n=240, layout="kaggle", seed=1)
    return out, splits


@pytest.fixture(scope="session")
def challenge_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("challenge") / "memes"
    splits = synthetic.generate(out, n=240, layout="challenge", seed=2)
    return out, splits


@pytest.fixture
def copy_of(tmp_path):
    """A private copy of a generated set, for tests that damage it."""
    def make(source: Path) -> Path:
        target = tmp_path / "memes"
        shutil.copytree(source, target)
        return target
    return make
