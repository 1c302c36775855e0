"""The contact sheet in a real browser: Debian's Chromium, headless, driven by Playwright.

The sheet is made by the real command from pictures the plugins tagged against the fake
service (``tests/sheetkit.py``), opened from ``file://``, and read as a person sees it: where
each box is drawn against the picture, what filtering and sorting show, what the keyboard
does, and the corrections file the page downloads, which ``train`` then uploads.

These tests need ``/usr/bin/chromium`` (``apt-get install chromium``) and Playwright for
Python (the ``test`` extra; never ``playwright install``: the system's Chromium is used). They
skip when either is missing, except in CI (``CI`` set), where that is a failure; Playwright
needs Python 3.8 or newer, so they skip on older Pythons.
"""

import io
import json
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from pixstor_azure.ground.store import MetadataStore
from pixstor_azure.tool import cli
from tests import faketraining, sheetkit
from tests.fakeazure import FakeAzure
from tests.toolrun import DETECT_PROJECT

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: the browser tests must run in CI", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    if sys.version_info < (3, 8):
        pytest.skip("Playwright for Python needs Python 3.8 or newer")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def made(tmp_path, monkeypatch):
    """The pictures, tagged, and their sheet: (folder of pictures, the sheet's index.html)."""
    folder = tmp_path / "stills"
    sheetkit.tag_folder(folder, monkeypatch)
    out = tmp_path / "sheet"
    assert cli.main(["sheet", "--out", str(out), str(folder)]) == 0
    return folder, out / "index.html"


@pytest.fixture
def page(browser, made):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    opened = context.new_page()
    opened.requested = []
    opened.errors = []
    opened.on("request", lambda request: opened.requested.append(request.url))
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    opened.goto(made[1].as_uri())
    yield opened
    assert opened.errors == []
    context.close()


def rect(element) -> dict:
    return element.evaluate(
        "e => { const r = e.getBoundingClientRect(); "
        "return {x: r.x, y: r.y, w: r.width, h: r.height}; }"
    )


def boxes_match_fractions(page, scope: str) -> int:
    """Every box under ``scope`` drawn where its data attributes put it on its picture,
    within 1 px; the number of boxes checked."""
    checked = 0
    for box in page.query_selector_all(f"{scope} .box"):
        box.scroll_into_view_if_needed()
        frame = box.evaluate_handle("b => b.parentElement.querySelector('img')").as_element()
        picture, drawn = rect(frame), rect(box)
        fractions = {
            k: float(box.get_attribute(f"data-{k}")) for k in ("left", "top", "width", "height")
        }
        expected = {
            "x": picture["x"] + fractions["left"] * picture["w"],
            "y": picture["y"] + fractions["top"] * picture["h"],
            "w": fractions["width"] * picture["w"],
            "h": fractions["height"] * picture["h"],
        }
        for key in expected:
            assert abs(drawn[key] - expected[key]) <= 1.0, (
                box.get_attribute("data-label"),
                key,
                drawn,
                expected,
            )
        checked += 1
    return checked


def stored_boxes(folder: Path) -> dict:
    store = MetadataStore.default()
    out = {}
    for path in sorted(folder.rglob("*.*")):
        found = store.read(str(path.resolve())).get("image.azure_detected_boxes")
        out[str(path.resolve())] = json.loads(found) if found else []
    return out


# ---------------------------------------------------------------------------- boxes in place


@pytest.mark.parametrize("size", [(1280, 800), (560, 900)])
def test_every_box_sits_on_its_stored_fractions_within_a_pixel(page, made, size):
    page.set_viewport_size({"width": size[0], "height": size[1]})
    # The page's boxes are the store's, card by card.
    stored = stored_boxes(made[0])
    for card in page.query_selector_all(".card"):
        on_page = [
            {k: float(b.get_attribute(f"data-{k}")) for k in ("left", "top", "width", "height")}
            for b in card.query_selector_all(".box.detected")
        ]
        expected = [
            {k: b[k] for k in ("left", "top", "width", "height")}
            for b in stored[card.get_attribute("data-path")]
        ]
        assert on_page == expected
    assert boxes_match_fractions(page, "#grid") == sum(len(b) for b in stored.values()) >= 5


def test_a_picture_stored_sideways_shows_upright_with_its_box_on_the_red(page, made):
    card = page.query_selector('.card[data-name$="rotated_o6.jpg"]')
    assert (card.get_attribute("data-width"), card.get_attribute("data-height")) == ("300", "400")
    box = card.query_selector(".box.detected")
    drawn = rect(box)
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    scale = shot.size[0] / page.viewport_size["width"]
    inside = shot.getpixel(
        (int((drawn["x"] + drawn["w"] / 2) * scale), int((drawn["y"] + drawn["h"] / 2) * scale))
    )
    outside = shot.getpixel(
        (int((drawn["x"] + drawn["w"] + 20) * scale), int((drawn["y"] + drawn["h"] + 20) * scale))
    )
    assert inside[0] > 200 and inside[1] < 80 and inside[2] < 80, inside  # the red rectangle
    assert abs(outside[0] - outside[1]) < 30, outside  # grey around it
    expected = sheetkit.imagefactory.displayed_rect(sheetkit.ROTATED_SIZE, sheetkit.ROTATED_RECT, 6)
    found = [float(box.get_attribute(f"data-{k}")) for k in ("left", "top", "width", "height")]
    assert found == pytest.approx(expected, abs=0.02)


def test_the_large_view_draws_the_boxes_at_full_size(page):
    page.click('.card[data-name$="a_red_green.jpg"] .frame')
    page.wait_for_selector("#viewer[open]")
    page.wait_for_function("() => document.querySelector('#v-img').src.endsWith('-1600.jpg')")
    assert boxes_match_fractions(page, "#v-frame") == 2
    frame = rect(page.query_selector("#v-frame"))
    assert frame["w"] > 600  # large: the picture fills the view


def test_the_page_asks_for_nothing_but_its_own_files(page, made):
    page.wait_for_load_state("load")
    page.mouse.wheel(0, 3000)
    page.wait_for_timeout(200)
    assert page.requested, "the page loaded nothing?"
    assert all(url.startswith(("file://", "data:", "blob:")) for url in page.requested), (
        page.requested
    )
    thumbs = page.query_selector_all("img.thumb")
    assert all(img.evaluate("i => i.complete && i.naturalWidth > 0") for img in thumbs)


def test_pictures_have_alt_text_and_labels_readable_contrast(page):
    for img in page.query_selector_all("img.thumb"):
        alt = img.get_attribute("alt")
        assert alt and img.evaluate("i => i.closest('.card').dataset.name") in alt
    ratios = page.evaluate(
        """() => Array.from(document.querySelectorAll('.box .label')).map(l => {
            const lum = c => { const v = c.match(/\\d+/g).slice(0, 3).map(x => x / 255)
                .map(x => x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
                return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
            const s = getComputedStyle(l), a = lum(s.color), b = lum(s.backgroundColor);
            return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); })"""
    )
    assert ratios and min(ratios) >= 4.5, ratios


# ---------------------------------------------------------------------------- filter, sort, keys


def shown_names(page) -> list:
    return page.eval_on_selector_all(".card:not([hidden])", "cs => cs.map(c => c.dataset.name)")


def test_filter_by_a_field_value_and_by_clicking_a_value(page):
    page.select_option("#field", "detected")
    page.fill("#value", "green box")
    page.press("#value", "Enter")
    assert shown_names(page) == ["day1/a_red_green.jpg"]
    assert "1 of 4 pictures shown" in page.inner_text("#count")
    page.click("#chips button")  # remove the filter
    assert len(shown_names(page)) == 4

    page.click('.card[data-name$="b_blue.png"] .val[data-field="classes"]')  # "blue"
    assert shown_names(page) == ["day1/b_blue.png"]
    # The filter is in the address: a reload keeps it.
    page.reload()
    assert shown_names(page) == ["day1/b_blue.png"]

    page.click("#chips button")
    page.select_option("#field", "")
    page.fill("#value", "day2")  # any field, a part of it
    page.press("#value", "Enter")
    assert sorted(shown_names(page)) == ["day2/c_small_red.jpg", "day2/rotated_o6.jpg"]


def test_sort_by_the_least_confident_first(page):
    page.select_option("#sort", "least")
    values = page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.confidence)")
    known = [float(v) for v in values if v]
    assert known == sorted(known) and len(known) == 4
    first = page.eval_on_selector(".card", "c => c.dataset.confidence")
    assert float(first) == min(known)  # the least confident picture leads
    page.select_option("#sort", "most")
    values = [
        float(v)
        for v in page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.confidence)")
    ]
    assert values == sorted(values, reverse=True)


def test_the_keyboard_moves_between_pictures_and_opens_and_closes_the_large_view(page):
    page.focus(".card")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.name") == "day1/b_blue.png"
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.dataset.name") == "day2/rotated_o6.jpg"
    page.keyboard.press("Home")
    page.keyboard.press("Enter")
    page.wait_for_selector("#viewer[open]")
    assert page.inner_text("#v-title") == "day1/a_red_green.jpg"
    page.keyboard.press("PageDown")
    assert page.inner_text("#v-title") == "day1/b_blue.png"
    assert page.inner_text("#v-pos") == "2 of 4"
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer:not([open])", state="attached")
    assert page.evaluate("document.activeElement.dataset.name") == "day1/b_blue.png"


# ---------------------------------------------------------------------------- corrections


def drag(page, start: dict, by: tuple) -> None:
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(start["x"] + by[0] / 2, start["y"] + by[1] / 2, steps=3)
    page.mouse.move(start["x"] + by[0], start["y"] + by[1], steps=3)
    page.mouse.up()


def test_corrections_made_on_the_page_download_as_the_file_train_uploads(
    page, made, tmp_path, monkeypatch
):
    page.click('.card[data-name$="a_red_green.jpg"] .frame')
    page.wait_for_selector("#viewer[open]")
    # The green box is wrong; the red one is right but too far left: moved 10% right.
    page.click('#v-boxes li[data-key="d1"] button[data-verdict="wrong"]')
    frame = rect(page.query_selector("#v-frame"))
    red = rect(page.query_selector('#v-frame .box[data-key="d0"]'))
    drag(page, {"x": red["x"] + red["w"] / 2, "y": red["y"] + red["h"] / 2}, (frame["w"] * 0.1, 0))
    # A box the detector missed, drawn with its label; a class added.
    page.fill("#v-label", "green box")
    page.click("#v-add")
    drag(
        page,
        {"x": frame["x"] + frame["w"] * 0.05, "y": frame["y"] + frame["h"] * 0.6},
        (frame["w"] * 0.2, frame["h"] * 0.3),
    )
    page.fill("#v-newclass", "blue")
    page.click("#v-addclass button")
    assert page.inner_text("#corrected") == "1 picture corrected"
    # The grid shows it too, and the large view's boxes stay on the picture.
    assert boxes_match_fractions(page, "#v-frame") == 3  # the two found and the one added
    page.keyboard.press("Escape")
    assert page.eval_on_selector(
        '.card[data-name$="a_red_green.jpg"]', "c => c.classList.contains('corrected')"
    )
    assert (
        page.eval_on_selector(
            '.card[data-name$="a_red_green.jpg"] .box[data-key="d1"]', "b => b.dataset.verdict"
        )
        == "wrong"
    )

    with page.expect_download() as download:
        page.click("#download")
    saved = Path(download.value.path())
    body = json.loads(saved.read_text(encoding="utf-8"))
    assert body["format"] == "pixstor-azure corrections" and body["version"] == 1
    (picture,) = body["pictures"]
    assert picture["path"].endswith("a_red_green.jpg")
    verdicts = [(b["label"], b["verdict"]) for b in picture["boxes"]]
    assert verdicts == [("red box", "corrected"), ("green box", "wrong"), ("green box", "added")]
    moved, _wrong, added = picture["boxes"]
    assert moved["left"] - moved["was"]["left"] == pytest.approx(0.1, abs=0.01)
    assert added["left"] == pytest.approx(0.05, abs=0.01) and added["width"] == pytest.approx(
        0.2, abs=0.01
    )
    assert ("blue", "added") in [(c["label"], c["verdict"]) for c in picture["classes"]]

    with FakeAzure() as server:
        fake = faketraining.FakeTraining().mount(server)
        fake.add_project(DETECT_PROJECT, "detect", tags=["red box", "green box"])
        monkeypatch.setenv("CUSTOM_VISION_TRAINING_ENDPOINT", server.url)
        monkeypatch.setenv("CUSTOM_VISION_TRAINING_KEY", fake.key)
        assert cli.main(["train", "--task", "detect", str(saved)]) == 0
    (image,) = fake.projects[DETECT_PROJECT].images
    regions = [(fake.tag_names(DETECT_PROJECT, [r["tagId"]])[0], r["left"]) for r in image.regions]
    assert regions == [("red box", moved["left"]), ("green box", added["left"])]


def test_corrections_survive_a_reload_and_can_be_marked_by_keys(page):
    page.click('.card[data-name$="b_blue.png"] .frame')
    page.wait_for_selector("#viewer[open]")
    page.focus('#v-frame .box[data-key="d0"]')
    page.keyboard.press("n")
    assert (
        page.get_attribute(
            '#v-boxes li[data-key="d0"] button[data-verdict="wrong"]', "aria-pressed"
        )
        == "true"
    )
    before = float(
        page.get_attribute('#v-frame .box[data-key="d0"]', "style").split("left:")[1].split("%")[0]
    )
    page.focus('#v-frame .box[data-key="d0"]')
    page.keyboard.press("Shift+ArrowRight")  # moves it 5 % of the picture
    style = page.get_attribute('#v-frame .box[data-key="d0"]', "style")
    assert float(style.split("left:")[1].split("%")[0]) == pytest.approx(before + 5, abs=0.1)
    page.reload()
    assert page.inner_text("#corrected") == "1 picture corrected"
    assert (
        page.eval_on_selector(
            '.card[data-name$="b_blue.png"] .box[data-key="d0"]', "b => b.dataset.verdict"
        )
        == "corrected"
    )
