"""The paper's tables in one command: every cell as a queued, head-only DVC experiment.

    python -m scripts.paper_table [--table 1|2|tamil|captions|encoders] [--set KEY=VALUE ...] [--jobs N]

Table 1 (Hateful Memes, AUROC), Table 2 (Propaganda Memes, micro-F1) and the TamilMemes row
are described in paper_table.yaml. Run from the project root of a workspace of that table's
dataset (data.layout) after `dvc repro` and a commit, so that every cell reuses the one
feature cache. Each cell is queued (`dvc exp run --queue`) with the paper's settings, the
cell's fusion and pre-output layers, and your --set values on top (they win: `--set
train.runs=5`, or a small `--set head.map_dim=32` for a smoke test); a cell already run with
exactly those params is not queued again. The queue runs (`dvc queue start -j N`), and the
results from `dvc exp show --json` become reports/paper_table_<table>.md and .csv: each
split's figure beside the paper's, what a constant prediction scores, and the trainable
parameters beside the paper's count; its forest figure is drawn as .svg and _forest.png.

`--table captions` runs each of the official code's caption modes (head.caption_mode) on a
workspace that extracted the stream `caption`, each tested against `none` by the paired test.

`--table encoders` runs params.yaml's head over each encoder of paper_table.yaml's list (or
of `--encoder MODEL:TAG ...`) and prints one table: AUROC with its interval per split, the
constant baseline, the features' widths, the extraction's time and the cache's size.
"""
from __future__ import annotations

import argparse
import sys

import yaml

from scripts.paper_table import collect, queue, render


def parse_set(values: list[str]) -> dict:
    overrides = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {value!r}")
        overrides[key] = yaml.safe_load(raw)
    return overrides


def parse_encoder(value: str) -> dict:
    model, sep, tag = value.partition(":")
    if not sep or not model or not tag:
        raise SystemExit(f"--encoder expects MODEL:TAG (e.g. ViT-L-14:openai, tiny:none), got {value!r}")
    return {"clip.model": model, "clip.pretrained": tag}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.paper_table",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="1",
                        help="1 (default), 2, tamil, captions or encoders: paper_table.yaml's tables")
    parser.add_argument("--encoder", action="append", default=[], metavar="MODEL:TAG",
                        help="--table encoders: this encoder instead of paper_table.yaml's list "
                             "(repeatable; TAG `none` for a random init)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a param for every cell, on top of the cell's own (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="queue workers (default 1)")
    parser.add_argument("--fusion", action="append", default=[], metavar="NAME",
                        help="only the cells of this fusion (repeatable; default: every cell)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    overrides = parse_set(args.set)
    spec, cells = queue.load_table(args.table)
    encoders = spec.get("kind") == "encoders"
    if args.encoder:
        if not encoders:
            raise SystemExit("--encoder goes with --table encoders")
        cells = [queue.encoder_cell(spec, parse_encoder(value)) for value in args.encoder]
    queue.check_layout(spec, args.table)
    queue.check_cache()
    cells = [queue.with_overrides(cell, overrides) for cell in cells
             if not args.fusion or cell["params"].get("fusion") in args.fusion]
    found = collect.shown_experiments()
    todo = queue.cells_to_run(spec, cells, found)
    print(f"paper table {args.table}: {len(todo)} cells to run, "
          f"{len(cells) - len(todo)} already run or skipped")
    if todo:
        queue.run(todo, args.jobs)
        found = collect.shown_experiments()
    table = collect.rows(spec, cells, found)
    if not encoders:
        from scripts import compare

        collect.mark_paired(spec, table, compare.read)
    written = render.write_reports(args.table, spec, table, overrides)
    if encoders:
        print(written[0].read_text(), end="")
    print("wrote " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    from stages.common.errors import run_stage

    sys.exit(run_stage(main))  # an InputError (say, from scripts.compare) as one line
