"""Fixtures that every test folder uses, and the order the tests run in. Every test that needs
data makes it: synthetic memes or small arrays. Plain helpers are in tests/helpers.py."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scripts import synthetic

# No test reaches the network: a tokenizer that would download fails at once, as offline
# (without this the Hugging Face hub retries for about a minute first). Stages run by `dvc`
# in the tests inherit it.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.hookimpl(trylast=True)  # after any other reordering: this order is the one xdist gets
def pytest_collection_modifyitems(items):
    """The files holding a test marked `slow` first, then the others, each file's tests in their
    own order (module fixtures and tests that follow one another stay as written). `make test`
    hands whole files to two workers in this order (--dist loadfile --no-loadscope-reorder), so
    the files of minutes start early and neither worker is left running one while the other has
    nothing to do; xdist's own order, by number of tests, had put one-test files of a minute
    last. A test of more than about 10 s (setup included, in `pytest --durations=0` on two
    workers) is marked where it is written: no list of file names to keep."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable


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
