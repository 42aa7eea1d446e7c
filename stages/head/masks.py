"""The hand-written step's dropout masks (backprop.py), drawn ahead on a thread of their own.

On the CPU, torch.rand is one serial stream, and drawing a small head's masks is a large part
of its step (`python -m benchmarks head_training`). The stream gives
the same numbers whatever the sizes of the calls that read it, so one call can draw a block of
steps' masks in the order the step draws them, on a thread of its own while the loop runs on
another core (torch's ops release the GIL). The thread draws from a copy of the default generator's
state, so the masks are the ones the step would have drawn, bit for bit, as long as nothing
else draws from the default generator during the loop (train() does not: its shuffles and
views have generators of their own), and how far ahead it ran leaves no trace
(tests/head/test_masks.py). The loop runs on one intra-op thread fewer, so that the drawing thread
has a core of its own: beside torch's spinning workers the thread made the loop slower.

That pays for small heads only (`pays`): one with more than MAX_WEIGHTS weights over all runs
keeps two cores busy with its products, and its step draws each mask when it needs it, as it
does on a GPU, whose generator gives other numbers to other call sizes. Which masks a step
draws, and in which order, is read off the head's own forward (`layout`).
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Iterator

import torch

from stages.head.hateclipper import HateClipper
from stages.head.ops import as_dropout_mask

BLOCK_ELEMENTS = 1 << 22  # 16 MB of float32 a block; two blocks wait in the queue at most
# Heads of more weights than this, over all runs, draw their masks in the step: their products
# keep two cores busy, and the loop that lends the thread a core is the slower (`python -m
# benchmarks head_training` times both ways). The cut-off is a choice between the measured
# heads: it keeps the paper's head up to three runs.
MAX_WEIGHTS = 300_000


def pays(weights: torch.Tensor) -> bool:
    """Whether a head of these weights (runs, P) trains faster with its masks drawn ahead: a
    small one, with a second core to draw on."""
    return weights.numel() <= MAX_WEIGHTS and cores() > 1


def cores() -> int:
    """The cores this process may run on (a cluster's allotment, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def layout(head: HateClipper) -> list[tuple[int, float]]:
    """(width, p) of each mask a step draws, in the order it draws them, as the head's forward
    asks for them on one meme; a layer of p 0 draws none."""
    asked: list[tuple[int, float]] = []

    def record(x: torch.Tensor, p: float) -> None:
        if p:
            asked.append((x.shape[-1], p))

    head.probe(draw=record)
    return asked


class Ahead:
    """A stand-in for ops.dropout_mask in the step: each call returns the next mask
    of the stream, drawn ahead a block of steps at a time by a thread.

    Use as a context manager: leaving it stops the thread and gives the loop back the
    intra-op thread it lent.
    """

    def __init__(self, head: HateClipper, memes: int, batch_size: int, epochs: int):
        self.layout, self.runs, self.dtype = layout(head), head.config.runs, head.weights.dtype
        self.memes, self.batch_size, self.epochs = memes, batch_size, epochs
        self.blocks: queue.Queue = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.draw_blocks, name="masks ahead", daemon=True)
        self.generator = torch.Generator()
        self.saved_threads = torch.get_num_threads()
        self.steps: Iterator[list[tuple[torch.Tensor, float]]] = iter(())
        self.masks: Iterator[tuple[torch.Tensor, float]] = iter(())

    def __enter__(self) -> "Ahead":
        if self.layout and self.memes:  # else no mask is ever asked for
            self.generator.set_state(torch.get_rng_state())
            self.thread.start()
            torch.set_num_threads(max(1, self.saved_threads - 1))
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        try:
            while self.thread.is_alive():  # unblock its put, whatever it holds
                try:
                    self.blocks.get(timeout=0.01)
                except queue.Empty:
                    pass
        finally:
            torch.set_num_threads(self.saved_threads)

    def __call__(self, x: torch.Tensor, p: float) -> torch.Tensor | None:
        if p == 0:
            return None
        mask, drawn_p = next(self.masks, (None, None))
        if mask is None:  # the step's first mask
            self.masks = iter(self.next_step())
            mask, drawn_p = next(self.masks)
        if mask.shape != x.shape or drawn_p != p:
            raise RuntimeError(f"dropout mask {tuple(mask.shape)} of p {drawn_p} drawn for "
                               f"{tuple(x.shape)} of p {p}: the step draws its masks in another "
                               "order than its forward asked for them on one meme")
        return mask

    def next_step(self) -> list[tuple[torch.Tensor, float]]:
        """The next step's masks, from the block in hand or the next one the thread drew."""
        step = next(self.steps, None)
        if step is None:
            block = self.blocks.get()
            if isinstance(block, BaseException):
                raise block
            self.steps = iter(block)
            step = next(self.steps)
        return step

    def draw_blocks(self) -> None:
        try:
            for batch, steps in self.plan():
                if self.stop.is_set():
                    return
                self.blocks.put(self.draw_block(batch, steps))
            self.blocks.put(RuntimeError(f"dropout masks were drawn for {self.epochs} epochs of "
                                         f"{self.memes} memes; the step asked for more"))
        except BaseException as err:  # noqa: BLE001 - handed to the loop, which raises it
            self.blocks.put(err)

    def plan(self) -> Iterator[tuple[int, int]]:
        """(batch size, steps) of each block, epoch after epoch: blocks of full batches, then
        the batch of what is left. The first blocks are small, one step then doubling up to
        BLOCK_ELEMENTS, so that the loop's first step does not wait for a large one. An early
        stop leaves the rest undrawn but for the blocks already in the queue."""
        full, rest = divmod(self.memes, self.batch_size)
        largest = max(1, BLOCK_ELEMENTS // self.step_elements(self.batch_size))
        size = 1
        for _ in range(self.epochs):
            start = 0
            while start < full:
                steps = min(size, full - start)
                yield self.batch_size, steps
                start, size = start + steps, min(2 * size, largest)
            if rest:
                yield rest, 1

    def step_elements(self, batch: int) -> int:
        return sum(self.runs * batch * width for width, _ in self.layout)

    def draw_block(self, batch: int, steps: int) -> list[list[tuple[torch.Tensor, float]]]:
        """Steps of one batch size, each step's masks as dropout_mask draws them, from one
        torch.rand for all."""
        drawn = torch.rand(steps, self.step_elements(batch), dtype=self.dtype,
                           generator=self.generator)
        segments, start = [], 0
        for width, p in self.layout:
            segment = drawn[:, start:start + self.runs * batch * width]
            as_dropout_mask(segment, p)
            segments.append((segment.unflatten(1, (self.runs, batch, width)), p))
            start += self.runs * batch * width
        return [[(segment[k], p) for segment, p in segments] for k in range(steps)]
