"""scripts/paper_table/queue.py: the tables paper_table.yaml describes, and the workspace and
memory each needs."""
import csv
import subprocess

import pytest
import yaml

import scripts.paper_table as paper_table
from scripts.paper_table import queue
from tests.helpers import ROOT

REFERENCE = ROOT.parent / "shared/reference"


def published(name: str) -> list[dict]:
    path = REFERENCE / name
    if not path.is_file():  # shared/ lies beside the checkout in CI and in the sessions
        pytest.skip(f"{path} (the published figures) is not beside this checkout")
    with open(path) as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def test_every_cell_of_the_papers_tables_is_described():
    for table, name, splits in (("1", "hateclipper_table1.csv", ("dev_seen", "test_seen")),
                                ("2", "hateclipper_table2.csv", ("val", "test"))):
        spec, cells = queue.load_table(table)
        reference = published(name)
        assert [(c["params"]["fusion"], c["params"]["head.num_pre_output_layers"]) for c in cells] == \
            [(r["fusion"].replace("cmaf", "attention_m"), int(r["pre_output_layers"])) for r in reference]
        for cell, row in zip(cells, reference):
            columns = [k for k in row if k.endswith(("_auroc", "_micro_f1"))]
            assert [cell["paper"][s] for s in splits] == pytest.approx([float(row[c]) for c in columns])
            assert cell["paper"]["trainable_params"] == row["trainable_params"]
            assert cell["params"]["head.map_dim"] == 1024 and cell["params"]["train.batch_size"] == 64
    spec, cells = queue.load_table("1")
    # the paper's parameter counts confirm map_dim 1024 (2.9M for align, 1.1B for cross)
    align, cross, cmaf = cells[10]["params"], cells[8]["params"], cells[4]["params"]
    assert queue.head_parameters(align) == 2_887_681
    assert queue.head_parameters(cross) == 1_075_580_929
    assert queue.head_parameters(cmaf) == 4_461_057  # the paper's 4.5M
    assert queue.head_parameters(align, outputs=22) == 2_887_681 + 21 * 1_025
    assert queue.memory_needed({**cross, "train.runs": 1}) > 16e9  # the 17 GB of the issue
    tamil_spec, tamil = queue.load_table("tamil")
    assert tamil_spec["metric"] == "paper_micro_f1" and {c["paper"]["test"] for c in tamil} == {59}


def test_a_table_runs_only_on_a_workspace_of_its_dataset(tmp_path, monkeypatch):
    specs = {table: queue.load_table(table)[0] for table in ("1", "2")}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    with pytest.raises(SystemExit, match="--table 2 runs on a workspace with data.layout: propaganda"):
        queue.check_layout(specs["2"], "2")
    queue.check_layout(specs["1"], "1")


def test_a_table_names_its_reference_cell_by_params_that_pick_exactly_one_cell(tmp_path):
    """`against:` names the cell every other is tested against: it must be one cell."""
    def table(against: dict) -> str:
        path = tmp_path / "paper_table.yaml"
        path.write_text(yaml.safe_dump({"tables": {"captions": {
            "settings": {"head.map_dim": 32}, "against": against,
            "cells": [{"fusion": "align", "head.caption_mode": mode, "paper": {}}
                      for mode in ("none", "prepend")]}}}))
        return path

    spec, cells = queue.load_table("captions", table({"head.caption_mode": "none"}))
    assert spec["against"] == {"head.caption_mode": "none"} and len(cells) == 2
    for against in ({"head.caption_mode": "append"}, {"fusion": "align"}):
        with pytest.raises(SystemExit, match="names no single cell"):
            queue.load_table("captions", table(against))


def test_a_queue_status_that_fails_once_is_asked_again_and_one_that_keeps_failing_ends_the_run(monkeypatch):
    answers = []

    def run(cmd, **kw):
        code = answers.pop(0)
        return subprocess.CompletedProcess(cmd, code, stdout="Task Name\n", stderr="ERROR: Expecting value")

    monkeypatch.setattr(paper_table.subprocess, "run", run)
    monkeypatch.setattr(paper_table.time, "sleep", lambda s: None)
    answers[:] = [1, 0]
    assert paper_table.dvc("queue", "status", tries=3) == "Task Name\n"
    answers[:] = [1, 1, 1]
    with pytest.raises(SystemExit, match="dvc queue status failed:\nERROR: Expecting value"):
        paper_table.dvc("queue", "status", tries=3)
    assert answers == []
