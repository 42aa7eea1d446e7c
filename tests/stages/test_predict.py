"""stages/predict.py: the splits' files anew, exactly as evaluate wrote them, and memes added
to the retrieval index."""
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from stages import evaluate, predict
from stages.cache import features
from stages.common.errors import InputError
from stages.data.task import HATEFUL
from stages.head import hateclipper, inputs, retrieval
from stages.report import predictions
from tests.helpers import head_config, write_params


def test_predict_writes_the_very_files_evaluate_wrote(five_runs, tmp_path, monkeypatch):
    """`python -m stages.predict` without arguments, outside the pipeline, writes every split's
    predictions and submission files anew: the runs' ensemble of the saved head on the cache
    (computed here directly), byte for byte as evaluate wrote them."""
    work = tmp_path / "work"
    shutil.copytree(five_runs, work)
    monkeypatch.chdir(work)
    folders = (predictions.PREDICTIONS, predictions.SUBMISSION)
    written = {path: path.read_bytes() for folder in folders for path in sorted(folder.iterdir())}
    for folder in folders:
        shutil.rmtree(folder)
    predict.main([])
    assert {path: path.read_bytes() for folder in folders for path in sorted(folder.iterdir())} == written
    assert len(written) == 6
    head, _ = hateclipper.load(hateclipper.CHECKPOINT)
    for name, split in inputs.read(features.CACHE)[0].items():
        table = pd.read_csv(predictions.PREDICTIONS / f"{name}.csv", dtype={"id": str})
        ensemble = hateclipper.predict_probs(head, split.image, split.text).mean(0)[:, 0]
        assert table["id"].tolist() == split.ids, name
        np.testing.assert_allclose(table["prob_hate"], ensemble, rtol=1e-6, err_msg=name)
        submitted = pd.read_csv(predictions.SUBMISSION / f"{name}.csv", dtype={"id": str})
        np.testing.assert_allclose(submitted["proba"], ensemble, rtol=1e-6, err_msg=name)


def test_added_memes_change_their_neighbours_predictions_at_once(retrieval_workspace, kaggle_set, capsys):
    root, _ = kaggle_set
    lines = [json.loads(line) for line in (root / "dev.jsonl").read_text().splitlines()][:6]
    new = retrieval_workspace / "new"  # new memes beside their own jsonl files
    (new / "img").mkdir(parents=True)
    for line in lines:
        shutil.copy(root / line["img"], new / line["img"])
    queries = new / "queries.jsonl"
    queries.write_text("".join(json.dumps({k: v for k, v in l.items() if k != "label"}) + "\n"
                               for l in lines))
    evaluate.main([])
    metrics = evaluate.METRICS.read_text()
    capsys.readouterr()
    predict.main(["--jsonl", str(queries)])
    before = pd.read_csv(io.StringIO(capsys.readouterr().out))["prob_hate"].to_numpy()
    hateful = new / "hateful.jsonl"  # the same memes, now known to be hateful
    hateful.write_text("".join(json.dumps({**l, "label": 1}) + "\n" for l in lines))
    predict.main(["--add-to-index", str(hateful)])
    assert retrieval.ADDED.is_file()
    capsys.readouterr()
    predict.main(["--jsonl", str(queries)])
    after = pd.read_csv(io.StringIO(capsys.readouterr().out))["prob_hate"].to_numpy()
    assert (after > before).all()  # each meme's nearest neighbour is now its hateful twin
    evaluate.main([])  # the pipeline's own metrics keep to the training split
    assert evaluate.METRICS.read_text() == metrics
    unlabeled = new / "unlabeled.jsonl"
    unlabeled.write_text(queries.read_text())
    with pytest.raises(InputError, match="unlabeled.jsonl:1: memes added to the retrieval index need their labels"):
        predict.main(["--add-to-index", str(unlabeled)])
    broken = new / "broken.jsonl"
    broken.write_text(json.dumps({**lines[0], "label": 1, "img": "img/missing.png"}) + "\n")
    added = retrieval.ADDED.read_bytes()
    with pytest.raises(InputError, match="missing.png: image file not found"):
        predict.main(["--add-to-index", str(broken)])
    assert retrieval.ADDED.read_bytes() == added  # nothing half-written


@pytest.mark.parametrize("argv", [["--image", "x.png", "--text", "hi"], ["--jsonl", "new.jsonl"]])
def test_new_memes_are_refused_by_a_head_that_reads_a_caption_stream(tmp_path, monkeypatch, argv):
    """A new meme brings its image and text, not the caption a replace_text head was trained
    on: scoring it would feed the head the wrong text, so it is a one-line error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "new.jsonl").write_text('{"id": 1, "img": "x.png", "text": "hi"}\n')
    hateclipper.save(hateclipper.CHECKPOINT, hateclipper.HateClipper(head_config(caption_mode="replace_text")),
                     {"features": "pooled", "caption": "caption", "task": HATEFUL.to_json()})
    write_params(tmp_path, tmp_path, data__texts=["caption"], head__caption_mode="replace_text")
    with pytest.raises(InputError, match="reads a caption stream .*replace_text.*new memes do not bring"):
        predict.main(argv)
