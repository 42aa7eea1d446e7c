"""The paper's Table 1 in one command: every runnable cell as a queued, head-only DVC experiment.

    python -m scripts.paper_table [--set KEY=VALUE ...] [--jobs N]     (make paper-table)

Run from the project root after `dvc repro` and a commit, so that every cell reuses the one
feature cache. Each runnable cell of paper_table.yaml is queued (`dvc exp run --queue`) with the
paper's settings, the cell's fusion and pre-output layers, and your --set values on top (they
win: `--set train.runs=5`, or a small `--set head.map_dim=32` for a smoke test); a cell already
run with exactly those params is not queued again. The queue runs (`dvc queue start -j N`), and
the results from `dvc exp show --json` become reports/paper_table.md, .csv and .svg.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import yaml

TABLE = Path("paper_table.yaml")
REPORT = Path("reports/paper_table")
SPLITS = ("dev_seen", "test_seen")
BYTES_PER_PARAMETER = 16  # float32 weight, gradient and AdamW's two moments
MEMORY_HEADROOM = 0.8  # of what is free


def load_cells(path: Path = TABLE) -> list[dict]:
    """Each cell with its full params: the shared settings, then the cell's own."""
    table = yaml.safe_load(path.read_text())
    cells = []
    for cell in table["cells"]:
        cell = dict(cell)
        paper, run = cell.pop("paper"), cell.pop("run", True)
        cells.append({"params": {**table["settings"], **cell}, "paper": paper, "run": run})
    return cells


def with_overrides(cell: dict, overrides: dict) -> dict:
    return {**cell, "params": {**cell["params"], **overrides}}


def parse_set(values: list[str]) -> dict:
    overrides = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {value!r}")
        overrides[key] = yaml.safe_load(raw)
    return overrides


def head_parameters(params: dict, image_dim: int = 1024, text_dim: int = 768) -> int:
    """Trainable parameters of one run's head (ViT-L-14's pooled widths by default)."""
    m, layers = params["head.map_dim"], params["head.num_pre_output_layers"]
    fused = {"align": m, "cross": m * m, "cross_nd": m * m - m, "concat": 2 * m,
             "align_concat": 3 * m, "image": m, "text": m}[params["fusion"]]
    count = (image_dim + text_dim + 2) * m  # the two projections
    width = fused
    for _ in range(layers):
        count += (width + 1) * m
        width = m
    return count + width + 1


def free_memory() -> tuple[int, str]:
    import torch  # (only here: the rest of the script runs dvc, quickly)

    if torch.cuda.is_available():
        return torch.cuda.mem_get_info()[0], "GPU"
    import psutil

    return psutil.virtual_memory().available, "CPU"


def memory_needed(params: dict) -> int:
    return head_parameters(params) * BYTES_PER_PARAMETER * int(params.get("train.runs", 1))


# -- collecting results from `dvc exp show --json` ------------------------------------------

def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def experiments(shown: list[dict]) -> list[dict]:
    """Every baseline and experiment of `dvc exp show --json` as {name, params, metrics}."""
    found = []

    def add(record: dict, name: str | None) -> None:
        data = record.get("data") or {}
        params = data.get("params", {}).get("params.yaml", {}).get("data", {})
        metrics = data.get("metrics", {}).get("reports/metrics.json", {}).get("data", {})
        found.append({"name": name or record.get("rev"), "params": flatten(params),
                      "metrics": metrics, "timestamp": data.get("timestamp") or ""})

    for baseline in shown:
        add(baseline, baseline.get("name"))
        for experiment in baseline.get("experiments") or []:
            for rev in experiment.get("revs", []):
                add(rev, experiment.get("name"))
    return found


def matches(cell: dict, experiment: dict) -> bool:
    return all(experiment["params"].get(key) == value for key, value in cell["params"].items())


def result_of(cell: dict, found: list[dict]) -> dict | None:
    """The newest experiment run with exactly the cell's params and with metrics."""
    runs = [e for e in found if matches(cell, e) and e["metrics"]]
    return max(runs, key=lambda e: e["timestamp"]) if runs else None


# -- the table --------------------------------------------------------------------------------

def summary(metrics: dict, split: str) -> dict | None:
    m = metrics.get(split)
    if not m:
        return None
    return {key: 100 * m[key] for key in ("auroc", "auroc_std", "auroc_ci_low", "auroc_ci_high",
                                          "ensemble_auroc")} | {"runs": m.get("runs", 1)}


def ranks(values: list[dict | None]) -> list[int | None]:
    """1 + the number of cells whose interval lies wholly above this one's: cells whose
    intervals overlap are never ordered against each other."""
    return [None if v is None else 1 + sum(o is not None and o["auroc_ci_low"] > v["auroc_ci_high"]
                                           for o in values) for v in values]


def rows(cells: list[dict], found: list[dict]) -> list[dict]:
    table = []
    for cell in cells:
        result = result_of(cell, found) if cell["run"] else None
        row = {"fusion": cell["params"]["fusion"],
               "pre_output_layers": cell["params"]["head.num_pre_output_layers"],
               "map_dim": cell["params"]["head.map_dim"],
               "status": cell.get("status") or ("run" if result else
                                                "not run" if not cell["run"] else "no result"),
               "experiment": result["name"] if result else ""}
        for split in SPLITS:
            row[split] = summary(result["metrics"], split) if result else None
            row[f"paper_{split}"] = cell["paper"][split]
        table.append(row)
    for split in SPLITS:
        for row, rank in zip(table, ranks([row[split] for row in table])):
            row[f"rank_{split}"] = rank
    return table


def cell_text(value: dict | None, paper: float) -> str:
    if value is None:
        return "—"
    inside = value["auroc_ci_low"] <= paper <= value["auroc_ci_high"]
    return (f"{value['auroc']:.2f} ± {value['auroc_std']:.2f} [{value['auroc_ci_low']:.2f}, "
            f"{value['auroc_ci_high']:.2f}] (ens. {value['ensemble_auroc']:.2f})"
            + (" ✓" if inside else ""))


def markdown(table: list[dict], overrides: dict) -> str:
    lines = [
        "# Hate-CLIPper Table 1, reproduced",
        "",
        "AUROC x 100 on each split: this project's mean ± std over runs, [95% bootstrap interval",
        "of that mean over the split's memes], (the runs' ensemble), beside the paper's single",
        "run (Kumar & Nandakumar 2022, Table 1). ✓: the paper's number lies inside the interval.",
        "Rank: 1 + the number of cells whose interval lies wholly above this one's, so cells with",
        "overlapping intervals are not ranked against each other.",
        "",
        "Overrides on top of the paper's settings: "
        + (", ".join(f"`{k}={v}`" for k, v in overrides.items()) or "none") + ".",
        "",
        "| fusion | pre-output layers | map_dim | dev_seen (this project) | paper | rank "
        "| test_seen (this project) | paper | rank | status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table:
        lines.append("| " + " | ".join(str(x) for x in (
            row["fusion"], row["pre_output_layers"], row["map_dim"],
            cell_text(row["dev_seen"], row["paper_dev_seen"]), row["paper_dev_seen"],
            row["rank_dev_seen"] or "—",
            cell_text(row["test_seen"], row["paper_test_seen"]), row["paper_test_seen"],
            row["rank_test_seen"] or "—", row["status"] + (f" ({row['experiment']})"
                                                           if row["experiment"] else ""))) + " |")
    return "\n".join(lines) + "\n"


def csv_text(table: list[dict]) -> str:
    header = ["fusion", "pre_output_layers", "map_dim", "status", "experiment"]
    for split in SPLITS:
        header += [f"{split}_{key}" for key in ("auroc", "auroc_std", "auroc_ci_low",
                                                "auroc_ci_high", "ensemble_auroc")]
        header += [f"paper_{split}", f"rank_{split}"]
    lines = [",".join(header)]
    for row in table:
        values = [row[k] for k in header[:5]]
        for split in SPLITS:
            value = row[split] or {}
            values += [f"{value[k]:.4f}" if k in value else "" for k in
                       ("auroc", "auroc_std", "auroc_ci_low", "auroc_ci_high", "ensemble_auroc")]
            values += [row[f"paper_{split}"], row[f"rank_{split}"] or ""]
        lines.append(",".join(str(v) for v in values))
    return "\n".join(lines) + "\n"


def svg(table: list[dict], split: str = "dev_seen") -> str:
    """One row per cell: this project's interval and mean (blue), the paper's value (red)."""
    values = [v for row in table for v in ([row[f"paper_{split}"]] + (
        [row[split]["auroc_ci_low"], row[split]["auroc_ci_high"]] if row[split] else []))]
    low, high = math.floor(min(values)) - 1, math.ceil(max(values)) + 1
    width, left, step = 720, 200, 24

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * (width - left - 20)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{step * (len(table) + 3)}" font-family="sans-serif" font-size="12">',
             f'<text x="10" y="16">{split} AUROC x 100: this project (blue: mean, 95% '
             f'interval), the paper (red)</text>']
    for i, row in enumerate(table):
        y = step * (i + 2)
        parts.append(f'<text x="10" y="{y + 4}">{row["fusion"]}, {row["pre_output_layers"]} '
                     f'pre-output</text>')
        if row[split]:
            v = row[split]
            parts.append(f'<line x1="{x(v["auroc_ci_low"]):.1f}" x2="{x(v["auroc_ci_high"]):.1f}" '
                         f'y1="{y}" y2="{y}" stroke="steelblue" stroke-width="2"/>')
            parts.append(f'<circle cx="{x(v["auroc"]):.1f}" cy="{y}" r="4" fill="steelblue"/>')
        paper = x(row[f"paper_{split}"])
        parts.append(f'<line x1="{paper:.1f}" x2="{paper:.1f}" y1="{y - 7}" y2="{y + 7}" '
                     f'stroke="crimson" stroke-width="2"/>')
    axis = step * (len(table) + 2)
    for tick in range(low, high + 1, max(1, (high - low) // 8)):
        parts.append(f'<text x="{x(tick):.1f}" y="{axis}" text-anchor="middle">{tick}</text>')
    return "\n".join(parts + ["</svg>"]) + "\n"


def write_reports(table: list[dict], overrides: dict) -> None:
    from stages.outputs import write_text  # (atomic writes, as the stages do)

    write_text(REPORT.with_suffix(".md"), markdown(table, overrides))
    write_text(REPORT.with_suffix(".csv"), csv_text(table))
    write_text(REPORT.with_suffix(".svg"), svg(table))


# -- running the grid -----------------------------------------------------------------------

def dvc(*args: str, capture: bool = True) -> str:
    result = subprocess.run(["dvc", *args], capture_output=capture, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{result.stderr or result.stdout}")
    return result.stdout if capture else ""


def queue(cells: list[dict]) -> int:
    queued = 0
    for cell in cells:
        settings = [arg for key, value in cell["params"].items()
                    for arg in ("-S", f"{key}={json.dumps(value) if isinstance(value, list) else value}")]
        dvc("exp", "run", "--queue", *settings)
        queued += 1
    return queued


def wait_for_queue(total: int) -> None:
    while True:
        status = dvc("queue", "status")
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a param for every cell, on top of the cell's own (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="queue workers (default 1)")
    parser.add_argument("--fusion", action="append", default=[], metavar="NAME",
                        help="only the cells of this fusion (repeatable; default: every cell)")
    args = parser.parse_args(argv)
    overrides = parse_set(args.set)
    if "extract" in json.loads(dvc("status", "--json") or "{}"):
        raise SystemExit("the feature cache is not up to date: run `dvc repro` and commit first, "
                         "so that every cell reuses it instead of extracting again")
    cells = [with_overrides(cell, overrides) for cell in load_cells()
             if not args.fusion or cell["params"]["fusion"] in args.fusion]
    found = experiments(json.loads(dvc("exp", "show", "--json")))
    available, where = free_memory()
    todo = []
    for cell in cells:
        if not cell["run"] or result_of(cell, found):
            continue
        needed = memory_needed(cell["params"])
        if needed > MEMORY_HEADROOM * available:
            cell["status"] = f"skipped: needs {needed / 1e9:.1f} GB ({where} has {available / 1e9:.1f} GB free)"
            print(f"{cell['params']['fusion']}, {cell['params']['head.num_pre_output_layers']} "
                  f"pre-output layers: {cell['status']}")
            continue
        todo.append(cell)
    print(f"paper table: {len(todo)} cells to run, "
          f"{sum(c['run'] for c in cells) - len(todo)} runnable cells already run or skipped")
    if todo:
        queue(todo)
        dvc("queue", "start", "-j", str(args.jobs))
        wait_for_queue(len(todo))
        found = experiments(json.loads(dvc("exp", "show", "--json")))
    write_reports(rows(cells, found), overrides)
    print(f"wrote {REPORT}.md, .csv and .svg")


if __name__ == "__main__":
    sys.exit(main())
