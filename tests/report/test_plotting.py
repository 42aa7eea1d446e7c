"""stages/report/plotting.py: the contact sheets interpret draws, the paper tables' forest."""
import numpy as np


def test_a_contact_sheet_pastes_each_thumbnail_centred_in_its_cell(tmp_path):
    """The grid's size, a wide and a tall thumbnail each centred in its box, the title, ids and
    captions drawn, and a long text-only caption kept inside its own cell."""
    from PIL import Image

    from stages.report import plotting

    wide, tall = tmp_path / "wide.png", tmp_path / "tall.png"
    Image.new("RGB", (600, 200), (255, 0, 0)).save(wide)  # thumbnail 200 x 67
    Image.new("RGB", (100, 400), (0, 0, 255)).save(tall)  # thumbnail 50 x 200
    memes = [("m0", wide, "a caption"), ("m1", tall, "another one")]
    memes += [(f"m{k}", None, "Жарко! " * 80) for k in range(2, 7)]
    sheet_path = tmp_path / "sheet.png"
    plotting.contact_sheet(sheet_path, memes, "one line of title")
    with Image.open(sheet_path) as sheet:
        pixels = np.asarray(sheet.convert("RGB")).astype(int)
    (width, height), thumb, line = plotting.CELL, plotting.THUMBNAIL, plotting.LINE
    top = 2 * line  # a title of one line, then a blank one
    assert pixels.shape == (top + 2 * height, 6 * width, 3)  # 7 memes: two rows of 6

    def box(colour):
        rows, columns = np.nonzero(np.all(pixels == colour, axis=-1))
        return rows.min(), rows.max(), columns.min(), columns.max()

    dy = (thumb - 67) // 2
    assert box((255, 0, 0)) == (top + dy, top + dy + 66, 5, 5 + thumb - 1)
    dx = (thumb - 50) // 2
    assert box((0, 0, 255)) == (top, top + thumb - 1, width + 5 + dx, width + 5 + dx + 49)
    dark = pixels.sum(axis=-1) < 200  # black text, anti-aliased
    assert dark[:line + 5].any()  # the title
    for k in (0, 1):  # id and caption under each thumbnail
        assert dark[top + thumb:top + height, k * width:(k + 1) * width].any()
    text_cell = dark[top:top + height, 2 * width:3 * width]
    assert text_cell.any() and not dark[top:top + height, 3 * width - 4:3 * width].any()


def test_a_forest_draws_each_cell_its_constant_and_the_papers_figure_as_svg_text_and_marks(tmp_path):
    """Per panel: a value with its two caps and a constant for each cell with a result, the
    paper's tick where it has one, the reference cell's band, the cells not told apart from it
    hollow; the labels, splits and title stay text."""
    from stages.report import plotting

    rows = [{"label": "align, 1 pre-output", "value": 80, "low": 78, "high": 82, "constant": 50,
             "paper": 81, "reference": True, "same_as_reference": False},
            {"label": "cross, 3 pre-output", "value": None, "low": None, "high": None, "constant": None,
             "paper": 79, "reference": False, "same_as_reference": False},
            {"label": "concat, 5 pre-output", "value": 77, "low": 75, "high": 79, "constant": 50,
             "paper": None, "reference": False, "same_as_reference": True}]
    plotting.forest(tmp_path / "forest.svg", {"dev_seen": rows, "test_seen": rows}, "a title")
    picture = (tmp_path / "forest.svg").read_text()
    assert picture.count("fill: #dc143c") == 2 + 2  # the paper's ticks
    assert picture.count("fill: #808080") == 2 + 2  # the constants
    assert len([line for line in picture.splitlines()
                if "<use" in line and "stroke: #4682b4" in line]) == 3 * (2 + 2)  # value and caps
    assert picture.count("fill: #ffffff; stroke: #4682b4") == 2  # hollow: concat
    assert picture.count("fill: #4682b4; opacity: 0.12") == 2  # the reference's band per panel
    for text in ("align, 1 pre-output", "cross, 3 pre-output", "concat, 5 pre-output", "dev_seen",
                 "test_seen", "a title"):
        assert f">{text}</text>" in picture
    plotting.forest(tmp_path / "forest.png", {"dev_seen": rows}, "a title")
    assert (tmp_path / "forest.png").read_bytes()[:4] == b"\x89PNG"
