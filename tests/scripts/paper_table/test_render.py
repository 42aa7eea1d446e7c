"""scripts/paper_table/render.py: one description of a table's columns, written as markdown
and CSV, and a paper table's forest figure."""
import csv
import io

from scripts.paper_table import collect, queue, render
from stages.common import params
from stages.head.captions import CAPTION_MODES
from tests.helpers import auroc_metrics, f1_metrics, nested, params_dict


def test_a_table_is_rendered_as_markdown_csv_and_its_forest(table_1, tmp_path, monkeypatch):
    spec, cells, found, overrides = table_1
    table = collect.rows(spec, cells, found)
    text = render.markdown(spec, table, overrides)
    line = next(l for l in text.splitlines() if l.startswith("| align | 1 |"))
    assert "| 58,689 / 2.9M |" in line  # one run's parameters beside the paper's count
    assert "81.20 ± 1.23 [79.00, 83.00] (ens. 81.99) ✓ | 81.18 | 50 | 1" in line  # 81.18 is inside
    assert "85.00 ± 2.00 [84.00, 86.00] (ens. 85.50) ✓ | 85.46 | 50 | 1" in line  # 85.46 is inside too
    outside = next(l for l in text.splitlines() if l.startswith("| align | 3 |"))
    assert "75.00 ± 1.00 [70.00, 78.00] (ens. 76.00) | 81.55 | 50 | 2" in outside  # no ✓: 81.55 > 78
    assert "| attention_m | 1 | 32 | — / 4.5M | — | 77.36 | — | — | — | 80.15 | — | — | no result |" in text
    assert "`head.map_dim=32`, `train.runs=2`" in text
    assert len([l for l in text.splitlines() if l.startswith("| ") and "---" not in l]) == 15
    rows = list(csv.DictReader(io.StringIO(render.csv_text(spec, table))))
    assert rows[10]["dev_seen_auroc_value"] == "81.2000" and rows[10]["paper_dev_seen"] == "81.18"
    assert rows[10]["rank_dev_seen"] == "1" and rows[0]["rank_dev_seen"] == rows[0]["trainable_params"] == ""
    # the forest: on dev_seen two cells with a value and their constant, the paper's figure on all 14
    forest = render.forest_rows(spec, table, "dev_seen")
    assert sum(r["value"] is not None for r in forest) == 2 and sum(r["paper"] is not None for r in forest) == 14
    assert [r["constant"] for r in forest if r["value"] is not None] == [50.0, 50.0]
    monkeypatch.chdir(tmp_path)
    written = render.write_reports("1", spec, table, overrides)
    assert [path.name for path in written] == ["paper_table_1.md", "paper_table_1.csv", "paper_table_1.svg",
                                               "paper_table_1_forest.png"]
    assert written[3].read_bytes()[:4] == b"\x89PNG"
    picture = written[2].read_text()
    assert picture.lstrip().startswith("<?xml") and "<svg" in picture
    assert picture.count("fill: #dc143c") == 28  # the paper's figure: 14 cells x 2 splits
    assert picture.count("fill: #808080") == 3  # a constant where a cell has a result: 2 + 1
    assert all(f">{r['label']}</text>" in picture for r in forest)


def test_table_2_shows_the_papers_micro_f1_beside_the_standard_one_and_no_label(record):
    spec, cells = queue.load_table("2")
    cross = cells[8]
    shown = [{**record("main", {}, {}), "experiments": [
        {"name": "cross", "revs": [record("cross", nested(cross["params"]), {
            "val": f1_metrics(0.91, 0.004, 0.90, 0.92, 0.912, 0.43),
            "test": f1_metrics(0.90, 0.003, 0.895, 0.91, 0.90, 0.40)}, trainable=1_075_602_454)]}]}]
    table = collect.rows(spec, cells, collect.experiments(shown))
    text = render.markdown(spec, table, {})
    line = next(l for l in text.splitlines() if l.startswith("| cross | 1 |"))
    assert "91.00 ± 0.40 [90.00, 92.00] (ens. 91.20) ✓ | 90.98 |" in line
    assert "88.11 (majority 88.11); standard micro-F1 43.00, no label 0.00" in line
    assert "the paper's micro-F1 (TorchMetrics" in text


def test_the_encoders_table_is_rows_of_its_own_columns(record):
    """The same renderer with the encoders' columns: the encoder, its features' widths, the
    extraction's cost, each split's figure, constant and rank; no paper, no figure."""
    spec, cells = queue.load_table("encoders")
    shown = [{**record("main", {}, {}), "experiments": [
        {"name": "vit", "revs": [record("vit", nested(cells[1]["params"]), {
            "dev_seen": auroc_metrics(0.7, 0.01, 0.68, 0.72, 0.71)})]}]}]
    found = collect.experiments(shown)
    found[-1]["extract"] = {"encode_seconds": 12.34, "memes_per_second": 810.0, "device": "cpu",
                            "cache_bytes": 2.5e6, "bytes_per_meme": 2500,
                            "widths": {"image": 1024, "text": 768, "image_proj": 768, "text_proj": 768}}
    table = collect.rows(spec, cells, found)
    text = render.markdown(spec, table, {"train.epochs": 1})
    assert ("| encoder | features | widths | extraction | cache | dev_seen | constant | rank | test_seen "
            "| constant | rank | status |") in text
    assert ("| ViT-L-14 (openai) | projected | pooled 1024/768, projected 768/768 | 12.3 s, 810.0 memes/s "
            "on cpu | 2.5 MB, 2,500 B/meme | 70.00 ± 1.00 [68.00, 72.00] (ens. 71.00) | 50 | 1 | — | — | — "
            "| run (vit) |") in text
    assert "| ViT-L-14-336 (openai) | projected | — | — | — | — | — | — | — | — | — | no result |" in text
    assert "Overrides on top of params.yaml: `train.epochs=1`." in text
    rows = list(csv.DictReader(io.StringIO(render.csv_text(spec, table))))
    assert list(rows[1])[:3] == ["model", "pretrained", "features"]
    assert rows[1]["widths"] == "pooled 1024/768, projected 768/768"  # quoted, not split at its comma
    assert rows[1]["encode_seconds"] == "12.34" and rows[1]["dev_seen_auroc_ci_low"] == "68.0000"
    assert rows[0]["cache_bytes"] == rows[0]["dev_seen_auroc_value"] == "" and "paper_dev_seen" not in rows[0]


def test_the_captions_table_runs_every_caption_mode_against_none(record):
    """--table captions: one cell per head.caption_mode (the registry's, each valid params with
    the caption stream extracted), marked against the `none` cell, shown by its own columns."""
    spec, cells = queue.load_table("captions")
    assert [c["params"]["head.caption_mode"] for c in cells] == list(CAPTION_MODES)
    for cell in cells:
        raw = params_dict("data", "dev_seen", data__texts=["caption"])
        for key, value in cell["params"].items():
            *sections, name = key.split(".")
            node = raw
            for section in sections:
                node = node[section]
            node[name] = value
        params.parse(raw)  # every cell is valid params
    none, mean = cells[0], cells[4]
    shown = [{**record("main", {}, {}), "experiments": [
        {"name": name, "revs": [record(name, nested(cell["params"]), {
            "dev_seen": auroc_metrics(value, 0.01, value - 0.02, value + 0.02, value),
            "test_seen": auroc_metrics(value, 0.01, value - 0.02, value + 0.02, value)})]}
        for name, cell, value in (("none", none, 0.70), ("mean", mean, 0.74))]}]
    table = collect.rows(spec, cells, collect.experiments(shown))
    text = render.markdown(spec, table, {})
    assert "| caption mode | fusion | parameters |" in text
    assert "the cell paper_table.yaml names (`head.caption_mode=none`)" in text
    assert text.count("| 70.00 ± 1.00 [68.00, 72.00] (ens. 70.00) |") == 2  # none, on both splits
    rows = list(csv.DictReader(io.StringIO(render.csv_text(spec, table))))
    assert [r["caption_mode"] for r in rows] == list(CAPTION_MODES) and "p_vs_reference_dev_seen" in rows[0]
    assert [r["label"] for r in render.forest_rows(spec, table, "dev_seen")][:2] == ["none, cross",
                                                                                   "replace_image, cross"]
