"""What every benchmark shares: machine facts, timing, recording, synthetic workspaces."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import statistics
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import torch

from stages.common import params

RESULTS = Path(__file__).parent / "results" / "results.jsonl"


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores"
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, no GPU"


def record(benchmark: str, figures: dict) -> None:
    """Print the figures and append them, with machine and date, to the results file."""
    entry = {"benchmark": benchmark, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "machine": machine(), "torch": torch.__version__, **figures}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(entry) + "\n")
    print(f"\n== {benchmark} ({entry['machine']})")
    for key, value in figures.items():
        print(f"  {key:48s} {value:.4g}" if isinstance(value, float) else f"  {key:48s} {value}")


def sync(device) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device | None = None):
    """fn()'s result and its wall time in seconds, with the GPU's queued work included."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return result, time.perf_counter() - start


def seconds(fn, device: torch.device | None = None) -> float:
    return timed(fn, device)[1]


def median_time(fn, repeats: int, device=None) -> float:
    return statistics.median(seconds(fn, device) for _ in range(repeats))


def timing_part(owner, name: str, seconds: dict, key: str | None = None):
    """A patch of owner.name (a module's function or a class's method) that adds each call's
    wall time to seconds[key or name]: the parts of a run, timed where they are called."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        result = original(*args, **kwargs)
        seconds[key or name] = seconds.get(key or name, 0.0) + time.perf_counter() - started
        return result
    return mock.patch.object(owner, name, wrapper)


@contextmanager
def working_directory(path: Path):
    """Run stages that write relative to the working directory (features/, models/) in `path`."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def matmul_flops(device: torch.device, size: int = 2048, dtype=torch.float32) -> float:
    """Achievable FLOP/s of one large matrix product: the roof for a FLOP-bound estimate."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    seconds = median_time(lambda: a @ b, 5, device)
    return 2 * size ** 3 / seconds


def children_peak_rss_mb() -> float:
    """Peak resident memory of the largest child process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def synthetic_params(data_dir: Path, model: str, batch_size: int = 64, device: str = "auto",
                     epochs: int = 20):
    """The committed params.yaml, pointed at a synthetic set and a random-init encoder."""
    p = params.load(Path(__file__).resolve().parents[1] / "params.yaml")
    return dataclasses.replace(
        p,
        data=dataclasses.replace(p.data, dir=str(data_dir), dev_split="dev"),
        clip=dataclasses.replace(p.clip, model=model, pretrained="none", batch_size=batch_size,
                                 device=device),
        train=dataclasses.replace(p.train, epochs=epochs, patience=epochs),
    )
