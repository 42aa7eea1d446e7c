"""The GPU check: the device paths the CPU suite cannot cover, in one command and one table.

    python -m benchmarks gpu_check            (on one GPU: under 8 minutes)
    python -m benchmarks gpu_check --device cpu   (the same steps at small sizes; a test runs it)

1. Extraction of synthetic memes with a random-init encoder (ViT-L-14 on a GPU) in fp32 (TF32
   off) and bf16, through the stage's own entry point, which starts one process per visible GPU:
   memes/s, and whether decoding or the encoder sets the pace.
2. train.runs 5 on the device (fused AdamW on CUDA): run k against a one-run training seeded
   seed + k, dropout off, as tests/stages/test_train.py checks it on the CPU.
3. `cross` at map_dim 1024 (32 on the CPU), one run: peak device memory against docs/paper-tables.md's
   figure (16 bytes per trainable parameter: weight, gradient, AdamW's two moments).
4. The paper-table smoke test (docs/paper-tables.md) on a synthetic workspace, with the device
   (on the CPU, `dvc repro extract` before it: all that the table needs of the workspace).
5. The train loop's AdamW (stages/head/adamw.py) against torch.optim.AdamW(fused=True) on the
   device, six steps on the same gradients: the same weights bit for bit, as tests/head/test_adamw.py
   checks it on the CPU (both call the same fused kernel; on CUDA it is another kernel).
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from benchmarks import extraction, head_training
from benchmarks.common import record, synthetic_params, timed, working_directory
from scripts import synthetic
from scripts.paper_table import queue
from stages import extract, train
from stages.common import distributed
from stages.common import params as params_module
from stages.head import adamw

ROOT = Path(__file__).resolve().parents[1]
SIZES = {  # what each step runs on: full sizes on a GPU, a quick pass on the CPU
    "cuda": {"model": "ViT-L-14", "memes": 3000, "batch": 256, "train_memes": 8500,
             "runs_epochs": 3, "cross_map_dim": 1024, "table_memes": 600, "table_fusions": [],
             "table_repro": []},
    # table_repro: the stages reproduced before the table. The table reads only extract's cache
    # (queue.check_cache); on the CPU the rest of a full `dvc repro` (the baseline's train,
    # evaluate and interpret) is left to tests/flows/test_dvc_pipeline.py, which runs it.
    "cpu": {"model": "tiny", "memes": 64, "batch": 32, "train_memes": 200,
            "runs_epochs": 2, "cross_map_dim": 32, "table_memes": 60, "table_fusions": ["cross"],
            "table_repro": ["extract"]},
}
RUNS = 5
SAME = 1e-4  # run k against its one-run training: largest weight difference allowed


def extraction_figures(size: dict, device: torch.device, work: Path) -> dict:
    synthetic.generate(work / "memes", n=size["memes"], seed=0)
    figures = {}
    for precision in ("fp32", "bf16"):
        p = synthetic_params(work / "memes", size["model"], size["batch"], device.type)
        p = dataclasses.replace(p, clip=dataclasses.replace(p.clip, precision=precision))
        params_file = work / f"params-{precision}.yaml"
        params_file.write_text(yaml.safe_dump(params_module.to_dict(p)))
        with working_directory(work):
            _, elapsed = timed(lambda path=params_file: extract.main(["--params", str(path)]), device)
        costs = extraction.split_costs(p, size["batch"])
        decode, encode = costs["decode + resize/crop alone (img/s, workers)"], costs["image encoder alone (img/s)"]
        figures.update({
            f"extract {precision}: memes/s, with model load": size["memes"] / elapsed,
            f"extract {precision}: decode alone (img/s)": decode,
            f"extract {precision}: image encoder alone (img/s)": encode,
            f"extract {precision}: paced by": "decoding" if decode < encode else "the encoder",
        })
    figures["extract: processes (one per visible GPU)"] = distributed.local_processes(device.type)
    return figures


def runs_figures(size: dict, device: torch.device) -> dict:
    """Run k of a batched loop against its own one-run training, on the device."""
    n = size["train_memes"]
    splits = {"train": head_training.random_split(n, 0), "dev": head_training.random_split(n // 10, 1)}
    p = head_training.paper_params()
    p = dataclasses.replace(p, head=dataclasses.replace(p.head, drop_probs=(0.0, 0.0, 0.0)),
                            train=dataclasses.replace(p.train, epochs=size["runs_epochs"],
                                                      patience=size["runs_epochs"]))
    quiet = {"log": lambda _: None}
    (batched, history, _), seconds = timed(lambda: train.train(
        head_training.with_runs(p, RUNS), splits, device, **quiet), device)
    weight_gap = auroc_gap = 0.0
    for k in range(RUNS):
        seeded = dataclasses.replace(p, train=dataclasses.replace(p.train, seed=p.train.seed + k))
        alone, alone_history, _ = train.train(seeded, splits, device, **quiet)
        for ours, theirs in zip(batched.state_dict().values(), alone.state_dict().values()):
            weight_gap = max(weight_gap, (ours[k] - theirs[0]).abs().max().item())
        auroc_gap = max(auroc_gap, max(abs(row["dev_auroc"][k] - one["dev_auroc"][0])
                                       for row, one in zip(history, alone_history)))
    return {f"runs {RUNS}: loop (s)": seconds,
            f"runs {RUNS}: largest weight gap to seed+k alone": weight_gap,
            f"runs {RUNS}: largest dev AUROC gap to seed+k alone": auroc_gap,
            f"runs {RUNS}: run k equals seed+k alone": "yes" if weight_gap <= SAME else "NO"}


def cross_memory_figures(size: dict, device: torch.device) -> dict:
    """One run of `cross` at the paper's width: peak device memory against 16 bytes a parameter."""
    m = size["cross_map_dim"]
    p = head_training.paper_params()
    p = dataclasses.replace(p, fusion="cross", head=dataclasses.replace(p.head, map_dim=m),
                            train=dataclasses.replace(p.train, epochs=1, patience=1, batch_size=64))
    splits = {"train": head_training.random_split(2000, 0), "dev": head_training.random_split(200, 1)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = head_training.loop_seconds(p, splits, device)
    parameters = queue.head_parameters({"head.map_dim": m, "fusion": "cross",
                                        "head.num_pre_output_layers": 1})
    figures = {f"cross map_dim {m}: trainable parameters": parameters,
               f"cross map_dim {m}: docs' figure (GB, 16 B a parameter)": parameters * 16 / 1e9,
               f"cross map_dim {m}: one epoch of 2,000 memes (s)": seconds}
    if device.type == "cuda":
        figures[f"cross map_dim {m}: peak GPU memory (GB)"] = torch.cuda.max_memory_allocated(device) / 1e9
    return figures


def adamw_against_torch_optim(start: torch.Tensor, steps: int = 6) -> tuple[float, torch.Tensor]:
    """The head's AdamW and torch.optim.AdamW(fused=True) stepped side by side from `start` on
    the same seeded gradients (the first zero: weight decay alone moves the weights): the
    largest gap between their weights after any step, and the head's AdamW's last weights."""
    generator = torch.Generator(start.device).manual_seed(0)
    ours, theirs = start.clone().requires_grad_(), start.clone().requires_grad_()
    step = adamw.AdamW(ours, lr=3e-3, weight_decay=0.05)
    reference = torch.optim.AdamW([theirs], lr=3e-3, weight_decay=0.05, fused=True)
    gap = 0.0
    for k in range(steps):
        grad = torch.randn(start.shape, generator=generator, device=start.device) * (k > 0)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        step.step()
        reference.step()
        gap = max(gap, (ours - theirs).abs().max().item())
    return gap, ours.detach()


def adamw_figures(device: torch.device, steps: int = 6) -> dict:
    """The head's AdamW against torch.optim's fused one on the device."""
    start = torch.randn(3, 257, 33, generator=torch.Generator().manual_seed(0)).to(device)
    gap, _ = adamw_against_torch_optim(start, steps)
    return {f"adamw: largest weight gap to torch.optim's fused AdamW, {steps} steps": gap,
            "adamw: equals torch.optim's bit for bit": "yes" if gap == 0 else "NO"}


def table_smoke_figures(size: dict, device: torch.device, work: Path) -> dict:
    """The paper-table smoke test of docs/paper-tables.md, on a fresh synthetic workspace."""
    ws = work / "grid"
    run([sys.executable, "scripts/workspace.py", str(ws), "--n", str(size["table_memes"]),
         "--layout", "challenge", "--set", f"clip.device={device.type}"], ROOT)
    run(["dvc", "repro", "-q", *size["table_repro"]], ws)
    run(["git", "add", "-A"], ws)
    run(["git", "-c", "user.name=check", "-c", "user.email=check@localhost", "commit", "-qm",
         "features"], ws)
    fusions = [arg for fusion in size["table_fusions"] for arg in ("--fusion", fusion)]
    started = time.perf_counter()
    run([sys.executable, "-m", "scripts.paper_table", "--set", "head.map_dim=32", "--set",
         "train.epochs=3", "--set", "train.runs=2", *fusions], ws)
    table = pd.read_csv(ws / "reports/paper_table_1.csv")
    logs = [run(["dvc", "queue", "logs", line.split()[0]], ws)
            for line in run(["dvc", "queue", "status"], ws).splitlines()[1:] if "Success" in line]
    return {"paper table smoke: cells with a dev AUROC": int(table["dev_seen_auroc_value"].notna().sum()),
            "paper table smoke: cells that ran interpret": sum("Running stage 'interpret'" in log for log in logs),
            "paper table smoke: cells run": len(logs),
            "paper table smoke: queue and collect (s)": time.perf_counter() - started}


def run(cmd: list[str], cwd: Path) -> str:
    """A step's command and its output, which is shown only if it fails."""
    # (a lent GPU machine runs this from a bare checkout: the project is not installed there)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def main(device: torch.device) -> None:
    size = SIZES[device.type]
    figures = {"device": str(device), "encoder": f"{size['model']} (random init)"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        figures.update(extraction_figures(size, device, work))
        figures.update(runs_figures(size, device))
        figures.update(cross_memory_figures(size, device))
        figures.update(table_smoke_figures(size, device, work))
    figures.update(adamw_figures(device))
    record("gpu_check", figures)
    if figures[f"runs {RUNS}: run k equals seed+k alone"] != "yes":
        raise SystemExit("gpu_check: batched runs differ from their one-run trainings")
    if figures["adamw: equals torch.optim's bit for bit"] != "yes":
        raise SystemExit("gpu_check: the head's AdamW differs from torch.optim's fused AdamW")
