"""A table's cells from paper_table.yaml, and running those not yet run as queued DVC
experiments on the workspace's feature cache."""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from scripts.paper_table import dvc
from scripts.paper_table.collect import matches, result_of

TABLES = Path("paper_table.yaml")
BYTES_PER_PARAMETER = 16  # float32 weight, gradient and AdamW's two moments
MEMORY_HEADROOM = 0.8  # of what is free
# The stage whose outputs a table reads (metrics.json; train.json comes with it): a cell runs
# extract (skipped), train and evaluate, never interpret, whose clustering at map_dim 1024
# (`python -m benchmarks interpret`) would add to every cell figures no table reads.
TABLE_STAGE = "evaluate"


def load_table(table: str, path: Path = TABLES) -> tuple[dict, list[dict]]:
    """A table's description and each cell with its full params: the shared settings, then
    the cell's own."""
    tables = yaml.safe_load(path.read_text())["tables"]
    if table not in tables:
        raise SystemExit(f"--table {table}: {path} describes {', '.join(tables)}")
    spec = tables[table]
    if spec.get("kind") == "encoders":
        return spec, [encoder_cell(spec, encoder) for encoder in spec["encoders"]]
    cells = [{"params": {**spec["settings"], **{k: v for k, v in cell.items() if k != "paper"}},
              "paper": cell["paper"]} for cell in spec["cells"]]
    if "against" in spec and sum(matches(spec["against"], cell) for cell in cells) != 1:
        raise SystemExit(f"--table {table}: against: {spec['against']} names no single cell of {path}")
    return spec, cells


def encoder_cell(spec: dict, encoder: dict) -> dict:
    return {"params": {**spec["settings"], **encoder}, "paper": {}}


def with_overrides(cell: dict, overrides: dict) -> dict:
    return {**cell, "params": {**cell["params"], **overrides}}


def head_parameters(params: dict, outputs: int = 1, image_dim: int = 1024, text_dim: int = 768) -> int:
    """Trainable parameters of one run's head (ViT-L-14's pooled widths by default)."""
    from stages.head.hateclipper import HeadConfig, trainable_params  # (torch: only when needed)

    return trainable_params(HeadConfig(
        image_dim=image_dim, text_dim=text_dim, fusion=params["fusion"],
        map_dim=params["head.map_dim"], num_mapping_layers=params.get("head.num_mapping_layers", 1),
        num_pre_output_layers=params["head.num_pre_output_layers"], drop_probs=(0, 0, 0),
        outputs=outputs, pre_output_dim=params.get("head.pre_output_dim")))


def free_memory() -> tuple[int, str]:
    import torch  # (only here: the rest of the command runs dvc, quickly)

    if torch.cuda.is_available():
        return torch.cuda.mem_get_info()[0], "GPU"
    import psutil

    return psutil.virtual_memory().available, "CPU"


def memory_needed(params: dict) -> int:
    return head_parameters(params) * BYTES_PER_PARAMETER * int(params.get("train.runs", 1))


def check_layout(spec: dict, table: str) -> None:
    """The table's cells need a workspace of its dataset: a cell never changes data.*."""
    layout = yaml.safe_load(Path("params.yaml").read_text())["data"]["layout"]
    if layout != spec["layout"]:
        raise SystemExit(f"--table {table} runs on a workspace with data.layout: {spec['layout']} "
                         f"(this one has {layout}); see docs/paper-tables.md")


def check_cache() -> None:
    if "extract" in json.loads(dvc("status", "--json") or "{}"):
        raise SystemExit("the feature cache is not up to date: run `dvc repro` and commit first, "
                         "so that every cell reuses it instead of extracting again")


def cells_to_run(spec: dict, cells: list[dict], found: list[dict]) -> list[dict]:
    """The cells without a result, less those whose runs would not fit in memory (each marked
    `skipped` with what it needs): never started to crash mid-grid."""
    available, where = free_memory()
    todo = []
    for cell in cells:
        if result_of(cell, found):
            continue
        # an encoders cell runs params.yaml's head, which the workspace's own run has fitted
        needed = 0 if spec.get("kind") == "encoders" else memory_needed(cell["params"])
        if needed > MEMORY_HEADROOM * available:
            cell["status"] = f"skipped: needs {needed / 1e9:.1f} GB ({where} has {available / 1e9:.1f} GB free)"
            print(f"{label(spec, cell['params'])}: {cell['status']}")
            continue
        todo.append(cell)
    return todo


def label(spec: dict, params: dict) -> str:
    if spec.get("kind") == "encoders":
        return params["clip.model"]
    return f"{params['fusion']}, {params['head.num_pre_output_layers']} pre-output layers"


def run(cells: list[dict], jobs: int) -> None:
    """Queue each cell with its params, start `jobs` workers and wait for the queue to empty."""
    for cell in cells:
        settings = [arg for key, value in cell["params"].items()
                    for arg in ("-S", f"{key}={json.dumps(value) if isinstance(value, list) else value}")]
        dvc("exp", "run", "--queue", TABLE_STAGE, *settings)
    start_queue(jobs)
    wait_for_queue(len(cells))


def start_queue(jobs: int) -> None:
    """`dvc queue start`, returning at once. The worker it spawns inherits its output: through
    a pipe, the call would return only when the worker exits, up to 10 s after the last cell
    (dvc's idle check), so the output goes through a file instead."""
    with tempfile.TemporaryFile("w+") as out:
        if subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], stdout=out,
                          stderr=subprocess.STDOUT).returncode != 0:
            out.seek(0)
            raise SystemExit(f"dvc queue start failed:\n{out.read()}")


def wait_for_queue(total: int) -> None:
    while True:
        status = dvc("queue", "status", tries=3)
        waiting = sum(any(word in line.split() for word in ("Queued", "Running"))
                      for line in status.splitlines()[1:])
        print(f"\rpaper table: {total - waiting}/{total} cells finished", end="", flush=True)
        if not waiting:
            print()
            failed = [line for line in status.splitlines() if "Failed" in line.split()]
            if failed:
                print("some cells failed (dvc queue logs NAME says why):\n" + "\n".join(failed))
            return
        time.sleep(5)
