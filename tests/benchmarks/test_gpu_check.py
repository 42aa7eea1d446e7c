"""The GPU check runs end to end on the CPU at small sizes: every step, one recorded table."""
import json

import pytest
import torch

from benchmarks import common, gpu_check


@pytest.mark.slow
def test_gpu_check_runs_every_step_on_the_cpu(tmp_path, monkeypatch):
    results = tmp_path / "results.jsonl"
    monkeypatch.setattr(common, "RESULTS", results)
    gpu_check.main(torch.device("cpu"))
    [entry] = [json.loads(line) for line in results.read_text().splitlines()]
    assert entry["benchmark"] == "gpu_check" and entry["device"] == "cpu"
    for precision in ("fp32", "bf16"):
        assert entry[f"extract {precision}: memes/s, with model load"] > 0
        assert entry[f"extract {precision}: paced by"] in ("decoding", "the encoder")
    assert entry["runs 5: largest weight gap to seed+k alone"] <= gpu_check.SAME
    assert entry["runs 5: run k equals seed+k alone"] == "yes"
    assert entry["adamw: equals torch.optim's bit for bit"] == "yes"
    assert entry["adamw: largest weight gap to torch.optim's fused AdamW, 6 steps"] == 0
    assert entry["cross map_dim 32: trainable parameters"] == (1024 + 768 + 2) * 32 + (32 * 32 + 1) * 32 + 33
    assert entry["paper table smoke: cells with a dev AUROC"] == 2  # cross, 1 and 3 pre-output layers
    # the cells run the stages the table reads (dvc exp run --queue evaluate), not interpret
    assert entry["paper table smoke: cells run"] == 2 and entry["paper table smoke: cells that ran interpret"] == 0
