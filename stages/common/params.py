"""params.yaml, declared once: each key is a dataclass field here with its default, its check and
its one-line meaning. The parser, the one-line errors, the unknown-key error, docs/parameters.md
and params.yaml's comments all come from these fields (`python -m stages.common.params` writes
the two files; a test checks they are current). Stages receive the typed values, not dicts.

A choice that a library module's registry owns (the fusions, the layouts, the activations, the
feature kinds) names that registry by its dotted path: it is read when params are checked, so a
fusion registered in stages/head/fusions.py is a valid `fusion` with no second list to edit.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from stages.common.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
DOCS = Path("docs/parameters.md")
PARAMS_FILE = Path("params.yaml")


class Invalid(ValueError):
    """A value a check refuses; its text says what was expected."""


# -- checks: each takes the YAML value and returns the typed one, or raises Invalid ----------

def string(value) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid("a non-empty string")
    return value


def integer(minimum: int) -> Callable[[Any], int]:
    expected = "a positive integer" if minimum == 1 else "a non-negative integer"

    def check(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise Invalid(expected)
        return value
    check.expected = expected
    return check


def number(ok: Callable[[float], bool], expected: str) -> Callable[[Any], float]:
    def check(value) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not ok(value):
            raise Invalid(expected)
        return float(value)
    check.expected = expected
    return check


def boolean(value) -> bool:
    if not isinstance(value, bool):
        raise Invalid("true or false")
    return value


def optional(check: Callable) -> Callable:
    """null, or what `check` takes."""
    def checked(value):
        return None if value is None else check(value)
    checked.expected = f"null or {expected(check)}"
    return checked


def one_of(names: tuple[str, ...] | str) -> Callable[[Any], str]:
    """One of `names`, or of the keys of the registry a dotted path names (read when checked)."""
    def check(value) -> str:
        allowed = choices(names)
        if value not in allowed:
            raise Invalid("one of " + ", ".join(allowed))
        return value
    check.names = names
    return check


def choices(names: tuple[str, ...] | str) -> tuple[str, ...]:
    if isinstance(names, tuple):
        return names
    module, _, attribute = names.rpartition(".")
    return tuple(getattr(importlib.import_module(module), attribute))


def fractions(count: int, expected: str, ok: Callable[[list], bool] = lambda v: True) -> Callable:
    """A list of `count` numbers in [0, 1], as a tuple."""
    def check(value) -> tuple[float, ...]:
        if (not isinstance(value, list) or len(value) != count
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1 for v in value)
                or not ok(value)):
            raise Invalid(expected)
        return tuple(float(v) for v in value)
    check.expected = expected
    return check


def stream_names(value) -> tuple[str, ...]:
    """A list of distinct stream names: letters, digits and underscores (a file name each)."""
    if (not isinstance(value, list) or len(set(map(str, value))) != len(value)
            or not all(isinstance(v, str) and v.isidentifier() for v in value)):
        raise Invalid("a list of distinct names of letters, digits and underscores")
    return tuple(value)


stream_names.expected = "a list of distinct names (letters, digits, underscores)"


def described(check: Callable, text: str) -> Callable:
    """`check`, with what it accepts said in other words (a choice checked with other keys)."""
    def checked(value):
        return check(value)
    checked.expected = text
    return checked


def expected(check: Callable) -> str:
    """What a check accepts, in words (the docs' `allowed` column)."""
    if hasattr(check, "names"):
        return "one of " + ", ".join(f"`{name}`" for name in choices(check.names))
    return getattr(check, "expected", {string: "a non-empty string", boolean: "true or false"}.get(check, ""))


POSITIVE, COUNT = integer(1), integer(0)
NON_NEGATIVE = number(lambda v: v >= 0, "a non-negative number")


def param(default, check: Callable, meaning: str, feature: bool = False):
    """A key of params.yaml: its default (the committed params.yaml's value), its check, its
    one-line meaning; `feature`: it changes the cached features (the cache's identity)."""
    return field(default=default, metadata={"check": check, "meaning": meaning, "feature": feature})


# -- the declarations: one dataclass per section of params.yaml, in its order ---------------

@dataclass(frozen=True)
class DataParams:
    dir: str = param("data/hateful_memes", string, "the release's folder, as it ships (docs/datasets.md)")
    layout: str = param("hateful_memes", one_of("stages.data.dataset.LAYOUTS"), "which release's files")
    task: str | None = param(None, described(optional(string), "null or a task of data.layout (docs/datasets.md)"),
                             "the release's primary label set; null: the layout's first")
    fine_grained: str | None = param(None, optional(string),
                                     "a folder inside data.dir of fine-grained annotations: auxiliary labels")
    dev_fraction: float = param(0.0, number(lambda v: 0 <= v < 1, "a number in [0, 1)"),
                                "carve this share of train into a seeded, stratified `dev` split")
    dev_split: str = param("dev", string, "the labeled split that picks the best epoch and the threshold")
    on_bad_image: str = param("fail", one_of(("fail", "skip")),
                              "an unreadable image stops extraction, or its memes are left out and listed")
    texts: tuple[str, ...] = param((), stream_names,
                                   "text streams (captions, OCR): data.dir/texts/NAME.jsonl or the layout's own")


@dataclass(frozen=True)
class ClipParams:
    model: str = param("ViT-L-14", string, "an open_clip model name, or `tiny` (a small config shipped here)",
                       feature=True)
    pretrained: str = param("openai", string, "an open_clip pretrained tag, a checkpoint path, or `none`",
                            feature=True)
    resize: str = param("squash", one_of(("squash", "shortest", "longest", "model")),
                        "squash (the official code), shortest (crop), longest (pad), model (the tag's own)",
                        feature=True)
    precision: str = param("fp32", one_of(("fp32", "bf16", "fp16")), "fp32 is the official code's",
                           feature=True)
    tokenizer: str = param("model", string, "`model` (its own), or the folder of a local copy", feature=True)
    augment_views: int = param(0, COUNT, "augmented views of each training image, cached beside the plain ones")
    batch_size: int = param(64, POSITIVE, "encoder batch; changes no feature")
    device: str = param("auto", one_of(("auto", "cpu", "cuda")), "where to encode; changes no feature")

    def feature_settings(self) -> dict[str, str]:
        """What decides the features (not batch size or device): keyword arguments of encoder.load."""
        return {key: getattr(self, key) for key in FEATURE_SETTINGS}


@dataclass(frozen=True)
class RetrievalParams:
    k: int = param(20, POSITIVE, "neighbours in the retrieval classifier's vote")
    self_positive: bool = param(False, boolean, "RGCL's code lets an anchor be its own positive (true); the paper not")
    hard_negative_pool: int = param(0, COUNT, "0: the nearest other-label meme anywhere (the paper); 12: RGCL's code")


@dataclass(frozen=True)
class HeadParams:
    features: str = param("pooled", one_of("stages.cache.features.FEATURE_KEYS"),
                          "pooled (pre-projection, the paper) or projected (CLIP's embedding space)")
    map_dim: int = param(32, POSITIVE, "width of each projection")
    normalize: bool = param(True, boolean, "L2-normalise the projections (the paper)")
    pre_output_dim: int | None = param(None, optional(POSITIVE), "width of the pre-output layers; null: map_dim")
    activation: str = param("relu", one_of("stages.head.ops.ACTIVATIONS"), "after each pre-output layer")
    num_mapping_layers: int = param(1, POSITIVE, "linear layers in each projection")
    num_pre_output_layers: int = param(1, COUNT, "layers between the fusion and the output")
    drop_probs: tuple[float, float, float] = param(
        (0.2, 0.4, 0.1), fractions(3, "three dropout probabilities in [0, 1) (map, fusion, pre-output)",
                                   lambda v: all(p < 1 for p in v)),
        "dropout after the projections, after the fusion, in the pre-output layers")
    caption_mode: str = param("none", one_of("stages.head.captions.CAPTION_MODES"),
                              "how the caption stream enters the head, as the official code's --caption_mode")
    caption: str = param("caption", described(string, "a stream of data.texts"),
                         "which stream of data.texts is the caption")
    pretrained_map: bool = param(False, boolean,
                                 "each projection starts as a copy of CLIP's own, then ReLU and a Linear to map_dim")


@dataclass(frozen=True)
class TrainParams:
    epochs: int = param(20, POSITIVE, "epochs at most")
    batch_size: int = param(16, POSITIVE, "memes per step")
    lr: float = param(1.0e-4, number(lambda v: v > 0, "a positive number"), "AdamW's learning rate")
    weight_decay: float = param(1.0e-4, NON_NEGATIVE, "AdamW's weight decay")
    grad_clip: float = param(0.1, number(lambda v: v > 0, "a positive number"), "each run's gradient-norm bound")
    patience: int = param(20, POSITIVE, "epochs without a dev gain before stopping (20: the paper keeps the best)")
    seed: int = param(42, COUNT, "seeds initialisation, batch order and dropout")
    runs: int = param(1, POSITIVE, "independent runs (seeds seed, seed+1, ...) trained in one batched loop")
    loss: str = param("bce", one_of(("bce", "rgcl")), "bce, or RGCL's retrieval-guided contrastive loss beside it")
    rgcl_weight: float = param(0.5, number(lambda v: 0 <= v <= 1, "a number in [0, 1]"),
                               "rgcl: (1 - w) BCE + w contrastive")
    rgcl_form: str = param("nll", one_of(("nll", "triplet")), "the paper's -log form, or RGCL's shipped triplet")
    rgcl_margin: float = param(0.1, NON_NEGATIVE, "the triplet's margin")
    select: str = param("auroc", one_of(("auroc", "micro_f1", "paper_micro_f1", "macro_f1", "weighted_f1",
                                         "accuracy", "metric")),
                        "the dev metric that picks each run's best epoch (`metric`: the benchmark's own)")
    aux_weight: float = param(0.0, NON_NEGATIVE, "weight of the auxiliary labels' loss; 0: off")
    image_loss_weight: float = param(0.0, NON_NEGATIVE,
                                     "weight of a unimodal head's loss on the image projection; 0: no such head")
    text_loss_weight: float = param(0.0, NON_NEGATIVE,
                                    "weight of a unimodal head's loss on the text projection; 0: no such head")
    super_loss_weight: float = param(0.0, NON_NEGATIVE,
                                     "weight of the super output's BCE (needs data.fine_grained); 0: no super output")


@dataclass(frozen=True)
class InterpretParams:
    clusters: int = param(15, POSITIVE, "K-means clusters of the hateful memes' trigger vectors (paper Sec. 5)")
    direction_quantiles: tuple[float, float] = param(
        (0.2, 0.8), fractions(2, "two quantiles [low, high] with 0 <= low < high <= 1", lambda v: v[0] < v[1]),
        "the hateful direction D at or below / at or above: negative / positive")
    meme_quantiles: tuple[float, float] = param(
        (0.1, 0.9), fractions(2, "two quantiles [low, high] with 0 <= low < high <= 1", lambda v: v[0] < v[1]),
        "each meme's FIM at or below / at or above: negative / positive")
    pictures: bool = param(True, boolean, "contact sheets of each cluster's memes (they show hateful memes)")
    sketch_dim: int = param(4096, COUNT, "K-means on a count sketch this wide where the fused vector is wider; 0: never")


@dataclass(frozen=True)
class Params:
    data: DataParams = DataParams()
    clip: ClipParams = ClipParams()
    fusion: str = param("cross", one_of("stages.head.fusions.FUSIONS"),
                        "the FIM fusion (docs/methods.md); top-level for `dvc exp run -S fusion=align`")
    classifier: str = param("logistic", one_of(("logistic", "retrieval")),
                            "the head's logit, or a kNN vote in its embedding space")
    retrieval: RetrievalParams = RetrievalParams()
    head: HeadParams = HeadParams()
    train: TrainParams = TrainParams()
    interpret: InterpretParams = InterpretParams()


# The clip.* settings that change a feature's value: extract params, and the cache's identity.
FEATURE_SETTINGS = tuple(f.name for f in dataclasses.fields(ClipParams) if f.metadata["feature"])


def sections() -> list[tuple[str, dataclasses.Field]]:
    """(dotted key, field) of every key, in params.yaml's order."""
    keys = []
    for top in dataclasses.fields(Params):
        if dataclasses.is_dataclass(top.default):
            keys += [(f"{top.name}.{f.name}", f) for f in dataclasses.fields(top.default)]
        else:
            keys.append((top.name, top))
    return keys


def default(key: str):
    """A key's default, as params.yaml writes it."""
    value = to_dict(Params())
    for part in key.split("."):
        value = value[part]
    return value


# -- reading ----------------------------------------------------------------------------------

def load(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: params file not found (run from the project root)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from None
    return parse(raw, source=str(path))


def parse(raw, source: str = "params.yaml") -> Params:
    """Every declared key, checked; a missing, unknown or bad key is a one-line error naming it."""
    if not isinstance(raw, dict):
        raise InputError(f"{source}: expected a mapping at the top level")
    reject_unknown(raw, source)
    values: dict[str, dict] = {}
    for key, declared in sections():
        value = lookup(raw, key, source)
        try:
            checked = declared.metadata["check"](value)
        except Invalid as err:
            raise InputError(f"{source}: '{key}' must be {err}, got {value!r}") from None
        section, _, name = key.rpartition(".")
        values.setdefault(section, {})[name] = checked
    top = values.pop("")
    params = Params(**top, **{name: type(getattr(Params(), name))(**fields) for name, fields in values.items()})
    return check_together(params, source)


def lookup(raw: dict, key: str, source: str):
    node = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"{source}: missing key '{key}'")
        node = node[part]
    return node


def reject_unknown(raw: dict, source: str) -> None:
    """A typo in params.yaml fails loudly, not silently ignored."""
    known = to_dict(Params())
    for section, value in raw.items():
        if section not in known:
            raise InputError(f"{source}: unknown key '{section}'")
        if isinstance(known[section], dict):
            if not isinstance(value, dict):
                raise InputError(f"{source}: '{section}' must be a mapping, got {value!r}")
            for key in value:
                if key not in known[section]:
                    raise InputError(f"{source}: unknown key '{section}.{key}'")


def check_together(p: Params, source: str) -> Params:
    """What one key alone cannot say: data.task is a task of data.layout (null: its first),
    the fine-grained annotations lie inside data.dir, a tokenizer folder exists, the head
    reads what the cache holds."""
    from_layout = layout_tasks(p.data.layout)
    if p.data.task is not None and p.data.task not in from_layout:
        raise InputError(f"{source}: 'data.task' must be null or a task of data.layout {p.data.layout}: "
                         f"{', '.join(from_layout)}, got {p.data.task!r}")
    check_inside(p.data.fine_grained, p.data.dir, source)
    check_tokenizer(p.clip.tokenizer, source)
    check_head(p, source)
    return dataclasses.replace(p, data=dataclasses.replace(p.data, task=p.data.task or from_layout[0]))


def layout_tasks(layout: str) -> tuple[str, ...]:
    """The layout's tasks, its default first (the layout registry's entry)."""
    return importlib.import_module("stages.data.dataset").LAYOUTS[layout].tasks


def check_inside(fine_grained: str | None, data_dir: str, source: str) -> None:
    """The fine-grained annotations must sit inside data.dir: extract's DVC dependency on
    data.dir then covers them (an edit reruns extract), and `dvc add data.dir` takes them
    into the queued and --temp experiments' copies of the repository."""
    if fine_grained and not Path(os.path.abspath(fine_grained)).is_relative_to(os.path.abspath(data_dir)):
        raise InputError(f"{source}: 'data.fine_grained' ({fine_grained}) must lie inside data.dir "
                         f"({data_dir}), so that DVC tracks it with the data: copy the annotations "
                         f"to {data_dir}/fine_grained/ and set data.fine_grained: {data_dir}/fine_grained")


def check_head(p: Params, source: str) -> None:
    """A caption mode reads a stream of data.texts; a pretrained map starts from CLIP's own
    projection, so it reads the pooled features before it."""
    if p.head.caption_mode != "none" and p.head.caption not in p.data.texts:
        raise InputError(f"{source}: 'head.caption_mode: {p.head.caption_mode}' reads the stream "
                         f"head.caption ({p.head.caption}), which data.texts must name "
                         f"({', '.join(p.data.texts) or 'it names none'})")
    if p.head.pretrained_map and p.head.features != "pooled":
        raise InputError(f"{source}: 'head.pretrained_map' starts from CLIP's projection of the "
                         "pooled features: set head.features: pooled")


def check_tokenizer(tokenizer: str, source: str) -> None:
    if tokenizer != "model" and not Path(tokenizer).is_dir():
        raise InputError(f"{source}: 'clip.tokenizer' must be `model` (the model's own) or the "
                         f"folder of a local copy of its tokenizer; no folder {tokenizer}")


def to_dict(params: Params) -> dict:
    """Plain values, as stored beside a trained head (tuples as lists, as YAML reads them)."""
    return yaml.safe_load(yaml.safe_dump(dataclasses.asdict(params)))


# -- writing the two files that describe the keys ------------------------------------------------

def yaml_value(value) -> str:
    """A value as params.yaml writes it, on one line."""
    return yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("...\n").strip()


def params_yaml() -> str:
    """The committed params.yaml: every key at its default, with its meaning beside it."""
    lines = ["# The paper's configuration (Kumar & Nandakumar 2022) on the real dataset. Every key is",
             "# declared in stages/common/params.py and listed in docs/parameters.md; both files are",
             "# written by `python -m stages.common.params`."]
    section = ""
    for key, declared in sections():
        parent, _, name = key.rpartition(".")
        if parent and parent != section:
            lines.append(f"{parent}:")
        section = parent
        lines.append(f"{'  ' if parent else ''}{name}: {yaml_value(default(key))}  # {declared.metadata['meaning']}")
    return "\n".join(lines) + "\n"


def parameters_md() -> str:
    """docs/parameters.md: one row per key."""
    rows = [f"| `{key}` | `{yaml_value(default(key))}` | {expected(declared.metadata['check'])} | "
            f"{declared.metadata['meaning']} |" for key, declared in sections()]
    return "\n".join([
        "# Parameters (`params.yaml`)", "",
        "Written by `python -m stages.common.params` from the declarations in `stages/common/params.py`.",
        "Every key is checked before a stage runs; a bad value is a one-line error naming the key.",
        "The defaults are the paper's configuration, as the committed `params.yaml` holds them.", "",
        "| key | default | allowed | meaning |", "| --- | --- | --- | --- |", *rows]) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write params.yaml and docs/parameters.md from the declarations.")
    parser.add_argument("--root", default=str(ROOT))
    args = parser.parse_args(argv)
    root = Path(args.root)
    (root / PARAMS_FILE).write_text(params_yaml(), encoding="utf-8")
    (root / DOCS).write_text(parameters_md(), encoding="utf-8")
    print(f"wrote {root / PARAMS_FILE} and {root / DOCS}")


if __name__ == "__main__":
    main()
