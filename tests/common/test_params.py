"""stages/common/params.py: params.yaml read into typed values, every bad value named in one
line, and docs/parameters.md and params.yaml written from the one declaration per key."""
import pytest

from stages.common import params
from stages.common.errors import InputError
from tests.helpers import ROOT, params_dict


def test_committed_params_are_the_papers_configuration():
    p = params.load(ROOT / "params.yaml")
    assert (p.clip.model, p.clip.pretrained) == ("ViT-L-14", "openai")
    assert p.data.dir == "data/hateful_memes"
    assert p.fusion == "cross" and p.head.map_dim == 32 and p.head.drop_probs == (0.2, 0.4, 0.1)
    # the official code's features: squashed images, fp32 (QuickGELU follows the tag)
    assert (p.clip.resize, p.clip.precision, p.head.features) == ("squash", "fp32", "pooled")
    # the released run keeps the best dev epoch of all 20: no early stop
    assert p.train.epochs == 20 and p.train.patience >= p.train.epochs


def test_values_are_typed():
    p = params.parse(params_dict("somewhere"))
    assert isinstance(p.train.lr, float) and isinstance(p.head.drop_probs, tuple)
    assert p.data.dir == "somewhere"


@pytest.mark.parametrize("override, message", [
    ({"fusion": "outer"}, "'fusion' must be one of align, cross, cross_nd, concat, align_concat, attention_m, image, text"),
    ({"data__layout": "csv"}, "'data.layout' must be one of hateful_memes, propaganda, tamil"),
    ({"data__dev_fraction": 1.0}, "'data.dev_fraction' must be a number in [0, 1)"),
    ({"data__fine_grained": ""}, "'data.fine_grained' must be a non-empty string"),
    ({"data__fine_grained": "fine_grained"}, "'data.fine_grained' (fine_grained) must lie inside data.dir (d)"),
    ({"data__fine_grained": "d/../fine"}, "must lie inside data.dir (d), so that DVC tracks it"),
    ({"head__normalize": "yes"}, "'head.normalize' must be true or false"),
    ({"head__pre_output_dim": 0}, "'head.pre_output_dim' must be a positive integer"),
    ({"head__activation": "tanh"}, "'head.activation' must be one of relu, gelu"),
    ({"train__select": "loss"}, "'train.select' must be one of auroc, micro_f1, paper_micro_f1"),
    ({"train__aux_weight": -1}, "'train.aux_weight' must be a non-negative number"),
    ({"interpret__clusters": 0}, "'interpret.clusters' must be a positive integer"),
    ({"interpret__meme_quantiles": [0.9, 0.1]}, "'interpret.meme_quantiles' must be two quantiles"),
    ({"interpret__pictures": 1}, "'interpret.pictures' must be true or false"),
    ({"interpret__sketch_dim": -1}, "'interpret.sketch_dim' must be a non-negative integer"),
    ({"head__map_dim": 0}, "'head.map_dim' must be a positive integer, got 0"),
    ({"train__batch_size": -4}, "'train.batch_size' must be a positive integer"),
    ({"train__epochs": 2.5}, "'train.epochs' must be a positive integer"),
    ({"train__lr": 0}, "'train.lr' must be a positive number"),
    ({"head__drop_probs": [0.2, 1.0, 0.1]}, "'head.drop_probs' must be three dropout probabilities in [0, 1)"),
    ({"head__drop_probs": [0.2, 0.1]}, "'head.drop_probs' must be three"),
    ({"data__on_bad_image": "ignore"}, "'data.on_bad_image' must be one of fail, skip"),
    ({"clip__device": "tpu"}, "'clip.device' must be one of auto, cpu, cuda"),
    ({"clip__resize": "crop"}, "'clip.resize' must be one of squash, shortest, longest"),
    ({"clip__precision": "auto"}, "'clip.precision' must be one of fp32, bf16, fp16"),
    ({"head__features": "raw"}, "'head.features' must be one of pooled, projected"),
    ({"data__texts": ["caption", "caption"]}, "'data.texts' must be a list of distinct names"),
    ({"data__texts": ["a/b"]}, "'data.texts' must be a list of distinct names"),
    ({"head__caption_mode": "prepend"}, "'head.caption_mode' must be one of none, replace_image"),
    ({"head__caption_mode": "replace_text"},
     "'head.caption_mode: replace_text' reads the stream head.caption (caption), which data.texts must "
     "name (it names none)"),
    ({"head__caption_mode": "replace_text", "data__texts": ["ocr"]}, "which data.texts must name (ocr)"),
    ({"head__pretrained_map": True, "head__features": "projected"},
     "'head.pretrained_map' starts from CLIP's projection of the pooled features: set head.features: pooled"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(InputError) as err:
        params.parse(params_dict("d", **override))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_key_is_named():
    raw = params_dict("d")
    del raw["train"]["patience"]
    with pytest.raises(InputError, match="missing key 'train.patience'"):
        params.parse(raw)


def test_unknown_key_is_named():
    raw = params_dict("d")
    raw["head"]["mapdim"] = 64
    with pytest.raises(InputError, match="unknown key 'head.mapdim'"):
        params.parse(raw)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="params file not found"):
        params.load(tmp_path / "params.yaml")


def test_fine_grained_annotations_inside_data_dir_are_accepted():
    assert params.parse(params_dict("d", data__fine_grained="d/fine_grained")).data.fine_grained == "d/fine_grained"


def test_docs_and_params_yaml_are_what_the_declarations_write():
    """One declaration per key: docs/parameters.md's table and params.yaml (values and
    comments) are written from it (`python -m stages.common.params`), so they agree key for key."""
    assert (ROOT / "docs/parameters.md").read_text() == params.parameters_md()
    assert (ROOT / "params.yaml").read_text() == params.params_yaml()
    keys = [key for key, _ in params.sections()]
    assert [line.split("`")[1] for line in params.parameters_md().splitlines() if line.startswith("| `")] == keys


def test_the_committed_params_are_the_declared_defaults():
    committed = params.load(ROOT / "params.yaml")
    assert params.to_dict(committed) == {**params.to_dict(params.Params()),
                                         "data": {**params.to_dict(params.Params())["data"], "task": "hateful"}}
