"""The paper's tables in one command: every cell as a queued, head-only DVC experiment.

    python -m scripts.paper_table [--table 1|2|tamil|encoders] [--set KEY=VALUE ...] [--jobs N]

Table 1 (Hateful Memes, AUROC), Table 2 (Propaganda Memes, micro-F1) and the TamilMemes row
are described in paper_table.yaml. Run from the project root of a workspace of that table's
dataset (data.layout) after `dvc repro` and a commit, so that every cell reuses the one
feature cache. Each cell is queued (`dvc exp run --queue`) with the paper's settings, the
cell's fusion and pre-output layers, and your --set values on top (they win: `--set
train.runs=5`, or a small `--set head.map_dim=32` for a smoke test); a cell already run with
exactly those params is not queued again. The queue runs (`dvc queue start -j N`), and the
results from `dvc exp show --json` become reports/paper_table_<table>.md, .csv and .svg: each
split's figure beside the paper's, what a constant prediction scores, and the trainable
parameters beside the paper's count.

`--table encoders` runs params.yaml's head over each encoder of paper_table.yaml's list (or
of `--encoder MODEL:TAG ...`) and prints one table: AUROC with its interval per split, the
constant baseline, the features' widths, the extraction's time and the cache's size.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

TABLES = Path("paper_table.yaml")
REPORT = Path("reports/paper_table")
BYTES_PER_PARAMETER = 16  # float32 weight, gradient and AdamW's two moments
MEMORY_HEADROOM = 0.8  # of what is free
# Per metric: the metrics.json keys of its value, interval and ensemble (the spread over runs
# is in the detail file).
KEYS = {metric: {"value": metric, "ci_low": f"{metric}_ci_low", "ci_high": f"{metric}_ci_high",
                 "ensemble": f"ensemble_{metric}"}
        for metric in ("auroc", "paper_micro_f1")}
DETAIL = "reports/metrics_detail.json"


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
    return spec, cells


def encoder_cell(spec: dict, encoder: dict) -> dict:
    return {"params": {**spec["settings"], **encoder}, "paper": {}}


def parse_encoder(value: str) -> dict:
    model, sep, tag = value.partition(":")
    if not sep or not model or not tag:
        raise SystemExit(f"--encoder expects MODEL:TAG (e.g. ViT-L-14:openai, tiny:none), got {value!r}")
    return {"clip.model": model, "clip.pretrained": tag}


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


def head_parameters(params: dict, outputs: int = 1, image_dim: int = 1024, text_dim: int = 768) -> int:
    """Trainable parameters of one run's head (ViT-L-14's pooled widths by default)."""
    from stages.head.hateclipper import HeadConfig, trainable_params  # (torch: only when needed)

    return trainable_params(HeadConfig(
        image_dim=image_dim, text_dim=text_dim, fusion=params["fusion"],
        map_dim=params["head.map_dim"], num_mapping_layers=params.get("head.num_mapping_layers", 1),
        num_pre_output_layers=params["head.num_pre_output_layers"], drop_probs=(0, 0, 0),
        outputs=outputs, pre_output_dim=params.get("head.pre_output_dim")))


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
        shown_metrics = data.get("metrics", {})
        metrics = shown_metrics.get("reports/metrics.json", {}).get("data", {})
        trained = shown_metrics.get("reports/train.json", {}).get("data", {})
        extracted = shown_metrics.get("reports/extract.json", {}).get("data", {})
        found.append({"name": name or record.get("rev"), "rev": record.get("rev"), "params": flatten(params),
                      "metrics": metrics, "trainable_params": trained.get("trainable_params"),
                      "extract": extracted,
                      "timestamp": data.get("timestamp") or ""})

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

def read_detail(rev: str | None) -> dict:
    """An experiment's detail file (every run's figures and their spreads), read through DVC
    at its revision ({} where it has none)."""
    import dvc.api

    try:
        with dvc.api.open(DETAIL, rev=None if rev in (None, "workspace") else rev) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def split_summary(result: dict, split: str, metric: str) -> dict | None:
    """summary() of an experiment found in `dvc exp show`, its detail file read at its rev."""
    if result.get("detail") is None:
        result["detail"] = read_detail(result.get("rev"))
    return summary(result["metrics"], result["detail"], split, metric)


def summary(metrics: dict, detail: dict, split: str, metric: str) -> dict | None:
    """A split's figure x 100: value, spread over runs, interval, ensemble, and what constants
    score (AUROC: 50; micro-F1: predicting no label, and each label's training majority); for
    the paper's micro-F1, the standard micro-F1 and its all-negative score beside it."""
    m = metrics.get(split)
    if not m:
        return None
    runs = detail.get(split, {"runs": 1, "std": {metric: 0.0}})
    result = ({key: 100 * m[name] for key, name in KEYS[metric].items()}
              | {"std": 100 * runs["std"][metric], "runs": runs["runs"]})
    if metric == "auroc":
        return result | {"constant": 50.0}
    baselines = m["baselines"]
    return result | {"constant": 100 * baselines["all_negative"][metric],
                     "majority": 100 * baselines["majority"][metric],
                     "standard": 100 * m["micro_f1"],
                     "standard_constant": 100 * baselines["all_negative"]["micro_f1"]}


def ranks(values: list[dict | None]) -> list[int | None]:
    """1 + the number of cells whose interval lies wholly above this one's: cells whose
    intervals overlap are never ordered against each other."""
    return [None if v is None else 1 + sum(o is not None and o["ci_low"] > v["ci_high"]
                                           for o in values) for v in values]


def rows(spec: dict, cells: list[dict], found: list[dict]) -> list[dict]:
    table = []
    for cell in cells:
        result = result_of(cell, found)
        row = {"fusion": cell["params"]["fusion"],
               "pre_output_layers": cell["params"]["head.num_pre_output_layers"],
               "map_dim": cell["params"]["head.map_dim"],
               "status": cell.get("status") or ("run" if result else "no result"),
               "experiment": result["name"] if result else "",
               "trainable_params": result["trainable_params"] if result else None,
               "paper_trainable_params": cell["paper"].get("trainable_params", "")}
        for split in spec["splits"]:
            row[split] = split_summary(result, split, spec["metric"]) if result else None
            row[f"paper_{split}"] = cell["paper"][split]
        table.append(row)
    for split in spec["splits"]:
        for row, rank in zip(table, ranks([row[split] for row in table])):
            row[f"rank_{split}"] = rank
    return table


ALPHA = 0.05  # the level at which a cell is told apart from the table's best


def mark_best(spec: dict, table: list[dict], read) -> None:
    """Per split, the best cell (the highest mean) and, for every other cell with a result,
    the paired permutation p-value of its difference from the best (scripts.compare, on the
    memes both scored): `vs_best_<split>` is `best`, `≈ best` (p >= ALPHA: not told apart)
    or empty. `read(rev)` gives an experiment's probabilities (compare.read)."""
    from scripts import compare

    for split in spec["splits"]:
        scored = [row for row in table if row[split] and row["experiment"]]
        if not scored:
            continue
        best = max(scored, key=lambda row: row[split]["value"])
        best_side = read(best["experiment"])
        for row in scored:
            if row is best:
                row[f"vs_best_{split}"], row[f"p_best_{split}"] = "best", None
                continue
            results, _ = compare.compare_sides(best_side, read(row["experiment"]), [split],
                                               spec["metric"])
            p = results[split].p_value
            row[f"vs_best_{split}"], row[f"p_best_{split}"] = ("≈ best" if p >= ALPHA else ""), p


def forest_rows(spec: dict, table: list[dict], split: str) -> list[dict]:
    return [{"label": f"{row['fusion']}, {row['pre_output_layers']} pre-output",
             "value": row[split]["value"] if row[split] else None,
             "low": row[split]["ci_low"] if row[split] else None,
             "high": row[split]["ci_high"] if row[split] else None,
             "paper": row[f"paper_{split}"], "best": row.get(f"vs_best_{split}") == "best",
             "same_as_best": row.get(f"vs_best_{split}") == "≈ best"} for row in table]


def cell_text(value: dict | None, paper: float) -> str:
    if value is None:
        return "—"
    inside = value["ci_low"] <= paper <= value["ci_high"]
    return (f"{value['value']:.2f} ± {value['std']:.2f} [{value['ci_low']:.2f}, "
            f"{value['ci_high']:.2f}] (ens. {value['ensemble']:.2f})" + (" ✓" if inside else ""))


def baseline_text(value: dict | None) -> str:
    if value is None:
        return "—"
    if "standard" not in value:
        return f"{value['constant']:.0f}"
    return (f"{value['constant']:.2f} (majority {value['majority']:.2f}); standard micro-F1 "
            f"{value['standard']:.2f}, no label {value['standard_constant']:.2f}")


METRIC_NAMES = {"auroc": "AUROC", "paper_micro_f1": "the paper's micro-F1 (TorchMetrics: "
                "accuracy over meme x label cells)"}


def markdown(spec: dict, table: list[dict], overrides: dict) -> str:
    splits = spec["splits"]
    lines = [
        f"# Hate-CLIPper {spec['title']}, reproduced",
        "",
        f"{METRIC_NAMES[spec['metric']]} x 100 on each split: this project's mean ± std over runs,",
        "[95% bootstrap interval of that mean over the split's memes], (the runs' ensemble), beside",
        "the paper's single run. ✓: the paper's number lies inside the interval. Constant: what",
        "predicting no label scores (AUROC: 50), and the training majority's score; for micro-F1",
        "tables the standard (scikit-learn) micro-F1 stands beside it. Rank: 1 + the number of",
        "cells whose interval lies wholly above this one's, so cells with overlapping intervals",
        "are not ranked against each other. **best** / **≈ best**: the split's best cell, and the",
        "cells a paired permutation test (same memes, scripts.compare) does not tell apart from it",
        f"at alpha {ALPHA} (each cell tested against the best alone: docs/methods.md). Parameters:",
        "one run's trainable parameters here / the paper's count.",
        "",
        "Overrides on top of the paper's settings: "
        + (", ".join(f"`{k}={v}`" for k, v in overrides.items()) or "none") + ".",
        "",
        "| fusion | pre-output layers | map_dim | parameters | "
        + " | ".join(f"{s} (this project) | paper | constant | rank" for s in splits) + " | status |",
        "| " + " | ".join(["---"] * (5 + 4 * len(splits))) + " |",
    ]
    for row in table:
        cells = [row["fusion"], row["pre_output_layers"], row["map_dim"],
                 f"{row['trainable_params']:,} / {row['paper_trainable_params']}"
                 if row["trainable_params"] else f"— / {row['paper_trainable_params']}"]
        for split in splits:
            mark = row.get(f"vs_best_{split}")
            cells += [cell_text(row[split], row[f"paper_{split}"]) + (f" **{mark}**" if mark else ""),
                      row[f"paper_{split}"],
                      baseline_text(row[split]), row[f"rank_{split}"] or "—"]
        cells.append(row["status"] + (f" ({row['experiment']})" if row["experiment"] else ""))
        lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(spec: dict, table: list[dict]) -> str:
    header = ["fusion", "pre_output_layers", "map_dim", "status", "experiment",
              "trainable_params", "paper_trainable_params"]
    fields = ("value", "std", "ci_low", "ci_high", "ensemble", "constant")
    for split in spec["splits"]:
        header += [f"{split}_{spec['metric']}_{key}" for key in fields]
        header += [f"paper_{split}", f"rank_{split}", f"p_vs_best_{split}"]
    lines = [",".join(header)]
    for row in table:
        values = [row[k] if row[k] is not None else "" for k in header[:7]]
        for split in spec["splits"]:
            value = row[split] or {}
            values += [f"{value[k]:.4f}" if k in value else "" for k in fields]
            p = row.get(f"p_best_{split}")
            values += [row[f"paper_{split}"], row[f"rank_{split}"] or "",
                       "best" if row.get(f"vs_best_{split}") == "best" else "" if p is None else f"{p:.4f}"]
        lines.append(",".join(str(v) for v in values))
    return "\n".join(lines) + "\n"


def svg(spec: dict, table: list[dict]) -> str:
    """One row per cell on the first split: this project's interval and mean (blue), the
    paper's value (red), the constant prediction's score (grey)."""
    split = spec["splits"][0]
    values = [v for row in table for v in ([row[f"paper_{split}"]] + (
        [row[split]["ci_low"], row[split]["ci_high"], row[split]["constant"]] if row[split] else []))]
    low, high = math.floor(min(values)) - 1, math.ceil(max(values)) + 1
    width, left, step = 720, 200, 24

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * (width - left - 20)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{step * (len(table) + 3)}" font-family="sans-serif" font-size="12">',
             f'<text x="10" y="16">{split} {METRIC_NAMES[spec["metric"]].split(" (")[0]} x 100: '
             'this project (blue: mean, 95% interval), the paper (red), a constant (grey)</text>']
    for i, row in enumerate(table):
        y = step * (i + 2)
        parts.append(f'<text x="10" y="{y + 4}">{row["fusion"]}, {row["pre_output_layers"]} '
                     f'pre-output</text>')
        if row[split]:
            v = row[split]
            parts.append(f'<line x1="{x(v["ci_low"]):.1f}" x2="{x(v["ci_high"]):.1f}" '
                         f'y1="{y}" y2="{y}" stroke="steelblue" stroke-width="2"/>')
            parts.append(f'<circle cx="{x(v["value"]):.1f}" cy="{y}" r="4" fill="steelblue"/>')
            parts.append(f'<rect x="{x(v["constant"]) - 3:.1f}" y="{y - 3}" width="6" height="6" '
                         'fill="grey"/>')
        paper = x(row[f"paper_{split}"])
        parts.append(f'<line x1="{paper:.1f}" x2="{paper:.1f}" y1="{y - 7}" y2="{y + 7}" '
                     f'stroke="crimson" stroke-width="2"/>')
    axis = step * (len(table) + 2)
    for tick in range(low, high + 1, max(1, (high - low) // 8)):
        parts.append(f'<text x="{x(tick):.1f}" y="{axis}" text-anchor="middle">{tick}</text>')
    return "\n".join(parts + ["</svg>"]) + "\n"


def encoder_rows(spec: dict, cells: list[dict], found: list[dict]) -> list[dict]:
    table = []
    for cell in cells:
        result = result_of(cell, found)
        row = {"model": cell["params"]["clip.model"], "pretrained": cell["params"]["clip.pretrained"],
               "features": cell["params"].get("head.features", ""),
               "status": cell.get("status") or ("run" if result else "no result"),
               "experiment": result["name"] if result else "",
               "extract": result["extract"] if result else {}}
        for split in spec["splits"]:
            row[split] = split_summary(result, split, spec["metric"]) if result else None
        table.append(row)
    for split in spec["splits"]:
        for row, rank in zip(table, ranks([row[split] for row in table])):
            row[f"rank_{split}"] = rank
    return table


def widths_text(extract: dict) -> str:
    widths = extract.get("widths") or {}
    pooled = f"pooled {widths['image']}/{widths['text']}, " if "image" in widths else ""
    return (pooled + f"projected {widths['image_proj']}/{widths['text_proj']}"
            if "image_proj" in widths else "—")


def encoder_markdown(spec: dict, table: list[dict], overrides: dict) -> str:
    splits = spec["splits"]
    lines = [
        f"# {spec['title']}",
        "",
        "AUROC x 100 on each split: mean ± std over runs [95% bootstrap interval of that mean]",
        "(the runs' ensemble); constant: what a constant prediction scores (50). Rank: 1 + the",
        "number of encoders whose interval lies wholly above this one's. Widths: image/text",
        "features of each kind the cache holds. Extraction: the encoding's seconds and memes/s",
        "as the run that made the cache measured them (a cache restored from DVC's run-cache",
        "keeps them), and the cache's size per meme.",
        "",
        "Overrides on top of params.yaml: "
        + (", ".join(f"`{k}={v}`" for k, v in overrides.items()) or "none") + ".",
        "",
        "| encoder | features | widths | extraction | cache | "
        + " | ".join(f"{s} | constant | rank" for s in splits) + " | status |",
        "| " + " | ".join(["---"] * (6 + 3 * len(splits))) + " |",
    ]
    for row in table:
        extract = row["extract"]
        cells = [f"{row['model']} ({row['pretrained']})", row["features"], widths_text(extract),
                 f"{extract['encode_seconds']:.1f} s, {extract['memes_per_second']:.1f} memes/s "
                 f"on {extract['device']}" if extract else "—",
                 f"{extract['cache_bytes'] / 1e6:.1f} MB, {extract['bytes_per_meme']:,.0f} B/meme"
                 if extract else "—"]
        for split in splits:
            value = row[split]
            cells += [f"{value['value']:.2f} ± {value['std']:.2f} [{value['ci_low']:.2f}, "
                      f"{value['ci_high']:.2f}] (ens. {value['ensemble']:.2f})" if value else "—",
                      f"{value['constant']:.0f}" if value else "—", row[f"rank_{split}"] or "—"]
        cells.append(row["status"] + (f" ({row['experiment']})" if row["experiment"] else ""))
        lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"


def encoder_csv(spec: dict, table: list[dict]) -> str:
    header = ["model", "pretrained", "features", "status", "experiment", "encode_seconds",
              "memes_per_second", "cache_bytes", "bytes_per_meme", "widths"]
    fields = ("value", "std", "ci_low", "ci_high", "ensemble", "constant")
    for split in spec["splits"]:
        header += [f"{split}_{spec['metric']}_{key}" for key in fields] + [f"rank_{split}"]
    lines = [",".join(header)]
    for row in table:
        extract = row["extract"]
        values = [row["model"], row["pretrained"], row["features"], row["status"], row["experiment"]]
        values += [extract.get(k, "") for k in ("encode_seconds", "memes_per_second",
                                               "cache_bytes", "bytes_per_meme")]
        values.append(widths_text(extract).replace(",", ";"))
        for split in spec["splits"]:
            value = row[split] or {}
            values += [f"{value[k]:.4f}" if k in value else "" for k in fields]
            values.append(row[f"rank_{split}"] or "")
        lines.append(",".join(str(v) for v in values))
    return "\n".join(lines) + "\n"


def report_path(table: str) -> Path:
    return REPORT.with_name(f"{REPORT.name}_{table}")


def write_reports(name: str, spec: dict, table: list[dict], overrides: dict) -> Path:
    from stages.common.files import write_text  # (atomic writes, as the stages do)

    path = report_path(name)
    if spec.get("kind") == "encoders":
        text = encoder_markdown(spec, table, overrides)
        write_text(path.with_suffix(".md"), text)
        write_text(path.with_suffix(".csv"), encoder_csv(spec, table))
        print(text, end="")
        return path
    write_text(path.with_suffix(".md"), markdown(spec, table, overrides))
    write_text(path.with_suffix(".csv"), csv_text(spec, table))
    write_text(path.with_suffix(".svg"), svg(spec, table))
    from stages.report import plotting

    plotting.forest(path.with_name(f"{path.name}_forest.png"),
                    {split: forest_rows(spec, table, split) for split in spec["splits"]},
                    f"{spec['title']}: {METRIC_NAMES[spec['metric']].split(' (')[0]} x 100, this project "
                    "(blue; hollow: not told apart from the best, shaded) and the paper (red)")
    return path


# -- running the grid -----------------------------------------------------------------------

def dvc(*args: str) -> str:
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{result.stderr or result.stdout}")
    return result.stdout


def start_queue(jobs: int) -> None:
    """`dvc queue start`, returning at once. The worker it spawns inherits its output: through
    a pipe, the call would return only when the worker exits, up to 10 s after the last cell
    (dvc's idle check), so the output goes through a file instead."""
    with tempfile.TemporaryFile("w+") as out:
        if subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], stdout=out,
                          stderr=subprocess.STDOUT).returncode != 0:
            out.seek(0)
            raise SystemExit(f"dvc queue start failed:\n{out.read()}")


# The stage whose outputs a table reads (metrics.json; train.json comes with it): a cell runs
# extract (skipped), train and evaluate, never interpret, whose clustering at map_dim 1024
# (`python -m benchmarks interpret`) would add to every cell figures no table reads.
TABLE_STAGE = "evaluate"


def queue(cells: list[dict]) -> int:
    queued = 0
    for cell in cells:
        settings = [arg for key, value in cell["params"].items()
                    for arg in ("-S", f"{key}={json.dumps(value) if isinstance(value, list) else value}")]
        dvc("exp", "run", "--queue", TABLE_STAGE, *settings)
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


def check_layout(spec: dict, table: str) -> None:
    """The table's cells need a workspace of its dataset: a cell never changes data.*."""
    layout = yaml.safe_load(Path("params.yaml").read_text())["data"]["layout"]
    if layout != spec["layout"]:
        raise SystemExit(f"--table {table} runs on a workspace with data.layout: {spec['layout']} "
                         f"(this one has {layout}); see docs/paper-tables.md")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="1",
                        help="1 (default), 2, tamil or encoders: paper_table.yaml's tables")
    parser.add_argument("--encoder", action="append", default=[], metavar="MODEL:TAG",
                        help="--table encoders: this encoder instead of paper_table.yaml's list "
                             "(repeatable; TAG `none` for a random init)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a param for every cell, on top of the cell's own (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="queue workers (default 1)")
    parser.add_argument("--fusion", action="append", default=[], metavar="NAME",
                        help="only the cells of this fusion (repeatable; default: every cell)")
    args = parser.parse_args(argv)
    overrides = parse_set(args.set)
    spec, cells = load_table(args.table)
    if args.encoder:
        if spec.get("kind") != "encoders":
            raise SystemExit("--encoder goes with --table encoders")
        cells = [encoder_cell(spec, parse_encoder(value)) for value in args.encoder]
    check_layout(spec, args.table)
    if "extract" in json.loads(dvc("status", "--json") or "{}"):
        raise SystemExit("the feature cache is not up to date: run `dvc repro` and commit first, "
                         "so that every cell reuses it instead of extracting again")
    cells = [with_overrides(cell, overrides) for cell in cells
             if not args.fusion or cell["params"].get("fusion") in args.fusion]
    found = experiments(json.loads(dvc("exp", "show", "--json")))
    available, where = free_memory()
    label = (lambda p: p["clip.model"]) if spec.get("kind") == "encoders" else (
        lambda p: f"{p['fusion']}, {p['head.num_pre_output_layers']} pre-output layers")
    todo = []
    for cell in cells:
        if result_of(cell, found):
            continue
        # an encoders cell runs params.yaml's head, which the workspace's own run has fitted
        needed = 0 if spec.get("kind") == "encoders" else memory_needed(cell["params"])
        if needed > MEMORY_HEADROOM * available:
            cell["status"] = f"skipped: needs {needed / 1e9:.1f} GB ({where} has {available / 1e9:.1f} GB free)"
            print(f"{label(cell['params'])}: {cell['status']}")
            continue
        todo.append(cell)
    print(f"paper table {args.table}: {len(todo)} cells to run, "
          f"{len(cells) - len(todo)} already run or skipped")
    if todo:
        queue(todo)
        start_queue(args.jobs)
        wait_for_queue(len(todo))
        found = experiments(json.loads(dvc("exp", "show", "--json")))
    table = (encoder_rows if spec.get("kind") == "encoders" else rows)(spec, cells, found)
    if spec.get("kind") != "encoders":
        from scripts import compare

        mark_best(spec, table, compare.read)
    path = write_reports(args.table, spec, table, overrides)
    print(f"wrote {path}.md, .csv" + ("" if spec.get("kind") == "encoders" else
                                      f", .svg and {path.name}_forest.png"))


if __name__ == "__main__":
    sys.exit(main())
