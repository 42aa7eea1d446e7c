"""Which differences are real: two experiments compared on the same memes, paired.

    python -m scripts.compare [A] [B] [--split S] [--alpha 0.05] [--md | --json]

A and B are anything DVC names a version by: an experiment name, a commit, a branch, a tag,
or `workspace` (A's default; B's is HEAD, as `dvc metrics diff`). Each side's per-run,
per-meme probabilities (reports/probabilities.npz, written by evaluate) are read through
DVC at that revision. Per labeled split (or `--split`), for the task's own metric (AUROC for
a binary task, the benchmark's metric otherwise): A's and B's values (means over runs), their
difference, its paired bootstrap interval, the paired permutation p-value, DeLong's p for
AUROC, the difference of the ensembles, and a verdict at `--alpha`
(stages/report/paired.py says how each is computed; docs/methods.md how to read them).
Two sides of different caches are compared on the memes both scored (said), never on none.
"""
from __future__ import annotations

import argparse
import io
import json
import sys

import numpy as np

from stages.common.errors import InputError
from stages.data.task import Task
from stages.report import paired

PROBABILITIES = "reports/probabilities.npz"
WORKSPACE = "workspace"


def read(rev: str) -> dict:
    """A revision's probabilities file: {"task": Task, "splits": {name: (ids, labels, probs)}}."""
    import dvc.api
    from dvc.exceptions import PathMissingError
    from dvc.scm import RevError

    missing = (f"{rev} has no {PROBABILITIES}: rerun it with this version "
               "(`dvc exp run`, or `dvc repro` for the workspace)")
    try:
        with dvc.api.open(PROBABILITIES, rev=None if rev == WORKSPACE else rev, mode="rb") as f:
            raw = f.read()
    except (FileNotFoundError, PathMissingError):
        raise InputError(missing) from None
    except RevError:
        raise InputError(f"unknown revision {rev!r}: not an experiment, commit, branch or tag "
                         "of this repository (`dvc exp list`, `git log`)") from None
    return unpack(raw, rev)


def unpack(raw: bytes, where: str) -> dict:
    with np.load(io.BytesIO(raw), allow_pickle=False) as f:
        task = Task.from_json(str(f["task"]))
        splits = {str(name): (f[f"{name}.ids"].tolist(), f[f"{name}.labels"], f[f"{name}.probs"])
                  for name in f["splits"]}
    return {"task": task, "splits": splits, "where": where}


def shared(split: str, a: tuple, b: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Labels and both sides' run probabilities of the memes both scored, in A's order, and a
    note when that is not every meme of each side."""
    ids_a, labels_a, probs_a = a
    ids_b, labels_b, probs_b = b
    position = {meme: i for i, meme in enumerate(ids_b)}
    common = [i for i, meme in enumerate(ids_a) if meme in position]
    if not common:
        raise InputError(f"split '{split}': the two sides share no meme (different data?)")
    other = [position[ids_a[i]] for i in common]
    if not np.array_equal(labels_a[common], labels_b[other]):
        raise InputError(f"split '{split}': the shared memes' labels differ between the sides "
                         "(different data or task)")
    note = "" if len(common) == len(ids_a) == len(ids_b) else (
        f"split '{split}': compared on the {len(common)} memes both sides scored "
        f"(A {len(ids_a)}, B {len(ids_b)})")
    return labels_a[common], probs_a[:, common], probs_b[:, other], note


def compare_sides(a: dict, b: dict, splits: list[str] | None, metric: str | None = None
                  ) -> tuple[dict, list[str]]:
    """Per split (every labeled split of both, or these), A against B on the memes both
    scored, by `metric` (the task's own by default); and the notes to print."""
    task = a["task"]
    if b["task"].labels != task.labels:
        raise InputError(f"{a['where']} and {b['where']} answer different tasks "
                         f"({', '.join(task.labels[:3])} vs {', '.join(b['task'].labels[:3])})")
    names = splits or [s for s in a["splits"] if s in b["splits"]]
    missing = [s for s in names if s not in a["splits"] or s not in b["splits"]]
    if missing or not names:
        raise InputError(f"split {missing[0] if missing else ''!r} is not a labeled split of both "
                         f"sides (A: {', '.join(a['splits'])}; B: {', '.join(b['splits'])})")
    results, notes = {}, []
    for name in names:
        labels, probs_a, probs_b, note = shared(name, a["splits"][name], b["splits"][name])
        primary = task.primary
        results[name] = paired.compare(task, labels[:, primary], probs_a[..., primary],
                                       probs_b[..., primary], metric)
        notes += [note] if note else []
    return results, notes


def as_json(results: dict, alpha: float) -> dict:
    return {"alpha": alpha, "comparisons": len(results), "splits": {
        name: {"metric": c.metric, "n": c.n, "a": c.a, "b": c.b, "delta": c.delta,
               "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value,
               **({"delong_p": c.delong_p} if c.delong_p is not None else {}),
               "runs": list(c.runs), "delta_std": c.delta_std, "ensemble_delta": c.ensemble_delta,
               "verdict": c.verdict(alpha)} for name, c in results.items()}}


def table(results: dict, alpha: float, markdown: bool) -> str:
    header = ["Split", "Metric", "A", "B", "Change", "95% CI", "p (perm.)", "p (DeLong)", "Verdict"]
    rows = [[name, c.metric, f"{c.a:.4f}", f"{c.b:.4f}", f"{c.delta:+.4f}",
             f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]", f"{c.p_value:.4f}",
             "-" if c.delong_p is None else f"{c.delong_p:.4f}", c.verdict(alpha)]
            for name, c in results.items()]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[k]) for r in [header] + rows) for k in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                     for r in [header] + rows)


def reminder(results: dict, alpha: float) -> str:
    count = len(results)
    if count == 1:
        return f"1 comparison at alpha {alpha}."
    return (f"{count} comparisons at alpha {alpha} each: by chance alone about {alpha * count:.2f} "
            f"would read as a difference; Bonferroni's level for all {count} is {alpha / count:.4g}.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", nargs="?", default=WORKSPACE, help="a DVC revision (default: workspace)")
    parser.add_argument("b", nargs="?", default="HEAD", help="a DVC revision (default: HEAD)")
    parser.add_argument("--split", action="append", help="only this split (repeatable)")
    parser.add_argument("--alpha", type=float, default=0.05, help="the level of each test (0.05)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--md", action="store_true", help="a Markdown table")
    output.add_argument("--json", action="store_true", help="JSON for scripts")
    args = parser.parse_args(argv)
    if not 0 < args.alpha < 1:
        raise InputError(f"--alpha must lie between 0 and 1, got {args.alpha}")
    results, notes = compare_sides(read(args.a), read(args.b), args.split)
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, "notes": notes, **as_json(results, args.alpha)}, indent=2))
        return
    print(f"A: {args.a}   B: {args.b}")
    print(table(results, args.alpha, args.md))
    for line in notes + [reminder(results, args.alpha)]:
        print(line)


if __name__ == "__main__":
    from stages.common.errors import run_stage

    sys.exit(run_stage(main))
