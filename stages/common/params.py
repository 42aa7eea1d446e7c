"""params.yaml, parsed and validated in one place; stages receive typed values, not dicts."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from stages.common.errors import InputError

FUSIONS = ("align", "cross", "cross_nd", "concat", "align_concat", "attention_m", "image", "text")
# The release readers (stages/data/dataset.py) and each one's tasks, its default first (data.task)
LAYOUT_TASKS = {
    "hateful_memes": ("hateful",), "propaganda": ("techniques",), "tamil": ("troll",),
    "harmeme": ("harmful", "intensity", "target"), "multioff": ("offensive",),
    "mami": ("misogynous", "types"), "pridemm": ("hate", "target", "stance", "humour"),
}
LAYOUTS = tuple(LAYOUT_TASKS)
ACTIVATIONS = ("relu", "gelu")
# the dev metric of the best epoch; `metric`: the task's own (the benchmark's official metric)
SELECTIONS = ("auroc", "micro_f1", "paper_micro_f1", "macro_f1", "weighted_f1", "accuracy", "metric")
RGCL_FORMS = ("nll", "triplet")  # the paper's -log form | RGCL's shipped script's triplet
CLASSIFIERS = ("logistic", "retrieval")  # the head's logit | RGCL's kNN vote in its embedding space
LOSSES = ("bce", "rgcl")
HEAD_FEATURES = ("pooled", "projected")
BAD_IMAGE_POLICIES = ("fail", "skip")
DEVICES = ("auto", "cpu", "cuda")
# squash: the official code's resize((S, S)); model: the pretrained tag's own mode and interpolation
RESIZE_MODES = ("squash", "shortest", "longest", "model")
PRECISIONS = ("fp32", "bf16", "fp16")  # fp32: the official code's
# The clip.* settings that change a feature's value: extract params, and the cache's identity.
FEATURE_SETTINGS = ("model", "pretrained", "resize", "precision", "tokenizer")
# (clip.augment_views adds views beside the plain features and changes none of them.)


@dataclass(frozen=True)
class DataParams:
    dir: str
    layout: str
    task: str  # which of the release's label sets is the primary task
    fine_grained: str | None  # folder of the fine-grained annotations, or None
    dev_fraction: float  # of train, carved into a `dev` split (0: none)
    dev_split: str
    on_bad_image: str


@dataclass(frozen=True)
class ClipParams:
    model: str
    pretrained: str
    resize: str
    precision: str
    tokenizer: str  # `model` (the model's own, from open_clip) or a local copy's folder
    augment_views: int
    batch_size: int
    device: str

    def feature_settings(self) -> dict[str, str]:
        """What decides the features (not batch size or device): keyword arguments of encoder.load."""
        return {key: getattr(self, key) for key in FEATURE_SETTINGS}


@dataclass(frozen=True)
class HeadParams:
    features: str
    map_dim: int
    normalize: bool  # L2-normalise the projections (the paper); false: the seed's head
    pre_output_dim: int | None  # None: map_dim (the paper); 128: the seed's head
    activation: str  # after each pre-output layer: relu (the paper) | gelu (the seed's head)
    num_mapping_layers: int
    num_pre_output_layers: int
    drop_probs: tuple[float, float, float]


@dataclass(frozen=True)
class TrainParams:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    grad_clip: float
    patience: int
    seed: int
    runs: int
    loss: str
    rgcl_weight: float
    rgcl_form: str
    rgcl_margin: float
    select: str
    aux_weight: float


@dataclass(frozen=True)
class RetrievalParams:
    k: int
    self_positive: bool  # RGCL's code: an anchor may be its own pseudo-gold positive
    hard_negative_pool: int  # 0: the nearest other-label meme anywhere; K: among the K nearest


@dataclass(frozen=True)
class InterpretParams:
    clusters: int  # K-means clusters of the hateful memes' trigger vectors (15 in the paper)
    direction_quantiles: tuple[float, float]  # D's negative / positive cut-offs (0.2, 0.8)
    meme_quantiles: tuple[float, float]  # each meme's FIM's negative / positive cut-offs (0.1, 0.9)
    pictures: bool  # contact sheets of each cluster's memes
    sketch_dim: int  # K-means on a count sketch this wide when the fused vector is wider; 0: never


@dataclass(frozen=True)
class Params:
    data: DataParams
    clip: ClipParams
    fusion: str
    classifier: str
    retrieval: RetrievalParams
    head: HeadParams
    train: TrainParams
    interpret: InterpretParams


def load(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: params file not found (run from the project root)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from None
    return parse(raw, source=str(path))


def parse(raw, source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise InputError(f"{source}: expected a mapping at the top level")
    reader = _Reader(raw, source)
    layout = reader.choice("data.layout", LAYOUTS)
    data = DataParams(
        dir=reader.string("data.dir"),
        layout=layout,
        task=reader.layout_task("data.task", layout),
        fine_grained=reader.optional_string("data.fine_grained"),
        dev_fraction=reader.float_below_one("data.dev_fraction"),
        dev_split=reader.string("data.dev_split"),
        on_bad_image=reader.choice("data.on_bad_image", BAD_IMAGE_POLICIES),
    )
    check_inside(data.fine_grained, data.dir, source)
    clip = ClipParams(
        model=reader.string("clip.model"),
        pretrained=reader.string("clip.pretrained"),
        resize=reader.choice("clip.resize", RESIZE_MODES),
        precision=reader.choice("clip.precision", PRECISIONS),
        tokenizer=reader.string("clip.tokenizer"),
        augment_views=reader.count("clip.augment_views"),
        batch_size=reader.positive_int("clip.batch_size"),
        device=reader.choice("clip.device", DEVICES),
    )
    check_tokenizer(clip.tokenizer, source)
    head = HeadParams(
        features=reader.choice("head.features", HEAD_FEATURES),
        map_dim=reader.positive_int("head.map_dim"),
        normalize=reader.boolean("head.normalize"),
        pre_output_dim=reader.optional_positive_int("head.pre_output_dim"),
        activation=reader.choice("head.activation", ACTIVATIONS),
        num_mapping_layers=reader.positive_int("head.num_mapping_layers"),
        num_pre_output_layers=reader.count("head.num_pre_output_layers"),
        drop_probs=reader.drop_probs("head.drop_probs"),
    )
    train = TrainParams(
        epochs=reader.positive_int("train.epochs"),
        batch_size=reader.positive_int("train.batch_size"),
        lr=reader.positive_float("train.lr"),
        weight_decay=reader.non_negative_float("train.weight_decay"),
        grad_clip=reader.positive_float("train.grad_clip"),
        patience=reader.positive_int("train.patience"),
        seed=reader.count("train.seed"),
        runs=reader.positive_int("train.runs"),
        loss=reader.choice("train.loss", LOSSES),
        rgcl_weight=reader.unit_float("train.rgcl_weight"),
        rgcl_form=reader.choice("train.rgcl_form", RGCL_FORMS),
        rgcl_margin=reader.non_negative_float("train.rgcl_margin"),
        select=reader.choice("train.select", SELECTIONS),
        aux_weight=reader.non_negative_float("train.aux_weight"),
    )
    interpret = InterpretParams(
        clusters=reader.positive_int("interpret.clusters"),
        direction_quantiles=reader.quantile_pair("interpret.direction_quantiles"),
        meme_quantiles=reader.quantile_pair("interpret.meme_quantiles"),
        pictures=reader.boolean("interpret.pictures"),
        sketch_dim=reader.count("interpret.sketch_dim"),
    )
    params = Params(data, clip, reader.choice("fusion", FUSIONS),
                    reader.choice("classifier", CLASSIFIERS),
                    RetrievalParams(k=reader.positive_int("retrieval.k"),
                                    self_positive=reader.boolean("retrieval.self_positive"),
                                    hard_negative_pool=reader.count("retrieval.hard_negative_pool")),
                    head, train, interpret)
    reader.reject_unknown(params)
    return params


def registry(vocabulary: tuple[str, ...], entries: dict, key: str) -> dict:
    """A table keyed by one of the vocabularies above (fusions, activations, layouts), which
    are the one list of each: refused at import unless it has exactly one entry per name, in
    the same order."""
    if tuple(entries) != vocabulary:
        raise RuntimeError(f"the table for {key} has {', '.join(entries)}; params.py lists {', '.join(vocabulary)}")
    return entries


def check_inside(fine_grained: str | None, data_dir: str, source: str) -> None:
    """The fine-grained annotations must sit inside data.dir: extract's DVC dependency on
    data.dir then covers them (an edit reruns extract), and `dvc add data.dir` takes them
    into the queued and --temp experiments' copies of the repository."""
    if fine_grained and not Path(os.path.abspath(fine_grained)).is_relative_to(os.path.abspath(data_dir)):
        raise InputError(f"{source}: 'data.fine_grained' ({fine_grained}) must lie inside data.dir "
                         f"({data_dir}), so that DVC tracks it with the data: copy the annotations "
                         f"to {data_dir}/fine_grained/ and set data.fine_grained: {data_dir}/fine_grained")


def check_tokenizer(tokenizer: str, source: str) -> None:
    if tokenizer != "model" and not Path(tokenizer).is_dir():
        raise InputError(f"{source}: 'clip.tokenizer' must be `model` (the model's own) or the "
                         f"folder of a local copy of its tokenizer; no folder {tokenizer}")


def to_dict(params: Params) -> dict:
    """Plain values, as stored beside a trained head."""
    return dataclasses.asdict(params)


class _Reader:
    """Looks up dotted keys and raises one-line errors that name the key."""

    def __init__(self, raw: dict, source: str):
        self.raw, self.source = raw, source

    def _get(self, key: str):
        node = self.raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise InputError(f"{self.source}: missing key '{key}'")
            node = node[part]
        return node

    def _fail(self, key: str, expected: str, value) -> InputError:
        return InputError(f"{self.source}: '{key}' must be {expected}, got {value!r}")

    def string(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, "a non-empty string", value)
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self._get(key)
        if value not in allowed:
            raise self._fail(key, "one of " + ", ".join(allowed), value)
        return value

    def layout_task(self, key: str, layout: str) -> str:
        """One of the layout's tasks; null is its default, the first."""
        value = self._get(key)
        if value is None:
            return LAYOUT_TASKS[layout][0]
        if value not in LAYOUT_TASKS[layout]:
            raise self._fail(key, f"null or a task of data.layout {layout}: "
                                  + ", ".join(LAYOUT_TASKS[layout]), value)
        return value

    def _int(self, key: str, minimum: int, expected: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._fail(key, expected, value)
        return value

    def positive_int(self, key: str) -> int:
        return self._int(key, 1, "a positive integer")

    def optional_positive_int(self, key: str) -> int | None:
        return None if self._get(key) is None else self.positive_int(key)

    def optional_string(self, key: str) -> str | None:
        return None if self._get(key) is None else self.string(key)

    def count(self, key: str) -> int:
        return self._int(key, 0, "a non-negative integer")

    def _float(self, key: str, ok, expected: str) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(key, expected, value)
        if not math.isfinite(value) or not ok(value):
            raise self._fail(key, expected, value)
        return float(value)

    def positive_float(self, key: str) -> float:
        return self._float(key, lambda v: v > 0, "a positive number")

    def non_negative_float(self, key: str) -> float:
        return self._float(key, lambda v: v >= 0, "a non-negative number")

    def float_below_one(self, key: str) -> float:
        return self._float(key, lambda v: 0 <= v < 1, "a number in [0, 1)")

    def unit_float(self, key: str) -> float:
        return self._float(key, lambda v: 0 <= v <= 1, "a number in [0, 1]")

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def quantile_pair(self, key: str) -> tuple[float, float]:
        """[low, high] with 0 <= low < high <= 1."""
        value = self._get(key)
        expected = "two quantiles [low, high] with 0 <= low < high <= 1"
        if (not isinstance(value, list) or len(value) != 2
                or any(isinstance(q, bool) or not isinstance(q, (int, float)) for q in value)
                or not 0 <= value[0] < value[1] <= 1):
            raise self._fail(key, expected, value)
        return float(value[0]), float(value[1])

    def drop_probs(self, key: str) -> tuple[float, float, float]:
        value = self._get(key)
        expected = "three dropout probabilities in [0, 1) (map, fusion, pre-output)"
        if not isinstance(value, list) or len(value) != 3:
            raise self._fail(key, expected, value)
        for p in value:
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
                raise self._fail(key, expected, value)
        return tuple(float(p) for p in value)

    def reject_unknown(self, params: Params) -> None:
        """A typo in params.yaml should fail loudly, not be silently ignored."""
        known = to_dict(params)
        for section, value in self.raw.items():
            if section not in known:
                raise InputError(f"{self.source}: unknown key '{section}'")
            if isinstance(known[section], dict):
                if not isinstance(value, dict):
                    raise self._fail(section, "a mapping", value)
                for key in value:
                    if key not in known[section]:
                        raise InputError(f"{self.source}: unknown key '{section}.{key}'")
