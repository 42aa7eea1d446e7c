"""stages/report/plotting.py: the contact sheets interpret draws."""
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
