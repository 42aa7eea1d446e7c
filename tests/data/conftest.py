"""Release sets that several reader tests share, each written once per worker. Read only: a
test that damages one copies it first."""
import pytest

from scripts import synthetic


class Releases(dict):
    """layout -> (its folder, the generator's memes), each set written when a test first asks."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __missing__(self, layout):
        self[layout] = (self.root / layout, synthetic.generate(self.root / layout, 120, layout, seed=3))
        return self[layout]


@pytest.fixture(scope="session")
def sets(tmp_path_factory):
    """One small synthetic set of every new format, with the generator's memes."""
    return Releases(tmp_path_factory.mktemp("formats"))


@pytest.fixture(scope="session")
def tamil_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("tamil")
    return root, synthetic.generate(root, n=80, layout="tamil", seed=5)
