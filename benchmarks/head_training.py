"""1. Head training on a full-size cache: the paper's released config on ViT-L-14-sized features.

8,500 train and 500 dev memes of random features (1024 image, 768 text: timing does not depend
on the values), `cross` fusion, map_dim 32, batch 16, 20 epochs, lr 1e-4 (patience raised so
all 20 epochs run). Beside this project's loop it times the same loop with autograd's backward
(what stages/head/backprop.py replaces), the textbook loop (nn.Dropout, plain
AdamW, a gather per step) on the same work, the FLOP-bound time on this machine, the loop
with train.runs = 1, 2, 5, 10, 20 (and 100 on a GPU) heads trained side by side, and the loop
with each dropout mask drawn by the step itself (what stages/head/masks.py replaces).
"""
from __future__ import annotations

import dataclasses
import statistics
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import matmul_flops, median_time, record, seconds, timing_part
from stages import train
from stages.cache import features
from stages.common import params
from stages.head import adamw, backprop, hateclipper, masks, ops
from stages.head.fusions import FUSIONS

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_DEV, IMAGE_DIM, TEXT_DIM, EPOCHS = 8500, 500, 1024, 768, 20
RUNS = (1, 2, 5, 10, 20)  # and 100 on a GPU


def paper_params() -> params.Params:
    p = params.load(ROOT / "params.yaml")
    return dataclasses.replace(p, train=dataclasses.replace(p.train, epochs=EPOCHS, patience=EPOCHS))


def random_split(n: int, seed: int) -> features.SplitFeatures:
    rng = np.random.default_rng(seed)
    return features.SplitFeatures(
        ids=[str(i) for i in range(n)], labels=rng.integers(0, 2, (n, 1)).astype(np.int8),
        image=rng.normal(size=(n, IMAGE_DIM)).astype(np.float32),
        text=rng.normal(size=(n, TEXT_DIM)).astype(np.float32))


def full_size_splits() -> dict[str, features.SplitFeatures]:
    return {"train": random_split(N_TRAIN, 0), "dev": random_split(N_DEV, 1)}


class TextbookHead(nn.Module):
    """The seed's one-run head as a first implementation writes it: nn.Linear, nn.Dropout and
    nn.Sequential, one parameter tensor per layer (the paper's config: one mapping layer,
    `cross` fusion, one pre-output layer)."""

    def __init__(self, p: params.Params, image_dim: int = IMAGE_DIM, text_dim: int = TEXT_DIM):
        super().__init__()
        m, (p_map, p_fusion, p_pre) = p.head.map_dim, p.head.drop_probs
        self.image = nn.Sequential(nn.Linear(image_dim, m), nn.Dropout(p_map))
        self.text = nn.Sequential(nn.Linear(text_dim, m), nn.Dropout(p_map))
        self.pre_output = nn.Sequential(nn.Dropout(p_fusion), nn.Linear(m * m, m), nn.ReLU(),
                                        nn.Dropout(p_pre), nn.Linear(m, 1))

    def forward(self, image, text):
        image, text = F.normalize(self.image(image), dim=1), F.normalize(self.text(text), dim=1)
        return self.pre_output(torch.bmm(image.unsqueeze(2), text.unsqueeze(1)).flatten(1)).squeeze(1)


def textbook_loop(p: params.Params, split: features.SplitFeatures, device: torch.device) -> None:
    """The loop a first implementation writes, for comparison: same work, one run."""
    torch.manual_seed(p.train.seed)
    head = TextbookHead(p).to(device).train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=p.train.lr, weight_decay=p.train.weight_decay)
    image, text = torch.from_numpy(split.image).to(device), torch.from_numpy(split.text).to(device)
    labels = torch.from_numpy(split.labels[:, 0].astype(np.float32)).to(device)  # one label
    for _ in range(p.train.epochs):
        for batch in torch.randperm(len(labels)).to(device).split(p.train.batch_size):
            textbook_step(head, optimizer, image[batch], text[batch], labels[batch], p.train.grad_clip)


def textbook_step(head, optimizer, image, text, labels, grad_clip: float) -> None:
    """One head step as the seed writes it: the baseline both comparisons time against."""
    loss = F.binary_cross_entropy_with_logits(head(image, text), labels)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(head.parameters(), grad_clip)
    optimizer.step()


def training_flops(p: params.Params) -> float:
    """Matrix-product FLOPs of 20 epochs: forward, plus weight and input gradients in backward
    (no input gradient for the first layers, whose inputs are the frozen features)."""
    m = p.head.map_dim
    first = 2 * (IMAGE_DIM + TEXT_DIM) * m
    later = 2 * (FUSIONS[p.fusion].width(m) * m + m)
    return (2 * first + 3 * later) * N_TRAIN * p.train.epochs


def dropout_microseconds(device: torch.device) -> dict[str, float]:
    """One dropout on the fusion's (16, 1024) activations: nn.Dropout against the head's."""
    x = torch.randn(16, 1024, device=device)
    figures = {}
    for name, dropout in (("nn.Dropout", nn.Dropout(0.4).train()),
                          ("the head's dropout (rand mask)", lambda x: ops.dropout(x, 0.4, ops.dropout_mask))):
        seconds = median_time(lambda dropout=dropout: [dropout(x) for _ in range(1000)], 5, device)
        figures[f"{name} on 16x1024 (us)"] = seconds * 1000
    return figures


def with_runs(p: params.Params, runs: int) -> params.Params:
    return dataclasses.replace(p, train=dataclasses.replace(p.train, runs=runs))


def loop_seconds(p: params.Params, splits, device: torch.device) -> float:
    """The train loop alone (train.train), quiet."""
    return seconds(lambda: train.train(p, splits, device, log=lambda _: None), device)


def runs_table(p: params.Params, splits, device: torch.device) -> dict[str, float]:
    """Train-loop time for K runs in one batched loop, against one run (target: 5 runs <= 2x)."""
    counts = RUNS + ((100,) if device.type == "cuda" else ())
    times = {runs: loop_seconds(with_runs(p, runs), splits, device) for runs in counts}
    figures = {}
    for runs, elapsed in times.items():
        figures[f"runs {runs}: loop (s)"] = elapsed
        figures[f"runs {runs}: x one run"] = elapsed / times[1]
    return {**figures, **interleaved_ratio(p, splits, device)}


def interleaved_ratio(p: params.Params, splits, device: torch.device, pairs: int = 3) -> dict:
    """runs 5 against runs 1, each pair run back to back (5 epochs each): this VM's slow phases
    (BENCHMARKS.md section 1) last minutes, so the two loops of a pair share one, where the
    table's rows, minutes apart, need not."""
    short = dataclasses.replace(p, train=dataclasses.replace(p.train, epochs=5, patience=5))
    ratios = []
    for _ in range(pairs):
        one = loop_seconds(with_runs(short, 1), splits, device)
        ratios.append(loop_seconds(with_runs(short, 5), splits, device) / one)
    return {f"runs 5 / runs 1, {pairs} pairs back to back (5 epochs)": ", ".join(f"{r:.2f}" for r in ratios),
            "runs 5 / runs 1, median of the pairs": statistics.median(ratios)}


# Heads for the masks comparison: (runs, map_dim, epochs), the paper's at three run counts
# around masks.MAX_WEIGHTS and one wider, whose step keeps two cores busy.
MASK_CASES = ((1, 32, 5), (3, 32, 5), (5, 32, 5), (1, 128, 1))


def masks_ahead_against_by_the_step(p: params.Params, splits, device: torch.device) -> dict:
    """The loop with the masks drawn ahead (masks.py, whatever the head's size) against the
    step drawing each mask when it needs it with every intra-op thread (as before masks.py),
    for each of MASK_CASES: two pairs back to back, one in each order, since the first loop of
    a process and the VM's phases favour whichever runs first."""
    ways = {"ahead": float("inf"), "by the step": 0}  # masks.MAX_WEIGHTS, whatever the head
    figures = {}
    for runs, map_dim, epochs in MASK_CASES:
        case = dataclasses.replace(p, head=dataclasses.replace(p.head, map_dim=map_dim),
                                   train=dataclasses.replace(p.train, runs=runs, epochs=epochs,
                                                             patience=epochs))
        weights = runs * hateclipper.trainable_params(
            hateclipper.HeadConfig.from_params(case, IMAGE_DIM, TEXT_DIM))
        times: dict[str, list[float]] = {way: [] for way in ways}
        for order in (("ahead", "by the step"), ("by the step", "ahead")):
            for way in order:
                with mock.patch.object(masks, "MAX_WEIGHTS", ways[way]):
                    times[way].append(loop_seconds(case, splits, device))
        name = f"runs {runs}, map_dim {map_dim} ({weights:,} weights), {epochs} epochs"
        for way, each in times.items():
            figures[f"{name}: masks {way} (s)"] = ", ".join(f"{t:.2f}" for t in each)
        figures[f"{name}: ahead / by the step"] = sum(times["ahead"]) / sum(times["by the step"])
    return figures


# Where a step's time goes: each part a function the loop calls, timed by wrapping it (about a
# microsecond a call on top). The parts inside the step are disjoint, and so are those beside
# it; what the loop does besides all these (the batch gathers, shuffles, dev AUROC,
# bookkeeping) is the loop's rest. The masks are drawn on a thread of their own, at the same
# time as the loop (DRAWING, small heads only): its seconds are not a part of the loop's. A
# step takes its masks from the thread or draws them itself: both are the one part MASKS.
STEP = (backprop.Step, "__call__", "hand-written step, in all")
DRAWING = (masks.Ahead, "draw_block", "masks drawn ahead, on their own thread")
MASKS = "dropout masks, handed over by the thread or drawn by the step"
IN_STEP = ((masks.Ahead, "__call__", MASKS), (backprop, "dropout_mask", MASKS),
           (ops, "linear_backward", "every layer's gradient products"),
           (hateclipper.HateClipper, "combine", "the fusion (FIM)"))
BESIDE_STEP = ((train, "clip_grad_norm_per_run", "gradient clipping, per run"),
               (adamw.AdamW, "step", "AdamW (one fused kernel)"),
               (train, "predict_probs", "dev-set probabilities, once an epoch"))


def step_parts(p: params.Params, splits, device: torch.device, runs: int, epochs: int = 3) -> dict:
    """Microseconds a step for the step and each part, train.runs = runs, over a few epochs."""
    p = dataclasses.replace(p, train=dataclasses.replace(p.train, runs=runs, epochs=epochs,
                                                         patience=epochs))
    spent: dict[str, float] = {}
    with ExitStack() as patches:
        for owner, name, key in (STEP, DRAWING, *IN_STEP, *BESIDE_STEP):
            patches.enter_context(timing_part(owner, name, spent, key))
        loop = loop_seconds(p, splits, device)
    per_step = 1e6 / (epochs * -(-len(splits["train"].ids) // p.train.batch_size))
    step = spent[STEP[2]]
    inside, beside = list(dict.fromkeys(part[2] for part in IN_STEP)), [part[2] for part in BESIDE_STEP]
    figures = {f"runs {runs}: loop, timed by part (us a step)": loop * per_step,
               f"runs {runs}: {STEP[2]}": step * per_step}
    figures.update({f"runs {runs}:   - {key}": spent[key] * per_step for key in inside})
    figures[f"runs {runs}:   - the step's rest (forward products, norms, loss)"] = (
        step - sum(spent[key] for key in inside)) * per_step
    figures.update({f"runs {runs}: {key}": spent[key] * per_step for key in beside})
    figures[f"runs {runs}: the loop's rest (batch gathers, shuffles, dev AUROC)"] = (
        loop - step - sum(spent[key] for key in beside)) * per_step
    if DRAWING[2] in spent:
        figures[f"runs {runs}: beside the loop: {DRAWING[2]}"] = spent[DRAWING[2]] * per_step
    return figures


def main(device: torch.device) -> None:
    p = paper_params()
    splits = full_size_splits()
    times = {"project": loop_seconds(p, splits, device),
             "textbook": seconds(lambda: textbook_loop(p, splits["train"], device), device)}
    with mock.patch.object(backprop, "supports", return_value=False):  # the step on autograd
        times["autograd"] = loop_seconds(p, splits, device)
    flops, roof = training_flops(p), matmul_flops(device)
    record("head_training", {
        "device": str(device),
        "training loop, 20 epochs x 8500 memes (s)": times["project"],
        "memes/s": N_TRAIN * EPOCHS / times["project"],
        "ms per step (batch 16)": 1000 * times["project"] / (EPOCHS * -(-N_TRAIN // 16)),
        "same loop, autograd's backward instead of backprop.py (s)": times["autograd"],
        "textbook loop, same work (s)": times["textbook"],
        "speedup over textbook loop": times["textbook"] / times["project"],
        "matrix-product GFLOP in training": flops / 1e9,
        "measured matmul GFLOP/s (2048^3 fp32)": roof / 1e9,
        "FLOP-bound time (s)": flops / roof,
        "target (s, two CPU cores)": 10.0,
        **dropout_microseconds(device),
    })
    record("head_training_runs", {"device": str(device), **runs_table(p, splits, device)})
    record("head_training_masks", {"device": str(device),
                                   **masks_ahead_against_by_the_step(p, splits, device)})
    record("head_training_step", {"device": str(device), **step_parts(p, splits, device, 1),
                                  **step_parts(p, splits, device, 5)})
