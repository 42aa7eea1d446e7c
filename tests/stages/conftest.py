"""Workspaces that the stage tests of several files share."""
import shutil

import pytest

from stages import evaluate, extract, train
from tests.helpers import write_params


@pytest.fixture(scope="session")
def five_runs(kaggle_set, tmp_path_factory):
    """The kaggle-layout synthetic set through extract, train (runs: 5) and evaluate."""
    root, _ = kaggle_set
    work = tmp_path_factory.mktemp("five-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        write_params(work, root, train__runs=5, train__epochs=3, train__lr=1e-4)
        for stage in (extract, train, evaluate):
            stage.main([])
    return work


@pytest.fixture
def retrieval_workspace(five_runs, kaggle_set, tmp_path, monkeypatch):
    """A private copy of the five-run workspace, switched to `classifier: retrieval`."""
    work = tmp_path / "work"
    shutil.copytree(five_runs, work)
    monkeypatch.chdir(work)
    write_params(work, kaggle_set[0], train__runs=5, train__epochs=3, train__lr=1e-4,
                 classifier="retrieval", retrieval__k=5)
    return work
