"""python -m benchmarks [NAME ...] [--device auto|cpu|cuda]: run the benchmarks named (default all)."""
from __future__ import annotations

import argparse

from benchmarks import dvc_exp, encoders, extraction, fusion_sweep, gpu_check, head_training, interpret, reencoding
from stages.common.distributed import resolve_device

BENCHMARKS = {"head_training": head_training.main, "cached_vs_reencoding": reencoding.main,
              "extraction": extraction.main, "dvc_exp_run": dvc_exp.main,
              "fusion_sweep": fusion_sweep.main, "interpret": interpret.main,
              "encoders": encoders.main}
CHECKS = {"gpu_check": gpu_check.main}  # run when named, never as part of "all"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"any of {', '.join([*BENCHMARKS, *CHECKS])} (default: all "
                             "benchmarks)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args()
    named = {**BENCHMARKS, **CHECKS}
    unknown = set(args.names) - set(named)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    device = resolve_device(args.device)
    for name in args.names or BENCHMARKS:
        named[name](device)


if __name__ == "__main__":
    main()
