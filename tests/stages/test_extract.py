"""stages/extract.py: the cache of every split, each unique image and caption encoded once,
resumed after an interruption, a previous cache kept on failure, augmented views."""
import json
from collections import defaultdict

import h5py
import numpy as np
import pytest

from scripts import synthetic
from stages import extract
from stages.cache import features, resume_store
from stages.common import params
from stages.common.errors import InputError
from stages.data import dataset, texts
from stages.encoder import clip
from stages.head import inputs
from tests.helpers import extracted, params_dict


def extract_params(root, **overrides):
    return params.parse(params_dict(root, "dev_seen", **overrides))


@pytest.fixture(scope="module")
def challenge_cache(challenge_set, tmp_path_factory):
    """One extraction of the full-challenge layout, shared by the read-only tests below."""
    root, _ = challenge_set
    workdir = tmp_path_factory.mktemp("extract")
    return extracted(workdir, extract_params(root))


def test_all_splits_in_jsonl_order(challenge_set, challenge_cache):
    root, _ = challenge_set
    cached, attrs = inputs.read(challenge_cache)
    assert set(cached) == {"train", "dev_seen", "dev_unseen", "test_seen", "test_unseen"}
    for name in cached:
        lines = [json.loads(l) for l in (root / f"{name}.jsonl").read_text().splitlines()]
        assert cached[name].ids == [str(l["id"]) for l in lines]
        assert cached[name].labels.tolist() == [[l.get("label", -1)] for l in lines]
        assert cached[name].captions == [l["text"] for l in lines]
    assert attrs["model"] == "tiny" and attrs["pretrained"] == "none"
    assert attrs["data_fingerprint"] == dataset.fingerprint(dataset.read(root))


def test_repeated_captions_and_shared_memes_have_identical_rows(challenge_set, challenge_cache):
    root, _ = challenge_set
    cached, _ = inputs.read(challenge_cache)
    data = dataset.read(root)
    rows_by_text = defaultdict(list)
    for name, memes in data.splits.items():
        for k, meme in enumerate(memes):
            rows_by_text[meme.text].append(cached[name].text[k])
    repeated = [rows for rows in rows_by_text.values() if len(rows) > 1]
    assert repeated
    for rows in repeated:
        assert all(np.array_equal(rows[0], r) for r in rows[1:])
    # a meme in both dev_seen and dev_unseen has the same image row in each
    seen = dict(zip(cached["dev_seen"].ids, cached["dev_seen"].image))
    shared = [(i, row) for i, row in zip(cached["dev_unseen"].ids, cached["dev_unseen"].image) if i in seen]
    assert shared and all(np.array_equal(seen[i], row) for i, row in shared)


def test_projected_rows_are_pooled_rows_through_clips_projection(challenge_cache):
    enc = clip.load("tiny", "none", device="cpu")
    pooled, _ = inputs.read(challenge_cache, ["train"], "pooled")
    projected, _ = inputs.read(challenge_cache, ["train"], "projected")
    image_projection, text_projection = (p.weight.numpy() for p in enc.projections)
    np.testing.assert_allclose(pooled["train"].image @ image_projection,
                               projected["train"].image, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pooled["train"].text @ text_projection,
                               projected["train"].text, rtol=1e-4, atol=1e-5)


@pytest.fixture
def counting(monkeypatch):
    """Counts the rows the encoder is asked for, by modality."""
    counts = {"images": 0, "texts": 0}
    encode_images, encode_texts = clip.Encoder.encode_images, clip.Encoder.encode_texts

    def count_images(self, pixels):
        counts["images"] += len(pixels)
        return encode_images(self, pixels)

    def count_texts(self, texts):
        counts["texts"] += len(texts)
        return encode_texts(self, texts)

    monkeypatch.setattr(clip.Encoder, "encode_images", count_images)
    monkeypatch.setattr(clip.Encoder, "encode_texts", count_texts)
    return counts


def test_each_unique_image_and_caption_is_encoded_once(challenge_set, tmp_path, monkeypatch, counting):
    root, splits = challenge_set
    monkeypatch.chdir(tmp_path)
    extract.extract(extract_params(root))
    memes = [m for s in splits.values() for m in s]
    assert counting["images"] == len({m.img for m in memes}) < len(memes)
    assert counting["texts"] == len({m.text for m in memes}) < len(memes)


def test_interrupted_extraction_resumes_and_leaves_no_partial_cache(challenge_set, challenge_cache,
                                                                    tmp_path, monkeypatch, counting):
    """Killed with clip.batch_size 8, resumed with 32: saved units name their rows whatever the
    batch, so the resumed cache equals an uninterrupted run's, row for row."""
    root, _ = challenge_set
    monkeypatch.chdir(tmp_path)
    real_encode = clip.Encoder.encode_images  # the fixture's counting wrapper
    n_images = len(dataset.unique_images(dataset.read(root)))

    def crash_in_second_unit(self, pixels):
        if counting["images"] >= n_images // 4 + 8:  # units are a quarter of the images here
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C or the job was preempted
        return real_encode(self, pixels)

    monkeypatch.setattr(clip.Encoder, "encode_images", crash_in_second_unit)
    with pytest.raises(KeyboardInterrupt):
        extract.extract(extract_params(root, clip__batch_size=8))
    assert not features.CACHE.exists()
    [parts] = features.CACHE.parent.glob(".clip_features.h5.parts-*")
    saved = resume_store.Store(parts).finished("images", n_images)
    assert len(saved) == 1 and saved[0].start == 0

    monkeypatch.setattr(clip.Encoder, "encode_images", real_encode)
    before = counting["images"]
    extract.extract(extract_params(root, clip__batch_size=32))
    assert counting["images"] - before == n_images - len(saved[0])  # only the unfinished rows
    assert not list(features.CACHE.parent.glob(".clip_features.h5.parts-*"))  # cleaned up
    resumed, _ = inputs.read(features.CACHE)
    uninterrupted, _ = inputs.read(challenge_cache)
    for name in uninterrupted:
        assert resumed[name].ids == uninterrupted[name].ids
        for key in ("image", "text"):
            np.testing.assert_allclose(getattr(resumed[name], key), getattr(uninterrupted[name], key),
                                       rtol=1e-5, atol=1e-6)


def test_a_failed_run_keeps_the_previous_cache(challenge_set, tmp_path, monkeypatch):
    root, _ = challenge_set
    monkeypatch.chdir(tmp_path)
    extract.extract(extract_params(root))
    before = features.CACHE.read_bytes()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(extract, "assemble", fail)
    with pytest.raises(RuntimeError):
        extract.extract(extract_params(root))
    assert features.CACHE.read_bytes() == before


def test_skip_survives_a_unit_of_only_bad_images(challenge_set, copy_of, tmp_path, monkeypatch):
    """With units of 8 images, break all of the first unit: its rows still have the right width."""
    root = copy_of(challenge_set[0])
    monkeypatch.chdir(tmp_path)
    data = dataset.read(root)
    first_unit = dataset.unique_images(data)[:8]
    for img in first_unit:
        (root / img).write_bytes(b"")
    extract.extract(extract_params(root, clip__batch_size=8, data__on_bad_image="skip"), max_unit=8)
    cached, _ = inputs.read(features.CACHE)
    kept = sum(len(s) for s in cached.values())
    dropped = sum(m.img in first_unit for memes in data.splits.values() for m in memes)
    assert kept == sum(len(m) for m in data.splits.values()) - dropped
    assert all(s.image.shape[1] == 96 for s in cached.values())


def test_augmented_views_are_cached_for_the_training_split(challenge_set, challenge_cache, tmp_path,
                                                           monkeypatch):
    """augment_views: 2 stores two seeded views of each training image beside the plain rows,
    which stay as they were; nothing else changes, and a second extraction is identical."""
    root, _ = challenge_set
    monkeypatch.chdir(tmp_path)
    extract.extract(extract_params(root, clip__augment_views=2))
    with_views, attrs = inputs.read(features.CACHE, views=True)
    plain, _ = inputs.read(challenge_cache)
    assert attrs["augment_views"] == 2
    train = with_views["train"]
    assert train.image_views.shape == (len(train), 2, train.image.shape[1])
    assert all(with_views[name].image_views is None for name in with_views if name != "train")
    np.testing.assert_allclose(train.image, plain["train"].image, rtol=1e-5, atol=1e-6)
    for view in range(2):
        error = np.linalg.norm(train.image_views[:, view] - train.image, axis=1)
        assert (error > 1e-3 * np.linalg.norm(train.image, axis=1)).mean() > 0.9  # views differ
    # and from each other: each view is seeded by its own number (dropping it from the seed
    # would make every view of an image the same crop)
    between = np.linalg.norm(train.image_views[:, 0] - train.image_views[:, 1], axis=1)
    assert (between > 1e-3 * np.linalg.norm(train.image, axis=1)).mean() > 0.9
    first = features.CACHE.with_name("first.h5")
    features.CACHE.rename(first)
    extract.extract(extract_params(root, clip__augment_views=2))
    again, _ = inputs.read(features.CACHE, ["train"], views=True)
    np.testing.assert_array_equal(again["train"].image_views,
                                  inputs.read(first, ["train"], views=True)[0]["train"].image_views)


@pytest.fixture(scope="module")
def stream_cache(tmp_path_factory):
    """A challenge-layout set with a caption stream (dev_unseen repeats dev_seen's memes),
    extracted with data.texts: [caption]; (its folder, memes, cache, workdir)."""
    root = tmp_path_factory.mktemp("streams") / "memes"
    memes = synthetic.generate(root, n=80, layout="challenge", seed=6, stream="caption")
    workdir = tmp_path_factory.mktemp("extract_streams")
    return root, memes, extracted(workdir, extract_params(root, data__texts=["caption"])), workdir


def test_each_stream_and_its_join_are_cached_as_the_text_tower_encodes_them(stream_cache):
    root, memes, cache, _ = stream_cache
    data = dataset.read(root, "hateful_memes", streams=("caption",))
    enc = clip.load("tiny", "none", device="cpu")
    with h5py.File(cache) as f:
        assert f.attrs["texts"] == "caption" and list(f) == list(data.splits)  # one group per split
        for name, split in data.splits.items():
            for stream in ("caption", "text [SEP] caption"):
                group = f[f"{name}/streams/{stream}"]
                wanted = texts.texts_of(data, split, stream)
                assert list(group["texts"].asstr()[()]) == wanted
                pooled, projected = enc.encode_texts(wanted)
                np.testing.assert_allclose(group["text"][()], pooled, rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(group["text_proj"][()], projected, rtol=1e-4, atol=1e-5)
    assert "" in texts.texts_of(data, data.splits["train"], "caption")  # a meme without one: the empty text
    report = json.loads((stream_cache[3] / extract.EXTRACT_REPORT).read_text())
    assert report["texts"] == {"caption": {name: sum(bool(m.stream) for m in split)
                                           for name, split in memes.items()}}


def test_clips_own_projections_are_cached_for_a_pretrained_map(stream_cache):
    _, _, cache, _ = stream_cache
    enc = clip.load("tiny", "none", device="cpu")
    stored = inputs.projections(cache)
    assert set(stored) == {"image", "text"}  # the tiny towers' projections have no bias
    for key, projection in zip(("image", "text"), enc.projections):
        np.testing.assert_array_equal(stored[key], projection.weight.detach().numpy())


@pytest.mark.parametrize("mode, image, text", [
    ("none", "image", "text"), ("replace_image", "caption", "text"), ("replace_text", "image", "caption"),
    ("concat_with_text", "image", "text [SEP] caption"), ("parallel_mean", "image", "text+caption"),
])
def test_the_head_reads_each_caption_modes_sides_from_the_cache(stream_cache, mode, image, text):
    _, _, cache, _ = stream_cache
    with h5py.File(cache) as f:
        group = f["dev_seen"]

        def rows(what):
            return group[what][()] if what in ("image", "text") else group[f"streams/{what}/text"][()]
        wanted_text = (np.concatenate([rows("text"), rows("caption")], axis=1) if text == "text+caption"
                       else rows(text))
        wanted_image = rows(image)
    read, _ = inputs.read(cache, ["dev_seen"], "pooled", caption_mode=mode, caption="caption")
    np.testing.assert_array_equal(read["dev_seen"].image, wanted_image)
    np.testing.assert_array_equal(read["dev_seen"].text, wanted_text)


def test_a_cache_of_format_3_is_read_as_one_without_streams_and_refused_for_a_caption_mode(
        challenge_cache, tmp_path):
    """Format 3 held no streams and no projections: with caption_mode none it reads exactly
    as before; a caption mode or a pretrained map on it is a one-line error, never a misread."""
    old = tmp_path / "old.h5"
    old.write_bytes(challenge_cache.read_bytes())
    with h5py.File(old, "r+") as f:
        f.attrs["format_version"] = 3
        del f.attrs["texts"], f[f"train/{features.PROJECTIONS}"]
    new, _ = inputs.read(challenge_cache, ["train"])
    read, attrs = inputs.read(old, ["train"])
    assert attrs["format_version"] == 3
    np.testing.assert_array_equal(read["train"].image, new["train"].image)
    np.testing.assert_array_equal(read["train"].text, new["train"].text)
    with pytest.raises(InputError, match=r"holds no text stream 'caption' \(head.caption; it holds none\)"):
        inputs.read(old, ["train"], caption_mode="parallel_mean", caption="caption")
    with pytest.raises(InputError, match="holds no projections.*head.pretrained_map"):
        inputs.projections(old)
