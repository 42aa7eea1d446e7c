"""Dropout masks drawn ahead on a thread (stages/head/masks.py): the very masks the step would
draw itself, so the very same trained heads."""
import threading

import pytest
import torch

from stages import train
from stages.common import params
from stages.head import backprop, hateclipper, masks, ops
from tests.helpers import interaction_features, params_dict


def head_of(drop_probs, mapping=1, pre_output=1, runs=1, fusion="cross"):
    return hateclipper.HateClipper(hateclipper.HeadConfig(
        image_dim=12, text_dim=10, fusion=fusion, map_dim=6, num_mapping_layers=mapping,
        num_pre_output_layers=pre_output, drop_probs=drop_probs, runs=runs))


@pytest.mark.parametrize("drop_probs,mapping,pre_output,runs", [
    ((0.2, 0.4, 0.1), 1, 1, 1), ((0.2, 0.4, 0.1), 2, 2, 3), ((0.0, 0.5, 0.3), 2, 1, 2),
])
def test_the_stream_is_dropout_masks_own(monkeypatch, drop_probs, mapping, pre_output, runs):
    """Two epochs of 11 memes in batches of 4 (a last batch of 3), blocks of a few steps: each
    mask equals what dropout_mask draws in its place from the same seed, and a layer of p 0
    draws nothing."""
    monkeypatch.setattr(masks, "BLOCK_ELEMENTS", 500)
    head = head_of(drop_probs, mapping, pre_output, runs)
    widths = [6] * (2 * mapping) + [36] + [6] * pre_output
    probs = [drop_probs[0]] * (2 * mapping) + [drop_probs[1]] + [drop_probs[2]] * pre_output
    shapes = [(runs, batch, width) for batch in [4, 4, 3] * 2 for width in widths]
    torch.manual_seed(5)
    expected = [ops.dropout_mask(torch.empty(shape), p)
                for shape, p in zip(shapes, probs * 6)]
    torch.manual_seed(5)
    with masks.Ahead(head, memes=11, batch_size=4, epochs=2) as ahead:
        drawn = [ahead(torch.empty(shape), p) for shape, p in zip(shapes, probs * 6)]
    for want, got in zip(expected, drawn, strict=True):
        assert (want is None) == (got is None)
        if want is not None:
            assert torch.equal(want, got)
    assert sum(mask is not None for mask in drawn) == len(masks.layout(head)) * 6


@pytest.mark.parametrize("overrides", [
    {"train__runs": 3, "head__num_pre_output_layers": 2, "train__batch_size": 24},
    {"fusion": "align", "head__num_mapping_layers": 2},
    {"fusion": "concat", "head__drop_probs": [0.0, 0.3, 0.0]},
    {"fusion": "cross_nd", "head__num_pre_output_layers": 0},
    {"fusion": "align_concat", "head__drop_probs": [0.0, 0.0, 0.0]},
])
def test_training_gives_the_heads_of_masks_drawn_by_the_step(monkeypatch, overrides):
    """train() with the masks drawn ahead (blocks of two or more steps; 300 memes in batches
    that leave a last short one) and with the step drawing each itself: the same weights, bit
    for bit, and the same curves. After it the drawing thread is gone, the thread count is
    back, and the default generator is where the seed put it, however far ahead the thread
    drew."""
    monkeypatch.setattr(masks, "BLOCK_ELEMENTS", 200_000)
    monkeypatch.setattr(masks, "cores", lambda: 2)  # a core to spare, whatever runs the test
    splits = {"train": interaction_features(300, 0), "dev": interaction_features(120, 1)}
    p = params.parse(params_dict("d", **{"train__epochs": 3, "train__patience": 3,
                                         "train__lr": 3e-3, **overrides}))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # so that a thread count left lowered shows, under OMP_NUM_THREADS=1 too
    try:
        ahead, ahead_history, _ = train.train(p, splits, torch.device("cpu"), log=lambda _: None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert not [t for t in threading.enumerate() if t.name == "masks ahead"]
    assert torch.equal(torch.get_rng_state(), torch.manual_seed(p.train.seed).get_state())
    monkeypatch.setattr(masks, "MAX_WEIGHTS", 0)  # every head's step draws its own masks
    alone, alone_history, _ = train.train(p, splits, torch.device("cpu"), log=lambda _: None)
    assert torch.equal(ahead.weights, alone.weights)
    assert [h["train_loss"].tolist() for h in ahead_history] == [h["train_loss"].tolist()
                                                                 for h in alone_history]


@pytest.mark.parametrize("memes,drop_probs", [(0, (0.2, 0.4, 0.1)), (8, (0.0, 0.0, 0.0))])
def test_no_memes_or_no_dropout_no_thread(memes, drop_probs):
    """No mask is ever asked for: no thread is started, nor a thread count lent."""
    threads = torch.get_num_threads()
    with masks.Ahead(head_of(drop_probs), memes=memes, batch_size=4, epochs=3) as ahead:
        assert ahead.thread.ident is None and torch.get_num_threads() == threads


@pytest.mark.parametrize("runs,cores,ahead", [(1, 2, True), (2, 2, True), (3, 2, False),
                                               (1, 1, False)])
def test_masks_are_drawn_ahead_for_small_heads_with_a_core_to_spare(monkeypatch, runs, cores,
                                                                    ahead):
    """Up to masks.MAX_WEIGHTS over all runs, with a second core, the masks come from the
    thread; a larger head, or a process on one core, has the step draw each itself."""
    head = head_of((0.2, 0.4, 0.1), runs=runs)
    monkeypatch.setattr(masks, "MAX_WEIGHTS", 2 * head.weights.shape[1])
    monkeypatch.setattr(masks, "cores", lambda: cores)
    with backprop.training_step(head, "bce", memes=8, batch_size=4, epochs=1) as step:
        assert isinstance(step.draw, masks.Ahead) == ahead


def test_a_step_drawing_in_another_order_is_refused():
    """A mask asked for out of turn, by its shape or only by its p, is an error, not a wrong
    mask."""
    with masks.Ahead(head_of((0.2, 0.4, 0.1)), memes=8, batch_size=4, epochs=1) as ahead:
        with pytest.raises(RuntimeError, match="another order"):
            ahead(torch.empty(1, 4, 36), 0.4)  # the fusion's mask asked for first
    with masks.Ahead(head_of((0.2, 0.4, 0.3)), memes=8, batch_size=4, epochs=1) as ahead:
        for width, p in [(6, 0.2), (6, 0.2), (36, 0.4)]:  # image, text, fusion: in turn
            ahead(torch.empty(1, 4, width), p)
        with pytest.raises(RuntimeError, match="of p 0.3 drawn for .* of p 0.2"):
            ahead(torch.empty(1, 4, 6), 0.2)  # the pre-output's shape, the mapping's p


def test_a_step_past_the_epochs_drawn_for_is_refused():
    """Masks are drawn for the epochs asked for, no more (nothing is drawn in vain at the
    end); a loop that runs longer is told so instead of waiting forever."""
    head = head_of((0.2, 0.4, 0.1))
    with masks.Ahead(head, memes=8, batch_size=4, epochs=1) as ahead:
        for _ in range(2):  # the epoch's two steps
            for width, p in masks.layout(head):
                ahead(torch.empty(1, 4, width), p)
        with pytest.raises(RuntimeError, match="drawn for 1 epochs of 8 memes; the step asked for more"):
            ahead(torch.empty(1, 4, 6), 0.2)


def test_a_failure_on_the_drawing_thread_reaches_the_loop(monkeypatch):
    def fail(self, batch, steps):
        raise MemoryError("no room for a block")

    monkeypatch.setattr(masks.Ahead, "draw_block", fail)
    head = head_of((0.2, 0.4, 0.1))
    with masks.Ahead(head, memes=8, batch_size=4, epochs=1) as ahead:
        with pytest.raises(MemoryError, match="no room"):
            ahead(torch.empty(1, 4, 6), 0.2)
