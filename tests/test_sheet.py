"""``pixstor-azure sheet``: the page and its thumbnails, read without a browser.

The page is parsed with the standard library's HTML parser: every card and box is an element
whose data attributes say what it shows, taken from the store the real ``tag`` wrote.
"""

import html.parser
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from pixstor_azure.ground.store import MetadataStore
from pixstor_azure.images import prepare
from pixstor_azure.tool import cli, sheet
from tests import imagefactory, sheetkit


class Page(html.parser.HTMLParser):
    """The elements of a sheet with a class, their attributes, and the page's scripts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements = []
        self.scripts = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        attributes["tag"] = tag
        self.elements.append(attributes)
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)

    def having(self, cls: str) -> list:
        return [e for e in self.elements if cls in (e.get("class") or "").split()]


@pytest.fixture
def stills(tmp_path, monkeypatch):
    folder = tmp_path / "stills"
    sheetkit.tag_folder(folder, monkeypatch)
    return folder


def make(folder: Path, out: Path, *extra: str) -> Page:
    assert cli.main(["sheet", *extra, "--out", str(out), str(folder)]) == 0
    return Page((out / "index.html").read_text(encoding="utf-8"))


def test_each_picture_is_a_card_with_its_boxes_and_fields_as_data(stills, tmp_path):
    page = make(stills, tmp_path / "sheet")

    cards = page.having("card")
    assert [c["data-name"] for c in cards] == [
        "day1/a_red_green.jpg",
        "day1/b_blue.png",
        "day2/c_small_red.jpg",
        "day2/rotated_o6.jpg",
    ]
    store = MetadataStore.default()
    for card in cards:
        stored = store.read(card["data-path"])
        assert card["data-digest"] and len(card["data-digest"]) == 64
        found = json.loads(stored["image.azure_detected_boxes"])
        probabilities = [b["probability"] for b in found]
        assert float(card["data-confidence"]) <= min(probabilities)
    boxes = page.having("box")
    assert len(boxes) == 5
    assert {b["data-label"] for b in boxes} == {"red box", "green box", "blue box"}
    assert all(0 < float(b["data-probability"]) <= 1 for b in boxes)
    values = {(v["data-field"], v["data-value"]) for v in page.having("val")}
    assert ("detected", "green box") in values and ("classes", "blue") in values
    assert ("status", "azureobjectdetection SUCCESS") in values
    assert ("folder", "day2") in values
    assert any(field == "from" and "azureclassification via cloud" in v for field, v in values)


def test_class_probabilities_come_from_the_cached_answer(stills, tmp_path):
    page = make(stills, tmp_path / "sheet")

    classes = [v for v in page.having("val") if v["data-field"] == "classes"]
    assert classes and all(0 < float(v["data-probability"]) <= 1 for v in classes)


def test_thumbnails_are_upright_and_reused_by_content(stills, tmp_path, monkeypatch):
    out = tmp_path / "sheet"
    page = make(stills, out)
    rotated = next(c for c in page.having("card") if c["data-name"].endswith("rotated_o6.jpg"))
    assert (rotated["data-width"], rotated["data-height"]) == ("300", "400")
    images = [e for e in page.elements if "thumb" in (e.get("class") or "")]
    for img in images:
        small = Image.open(str(out / img["src"]))
        large = Image.open(str(out / img["data-large"]))
        assert max(small.size) <= sheet.THUMB_EDGE and small.size[0] < large.size[0] + 1
        assert small.size == (int(img["width"]), int(img["height"]))
    (thumb,) = [i for i in images if rotated["data-digest"][:24] in i["src"]]
    assert Image.open(str(out / thumb["src"])).size[1] > Image.open(str(out / thumb["src"])).size[0]
    made = {p: p.stat().st_mtime_ns for p in (out / "thumbs").rglob("*.jpg")}
    assert len(made) == 8  # 4 pictures, 2 sizes

    # A copy under another name, and the sheet again: nothing is decoded again.
    copy = stills / "day2" / "copy_of_blue.png"
    copy.write_bytes((stills / "day1" / "b_blue.png").read_bytes())
    decoded = []
    real_load = prepare.load

    def counting(path, edge):
        decoded.append(path)
        return real_load(path, edge)

    monkeypatch.setattr(prepare, "load", counting)
    page = make(stills, out)
    assert decoded == []
    assert {p: p.stat().st_mtime_ns for p in (out / "thumbs").rglob("*.jpg")} == made
    sources = [e["src"] for e in page.elements if "thumb" in (e.get("class") or "")]
    assert len(sources) == 5 and len(set(sources)) == 4


def test_a_picture_that_cannot_be_decoded_gets_a_card_saying_so(stills, tmp_path, capsys):
    imagefactory.truncated_jpeg(stills)
    (stills / "notes.txt").write_text("not a picture")

    page = make(stills, tmp_path / "sheet")

    cards = {c["data-name"]: c for c in page.having("card")}
    assert "notes.txt" not in cards
    broken = [n for n in cards if n.startswith("truncated")]
    assert broken and "without a thumbnail" in capsys.readouterr().err
    assert page.having("missing")


def test_text_from_the_store_is_escaped(tmp_path):
    picture = sheetkit.draw(tmp_path, "x.jpg", (200, 100), {"red": (10, 10, 50, 50)})
    MetadataStore.default().write(
        str(picture.resolve()),
        "image",
        "AzureVisionPlugin",
        {"azure_caption": '<script>alert("x")</script> & "quotes"', "azure_tags": ["a<b"]},
    )

    text = tmp_path / "sheet" / "index.html"
    assert cli.main(["sheet", "--out", str(tmp_path / "sheet"), str(picture)]) == 0
    page = Page(text.read_text(encoding="utf-8"))
    assert '<script>alert("x")</script>' not in text.read_text(encoding="utf-8").split("<main")[1]
    values = {(v["data-field"], v["data-value"]) for v in page.having("val")}
    assert ("caption", '<script>alert("x")</script> & "quotes"') in values
    assert ("tags", "a<b") in values


def test_the_page_fetches_nothing_from_the_network(stills, tmp_path):
    page = make(stills, tmp_path / "sheet")
    policy = next(e for e in page.elements if e.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in policy["content"] and "connect-src 'none'" in policy["content"]
    text = (tmp_path / "sheet" / "index.html").read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    meta = json.loads(next(s for s in page.scripts if '"format"' in s))
    assert meta["format"] == "pixstor-azure corrections" and meta["pictures"] == 4


def test_no_picture_under_the_paths_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["sheet", "--out", str(tmp_path / "s"), str(tmp_path / "empty")]) == 1
    assert "no picture" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_sizes_and_jobs_are_checked(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sheet", "--thumb", "10", "--out", str(tmp_path), str(tmp_path)])
    assert exit_.value.code == 2
    assert "must be at least 64" in capsys.readouterr().err


def test_the_page_files_are_package_data():
    setup = (Path(__file__).resolve().parent.parent / "setup.cfg").read_text()
    assert "sheet_page/*" in setup
    for name in ("sheet.html", "sheet.css", "sheet.js"):
        assert (sheet.PAGE / name).is_file()
    assert os.path.basename(str(sheet.PAGE)) == "sheet_page"
