"""A table as rows of columns: each kind of table (the paper's cells, the encoders) is one list
of columns, from which both the markdown and the CSV are written; a paper table also gets its
forest figure, which stages.report.plotting draws."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from scripts.paper_table.collect import ALPHA, reference_word

REPORT = Path("reports/paper_table")
METRIC_NAMES = {"auroc": "AUROC", "paper_micro_f1": "the paper's micro-F1 (TorchMetrics: "
                "accuracy over meme x label cells)"}
FIGURE_KEYS = ("value", "std", "ci_low", "ci_high", "ensemble")  # a split's CSV fields, constant apart


@dataclass(frozen=True)
class Column:
    """One column of the markdown table and the CSV fields it stands for (name -> value of a
    row; None is written as an empty field)."""
    heading: str
    text: Callable[[dict], object]
    fields: dict[str, Callable[[dict], object]]


def plain(heading: str, name: str, value: Callable[[dict], object]) -> Column:
    """A column whose markdown cell is its one CSV field."""
    return Column(heading, value, {name: value})


def param(heading: str, name: str, key: str) -> Column:
    return plain(heading, name, lambda row: row["params"].get(key, ""))


def figure_text(value: dict | None, paper: float | None = None) -> str:
    """Mean ± std [interval] (ensemble), ✓ where the paper's figure lies inside the interval."""
    if value is None:
        return "—"
    inside = paper is not None and value["ci_low"] <= paper <= value["ci_high"]
    return (f"{value['value']:.2f} ± {value['std']:.2f} [{value['ci_low']:.2f}, "
            f"{value['ci_high']:.2f}] (ens. {value['ensemble']:.2f})" + (" ✓" if inside else ""))


def baseline_text(value: dict | None) -> str:
    if value is None:
        return "—"
    if "standard" not in value:
        return f"{value['constant']:.0f}"
    return (f"{value['constant']:.2f} (majority {value['majority']:.2f}); standard micro-F1 "
            f"{value['standard']:.2f}, no label {value['standard_constant']:.2f}")


def split_columns(spec: dict, split: str) -> list[Column]:
    """A split's columns: this project's figure (with the paired mark and its p-value in a
    paper table), the paper's figure (a paper table), what a constant scores, and the rank."""
    metric, paper, word = spec["metric"], spec.get("kind") != "encoders", reference_word(spec)

    def number(key: str) -> Callable[[dict], str | None]:
        return lambda row: f"{row[split][key]:.4f}" if row[split] else None

    def marked(row: dict) -> str:
        mark = row.get(f"mark_{split}")
        return figure_text(row[split], row["paper"].get(split)) + (f" **{mark}**" if mark else "")

    def p_value(row: dict) -> str:
        p = row.get(f"p_{split}")
        return word if row.get(f"mark_{split}") == word else "" if p is None else f"{p:.4f}"

    figure = {f"{split}_{metric}_{key}": number(key) for key in FIGURE_KEYS}
    return [Column(f"{split} (this project)", marked, figure | {f"p_vs_{word}_{split}": p_value})
            if paper else Column(split, marked, figure),
            *([plain("paper", f"paper_{split}", lambda row: row["paper"].get(split, ""))] if paper else []),
            Column("constant", lambda row: baseline_text(row[split]),
                   {f"{split}_{metric}_constant": number("constant")}),
            Column("rank", lambda row: row[f"rank_{split}"] or "—",
                   {f"rank_{split}": lambda row: row[f"rank_{split}"]})]


STATUS = Column("status", lambda row: row["status"] + (f" ({row['experiment']})" if row["experiment"] else ""),
                {"status": lambda row: row["status"], "experiment": lambda row: row["experiment"]})


# A paper table's params columns (heading: key) unless its `columns` names others.
PARAM_COLUMNS = {"fusion": "fusion", "pre-output layers": "head.num_pre_output_layers", "map_dim": "head.map_dim"}


def paper_columns(spec: dict) -> list[Column]:
    return [*(param(heading, csv_name(key), key) for heading, key in spec.get("columns", PARAM_COLUMNS).items()),
            Column("parameters", parameters_text,
                   {"trainable_params": lambda row: row["trainable_params"],
                    "paper_trainable_params": lambda row: row["paper"].get("trainable_params", "")}),
            *[column for split in spec["splits"] for column in split_columns(spec, split)],
            STATUS]


def csv_name(key: str) -> str:
    """A param's CSV field: its last part (`pre_output_layers` for head.num_pre_output_layers)."""
    return key.rpartition(".")[2].removeprefix("num_")


def cell_label(spec: dict, params: dict) -> str:
    """A cell's label in the figure: the values of the table's own columns, or fusion and
    pre-output layers."""
    if "columns" in spec:
        return ", ".join(str(params.get(key, "")) for key in spec["columns"].values())
    return f"{params['fusion']}, {params['head.num_pre_output_layers']} pre-output"


def parameters_text(row: dict) -> str:
    """One run's trainable parameters here / the paper's count."""
    ours = f"{row['trainable_params']:,}" if row["trainable_params"] else "—"
    return f"{ours} / {row['paper'].get('trainable_params', '')}"


def paper_heading(spec: dict, overrides: dict) -> list[str]:
    word = reference_word(spec)
    whom = ("the split's best cell" if word == "best" else "the cell paper_table.yaml names ("
            + ", ".join(f"`{k}={v}`" for k, v in spec["against"].items()) + ")")
    return [
        f"# Hate-CLIPper {spec['title']}, reproduced",
        "",
        f"{METRIC_NAMES[spec['metric']]} x 100 on each split: this project's mean ± std over runs,",
        "[95% bootstrap interval of that mean over the split's memes], (the runs' ensemble), beside",
        "the paper's single run. ✓: the paper's number lies inside the interval. Constant: what",
        "predicting no label scores (AUROC: 50), and the training majority's score; for micro-F1",
        "tables the standard (scikit-learn) micro-F1 stands beside it. Rank: 1 + the number of",
        "cells whose interval lies wholly above this one's, so cells with overlapping intervals",
        f"are not ranked against each other. **{word}** / **≈ {word}**: {whom}, and the",
        "cells a paired permutation test (same memes, scripts.compare) does not tell apart from it",
        f"at alpha {ALPHA} (each cell tested against the {word} alone: docs/methods.md). Parameters:",
        "one run's trainable parameters here / the paper's count.",
        "",
        f"Overrides on top of the paper's settings: {overrides_text(overrides)}.",
    ]


def encoder_columns(spec: dict) -> list[Column]:
    return [Column("encoder", lambda row: f"{row['params']['clip.model']} ({row['params']['clip.pretrained']})",
                   {"model": lambda row: row["params"]["clip.model"],
                    "pretrained": lambda row: row["params"]["clip.pretrained"]}),
            param("features", "features", "head.features"),
            plain("widths", "widths", lambda row: widths_text(row["extract"])),
            Column("extraction", extraction_text, extract_fields("encode_seconds", "memes_per_second")),
            Column("cache", cache_text, extract_fields("cache_bytes", "bytes_per_meme")),
            *[column for split in spec["splits"] for column in split_columns(spec, split)],
            STATUS]


def extract_fields(*names: str) -> dict[str, Callable[[dict], object]]:
    """Figures of reports/extract.json, as the run that made the cache measured them."""
    return {name: (lambda row, name=name: row["extract"].get(name)) for name in names}


def widths_text(extract: dict) -> str:
    widths = extract.get("widths") or {}
    pooled = f"pooled {widths['image']}/{widths['text']}, " if "image" in widths else ""
    return (pooled + f"projected {widths['image_proj']}/{widths['text_proj']}"
            if "image_proj" in widths else "—")


def extraction_text(row: dict) -> str:
    extract = row["extract"]
    return (f"{extract['encode_seconds']:.1f} s, {extract['memes_per_second']:.1f} memes/s "
            f"on {extract['device']}" if extract else "—")


def cache_text(row: dict) -> str:
    extract = row["extract"]
    return (f"{extract['cache_bytes'] / 1e6:.1f} MB, {extract['bytes_per_meme']:,.0f} B/meme"
            if extract else "—")


def encoder_heading(spec: dict, overrides: dict) -> list[str]:
    return [
        f"# {spec['title']}",
        "",
        "AUROC x 100 on each split: mean ± std over runs [95% bootstrap interval of that mean]",
        "(the runs' ensemble); constant: what a constant prediction scores (50). Rank: 1 + the",
        "number of encoders whose interval lies wholly above this one's. Widths: image/text",
        "features of each kind the cache holds. Extraction: the encoding's seconds and memes/s",
        "as the run that made the cache measured them (a cache restored from DVC's run-cache",
        "keeps them), and the cache's size per meme.",
        "",
        f"Overrides on top of params.yaml: {overrides_text(overrides)}.",
    ]


def overrides_text(overrides: dict) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in overrides.items()) or "none"


# Each kind of table: the lines above it and its columns.
KINDS = {"paper": (paper_heading, paper_columns), "encoders": (encoder_heading, encoder_columns)}


def markdown(spec: dict, table: list[dict], overrides: dict) -> str:
    heading_of, columns_of = KINDS[spec.get("kind", "paper")]
    columns = columns_of(spec)
    lines = [*heading_of(spec, overrides), "",
             "| " + " | ".join(column.heading for column in columns) + " |",
             "| " + " | ".join(["---"] * len(columns)) + " |"]
    lines += ["| " + " | ".join(str(column.text(row)) for column in columns) + " |" for row in table]
    return "\n".join(lines) + "\n"


def csv_text(spec: dict, table: list[dict]) -> str:
    columns = KINDS[spec.get("kind", "paper")][1](spec)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([name for column in columns for name in column.fields])
    writer.writerows([value(row) for column in columns for value in column.fields.values()]
                     for row in table)
    return out.getvalue()


def forest_rows(spec: dict, table: list[dict], split: str) -> list[dict]:
    """plotting.forest's rows on a split: each cell's value, interval and constant (None
    without a result), the paper's figure, and the cell's paired mark."""
    word, rows = reference_word(spec), []
    for row in table:
        value = row[split] or {}
        rows.append({"label": cell_label(spec, row["params"]),
                     "value": value.get("value"), "low": value.get("ci_low"), "high": value.get("ci_high"),
                     "constant": value.get("constant"), "paper": row["paper"].get(split),
                     "reference": row.get(f"mark_{split}") == word,
                     "same_as_reference": row.get(f"mark_{split}") == f"≈ {word}"})
    return rows


def forest(path: Path, spec: dict, table: list[dict]) -> None:
    from stages.report import plotting  # (matplotlib: only for a paper table)

    word = reference_word(spec)
    plotting.forest(path, {split: forest_rows(spec, table, split) for split in spec["splits"]},
                    f"{spec['title']}: {METRIC_NAMES[spec['metric']].split(' (')[0]} x 100, this project "
                    f"(blue; hollow: not told apart from the {word}, shaded), the paper (red), a constant (grey)")


def report_path(table: str) -> Path:
    return REPORT.with_name(f"{REPORT.name}_{table}")


def write_reports(name: str, spec: dict, table: list[dict], overrides: dict) -> list[Path]:
    """The table as markdown and CSV, and a paper table's forest figure as SVG (for a paper)
    and PNG (for `dvc plots show` and any image viewer): the files written."""
    from stages.common.files import write_text  # (atomic writes, as the stages do)

    path = report_path(name)
    written = [path.with_suffix(".md"), path.with_suffix(".csv")]
    write_text(written[0], markdown(spec, table, overrides))
    write_text(written[1], csv_text(spec, table))
    if spec.get("kind") != "encoders":
        written += [path.with_suffix(".svg"), path.with_name(f"{path.name}_forest.png")]
        for figure in written[2:]:
            forest(figure, spec, table)
    return written
