"""The paper's tables as queued DVC experiments (`python -m scripts.paper_table`, described in
__main__.py): queue.py runs the cells not yet run, collect.py reads every cell's result back,
render.py writes the table and its figure."""
from __future__ import annotations

import subprocess


def dvc(*args: str) -> str:
    """`dvc ARGS`' output; a failure ends the command with dvc's own message."""
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{result.stderr or result.stdout}")
    return result.stdout
