"""The project configures itself like a Python project: one list of dependencies, one map of
the code that is true."""
import re

import pytest
import tomllib

from tests.helpers import ROOT


def requirement_lines(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines
            if line.split("#")[0].strip() and not line.startswith("-r")]


def test_pyproject_and_the_requirements_files_name_the_same_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == requirement_lines("requirements.txt")
    assert project["optional-dependencies"]["dev"] == requirement_lines("requirements-dev.txt")


def test_the_map_of_stages_names_every_folder_and_stage():
    stages = ROOT / "stages"
    folders = {p.name for p in stages.iterdir() if p.is_dir() and p.name != "__pycache__"}
    modules = {p.name for p in stages.glob("*.py") if p.name != "__init__.py"}
    assert modules == {f"{s}.py" for s in ("extract", "train", "evaluate", "predict", "interpret")}
    listed = set(re.findall(r"^\s+(\w+)/", (stages / "__init__.py").read_text(), re.M))
    assert listed == folders


# What each library folder may import of the project: imports run one way, stages -> folders
# -> common, and no folder imports a stage module.
ALLOWED = {"common": {"common"}, "data": {"common", "data"}, "encoder": {"common", "encoder"},
           "cache": {"common", "cache"},
           "report": {"common", "data", "report"},  # a task's labels say how it is scored
           "head": {"common", "data", "cache", "head", "report"}}


def imported_names(source: str, package: tuple[str, ...]) -> list[str]:
    """The dotted module names every import in `source` (a module of `package`) names,
    relative ones made absolute and `from package import module` read as package.module."""
    import ast

    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:
                base = ".".join(filter(None, (*package[:len(package) - node.level + 1], node.module)))
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def project_imports(path) -> set[str]:
    """The top-level names every import of the file reaches: `stages.data` and
    `from stages import data` -> data, and for other packages their first name (torch, ...)."""
    reached = set()
    for name in imported_names(path.read_text(), path.relative_to(ROOT).parent.parts):
        parts = name.split(".")
        reached.add(parts[1] if parts[0] == "stages" and len(parts) > 1 else parts[0])
    return reached


@pytest.mark.parametrize("package, line, reached", [
    ("stages/data", "from stages import train", "stages.train"),
    ("stages", "from . import extract", "stages.extract"),
    ("stages/data", "from .. import train", "stages.train"),
    ("stages/data", "import stages.evaluate", "stages.evaluate"),
    ("stages/data", "from ..head import hateclipper", "stages.head.hateclipper"),
])
def test_the_import_reader_sees_every_form_of_import(package, line, reached):
    """A library module importing a stage, however spelled, is seen."""
    assert reached in imported_names(line, tuple(package.split("/")))


def test_imports_run_one_way():
    stage_names = {"extract", "train", "evaluate", "predict", "interpret"}
    for folder, allowed in ALLOWED.items():
        for path in sorted((ROOT / "stages" / folder).glob("*.py")):
            reached = project_imports(path)
            project = reached & (set(ALLOWED) | stage_names | {"scripts", "benchmarks", "tests"})
            assert project <= allowed, (path.name, project - allowed)
            if folder == "data":
                assert "torch" not in reached, path.name  # readers stay light
    # the model and what it is made of are the head alone: no cache reader, no dataset behind it
    for module in ("hateclipper", "fusions", "ops"):
        assert project_imports(ROOT / f"stages/head/{module}.py") & set(ALLOWED) <= {"common", "head"}, module


def test_the_release_readers_load_without_torch():
    import subprocess
    import sys

    code = "import sys, stages.data.dataset; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
