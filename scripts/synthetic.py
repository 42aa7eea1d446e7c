"""Synthetic hateful-meme sets in the real on-disk layout, for tests and the demo.

    python -m scripts.synthetic OUT_DIR [--n 600] [--layout kaggle|challenge|...] [--seed 0] [--concepts K]
                                [--stream NAME --carries image|text]

The label is an interaction of the two modalities, as in the real set's benign confounders:
each meme pairs a base picture (a "day" or "night" scene) with a caption from one of two word
families, and the meme is hateful exactly when the picture's scene and the caption's family
disagree (label = scene XOR family). The same caption flips with another picture and the same
picture flips with another caption, so neither modality alone predicts the label.

With `concepts` K (2 to 4) there are K scenes and K word families instead, and a meme is
hateful exactly when they match: K hateful concepts, each a (scene, family) pair, expressed
half in the picture and half in the caption (what the paper's Sec. 5 clusters recover). Half
the memes are drawn matching, so about half are hateful; each scene and each family alone is
as often hateful as not.

Each release's files are one `Format` entry (FORMATS, at the end): its writer, its splits, its
image paths and how many scenes and families its labels are drawn from. The other releases'
formats (`--layout` harmeme, harmp, mmf, multioff, mami, mami_inline, pridemm) draw 4 scenes
and 4 families, and every label is again a function of both: a binary
label the parity of scene XOR family, a label of C classes (scene + family) mod C (HarMeme's
target (scene - family) mod 4), MAMI's type k whether (scene + family + k) mod 4 < 2.
Each writes the release's own files and folder shape (docs/datasets.md), with its quirks
(Harm-P's empty intensity and double target, MultiOFF's `Non-offensiv`).

With `stream` NAME, each meme also gets a text in the stream NAME (texts/NAME.jsonl; the
MMHS150K layout's `ocr` as img_txt/<id>.json) that carries one half of the label in place of a
modality: `carries image`: label = stream family XOR caption family, the picture noise;
`carries text`: label = scene XOR stream family, the caption noise. Every 20th meme has no
stream text (its label is then noise), as real caption and OCR files miss some memes.

Like the real set: jsonl splits plus img/NNNNN.png (five-digit zero-padded names while ids are
plain ints), the caption rendered onto the picture, a few RGBA / palette / grayscale PNGs and
one JPEG behind a .png name, repeated captions, unlabeled test splits, and in the challenge
layout a dev_unseen split that overlaps dev_seen. Nothing here is real data.
"""
from __future__ import annotations

import argparse
import io
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

# Word families; the caption's family is its half of the label interaction (two by default).
FAMILIES = (
    ("sunflowers", "picnic", "kites", "lemonade", "puppies", "bicycles", "beaches", "gardens"),
    ("thunder", "ghosts", "lanterns", "owls", "fog", "shadows", "storms", "candles"),
    ("engines", "rockets", "tractors", "trains", "cranes", "drills", "boilers", "pistons"),
    ("oceans", "whales", "corals", "dolphins", "tides", "harbors", "sailors", "islands"),
)
# Scene tints after day (light) and night (dark): red and green, for sets of 3 or 4 concepts.
EXTRA_SCENE_TINTS = ((200, 40, 40), (40, 170, 60))
SUBJECTS = ("my neighbours", "these people", "everyone here", "the new guys", "they", "you")
TEMPLATES = (
    "when {s} bring {w} and {v}",
    "{s} really love {w} and {v}",
    "nobody: {s}: more {w}, more {v}",
    "{s} after seeing {w} with {v}",
)
UNICODE_TAILS = ("", "", "", "", " ☕", " ¿qué?", " 😂")


@dataclass(frozen=True)
class SyntheticMeme:
    id: int
    img: str
    text: str
    label: int
    picture: int  # which base picture the meme uses
    scene: int  # 0 day, 1 night: the picture's half of the interaction
    family: int  # the caption's word family
    stream: str = ""  # its text in the stream (`stream`), "" where it has none


def split_names(layout: str) -> dict[str, bool]:
    """Split name -> labeled?"""
    if layout == "kaggle":
        return {"train": True, "dev": True, "test": False}
    return {"train": True, "dev_seen": True, "dev_unseen": True, "test_seen": True,
            "test_unseen": False}


def caption_pool(rng: random.Random, per_family: int, families: int = 2) -> list[tuple[str, int]]:
    pool = set()
    while len(pool) < families * per_family:
        family = len(pool) % families
        w, v = rng.sample(FAMILIES[family], 2)
        text = rng.choice(TEMPLATES).format(s=rng.choice(SUBJECTS), w=w, v=v)
        pool.add((text + rng.choice(UNICODE_TAILS), family))
    return sorted(pool)


def draw_picture(rng: random.Random, scene: int) -> Image.Image:
    """A base picture: day scenes are light with horizontal bands, night dark with vertical;
    scenes 2 and 3 are red with horizontal and green with vertical bands."""
    width, height = rng.randint(160, 260), rng.randint(140, 240)
    if scene < 2:
        base = rng.randint(170, 235) if scene == 0 else rng.randint(15, 70)
        tint = [max(0, min(255, base + rng.randint(-25, 25))) for _ in range(3)]
    else:
        tint = [max(0, min(255, c + rng.randint(-25, 25))) for c in EXTRA_SCENE_TINTS[scene - 2]]
    image = Image.new("RGB", (width, height), tuple(tint))
    draw = ImageDraw.Draw(image)
    stripe = tuple(max(0, min(255, c + (-40 if scene == 0 else 40))) for c in tint)
    for offset in range(0, max(width, height), 16):
        box = (0, offset, width, offset + 6) if scene % 2 == 0 else (offset, 0, offset + 6, height)
        draw.rectangle(box, fill=stripe)
    for _ in range(rng.randint(1, 4)):  # nuisance shapes, unrelated to the label
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randint(8, 30)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return image


def render_meme(picture: Image.Image, text: str) -> Image.Image:
    meme = picture.copy()
    draw = ImageDraw.Draw(meme)
    font = ImageFont.load_default()
    # The bundled bitmap font has no emoji or accents; the jsonl keeps the true caption.
    draw.multiline_text((6, 6), wrap(text.encode("ascii", "replace").decode(), 26), font=font,
                        fill="white", stroke_width=1, stroke_fill="black")
    return meme


def wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])


def save_image(image: Image.Image, path: Path, index: int) -> None:
    """Mostly RGB PNGs, with the odd modes and formats the real set contains."""
    if index % 50 == 7:
        image.convert("RGBA").save(path, format="PNG")
    elif index % 50 == 19:
        image.quantize(colors=64).save(path, format="PNG")
    elif index % 50 == 31:
        image.convert("L").save(path, format="PNG")
    elif index % 50 == 43:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        path.write_bytes(buffer.getvalue())  # JPEG bytes behind a .png name
    else:
        image.save(path, format="PNG")


def generate(out_dir: str | Path, n: int = 600, layout: str = "kaggle", seed: int = 0,
             concepts: int = 0, stream: str = "", carries: str = "image") -> dict[str, list[SyntheticMeme]]:
    """Write a synthetic set to out_dir in a release's layout and return its memes (with the
    hidden factors) by split. concepts 0: label = scene XOR family; K in 2-4: label =
    (scene == family), K concepts. `propaganda` gives technique k to a meme where
    k % 4 == 2 x (scene XOR family): every label needs both modalities."""
    if layout not in FORMATS:
        raise ValueError(f"layout must be one of {', '.join(FORMATS)}, got {layout!r}")
    if n < 40:
        raise ValueError("n must be at least 40 so every split gets memes")
    if concepts and not 2 <= concepts <= len(FAMILIES):
        raise ValueError(f"concepts must be 0 or 2 to {len(FAMILIES)}, got {concepts}")
    rng = random.Random(seed)
    out = Path(out_dir)
    release = FORMATS[layout]
    families = concepts or release.families
    captions = caption_pool(rng, per_family=max(4, n // 12), families=families)
    pictures = [rng.randrange(families) for _ in range(max(4, n // 3))]  # each picture's scene
    ids = rng.sample(range(100, 99999), n)  # ids below 10000 get zero-padded file names
    memes = []
    for meme_id in ids:
        picture = rng.randrange(len(pictures))
        scene = pictures[picture]
        if concepts:  # half matching (hateful), half another family
            matching = rng.random() < 0.5
            text, family = rng.choice([c for c in captions if (c[1] == scene) == matching])
        else:
            text, family = rng.choice(captions)
        label = int(scene == family) if concepts else (scene ^ family) % 2
        meme = SyntheticMeme(meme_id, "", text, label, picture, scene, family)
        missing = len(memes) % 20 == 19  # every 20th meme has no stream text
        memes.append(with_stream(meme, captions, rng, carries, missing) if stream else meme)
    splits = assign_splits(memes, release.splits, rng)
    splits = {name: [replace(m, img=release.image(name, m)) for m in split]
              for name, split in splits.items()}
    draw_images(out, splits, pictures, rng)
    release.write(out, splits)
    if stream:
        write_stream(out, splits, stream, layout)
    return splits


def with_stream(meme: SyntheticMeme, captions: list[tuple[str, int]], rng: random.Random,
                carries: str, missing: bool) -> SyntheticMeme:
    """The meme with a stream text of a hidden family that takes the place of the picture's
    scene (`carries` image) or the caption's family (text) in its label; `missing`: no text."""
    hidden = rng.randrange(2)
    text = "" if missing else rng.choice([c for c, family in captions if family == hidden])
    label = (hidden ^ meme.family) if carries == "image" else (meme.scene ^ hidden)
    return replace(meme, stream=text, label=label % 2)


def write_stream(out: Path, splits: dict[str, list[SyntheticMeme]], name: str, layout: str) -> None:
    """The stream's file: texts/NAME.jsonl, or MMHS150K's own img_txt/<id>.json for `ocr`."""
    memes = [m for split in splits.values() for m in split if m.stream]
    if layout == "mmhs150k" and name == "ocr":
        (out / "img_txt").mkdir(exist_ok=True)
        for m in memes:
            (out / "img_txt" / f"{m.id}.json").write_text(json.dumps({"img_text": m.stream}))
    else:
        unique = {m.id: m.stream for m in memes}  # dev_unseen repeats dev_seen's memes
        write_jsonl(out / "texts" / f"{name}.jsonl", [{"id": i, "text": t} for i, t in unique.items()])


def techniques(meme: SyntheticMeme) -> list[str]:
    """The synthetic propaganda meme's techniques: a function of picture and caption together."""
    from stages.data.propaganda import TECHNIQUES

    return [name for k, name in enumerate(TECHNIQUES) if k % 4 == 2 * (meme.scene ^ meme.family)]


def draw_images(out: Path, splits: dict[str, list[SyntheticMeme]], pictures: list[int],
                rng: random.Random) -> None:
    """Each meme's picture with its caption rendered on it, once per image file."""
    picture_images: dict[int, Image.Image] = {}
    written = set()
    for index, meme in enumerate(m for split in splits.values() for m in split):
        if meme.img in written:
            continue
        written.add(meme.img)
        if meme.picture not in picture_images:
            picture_images[meme.picture] = draw_picture(rng, pictures[meme.picture])
        (out / meme.img).parent.mkdir(parents=True, exist_ok=True)
        save_image(render_meme(picture_images[meme.picture], meme.text), out / meme.img, index)


def assign_splits(memes: list[SyntheticMeme], names: tuple[str, ...], rng: random.Random
                  ) -> dict[str, list[SyntheticMeme]]:
    """The memes in the release's splits: train, a dev split (a release without one keeps
    those memes in train), the test split(s)."""
    n = len(memes)
    n_eval = max(8, n // 10)
    train, rest = memes[: n - 3 * n_eval], memes[n - 3 * n_eval:]
    first, second, third = rest[:n_eval], rest[n_eval:2 * n_eval], rest[2 * n_eval:]
    if len(names) == 2:
        return {names[0]: train + first, names[1]: second + third}
    if len(names) == 3:
        return {names[0]: train, names[1]: first, names[2]: second + third}
    # dev_unseen shares half its memes with dev_seen, as in the real release.
    overlap = rng.sample(first, len(first) // 2)
    return dict(zip(names, (train, first, overlap + second[: n_eval // 2], second[n_eval // 2:], third)))


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")


def write_hateful_memes(out: Path, splits: dict[str, list[SyntheticMeme]]) -> None:
    labeled = split_names("kaggle" if "dev" in splits else "challenge")
    for name, memes in splits.items():
        write_jsonl(out / f"{name}.jsonl", [
            {"id": m.id, "img": m.img, **({"label": m.label} if labeled[name] else {}), "text": m.text}
            for m in memes])


def write_propaganda(out: Path, splits: dict[str, list[SyntheticMeme]]) -> None:
    """annotations/<split>.jsonl as released: the caption in upper case over two lines."""
    for name, memes in splits.items():
        write_jsonl(out / "annotations" / f"{name}.jsonl", [
            {"id": f"{m.id}_batch_1", "labels": techniques(m),
             "text": m.text.upper().replace(" and ", "\nAND ", 1),
             "image": Path(m.img).name} for m in memes])


def write_tamil(out: Path, splits: dict[str, list[SyntheticMeme]]) -> None:
    """The release's three CSVs: an unnamed index column first, test labels apart."""
    for name in ("train", "test"):
        pd.DataFrame({"imagename": [Path(m.img).name for m in splits[name]],
                      "captions": [m.text for m in splits[name]]}).to_csv(out / f"{name}_captions.csv")
    pd.DataFrame({"ref_caption": [Path(m.img).name for m in splits["test"]],
                  "label": ["troll" if m.label else "not_troll" for m in splits["test"]]}
                 ).to_csv(out / "gold_labels_for_test.csv", index=False)


def write_fine_grained(folder: str | Path, splits: dict[str, list[SyntheticMeme]],
                       coverage: float = 0.8, seed: int = 0) -> dict[str, tuple[str, str]]:
    """Fine-grained annotations (annotations/{train,dev_seen,dev_unseen}.json, JSON lines) for
    a share of a hateful_memes set's memes: a hateful meme's protected category follows its
    scene (race by day, religion by night) and its attack type its caption family (mocking,
    dehumanizing); a benign meme has pc_empty and attack_empty. Returns id -> (pc, attack) of
    the annotated memes."""
    rng = random.Random(seed)
    folder = Path(folder)
    annotated = {}
    for file_name, split_name in (("train", "train"), ("dev_seen", "dev_seen" if "dev_seen" in splits else "dev"),
                                  ("dev_unseen", "dev_unseen" if "dev_unseen" in splits else "dev")):
        records = []
        for m in splits[split_name]:
            if rng.random() >= coverage:
                continue
            pc = ("race", "religion")[m.scene % 2] if m.label else "pc_empty"
            attack = ("mocking", "dehumanizing")[m.family % 2] if m.label else "attack_empty"
            annotated[str(m.id)] = (pc, attack)
            records.append({"id": m.id, "set_name": file_name, "img": m.img, "text": m.text,
                            "gold_hate": ["hateful" if m.label else "not_hateful"],
                            "gold_pc": [pc], "gold_attack": [attack]})
        write_jsonl(folder / "annotations" / f"{file_name}.json", records)
    return annotated


def classes(meme: SyntheticMeme, count: int) -> int:
    """A label of `count` classes: (scene + family) mod count."""
    return (meme.scene + meme.family) % count


def harm_labels(meme: SyntheticMeme) -> list[str]:
    """HarMeme's `labels`: the intensity, then the target of a harmful meme."""
    from stages.data.harmeme import INTENSITIES, TARGETS

    intensity = classes(meme, 3)
    target = [TARGETS[(meme.scene - meme.family) % 4]] if intensity else []
    return [INTENSITIES[intensity]] + target


def write_harmeme(out: Path, splits: dict[str, list[SyntheticMeme]]) -> None:
    """Harm-C as di-dimitrov/mmf ships it: annotations/<split>.jsonl beside images/."""
    for name, memes in splits.items():
        write_jsonl(out / "annotations" / f"{name}.jsonl", [
            {"id": Path(m.img).stem, "image": Path(m.img).name, "labels": harm_labels(m),
             "text": m.text.replace(" and ", "\n", 1) + "\n"} for m in memes])


def write_harmp(out: Path, splits: dict[str, list[SyntheticMeme]]) -> None:
    """Harm-P V1 as MOMENTA ships it, <split>_v1.jsonl in the folder, with its quirks: one
    very harmful meme with an empty intensity, one with two targets, a not-harmful one
    with a target (the reader drops it), and V0 train.jsonl beside, which V1 overrides."""
    for name, memes in splits.items():
        records = []
        for m in memes:
            labels = harm_labels(m)
            if labels[0] == "very harmful" and not any(r["labels"][0] == "" for r in records):
                labels[0] = ""
            elif labels[0] == "somewhat harmful" and len(records) % 7 == 3:
                labels.append("community" if labels[1] != "community" else "society")
            elif labels[0] == "not harmful" and len(records) % 5 == 1:
                labels.append("individual")
            records.append({"id": Path(m.img).stem, "image": Path(m.img).name, "labels": labels,
                            "text": m.text})
        write_jsonl(out / f"{name}_v1.jsonl", records)
    write_jsonl(out / "train.jsonl", [{"id": "stale", "image": "none.png", "labels": ["v0"], "text": ""}])


def write_mmf(out: Path, splits: dict[str, list[SyntheticMeme]]) -> None:
    """Hateful Memes as MMF ships it: annotations/<split>.jsonl, images under images/img/."""
    for name, memes in splits.items():
        write_jsonl(out / "annotations" / f"{name}.jsonl", [
            {"id": m.id, "img": m.img.removeprefix("images/"),
             **({"label": m.label} if name != "test" else {}), "text": m.text} for m in memes])


def write_multioff(out: Path, splits: dict[str, list[SyntheticMeme]]) -> None:
    from stages.data.multioff import FILES

    for name, memes in splits.items():
        path = out / "Split Dataset" / FILES[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"image_name": [Path(m.img).name for m in memes],
                      "sentence": [m.text for m in memes],
                      "label": ["offensive" if m.label else "Non-offensiv" for m in memes]}
                     ).to_csv(path, index=False)


def mami_types(meme: SyntheticMeme) -> list[int]:
    return [int((meme.scene + meme.family + k) % 4 < 2) for k in range(4)]


def mami_table(memes: list[SyntheticMeme], labels: bool) -> pd.DataFrame:
    from stages.data.mami import TEXT, TYPES

    table = {"file_name": [Path(m.img).name for m in memes]}
    if labels:
        table["misogynous"] = [m.label for m in memes]
        table.update({t: [mami_types(m)[k] for m in memes] for k, t in enumerate(TYPES)})
    return pd.DataFrame({**table, TEXT: [m.text for m in memes]})


def write_mami(out: Path, splits: dict[str, list[SyntheticMeme]], inline: bool = False) -> None:
    """TRAINING/training.csv and test/Test.csv, tab-separated beside their images; the test
    labels in a headerless test_labels.txt, or (mami_inline) in Test.csv itself."""
    mami_table(splits["train"], True).to_csv(out / "TRAINING" / "training.csv", sep="\t", index=False)
    mami_table(splits["test"], inline).to_csv(out / "test" / "Test.csv", sep="\t", index=False)
    if not inline:
        gold = mami_table(splits["test"], True).iloc[:, :6]
        gold.to_csv(out / "test_labels.txt", sep="\t", index=False, header=False)


def write_pridemm(out: Path, splits: dict[str, list[SyntheticMeme]]) -> None:
    """PrideMM.csv, with a blank (unknown) target for the memes that are not hateful: the
    reader's unknown-label path runs, and `data.task: target` leaves those memes out."""
    rows = [{"name": Path(m.img).name, "text": m.text, "split": name, "hate": m.label,
             "target": classes(m, 4) if m.label else "", "stance": classes(m, 3),
             "humour": ((m.scene + m.family) // 2) % 2}
            for name, memes in splits.items() for m in memes]
    pd.DataFrame(rows).to_csv(out / "PrideMM.csv", index=False)


def write_mmhs150k(out: Path, splits: dict[str, list[SyntheticMeme]]) -> None:
    """MMHS150K_GT.json, splits/<split>_ids.txt and img_resized/ as released: each tweet's three
    annotators' codes, of which a hateful one gets two or three hate codes (1-5) and a benign
    one at most one; a t.co link ends some tweets."""
    rng = random.Random(len(splits["train"]))
    tweets = {}
    for name, memes in splits.items():
        (out / "splits").mkdir(parents=True, exist_ok=True)
        (out / "splits" / f"{name}_ids.txt").write_text("".join(f"{m.id}\n" for m in memes))
        for m in memes:
            hateful = rng.choice((2, 3)) if m.label else rng.choice((0, 1))
            codes = [rng.randint(1, 5) for _ in range(hateful)] + [0] * (3 - hateful)
            rng.shuffle(codes)
            tweets[str(m.id)] = {"tweet_url": f"https://twitter.com/user/status/{m.id}", "labels": codes,
                                 "img_url": f"http://pbs.twimg.com/media/{m.id}.jpg",
                                 "tweet_text": m.text + (" https://t.co/x1y2z3" if m.id % 3 == 0 else ""),
                                 "labels_str": [("NotHate", "Racist", "Sexist", "Homophobe", "Religion",
                                                 "OtherHate")[code] for code in codes]}
    (out / "MMHS150K_GT.json").write_text(json.dumps(tweets))


@dataclass(frozen=True)
class Format:
    """A release's files, as the generator writes them: a new release is one entry here."""
    write: Callable[[Path, dict[str, list[SyntheticMeme]]], None]
    splits: tuple[str, ...]  # train, a dev split if the release has one, the test split(s)
    image: Callable[[str, SyntheticMeme], str] = lambda split, m: f"img/{m.id:05d}.png"  # by split
    families: int = len(FAMILIES)  # scenes and caption families the labels are drawn from


VAL = ("train", "val", "test")
FORMATS = {
    "kaggle": Format(write_hateful_memes, ("train", "dev", "test"), families=2),
    "challenge": Format(write_hateful_memes, ("train", "dev_seen", "dev_unseen", "test_seen", "test_unseen"),
                        families=2),
    "mmf": Format(write_mmf, ("train", "dev", "test"), lambda split, m: f"images/img/{m.id:05d}.png"),
    "propaganda": Format(write_propaganda, VAL, lambda split, m: f"images/{m.id}_image.png", families=2),
    "tamil": Format(write_tamil, ("train", "test"), families=2, image=lambda split, m: (
        f"{'uploaded_tamil_memes' if split == 'train' else 'test_img'}/{'troll' if m.label else 'Not_troll'}_{m.id}.jpg")),
    "harmeme": Format(write_harmeme, VAL, lambda split, m: f"images/covid_memes_{m.id}.png"),
    "harmp": Format(write_harmp, VAL, lambda split, m: f"images/memes_{m.id}.png"),
    "multioff": Format(write_multioff, VAL, lambda split, m: f"Labelled Images/{m.id}.jpg"),
    "mami": Format(write_mami, ("train", "test"),
                   lambda split, m: f"{'TRAINING' if split == 'train' else 'test'}/{m.id}.jpg"),
    "mami_inline": Format(lambda out, splits: write_mami(out, splits, inline=True), ("train", "test"),
                          lambda split, m: f"{'TRAINING' if split == 'train' else 'test'}/{m.id}.jpg"),
    "pridemm": Format(write_pridemm, VAL, lambda split, m: f"Images/{m.id}.png"),
    "mmhs150k": Format(write_mmhs150k, VAL, lambda split, m: f"img_resized/{m.id}.jpg", families=2),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--n", type=int, default=600, help="number of memes (default 600)")
    parser.add_argument("--layout", choices=list(FORMATS), default="kaggle",
                        help="kaggle, challenge, mmf (Hateful Memes), propaganda, tamil, harmeme "
                             "(Harm-C), harmp (Harm-P), multioff, mami, mami_inline, pridemm, mmhs150k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concepts", type=int, default=0,
                        help="K hateful (scene, caption family) concepts, 2-4 (default: XOR of two)")
    parser.add_argument("--stream", default="", help="write a text stream of this name")
    parser.add_argument("--carries", choices=("image", "text"), default="image",
                        help="the half of the label the stream carries in place of that modality")
    args = parser.parse_args(argv)
    splits = generate(args.out_dir, args.n, args.layout, args.seed, args.concepts, args.stream, args.carries)
    sizes = ", ".join(f"{name} {len(memes)}" for name, memes in splits.items())
    print(f"wrote a synthetic {args.layout} set to {args.out_dir}: {sizes} (not real data)")


if __name__ == "__main__":
    main()
