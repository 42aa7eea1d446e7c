"""Every cell's result read back from `dvc exp show --json` and the experiment's detail file:
each split's summary, the cells' ranks, and the paired test of each cell against the table's
reference cell."""
from __future__ import annotations

import json

from scripts.paper_table import dvc

# Per metric: the metrics.json keys of its value, interval and ensemble (the spread over runs
# is in the detail file).
KEYS = {metric: {"value": metric, "ci_low": f"{metric}_ci_low", "ci_high": f"{metric}_ci_high",
                 "ensemble": f"ensemble_{metric}"}
        for metric in ("auroc", "paper_micro_f1")}
DETAIL = "reports/metrics_detail.json"
ALPHA = 0.05  # the level at which a cell is told apart from the table's reference cell


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def shown_experiments() -> list[dict]:
    return experiments(json.loads(dvc("exp", "show", "--json")))


def experiments(shown: list[dict]) -> list[dict]:
    """Every baseline and experiment of `dvc exp show --json` as {name, params, metrics}."""
    found = []

    def add(record: dict, name: str | None) -> None:
        data = record.get("data") or {}
        params = data.get("params", {}).get("params.yaml", {}).get("data", {})
        shown_metrics = data.get("metrics", {})
        metrics = shown_metrics.get("reports/metrics.json", {}).get("data", {})
        trained = shown_metrics.get("reports/train.json", {}).get("data", {})
        extracted = shown_metrics.get("reports/extract.json", {}).get("data", {})
        found.append({"name": name or record.get("rev"), "rev": record.get("rev"), "params": flatten(params),
                      "metrics": metrics, "trainable_params": trained.get("trainable_params"),
                      "extract": extracted,
                      "timestamp": data.get("timestamp") or ""})

    for baseline in shown:
        add(baseline, baseline.get("name"))
        for experiment in baseline.get("experiments") or []:
            for rev in experiment.get("revs", []):
                add(rev, experiment.get("name"))
    return found


def matches(params: dict, experiment: dict) -> bool:
    """Whether the experiment (or a row) has every one of `params`."""
    return all(experiment["params"].get(key) == value for key, value in params.items())


def result_of(cell: dict, found: list[dict]) -> dict | None:
    """The newest experiment run with exactly the cell's params and with metrics."""
    runs = [e for e in found if matches(cell["params"], e) and e["metrics"]]
    return max(runs, key=lambda e: e["timestamp"]) if runs else None


def read_detail(rev: str | None) -> dict:
    """An experiment's detail file (every run's figures and their spreads), read through DVC
    at its revision ({} where it has none)."""
    import dvc.api

    try:
        with dvc.api.open(DETAIL, rev=None if rev in (None, "workspace") else rev) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def split_summary(result: dict, split: str, metric: str) -> dict | None:
    """summary() of an experiment found in `dvc exp show`, its detail file read at its rev."""
    if result.get("detail") is None:
        result["detail"] = read_detail(result.get("rev"))
    return summary(result["metrics"], result["detail"], split, metric)


def summary(metrics: dict, detail: dict, split: str, metric: str) -> dict | None:
    """A split's figure x 100: value, spread over runs, interval, ensemble, and what constants
    score (AUROC: 50; micro-F1: predicting no label, and each label's training majority); for
    the paper's micro-F1, the standard micro-F1 and its all-negative score beside it."""
    m = metrics.get(split)
    if not m:
        return None
    runs = detail.get(split, {"runs": 1, "std": {metric: 0.0}})
    result = ({key: 100 * m[name] for key, name in KEYS[metric].items()}
              | {"std": 100 * runs["std"][metric], "runs": runs["runs"]})
    if metric == "auroc":
        return result | {"constant": 50.0}
    baselines = m["baselines"]
    return result | {"constant": 100 * baselines["all_negative"][metric],
                     "majority": 100 * baselines["majority"][metric],
                     "standard": 100 * m["micro_f1"],
                     "standard_constant": 100 * baselines["all_negative"]["micro_f1"]}


def ranks(values: list[dict | None]) -> list[int | None]:
    """1 + the number of cells whose interval lies wholly above this one's: cells whose
    intervals overlap are never ordered against each other."""
    return [None if v is None else 1 + sum(o is not None and o["ci_low"] > v["ci_high"]
                                           for o in values) for v in values]


def rows(spec: dict, cells: list[dict], found: list[dict]) -> list[dict]:
    """A row per cell: its params and the paper's figures, its status, the experiment that
    ran it with what that run reported (trainable parameters, the extraction), and each
    split's summary and rank."""
    table = []
    for cell in cells:
        result = result_of(cell, found) or {}
        row = {"params": cell["params"], "paper": cell["paper"],
               "status": cell.get("status") or ("run" if result else "no result"),
               "experiment": result.get("name", ""), "trainable_params": result.get("trainable_params"),
               "extract": result.get("extract", {})}
        for split in spec["splits"]:
            row[split] = split_summary(result, split, spec["metric"]) if result else None
        table.append(row)
    for split in spec["splits"]:
        for row, rank in zip(table, ranks([row[split] for row in table])):
            row[f"rank_{split}"] = rank
    return table


def reference_word(spec: dict) -> str:
    """What the marks call the cell every other is tested against."""
    return "reference" if "against" in spec else "best"


def reference(spec: dict, scored: list[dict], split: str) -> dict | None:
    """The split's reference cell: the one paper_table.yaml names (`against: {param: value}`),
    or else the best (the highest mean); None where the named cell has no result."""
    if "against" not in spec:
        return max(scored, key=lambda row: row[split]["value"])
    return next((row for row in scored if matches(spec["against"], row)), None)


def mark_paired(spec: dict, table: list[dict], read) -> None:
    """Per split, the paired permutation p-value of each scored cell's difference from the
    reference cell (scripts.compare, on the memes both scored): `mark_<split>` is the
    reference's word (`best`, or `reference` where the table names one), `≈ <word>`
    (p >= ALPHA: not told apart) or empty. `read(rev)` gives an experiment's probabilities
    (compare.read)."""
    from scripts import compare

    word = reference_word(spec)
    for split in spec["splits"]:
        scored = [row for row in table if row[split] and row["experiment"]]
        against = reference(spec, scored, split) if scored else None
        if against is None:
            continue
        against_side = read(against["experiment"])
        for row in scored:
            if row is against:
                row[f"mark_{split}"], row[f"p_{split}"] = word, None
                continue
            results, _ = compare.compare_sides(against_side, read(row["experiment"]), [split],
                                               spec["metric"])
            p = results[split].p_value
            row[f"mark_{split}"], row[f"p_{split}"] = (f"≈ {word}" if p >= ALPHA else ""), p
