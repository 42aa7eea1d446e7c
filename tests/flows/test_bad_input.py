"""Bad input through the real stage entry points: one clear line, exit code 2, nothing half-written."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stages import evaluate, extract, predict, train
from stages.cache import features
from stages.head import inputs
from tests.helpers import ROOT, leftovers, run_entry, write_params


@pytest.fixture
def memes(kaggle_set, copy_of, tmp_path, monkeypatch):
    """A private, damageable copy of the kaggle-layout set, params pointing at it, cwd = tmp."""
    root = copy_of(kaggle_set[0])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    write_params(work, root, train__epochs=2)
    return root


def first_line(root: Path, split: str = "train") -> dict:
    return json.loads((root / f"{split}.jsonl").read_text().splitlines()[0])


def replace_line(root: Path, number: int, text: str, split: str = "train") -> None:
    path = root / f"{split}.jsonl"
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("line, message", [
    ('{"id": 5, "img": ', "train.jsonl:3: not valid JSON"),
    ('{"id": 5, "text": "x", "label": 0}', "train.jsonl:3: missing 'img'"),
    ('{"id": 5, "img": "img/00005.png", "label": 3, "text": "x"}', "train.jsonl:3: 'label' must be 0 or 1, got 3"),
    ('{"id": 5, "img": "img/00005.png", "text": "x"}', "train.jsonl:3: missing 'label' in a labeled split"),
])
def test_bad_jsonl_lines(memes, monkeypatch, capsys, line, message):
    replace_line(memes, 3, line)
    code, err, _ = run_entry(extract, monkeypatch, capsys)
    assert code == 2 and message in err and str(memes) in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert leftovers(Path.cwd()) == []


def test_duplicate_id_in_one_split(memes, monkeypatch, capsys):
    replace_line(memes, 4, json.dumps({**first_line(memes), "text": "another caption"}))
    code, err, _ = run_entry(extract, monkeypatch, capsys)
    assert code == 2 and "train.jsonl:4: duplicate id" in err and "line 1" in err


def damage_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.unlink(), "image file not found"),
    (lambda p: p.write_bytes(b""), "image file is empty"),
    (damage_truncate, "unreadable image"),
    (lambda p: p.write_text("<html>not an image</html>"), "not an image Pillow can read"),
])
def test_bad_images_fail_naming_the_file(memes, monkeypatch, capsys, damage, message):
    img = memes / first_line(memes, "dev")["img"]
    damage(img)
    code, err, _ = run_entry(extract, monkeypatch, capsys)
    assert code == 2 and str(img) in err and message in err and "on_bad_image: skip" in err
    assert "Traceback" not in err
    assert not features.CACHE.exists() and leftovers(Path.cwd()) == []


def test_image_bomb(memes, monkeypatch, capsys):
    img = memes / first_line(memes, "dev")["img"]
    Image.new("L", (4000, 4000)).save(img)  # 16 Mpx, over a lowered limit of 4 Mpx
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4_000_000)  # workers fork and inherit it
    code, err, _ = run_entry(extract, monkeypatch, capsys)
    assert code == 2 and str(img) in err and "decompression bomb" in err


def test_skip_leaves_bad_memes_out_and_lists_them(memes, monkeypatch, capsys):
    write_params(Path.cwd(), memes, data__on_bad_image="skip")
    dev = [json.loads(l) for l in (memes / "dev.jsonl").read_text().splitlines()]
    (memes / dev[0]["img"]).write_bytes(b"")
    (memes / dev[1]["img"]).unlink()
    code, err, out = run_entry(extract, monkeypatch, capsys)
    assert code == 0, err
    cached, _ = inputs.read(features.CACHE)
    assert cached["dev"].ids == [str(m["id"]) for m in dev[2:]]
    assert len(cached["train"]) == len((memes / "train.jsonl").read_text().splitlines())
    report = pd.read_csv(extract.BAD_IMAGES_REPORT, dtype=str)
    assert report["id"].tolist() == [str(dev[0]["id"]), str(dev[1]["id"])]
    assert report["img"].tolist() == [dev[0]["img"], dev[1]["img"]]
    assert "empty" in report["reason"][0] and "not found" in report["reason"][1]
    assert f"skipped meme {dev[0]['id']} in dev" in out


def test_skip_still_fails_when_a_split_loses_every_meme(memes, monkeypatch, capsys):
    write_params(Path.cwd(), memes, data__on_bad_image="skip")
    for line in (memes / "dev.jsonl").read_text().splitlines():
        (memes / json.loads(line)["img"]).unlink()
    code, err, _ = run_entry(extract, monkeypatch, capsys)
    assert code == 2 and "split 'dev': every meme's image was unreadable" in err
    assert not features.CACHE.exists()


def test_awkward_but_valid_input_is_accepted(memes, monkeypatch, capsys):
    lines = [json.loads(l) for l in (memes / "train.jsonl").read_text().splitlines()]
    Image.new("CMYK", (50, 40), (0, 255, 0, 0)).save(memes / lines[0]["img"], format="JPEG")
    lines[1]["text"] = ""
    lines[2]["text"] = "very long caption " * 60  # far past CLIP's 77 tokens
    lines[3]["text"] = "émoji 😂🔥 and ünïcode ✓"
    (memes / "train.jsonl").write_text("".join(json.dumps(l, ensure_ascii=False) + "\n" for l in lines))
    code, err, _ = run_entry(extract, monkeypatch, capsys)
    assert code == 0, err
    assert inputs.read(features.CACHE)[0]["train"].ids[:4] == [str(l["id"]) for l in lines[:4]]


def test_missing_data_dir_and_empty_data_dir(memes, monkeypatch, capsys, tmp_path):
    write_params(Path.cwd(), tmp_path / "nowhere")
    code, err, _ = run_entry(extract, monkeypatch, capsys)
    assert code == 2 and "nowhere does not exist" in err and "make demo" in err
    (tmp_path / "empty").mkdir()
    write_params(Path.cwd(), tmp_path / "empty")
    code, err, _ = run_entry(extract, monkeypatch, capsys)
    assert code == 2 and "no *.jsonl split files" in err


@pytest.fixture
def extracted(memes, monkeypatch, capsys):
    code, err, _ = run_entry(extract, monkeypatch, capsys)
    assert code == 0, err
    return memes


def test_dev_split_missing_or_unlabeled(extracted, monkeypatch, capsys):
    write_params(Path.cwd(), extracted, dev_split="dev_seen")
    code, err, _ = run_entry(train, monkeypatch, capsys)
    assert code == 2 and "no split 'dev_seen'" in err and "data.dev_split" in err
    write_params(Path.cwd(), extracted, dev_split="test")
    code, err, _ = run_entry(train, monkeypatch, capsys)
    assert code == 2 and "split 'test' has no labels" in err
    assert not Path("models/head.pt").exists()


def test_params_errors_through_a_stage(extracted, monkeypatch, capsys):
    write_params(Path.cwd(), extracted, fusion="outer")
    code, err, _ = run_entry(train, monkeypatch, capsys)
    assert code == 2 and err.strip() == (
        "error: params.yaml: 'fusion' must be one of align, cross, cross_nd, concat, "
        "align_concat, attention_m, image, text, got 'outer'")


def test_cache_from_another_encoder(extracted, monkeypatch, capsys):
    write_params(Path.cwd(), extracted, clip__model="ViT-B-32")
    code, err, _ = run_entry(train, monkeypatch, capsys)
    assert code == 2 and "extracted with clip.model=tiny" in err and "ViT-B-32" in err


def test_cache_from_another_data_version(extracted, monkeypatch, capsys):
    replace_line(extracted, 2, json.dumps({**json.loads((extracted / "train.jsonl").read_text().splitlines()[1]),
                                           "text": "an edited caption"}))
    code, err, _ = run_entry(train, monkeypatch, capsys)
    assert code == 2 and "another version of the data" in err


def test_non_finite_cache(extracted, monkeypatch, capsys):
    with h5py.File(features.CACHE, "r+") as f:
        f["dev/text"][0, 0] = np.inf
    code, err, _ = run_entry(train, monkeypatch, capsys)
    assert code == 2 and "split 'dev' has non-finite text features" in err


def test_head_trained_on_another_cache(extracted, monkeypatch, capsys):
    assert run_entry(train, monkeypatch, capsys)[0] == 0
    write_params(Path.cwd(), extracted, data__on_bad_image="skip")  # a new cache identity
    assert run_entry(extract, monkeypatch, capsys)[0] == 0
    for stage in (evaluate, predict):
        code, err, _ = run_entry(stage, monkeypatch, capsys)
        assert code == 2 and "was trained on another feature cache" in err, stage
    assert not Path("reports/metrics.json").exists() and not Path("reports/predictions").exists()


def test_predict_new_memes_with_bad_input(extracted, monkeypatch, capsys, tmp_path):
    assert run_entry(train, monkeypatch, capsys)[0] == 0
    not_image = tmp_path / "meme.png"
    not_image.write_text("hello")
    for argv, message in [
        (["--image", str(tmp_path / "missing.png"), "--text", "hi"], "missing.png: image file not found"),
        (["--image", str(not_image), "--text", "hi"], "meme.png: unreadable image (not an image"),
        (["--image", str(not_image)], "needs both --image and --text"),
        (["--jsonl", str(tmp_path / "none.jsonl")], "none.jsonl: jsonl file not found"),
    ]:
        code, err, _ = run_entry(predict, monkeypatch, capsys, *argv)
        assert code == 2 and message in err and "Traceback" not in err, argv
    bad = tmp_path / "new.jsonl"
    bad.write_text('{"id": 1, "img": "a.png", "text": "x"}\n{"id": 2, "img": "b.png"\n')
    code, err, _ = run_entry(predict, monkeypatch, capsys, "--jsonl", str(bad))
    assert code == 2 and "new.jsonl:2: not valid JSON" in err


@pytest.mark.parametrize("settings", [{}, {"clip__resize": "shortest", "clip__precision": "bf16"}])
def test_predict_new_memes_matches_the_pipeline(memes, monkeypatch, capsys, settings):
    """New memes are encoded with the settings of the cache the head was trained on, whatever
    params.yaml says now."""
    write_params(Path.cwd(), memes, train__epochs=2, **settings)
    for stage in (extract, train, predict):
        assert run_entry(stage, monkeypatch, capsys)[0] == 0, stage
    pipeline = pd.read_csv("reports/predictions/test.csv", dtype={"id": str})
    write_params(Path.cwd(), memes, train__epochs=2)  # the committed squash and fp32
    code, err, out = run_entry(predict, monkeypatch, capsys, "--jsonl", str(memes / "test.jsonl"))
    assert code == 0, err
    new = pd.read_csv(io.StringIO(out), dtype={"id": str})
    assert new["id"].tolist() == pipeline["id"].tolist()
    np.testing.assert_allclose(new["prob_hate"], pipeline["prob_hate"], atol=1e-5)


def test_the_real_cli_prints_one_line_and_exits_2(memes):
    replace_line(memes, 2, "{oops")
    result = subprocess.run([sys.executable, "-m", "stages.extract"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {memes}/train.jsonl:2: not valid JSON")
    assert "Traceback" not in result.stderr


def test_kill_9_mid_extraction_keeps_the_old_cache_and_resumes(memes, monkeypatch, capsys):
    assert run_entry(extract, monkeypatch, capsys)[0] == 0
    previous = features.CACHE.read_bytes()
    write_params(Path.cwd(), memes, clip__batch_size=1)
    process = subprocess.Popen([sys.executable, "-m", "stages.extract", "--max-unit", "16"],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while not list(Path("features").glob(".clip_features.h5.parts-*/images-*.npz")):
        assert process.poll() is None and time.monotonic() < deadline, "extract ended too early"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)  # no handler runs, nothing is cleaned up
    process.wait()
    assert features.CACHE.read_bytes() == previous
    code, err, out = run_entry(extract, monkeypatch, capsys, "--max-unit", "16")
    assert code == 0, err
    assert "resuming images" in out
    assert not list(Path("features").glob(".clip_features.h5.parts-*"))
    np.testing.assert_allclose(inputs.read(features.CACHE)[0]["train"].image,
                               h5py.File(io.BytesIO(previous), "r")["train/image"][()],
                               rtol=1e-5, atol=1e-6)
