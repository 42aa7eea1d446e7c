"""benchmarks/head_training.py: the step breakdown times every part it names."""
import pytest
import torch

from stages.head import hateclipper


@pytest.mark.parametrize("runs", [2, 5])
def test_the_benchmarks_step_breakdown_times_every_part_it_names(monkeypatch, runs):
    """`benchmarks head_training` splits a step by wrapping the functions the loop calls: each
    named part must be called (a function no longer called would leave its part without a
    figure), and a wrapped function returns what it returned before. Two runs of the paper's
    head have their masks drawn ahead (the drawing thread's part too); five, by the step."""
    from benchmarks import common, head_training
    from stages.head import masks

    monkeypatch.setattr(masks, "cores", lambda: 2)
    seconds = {}
    with common.timing_part(hateclipper, "trainable_params", seconds, "parameters"):
        assert hateclipper.trainable_params(hateclipper.HeadConfig(4, 3, "align", 2, 1, 0, (0, 0, 0))) == 10 + 8 + 3
    assert set(seconds) == {"parameters"} and seconds["parameters"] > 0
    splits = {"train": head_training.random_split(40, 0), "dev": head_training.random_split(20, 1)}
    figures = head_training.step_parts(head_training.paper_params(), splits, torch.device("cpu"),
                                       runs=runs, epochs=1)
    named = [key for _, _, key in (head_training.STEP, *head_training.IN_STEP, *head_training.BESIDE_STEP)]
    assert all(any(key in figure for figure in figures) for key in named)
    assert any(head_training.DRAWING[2] in figure for figure in figures) == (runs == 2)
    assert all(value > 0 for value in figures.values())
