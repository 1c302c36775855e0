"""azureobjectdetection.py end to end: PixStor's call -> Custom Vision (recorded) -> the store.

Answers are recorded responses from tests/recordings, served with ``responses``; each test
checks what the plugin sent, the status ``process`` returned, and what reached the store.

The geometry tests answer with a box computed from the request itself: the callback decodes the
image the plugin sent, finds the red rectangle in it and answers, in the envelope of the spec's
detection example, one detection whose box is where the rectangle lies *in the image sent*,
as Custom Vision would. The field must then put the box where the rectangle is in the file as
displayed, whatever the preparation did on the way (EXIF rotation, downscaling, conversion).
"""

import io
import json
import re
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
import responses
from PIL import Image, ImageChops, ImageOps

import azureobjectdetection
from pixstor_azure.ground import boxes
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.ground.standin import check
from tests import imagefactory
from tests.conftest import ENDPOINT, KEY, PROJECT, assert_no_key, recording, sent_image, serve
from tests.sources import answered
from tests.wording import assert_mentions

URL = f"{ENDPOINT}/customvision/v3.0/Prediction/{PROJECT}/detect/iterations/MyModel1/image/nostore"
FOUND = "customvision-detect-nostore-200.handmade.json"
CLASSIFY_PROJECT = "0f5b2c2e-4a0e-4a55-9d0c-1d6c1b8f2a01"

# What FOUND gives at the default threshold, most confident first, rounded to 4 decimals:
# the two boxes that overhang an edge are clamped to the frame.
FOUND_BOXES = [
    dict(tag="logo", probability=0.9312, left=0.5512, top=0.0833, width=0.3, height=0.25),
    dict(tag="logo", probability=0.84, left=0.0, top=0.6, width=0.2, height=0.15),
    dict(tag="product", probability=0.7123, left=0.0622, top=0.3, width=0.4378, height=0.683),
    dict(tag="actor stand-in", probability=0.5, left=0.9555, top=0.5, width=0.0445, height=0.1569),
]


@pytest.fixture
def detect_env(monkeypatch):
    """Settings for the detection plugin; the classifier's are set too, and must not be used."""
    monkeypatch.setenv("CUSTOM_VISION_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("CUSTOM_VISION_KEY", KEY)
    monkeypatch.setenv("CUSTOM_VISION_DETECT_PROJECT", PROJECT)
    monkeypatch.setenv("CUSTOM_VISION_DETECT_ITERATION", "MyModel1")
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_PROJECT", CLASSIFY_PROJECT)
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_ITERATION", "Classifier")


@pytest.fixture
def plugin():
    return azureobjectdetection.AzureObjectDetectionPlugin()


@pytest.fixture
def served(detect_env):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def answer(mock, name, url=URL, headers=None):
    serve(mock, url, name, headers)


# --------------------------------------------------------------------------- success


def test_labels_and_boxes_most_confident_first(plugin, served, photo, store, logs):
    answer(served, FOUND)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    fields = store.read("item-1", "image")
    assert set(answered(fields)) == {"azure_detected", "azure_detected_boxes"}
    # "product" comes first in the answer, but "logo" is more confident; "logo" twice is one label.
    assert fields["azure_detected"] == ["logo", "product", "actor stand-in"]
    assert json.loads(fields["azure_detected_boxes"]) == FOUND_BOXES
    request = served.calls[0].request
    assert request.url == URL
    assert request.headers["Prediction-Key"] == KEY
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.headers["Accept"] == "application/json"
    assert len(request.body) <= 4_000_000
    sent = sent_image(served.calls[0])
    assert sent.format in {"JPEG", "PNG", "BMP", "GIF"}
    assert sent.size == (640, 480)
    assert_no_key(logs)


def test_box_json_is_the_shared_compact_format(plugin, served, photo):
    answer(served, FOUND)

    text = azureobjectdetection.extract(str(photo))["azure_detected_boxes"]

    assert " " not in text.replace("actor stand-in", "")  # compact separators
    items = json.loads(text)
    for item in items:
        assert list(item) == ["tag", "probability", "left", "top", "width", "height"]
        for key in ("probability", "left", "top", "width", "height"):
            assert isinstance(item[key], float)
            assert 0.0 <= item[key] <= 1.0
            assert item[key] == round(item[key], 4)  # 1/10000 of the frame at most
        assert item["left"] + item["width"] <= 1.0 and item["top"] + item["height"] <= 1.0
    assert text == boxes.to_json(boxes.from_json(text))  # what common.boxes reads back
    assert [b.probability for b in boxes.from_json(text)] == [0.9312, 0.84, 0.7123, 0.5]


def test_extract_returns_exactly_what_process_writes(plugin, served, photo, store):
    answer(served, FOUND)
    answer(served, FOUND)

    fields = azureobjectdetection.extract(str(photo))
    plugin.process("item-1", str(photo))

    assert store.read("item-1", "image") == fields
    check(fields, plugin.schema())  # names and datatypes are the schema's
    assert {f["name"] for f in plugin.schema()} == set(fields)


@pytest.mark.parametrize(
    ("settings", "labels", "count"),
    [
        ({"CUSTOM_VISION_DETECT_THRESHOLD": "0.8"}, ["logo"], 2),
        ({"CUSTOM_VISION_DETECT_THRESHOLD": "0.7"}, ["logo", "product"], 3),
        ({"CUSTOM_VISION_DETECT_THRESHOLD": "0.05"}, ["logo", "product", "actor stand-in"], 5),
        ({"CUSTOM_VISION_DETECT_MAX_BOXES": "1"}, ["logo"], 1),
        ({"CUSTOM_VISION_DETECT_MAX_BOXES": "3"}, ["logo", "product"], 3),
        (
            {"CUSTOM_VISION_DETECT_THRESHOLD": "0", "CUSTOM_VISION_DETECT_MAX_BOXES": "4"},
            ["logo", "product", "actor stand-in"],
            4,
        ),
    ],
)
def test_threshold_and_maximum_boxes_are_settings(
    plugin, served, photo, store, monkeypatch, settings, labels, count
):
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    answer(served, FOUND)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    fields = store.read("item-1", "image")
    assert fields["azure_detected"] == labels
    kept = json.loads(fields["azure_detected_boxes"])
    assert len(kept) == count
    probabilities = [b["probability"] for b in kept]
    assert probabilities == sorted(probabilities, reverse=True)


def test_classification_settings_do_not_apply_to_detection(plugin, served, photo, monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.99")
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_MAX_TAGS", "1")
    answer(served, FOUND)

    fields = azureobjectdetection.extract(str(photo))

    assert len(json.loads(fields["azure_detected_boxes"])) == 4
    assert CLASSIFY_PROJECT not in served.calls[0].request.url


def test_nothing_above_threshold_writes_nothing_and_says_so(plugin, served, photo, store, logs):
    # The spec's own example: Tag 1 at 0.05, Tag 2 at 0.0002.
    answer(served, "customvision-detect-200.json")

    assert azureobjectdetection.extract(str(photo)) == {}
    assert plugin.process("item-1", str(photo)) == PluginStatus.SKIPPED

    assert store.read("item-1") == {}
    assert_mentions(logs.text, "runner.NOTHING_FOUND")


def test_no_detections_at_all_is_skipped(plugin, served, photo, store):
    body = {**recording("customvision-detect-200.json")["body"], "predictions": []}
    served.add(responses.POST, URL, json=body)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SKIPPED
    assert store.read("item-1") == {}


def test_store_images_setting_uses_the_storing_path(plugin, served, photo, store, monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_STORE_IMAGES", "true")
    answer(served, FOUND, url=URL[: -len("/nostore")])

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS
    assert served.calls[0].request.url == URL[: -len("/nostore")]
    assert store.read("item-1", "image")["azure_detected"][0] == "logo"


def test_iteration_name_is_quoted_into_the_path(plugin, served, photo, monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_DETECT_ITERATION", "logos/2024 v2")
    answer(served, FOUND, url=URL.replace("MyModel1", "logos%2F2024%20v2"))

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS


# --------------------------------------------------------------------------- errors


def test_404_names_the_detect_iteration_setting(plugin, served, photo, logs):
    answer(served, "customvision-404-iteration.handmade.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL
    assert "CUSTOM_VISION_DETECT_ITERATION" in logs.text


@pytest.mark.parametrize(
    "prediction",
    [
        {"tagName": "logo", "probability": 0.9},  # no box: a classifier's answer
        {"tagName": "logo", "probability": 0.9, "boundingBox": None},
        {"tagName": "logo", "probability": 0.9, "boundingBox": {"left": 0.1, "top": 0.1}},
        {"tagName": "logo", "probability": "high", "boundingBox": FOUND_BOXES[0]},
    ],
)
def test_unexpected_json_shape_is_fatal(plugin, served, photo, store, logs, prediction):
    served.add(responses.POST, URL, json={"predictions": [prediction]}, status=200)

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL
    assert_mentions(logs.text, "UNEXPECTED")
    assert store.read("item-1") == {}
    assert_no_key(logs)


# --------------------------------------------------------------------------- geometry

RED = (255, 0, 0)


def red_bbox(image: Image.Image) -> Optional[Tuple[int, int, int, int]]:
    """(left, top, right, bottom), right and bottom exclusive, of the clearly red pixels."""
    r, g, b = image.convert("RGB").split()
    high = r.point(lambda v: 255 if v > 200 else 0)
    low_g = g.point(lambda v: 255 if v < 80 else 0)
    low_b = b.point(lambda v: 255 if v < 80 else 0)
    return ImageChops.multiply(ImageChops.multiply(high, low_g), low_b).getbbox()


def answer_where_the_red_is(mock, url=URL) -> List[Image.Image]:
    """Answer every request with one detection boxing the red pixels of the image it carries,
    as fractions of that image; returns the images sent, decoded."""
    sent: List[Image.Image] = []
    template = recording("customvision-detect-200.json")["body"]

    def callback(request):
        image = Image.open(io.BytesIO(request.body))
        image.load()
        sent.append(image)
        found = red_bbox(image)
        assert found is not None, "no red rectangle in the image sent"
        left, top, right, bottom = found
        width, height = image.size
        prediction = {
            **template["predictions"][0],
            "tagName": "red rectangle",
            "probability": 0.97,
            "boundingBox": {
                "left": left / width,
                "top": top / height,
                "width": (right - left) / width,
                "height": (bottom - top) / height,
            },
        }
        return 200, {}, json.dumps({**template, "predictions": [prediction]})

    mock.add_callback(responses.POST, url, callback=callback, content_type="application/json")
    return sent


def displayed(path) -> Image.Image:
    """The file as a viewer shows it: EXIF orientation applied."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGBA").convert("RGB")


def assert_box_is_the_rectangle(
    path, expected: Tuple[float, float, float, float], tolerance: float = 0.01
) -> None:
    """``tolerance``: a fraction of the frame; a pixel of a small sent image is more."""
    fields = azureobjectdetection.extract(str(path))

    assert fields["azure_detected"] == ["red rectangle"]
    (box,) = boxes.from_json(fields["azure_detected_boxes"])
    assert (box.left, box.top, box.width, box.height) == pytest.approx(expected, abs=tolerance)
    # And mapped back onto the file as displayed, at its own full size, it frames the red.
    shown = displayed(path)
    red = red_bbox(shown)
    assert red is not None
    tolerance = tolerance * max(shown.size)
    for got, want in zip(box.pixels(*shown.size), red):
        assert abs(got - want) <= tolerance, (box.pixels(*shown.size), red)


# Asymmetric on purpose: every orientation puts this rectangle somewhere else.
SIZE, RECT = (400, 300), (40, 150, 120, 270)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_box_is_right_for_every_exif_orientation(served, tmp_path, orientation):
    path = imagefactory.jpeg_exif_rotated(tmp_path, orientation, size=SIZE, rect=RECT)
    sent = answer_where_the_red_is(served)

    assert_box_is_the_rectangle(path, imagefactory.displayed_rect(SIZE, RECT, orientation))

    display_size = SIZE if orientation <= 4 else SIZE[::-1]
    assert sent[0].size == display_size  # the service saw the picture upright


def test_box_is_right_for_the_default_rotated_picture(served, tmp_path):
    path = imagefactory.jpeg_exif_rotated(tmp_path)  # orientation 6, (400, 300)
    answer_where_the_red_is(served)

    expected = imagefactory.displayed_rect((400, 300), (40, 30, 160, 120), 6)
    assert expected == pytest.approx((0.6, 0.1, 0.3, 0.3))
    assert_box_is_the_rectangle(path, expected)


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_box_is_right_on_a_downscaled_large_picture(served, tmp_path, orientation):
    size, rect = (5000, 3200), (600, 2000, 1700, 2900)
    path = imagefactory.jpeg_exif_rotated(tmp_path, orientation, size=size, rect=rect)
    sent = answer_where_the_red_is(served)

    assert_box_is_the_rectangle(path, imagefactory.displayed_rect(size, rect, orientation))

    assert max(sent[0].size) == 1024  # CUSTOM_VISION_MAX_LONG_EDGE's default


def test_box_is_right_when_the_long_edge_setting_shrinks_it(served, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_MAX_LONG_EDGE", "100")
    path = imagefactory.jpeg_exif_rotated(tmp_path, 3, size=SIZE, rect=RECT)
    sent = answer_where_the_red_is(served)

    # Sent at 100x75, one pixel is 0.013 of the height: allow a pixel and a half.
    assert_box_is_the_rectangle(path, imagefactory.displayed_rect(SIZE, RECT, 3), 0.02)

    assert sent[0].size == (100, 75)


def cmyk_jpeg(folder: Path, orientation: int) -> Path:
    """A CMYK JPEG, mid-grey with a red (magenta + yellow) rectangle at RECT, EXIF-rotated."""
    im = Image.new("CMYK", SIZE, (0, 0, 0, 127))
    im.paste((0, 255, 255, 0), RECT)
    exif = Image.Exif()
    exif[imagefactory.EXIF_ORIENTATION] = orientation
    path = folder / "cmyk_red.jpg"
    im.save(path, "JPEG", quality=95, exif=exif)
    return path


def rgba_png(folder: Path, orientation: int) -> Path:
    """An RGBA PNG, transparent but for an opaque red rectangle at RECT."""
    im = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    im.paste((*RED, 255), RECT)
    path = folder / "alpha_red.png"
    im.save(path, "PNG")
    return path


def webp(folder: Path, orientation: int) -> Path:
    """A WebP (a format Custom Vision refuses, so re-encoded), grey with a red rectangle."""
    im = Image.new("RGB", SIZE, imagefactory.GREY)
    im.paste(RED, RECT)
    path = folder / "red.webp"
    im.save(path, "WEBP", quality=95)
    return path


@pytest.mark.parametrize(
    ("make", "orientation"),
    [(cmyk_jpeg, 6), (rgba_png, 1), (webp, 1)],
    ids=["cmyk", "rgba", "webp"],
)
def test_box_is_right_after_a_format_conversion(served, tmp_path, make, orientation):
    path = make(tmp_path, orientation)
    sent = answer_where_the_red_is(served)

    assert_box_is_the_rectangle(path, imagefactory.displayed_rect(SIZE, RECT, orientation))

    assert sent[0].format == "JPEG" and sent[0].mode == "RGB"  # converted, not sent as it was


def test_transparency_is_sent_on_white(served, tmp_path):
    path = rgba_png(tmp_path, 1)
    sent = answer_where_the_red_is(served)

    azureobjectdetection.extract(str(path))

    corner = sent[0].convert("RGB").getpixel((2, 2))
    assert all(channel > 240 for channel in corner)


# --------------------------------------------------------------------------- the plugin


def test_namespace_and_schema(plugin):
    assert plugin.namespace() == "image"
    assert [(f["name"], f["value"]["datatype"]) for f in plugin.schema()] == [
        ("azure_detected", "[String]"),
        ("azure_detected_boxes", "String"),
        ("azure_detection_source", "String"),
    ]
    assert all(re.match(r"\w", f["prompt"]) for f in plugin.schema())
    assert azureobjectdetection.SCHEMA is plugin.schema()
