"""The paper's tables as queued DVC experiments (`python -m scripts.paper_table`, described in
__main__.py): queue.py runs the cells not yet run, collect.py reads every cell's result back,
render.py writes the table and its figure."""
from __future__ import annotations

import subprocess
import time


def dvc(*args: str, tries: int = 1) -> str:
    """`dvc ARGS`' output; a failure ends the command with dvc's own message. With `tries`, a
    failure is first retried after a second: under load `dvc queue status` has failed reading
    a task's state (a JSON error) and passed when asked again."""
    for _ in range(tries):
        result = subprocess.run(["dvc", *args], capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout
        time.sleep(1)
    raise SystemExit(f"dvc {' '.join(args)} failed:\n{result.stderr or result.stdout}")
