"""azurevision.py end to end: PixStor's call -> Azure AI Vision 4.0 or 3.2 (recorded) -> the store.

Answers are recorded responses from tests/recordings (imageanalysis-* for Image Analysis 4.0,
cv32-* for Computer Vision v3.2), served with ``responses``; each test checks what the plugin
sent, the status ``process`` returned, and what reached the store. Tests taking the ``api``
fixture run once for each API, chosen by setting.
"""

import io
import json
import logging
import shutil
import threading
from typing import List, Tuple
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from PIL import Image, ImageChops

import azurevision
from pixstor_azure.ground import boxes
from pixstor_azure.ground.errors import ServiceError, SettingsError
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.ground.settings import Settings
from pixstor_azure.ground.standin import check
from pixstor_azure.services import base, imageanalysis
from tests import imagefactory
from tests.conftest import ENDPOINT, KEY, assert_no_key, recording, sent_image, serve
from tests.sources import answered
from tests.wording import assert_mentions, assert_problem, says

URLS = {
    "4.0": f"{ENDPOINT}/computervision/imageanalysis:analyze",
    "3.2": f"{ENDPOINT}/vision/v3.2/analyze",
}
# The verbatim spec examples' answers, one per API.
EXAMPLE = {"4.0": "imageanalysis-analyze-200.json", "3.2": "cv32-analyze-200.json"}
MAXIMUMSET_TAGS = [
    "furniture",
    "clothing",
    "person",
    "houseplant",
    "desk",
    "indoor",
    "laptop",
    "computer",
    "sitting",
    "wall",
    "woman",
    "table",
    "plant",
]
MAXIMUMSET_CAPTION = "a woman wearing a mask sitting at a table with a laptop"
MAXIMUMSET_TEXT = ["Sample text", "Hand writing", "123 456"]


@pytest.fixture
def plugin():
    return azurevision.AzureVisionPlugin()


@pytest.fixture
def vision_env(monkeypatch):
    monkeypatch.setenv("AZURE_VISION_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("AZURE_VISION_KEY", KEY)


@pytest.fixture(params=["4.0", "3.2"])
def api(request, monkeypatch, vision_env):
    """Each API in turn, chosen by setting as an administrator would."""
    if request.param == "3.2":
        monkeypatch.setenv("AZURE_VISION_API", "3.2")
        # 3.2 reads text with the Read API, a call of its own: tests/test_read.py.
        monkeypatch.setenv("AZURE_VISION_FEATURES", "tags,caption,objects")
    return request.param


@pytest.fixture
def served(vision_env):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def photo(tmp_path):
    """The size of the 4.0 MaximumSet example's photo, so its boxes are on the sent image."""
    return imagefactory.jpeg(tmp_path, size=(864, 576))


@pytest.fixture(scope="module")
def photo_40mp(tmp_path_factory):
    return imagefactory.jpeg_40mp(tmp_path_factory.mktemp("large"))


def answer(mock, name, api="4.0", headers=None):
    serve(mock, URLS[api], name, headers)


def query(call) -> dict:
    return dict(parse_qsl(urlsplit(call.request.url).query, keep_blank_values=True))


def warnings_and_errors(logs) -> List[str]:
    return [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]


# --------------------------------------------------------------------------- the requests


def test_40_request_url_query_headers_and_body(plugin, served, photo, logs):
    answer(served, "imageanalysis-analyze-200.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    (call,) = served.calls
    assert call.request.url.split("?")[0] == URLS["4.0"]
    assert query(call) == {
        "api-version": "2024-02-01",
        "features": "tags,caption,objects,read",
        "language": "en",
        "gender-neutral-caption": "false",
    }
    assert call.request.headers["Ocp-Apim-Subscription-Key"] == KEY
    assert call.request.headers["Content-Type"] == "application/octet-stream"
    assert call.request.headers["Accept"] == "application/json"
    assert call.request.body == photo.read_bytes()  # a JPEG within the limits goes as it is
    assert_no_key(logs)


def test_32_request_url_query_headers_and_body(plugin, served, photo, logs, monkeypatch):
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags,caption,objects")  # read: test_read.py
    answer(served, "cv32-analyze-maximumset-200.handmade.json", api="3.2")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    (call,) = served.calls
    assert call.request.url.split("?")[0] == URLS["3.2"]
    assert query(call) == {"visualFeatures": "Tags,Description,Objects", "language": "en"}
    assert call.request.headers["Ocp-Apim-Subscription-Key"] == KEY
    assert call.request.headers["Content-Type"] == "application/octet-stream"
    assert call.request.body == photo.read_bytes()
    assert_no_key(logs)


def test_settings_shape_the_40_request(plugin, served, photo, monkeypatch):
    monkeypatch.setenv("AZURE_VISION_API_VERSION", "2023-10-01")
    monkeypatch.setenv("AZURE_VISION_FEATURES", "Caption, TAGS")
    monkeypatch.setenv("AZURE_VISION_LANGUAGE", "es")
    monkeypatch.setenv("AZURE_VISION_GENDER_NEUTRAL_CAPTION", "true")
    answer(served, "imageanalysis-analyze-200.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    assert query(served.calls[0]) == {
        "api-version": "2023-10-01",
        "features": "caption,tags",
        "language": "es",
        "gender-neutral-caption": "true",
    }


def test_settings_shape_the_32_request(plugin, served, photo, monkeypatch, logs):
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    monkeypatch.setenv("AZURE_VISION_FEATURES", "objects")
    monkeypatch.setenv("AZURE_VISION_LANGUAGE", "zh-Hant")
    monkeypatch.setenv("AZURE_VISION_GENDER_NEUTRAL_CAPTION", "true")
    answer(served, "cv32-analyze-maximumset-200.handmade.json", api="3.2")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    assert query(served.calls[0]) == {"visualFeatures": "Objects", "language": "zh-Hant"}
    assert "4.0 only" in logs.text


@pytest.mark.parametrize(
    ("max_edge", "as_is_for_40"), [(None, False), ("16000", True)], ids=["2048", "16000"]
)
def test_40mp_jpeg_is_brought_within_the_chosen_apis_limits(
    plugin, served, api, photo_40mp, monkeypatch, max_edge, as_is_for_40
):
    if max_edge:
        monkeypatch.setenv("PIXSTOR_AZURE_MAX_LONG_EDGE", max_edge)
    answer(served, EXAMPLE[api], api=api)

    assert plugin.process("item-1", str(photo_40mp)) == PluginStatus.SUCCESS

    body = served.calls[0].request.body
    sent = sent_image(served.calls[0])
    assert sent.format == "JPEG"
    assert len(body) < (20_000_000 if api == "4.0" else 4_000_000)
    assert max(sent.size) == min(7728, int(max_edge or 2048))
    assert sent.width / sent.height == pytest.approx(7728 / 5152, rel=0.01)
    # The 9.7 MB file fits 4.0's 20 MB as it is; 3.2 needs it re-encoded under 4 MB.
    assert (body == photo_40mp.read_bytes()) is (as_is_for_40 and api == "4.0")


def rgb_tiff(folder):
    path = folder / "plain.tif"
    Image.open(imagefactory.png(folder, size=(300, 200))).convert("RGB").save(path, "TIFF")
    return path


@pytest.mark.parametrize("make", [imagefactory.webp, rgb_tiff], ids=["webp", "tiff"])
def test_webp_and_tiff_go_as_they_are_to_40_only(plugin, served, api, tmp_path, make):
    path = make(tmp_path)
    answer(served, EXAMPLE[api], api=api)

    assert plugin.process("item-1", str(path)) == PluginStatus.SUCCESS

    body = served.calls[0].request.body
    sent = sent_image(served.calls[0])
    assert sent.size == (300, 200)
    if api == "4.0":
        assert body == path.read_bytes()
    else:
        assert sent.format == "JPEG"
        assert len(body) <= 4_000_000


FORMATS = [
    imagefactory.jpeg_exif_rotated,
    imagefactory.cmyk_jpeg,
    imagefactory.tiff_16bit,
    imagefactory.png_alpha,
    imagefactory.gif_palette,
    imagefactory.bmp,
    imagefactory.png,
]


@pytest.mark.parametrize("make", FORMATS, ids=[f.__name__ for f in FORMATS])
def test_every_real_format_is_sent_in_a_format_the_api_takes(plugin, served, api, tmp_path, make):
    path = make(tmp_path)
    answer(served, EXAMPLE[api], api=api)

    assert plugin.process("item-1", str(path)) == PluginStatus.SUCCESS

    body = served.calls[0].request.body
    sent = sent_image(served.calls[0])
    if api == "4.0":
        assert sent.format in {"JPEG", "PNG", "GIF", "BMP", "WEBP", "ICO", "TIFF", "MPO"}
        assert len(body) < 20_000_000
    else:
        assert sent.format in {"JPEG", "PNG", "GIF", "BMP"}
        assert len(body) < 4_000_000
    with Image.open(path) as original:
        ratio = original.width / original.height
    if make is imagefactory.jpeg_exif_rotated:
        ratio = 1 / ratio  # orientation 6: displayed on its side
    assert sent.width / sent.height == pytest.approx(ratio, rel=0.01)


def test_small_image_is_enlarged_to_the_50_px_minimum(plugin, served, api, tmp_path):
    path = imagefactory.png(tmp_path, size=(40, 30))
    answer(served, EXAMPLE[api], api=api)

    assert plugin.process("item-1", str(path)) == PluginStatus.SUCCESS

    assert sent_image(served.calls[0]).size == (67, 50)


# --------------------------------------------------------------------------- the fields


def test_fields_from_the_verbatim_40_example(plugin, served, photo, store, logs):
    answer(served, "imageanalysis-analyze-200.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    fields = store.read("item-1", "image")
    assert fields["azure_tags"] == MAXIMUMSET_TAGS  # "using" at 0.536 is under 0.6
    assert fields["azure_caption"] == MAXIMUMSET_CAPTION
    assert fields["azure_objects"] == ["person", "Laptop", "chair", "dining table"]
    found = boxes.from_json(fields["azure_object_boxes"])
    assert [b.tag for b in found] == ["person", "Laptop", "chair", "dining table", "chair"]
    person = found[0]
    assert person.probability == pytest.approx(0.881)
    assert (person.left, person.top, person.width, person.height) == pytest.approx(
        (399 / 864, 244 / 576, 249 / 864, 325 / 576), abs=1e-4
    )
    assert fields["azure_text"] == MAXIMUMSET_TEXT  # blocks, then lines, in order
    assert set(fields) == {f["name"] for f in plugin.schema()}
    assert not warnings_and_errors(logs)  # metadata 864x576 is the size sent


def test_fields_from_the_verbatim_32_example(plugin, served, tmp_path, store, monkeypatch):
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags,caption,objects")
    photo = imagefactory.jpeg(tmp_path, size=(1500, 1000))
    monkeypatch.setenv("PIXSTOR_AZURE_MAX_LONG_EDGE", "1500")
    answer(served, "cv32-analyze-200.json", api="3.2")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    fields = store.read("item-1", "image")
    assert answered(fields) == {
        "azure_tags": ["person", "man", "outdoor", "window", "pangolin"],
        "azure_caption": "Satya Nadella sitting on a bench",  # captions have no threshold
        "azure_objects": ["tree"],
        "azure_object_boxes": json.dumps(
            [
                {
                    "tag": "tree",
                    "probability": 0.9,
                    "left": 0.0,
                    "top": 0.0,
                    "width": round(50 / 1500, 4),
                    "height": 0.05,
                }
            ],
            separators=(",", ":"),
        ),
    }  # brands, faces, celebrities, colours... are not ours to write


@pytest.mark.parametrize(
    ("ia40", "cv32", "size"),
    [
        (
            "imageanalysis-analyze-200.json",
            "cv32-analyze-maximumset-200.handmade.json",
            (864, 576),
        ),
        (
            "imageanalysis-analyze-cv32example-200.handmade.json",
            "cv32-analyze-200.json",
            (1500, 1000),
        ),
    ],
    ids=["from-40-example", "from-32-example"],
)
def test_equivalent_answers_of_both_apis_give_the_same_fields(
    plugin, served, tmp_path, store, monkeypatch, ia40, cv32, size
):
    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags,caption,objects")
    monkeypatch.setenv("PIXSTOR_AZURE_MAX_LONG_EDGE", "1500")
    photo = imagefactory.jpeg(tmp_path, size=size)
    answer(served, ia40, api="4.0")
    answer(served, cv32, api="3.2")

    assert plugin.process("item-40", str(photo)) == PluginStatus.SUCCESS
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    assert plugin.process("item-32", str(photo)) == PluginStatus.SUCCESS

    assert [c.request.url.split("?")[0] for c in served.calls] == [URLS["4.0"], URLS["3.2"]]
    from_40 = store.read("item-40", "image")
    assert set(answered(from_40)) == {
        "azure_tags",
        "azure_caption",
        "azure_objects",
        "azure_object_boxes",
    }
    assert answered(store.read("item-32", "image")) == answered(from_40)


def test_extract_returns_exactly_what_process_writes(plugin, served, photo, store):
    answer(served, "imageanalysis-analyze-200.json")

    fields = azurevision.extract(str(photo))
    plugin.process("item-1", str(photo))

    assert store.read("item-1", "image") == fields
    check(fields, plugin.schema())  # names and datatypes are the schema's


def test_features_not_requested_write_no_field(plugin, served, photo, store, monkeypatch):
    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags")
    # The verbatim body holds every result; only the one asked for may be written.
    answer(served, "imageanalysis-analyze-200.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    assert query(served.calls[0])["features"] == "tags"
    assert "gender-neutral-caption" not in query(served.calls[0])
    assert answered(store.read("item-1", "image")) == {"azure_tags": MAXIMUMSET_TAGS}


def test_thresholds_and_maximum_counts_are_settings(plugin, served, photo, store, monkeypatch):
    monkeypatch.setenv("AZURE_VISION_TAG_THRESHOLD", "0.9")
    monkeypatch.setenv("AZURE_VISION_MAX_TAGS", "3")
    monkeypatch.setenv("AZURE_VISION_OBJECT_THRESHOLD", "0.7")
    answer(served, "imageanalysis-analyze-200.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    fields = store.read("item-1", "image")
    assert fields["azure_tags"] == ["furniture", "clothing", "person"]  # houseplant 0.94 is 4th
    assert fields["azure_objects"] == ["person", "Laptop"]
    assert len(boxes.from_json(fields["azure_object_boxes"])) == 2


def test_threshold_is_inclusive_and_max_objects_counts_boxes(
    plugin, served, photo, store, monkeypatch
):
    monkeypatch.setenv("AZURE_VISION_TAG_THRESHOLD", "0.6811168789863586")  # "table", exactly
    monkeypatch.setenv("AZURE_VISION_MAX_OBJECTS", "1")
    answer(served, "imageanalysis-analyze-200.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    fields = store.read("item-1", "image")
    assert fields["azure_tags"][-1] == "table"
    assert fields["azure_objects"] == ["person"]
    assert [b.tag for b in boxes.from_json(fields["azure_object_boxes"])] == ["person"]


def test_nothing_found_writes_nothing_and_is_skipped(plugin, served, photo, store, logs, api):
    # The generated example: every confidence 0 and no objects.
    if api == "4.0":
        answer(served, "imageanalysis-analyze-gen-200.json")
        empty = {"AZURE_VISION_FEATURES": "tags,objects"}
    else:
        answer(served, "cv32-analyze-200.json", api="3.2")
        empty = {"AZURE_VISION_FEATURES": "tags", "AZURE_VISION_TAG_THRESHOLD": "1"}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in empty.items():
            mp.setenv(name, value)
        assert azurevision.extract(str(photo)) == {}
        assert plugin.process("item-1", str(photo)) == PluginStatus.SKIPPED

    assert store.read("item-1") == {}
    assert_mentions(logs.text, "runner.NOTHING_FOUND")


def test_empty_results_are_never_written_as_placeholders(plugin, served, photo, store, api):
    body = {
        "4.0": {
            "modelVersion": "2023-10-01",
            "metadata": {"width": 864, "height": 576},
            "captionResult": {"text": "  ", "confidence": 0.9},
            "tagsResult": {"values": []},
            "objectsResult": {
                "values": [{"boundingBox": {"x": 1, "y": 1, "w": 5, "h": 5}, "tags": []}]
            },
            "readResult": {
                "blocks": [{"lines": [{"text": " ", "boundingPolygon": [], "words": []}]}]
            },
        },
        "3.2": {
            "tags": [],
            "description": {"tags": [], "captions": []},
            "objects": [],
            "metadata": {"width": 864, "height": 576, "format": "Jpeg"},
        },
    }[api]
    served.add(responses.POST, URLS[api], json=body)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SKIPPED
    assert store.read("item-1") == {}


def test_40_reader_gives_tags_and_objects_most_confident_first():
    body = recording("imageanalysis-analyze-200.json")["body"]

    found = imageanalysis.parse(body, "4.0", ["tags", "objects"], 864, 576)

    assert [t.name for t in found.tags] == [*MAXIMUMSET_TAGS, "using"]  # none dropped yet
    assert [b.tag for b in found.objects] == ["person", "Laptop", "chair", "dining table", "chair"]
    assert found.caption is None and found.text == []  # not asked for


def test_32_reader_takes_the_best_caption_and_each_object_by_its_own_name():
    body = {
        "description": {
            "captions": [
                {"text": "a clapperboard", "confidence": 0.41},
                {"text": "a film slate on a table", "confidence": 0.77},
            ]
        },
        "objects": [
            {
                "rectangle": {"x": 10, "y": 20, "w": 30, "h": 40},
                "object": "slate",
                "confidence": 0.6,
                "parent": {"object": "board", "confidence": 0.9},
            }
        ],
        "metadata": {"width": 100, "height": 200, "format": "Png"},
    }

    found = imageanalysis.parse(body, "3.2", ["caption", "objects"], 100, 200)

    assert (found.caption, found.caption_confidence) == ("a film slate on a table", 0.77)
    (box,) = found.objects
    assert (box.tag, box.probability) == ("slate", 0.6)  # not its parent "board"
    assert (box.left, box.top, box.width, box.height) == pytest.approx((0.1, 0.1, 0.3, 0.2))
    assert found.tags == [] and found.text == []


def test_keys_are_read_whatever_their_case_and_tags_come_best_first():
    body = {
        "TagsResult": {
            "Values": [{"Name": "text", "Confidence": 0.7}, {"Name": "slate", "Confidence": 0.9}]
        },
        "CAPTIONRESULT": {"TEXT": "a slate", "confidence": 0.8},
        "Metadata": {"Width": 100, "Height": 100},
        "ReadResult": {"Blocks": [{"Lines": [{"Text": "SCENE 12"}, {"Text": "TAKE 3"}]}]},
    }

    found = imageanalysis.parse(body, "4.0", ["tags", "caption", "read"], 100, 100)

    assert found.tags == [base.Tag("slate", 0.9), base.Tag("text", 0.7)]  # best first
    assert found.caption == "a slate"
    assert found.text == ["SCENE 12", "TAKE 3"]


def test_service_size_that_differs_from_the_sent_one_is_used_and_reported(
    plugin, served, tmp_path, store, logs
):
    photo = imagefactory.jpeg(tmp_path, size=(640, 480))
    answer(served, "imageanalysis-analyze-200.json")  # says 864x576

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    person = boxes.from_json(store.read("item-1", "image")["azure_object_boxes"])[0]
    assert person.left == pytest.approx(399 / 864, abs=1e-4)
    (line,) = warnings_and_errors(logs)
    assert "864x576" in line and "640x480" in line


# --------------------------------------------------------------------------- boxes


def red_rectangle(image: Image.Image) -> Tuple[int, int, int, int]:
    """(x, y, w, h) in pixels of the red area of ``image``."""
    r, g, b = image.convert("RGB").split()
    mask = ImageChops.multiply(
        r.point(lambda v: 255 if v > 150 else 0),
        ImageChops.multiply(
            g.point(lambda v: 255 if v < 100 else 0), b.point(lambda v: 255 if v < 100 else 0)
        ),
    )
    left, top, right, bottom = mask.getbbox()
    return left, top, right - left, bottom - top


def answer_with_red_box(api, metadata=True):
    """A callback answering with one object at the red area of the image actually sent."""

    def reply(request):
        sent = Image.open(io.BytesIO(request.body))
        x, y, w, h = red_rectangle(sent)
        box = {"x": x, "y": y, "w": w, "h": h}
        if api == "4.0":
            body = {
                "modelVersion": "2023-10-01",
                "metadata": {"width": sent.width, "height": sent.height},
                "objectsResult": {
                    "values": [{"boundingBox": box, "tags": [{"name": "slate", "confidence": 0.9}]}]
                },
            }
        else:
            body = {
                "objects": [{"rectangle": box, "object": "slate", "confidence": 0.9}],
                "requestId": "5c3e8d1a-7b2f-4e6a-9d0c-1f2e3d4c5b6a",
                "metadata": {"width": sent.width, "height": sent.height, "format": "Jpeg"},
                "modelVersion": "2021-05-01",
            }
        if not metadata:  # then the size we sent is all there is to go by
            del body["metadata"]
        return 200, {}, json.dumps(body)

    return reply


@pytest.mark.parametrize("metadata", [True, False], ids=["with-metadata", "without-metadata"])
@pytest.mark.parametrize("orientation", [6, 8, 3, 1])
def test_boxes_from_pixels_on_a_downscaled_exif_rotated_image(
    plugin, served, api, tmp_path, store, logs, orientation, metadata
):
    size, rect = (4000, 3000), (400, 600, 2000, 1500)
    path = imagefactory.jpeg_exif_rotated(tmp_path, orientation=orientation, size=size, rect=rect)
    served.add_callback(
        responses.POST, URLS[api], callback=answer_with_red_box(api, metadata=metadata)
    )

    assert plugin.process("item-1", str(path)) == PluginStatus.SUCCESS

    sent = sent_image(served.calls[0])
    upright = orientation in (1, 2, 3, 4)
    assert sent.size == ((2048, 1536) if upright else (1536, 2048))  # downscaled, turned
    (box,) = boxes.from_json(store.read("item-1", "image")["azure_object_boxes"])
    expected = imagefactory.displayed_rect(size, rect, orientation)
    assert (box.left, box.top, box.width, box.height) == pytest.approx(expected, abs=0.01)
    assert not warnings_and_errors(logs)  # the service's size is the size sent


# --------------------------------------------------------------------------- region fallback


def copies(photo, folder, count):
    folder.mkdir()
    paths = []
    for i in range(count):
        path = folder / f"frame-{i}.jpg"
        shutil.copy(photo, path)
        paths.append(path)
    return paths


def distinct(photo, folder, count):
    """``count`` pictures of the photo, each with one pixel of its own (another content)."""
    folder.mkdir()
    paths = []
    with Image.open(str(photo)) as image:
        base = image.convert("RGB")
    for i in range(count):
        picture = base.copy()
        picture.putpixel((i, 0), (i * 40, 255 - i * 40, 7))
        path = folder / f"picture-{chr(ord('a') + i)}.png"
        picture.save(str(path))
        paths.append(path)
    return paths


def test_caption_unsupported_in_region_is_dropped_once_for_every_file(
    plugin, served, photo, tmp_path, store, logs, monkeypatch
):
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", "off")  # copies of one photo: asked each time
    answer(served, "imageanalysis-400-caption-region.handmade.json")
    answer(served, "imageanalysis-analyze-nocaption-200.handmade.json")  # then for ever
    files = copies(photo, tmp_path / "batch", 3)

    statuses = [plugin.process(f"item-{i}", str(f)) for i, f in enumerate(files)]

    assert statuses == [PluginStatus.SUCCESS] * 3
    asked = [query(c)["features"] for c in served.calls]
    # The first file is asked again at once without caption; later files never ask for it.
    assert asked == ["tags,caption,objects,read"] + ["tags,objects,read"] * 3
    assert "gender-neutral-caption" not in query(served.calls[1])
    for i in range(3):
        assert answered(store.read(f"item-{i}", "image")) == {
            "azure_tags": MAXIMUMSET_TAGS,
            "azure_objects": ["person", "Laptop", "chair", "dining table"],
            "azure_object_boxes": store.read("item-0", "image")["azure_object_boxes"],
            "azure_text": MAXIMUMSET_TEXT,
        }
    (line,) = warnings_and_errors(logs)
    assert "caption" in line and "AZURE_VISION_API=3.2" in line and ENDPOINT in line
    assert_no_key(logs)


def test_fallback_is_remembered_across_threads_with_one_warning(
    plugin, served, photo, tmp_path, store, logs, monkeypatch
):
    # Six different pictures: copies of one would be asked once, the others waiting for it.
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", "off")
    region = recording("imageanalysis-400-caption-region.handmade.json")
    good = recording("imageanalysis-analyze-nocaption-200.handmade.json")
    # Every file's first request is held until all six have asked for caption, so all six
    # hear the refusal together and race to record it.
    all_asked = threading.Barrier(6, timeout=20)

    def reply(request):
        if "caption" in dict(parse_qsl(urlsplit(request.url).query))["features"]:
            all_asked.wait()
            return 400, region["headers"], json.dumps(region["body"])
        return 200, {}, json.dumps(good["body"])

    served.add_callback(responses.POST, URLS["4.0"], callback=reply)
    files = distinct(photo, tmp_path / "batch", 6)
    statuses = []

    def work(i, path):
        statuses.append(plugin.process(f"item-{i}", str(path)))

    threads = [threading.Thread(target=work, args=(i, f)) for i, f in enumerate(files)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(served.calls) == 12  # six refusals, six answers without caption
    assert statuses == [PluginStatus.SUCCESS] * 6
    assert all("azure_caption" not in store.read(f"item-{i}", "image") for i in range(6))
    assert len(warnings_and_errors(logs)) == 1


def test_fallback_is_per_endpoint(plugin, served, photo, monkeypatch):
    other = "https://northeurope.api.cognitive.microsoft.com"
    answer(served, "imageanalysis-400-caption-region.handmade.json")
    answer(served, "imageanalysis-analyze-nocaption-200.handmade.json")
    served.add(
        responses.POST,
        f"{other}/computervision/imageanalysis:analyze",
        json=recording("imageanalysis-analyze-200.json")["body"],
    )

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS
    monkeypatch.setenv("AZURE_VISION_ENDPOINT", other)
    assert plugin.process("item-2", str(photo)) == PluginStatus.SUCCESS

    assert "caption" in query(served.calls[-1])["features"]


def test_only_caption_asked_for_and_refused_is_a_settings_error_said_once(
    plugin, served, photo, monkeypatch, logs
):
    monkeypatch.setenv("AZURE_VISION_FEATURES", "caption")
    answer(served, "imageanalysis-400-caption-region.handmade.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL
    assert plugin.process("item-2", str(photo)) == PluginStatus.FATAL

    assert len(served.calls) == 1  # the second file is not sent at all
    errors = [r.getMessage() for r in logs.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "setting AZURE_VISION_FEATURES " in errors[0]
    hint = says("imageanalysis.ASK_32_FOR_CAPTIONS")
    assert_mentions(
        errors[0], "imageanalysis.FEATURES_NOT_IN_REGION", features="caption", hint=hint
    )


def test_32_analyze_asked_only_for_read_is_a_settings_error(vision_env, monkeypatch):
    # The plugin asks the Read API alone then; analyze itself has no text to give.
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")

    with pytest.raises(SettingsError) as raised:
        imageanalysis.ComputerVision32(Settings.load())

    assert_problem(raised.value, "AZURE_VISION_FEATURES", "imageanalysis.ONLY_READ_ON_32")


def refusal(message, code="InvalidRequest", inner=None, detail=None, status=400):
    return ServiceError(
        imageanalysis.SERVICE,
        f"{imageanalysis.SERVICE} answered {status} {code}: {message}",
        http_status=status,
        code=code,
        inner_code=inner,
        detail=detail,
    )


REGION = "The feature 'Caption' is not supported in this region."
ALL = ["tags", "caption", "objects", "read"]


@pytest.mark.parametrize(
    ("error", "features", "expected"),
    [
        (refusal(REGION, inner="NotSupportedFeature"), ALL, "caption"),
        (refusal(REGION.upper()), ALL, "caption"),
        (
            refusal(
                "Analyze query is invalid.",
                inner="NotSupportedFeature",
                detail=json.dumps({"error": {"innererror": {"message": REGION}}}),
            ),
            ALL,
            "caption",
        ),
        (
            refusal("Feature 'Objects' is not available.", inner="NotSupportedFeature"),
            ALL,
            "objects",
        ),
        (
            refusal("Feature 'Description' is not supported in this region."),
            ["tags", "caption"],
            "caption",
        ),
        (refusal("Not supported in this region."), ALL, "caption"),
        (refusal("Not supported in this region."), ["tags", "objects"], None),
        (refusal("The feature 'Read' is not supported in this region."), ["tags", "caption"], None),
        (
            refusal("Specified feature type is not valid", inner="NotSupportedVisualFeature"),
            ALL,
            None,
        ),
        (refusal("Image format is not valid.", inner="InvalidImageFormat"), ALL, None),
        (refusal(REGION, code="401", status=401), ALL, None),
    ],
    ids=[
        "wrapped-with-inner-code",
        "message-only-any-case",
        "in-inner-message",
        "inner-code-naming-feature",
        "v32-name",
        "unnamed-means-caption",
        "unnamed-without-caption",
        "names-one-not-asked-for",
        "bad-feature",
        "image-problem",
        "not-a-400",
    ],
)
def test_region_refusals_are_recognised(error, features, expected):
    assert imageanalysis.region_refusal(error, features) == expected


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("api_name", "name", "status", "says", "their_words"),
    [
        (
            "4.0",
            "imageanalysis-401.handmade.json",
            PluginStatus.FATAL,
            ("KEY_REFUSED", dict(status=401, key_setting="AZURE_VISION_KEY")),
            "Access denied",
        ),
        (
            "3.2",
            "cv32-401.handmade.json",
            PluginStatus.FATAL,
            ("KEY_REFUSED", dict(status=401, key_setting="AZURE_VISION_KEY")),
            "Access denied",
        ),
        (
            "4.0",
            "imageanalysis-400-image-format.handmade.json",
            PluginStatus.SKIPPED,
            ("IMAGE_REFUSED", {}),
            "InvalidImageFormat",
        ),
        (
            "4.0",
            "imageanalysis-400-image-size.handmade.json",
            PluginStatus.SKIPPED,
            ("IMAGE_REFUSED", {}),
            "InvalidImageSize",
        ),
        (
            "3.2",
            "cv32-400-image-format.handmade.json",
            PluginStatus.SKIPPED,
            ("IMAGE_REFUSED", {}),
            "InvalidImageFormat",
        ),
        (
            "3.2",
            "cv32-400-image-format-flat.handmade.json",
            PluginStatus.SKIPPED,
            ("IMAGE_REFUSED", {}),
            "InvalidImageFormat",
        ),
        (
            "4.0",
            "imageanalysis-400-language.handmade.json",
            PluginStatus.FATAL,
            ("imageanalysis.LANGUAGE_40", {}),
            "",
        ),
        (
            "3.2",
            "cv32-400-language-flat.handmade.json",
            PluginStatus.FATAL,
            ("imageanalysis.LANGUAGE_32", {}),
            "",
        ),
        (
            "4.0",
            "imageanalysis-404.handmade.json",
            PluginStatus.FATAL,
            ("imageanalysis.NO_ANALYZE_40", {}),
            "",
        ),
        (
            "4.0",
            "imageanalysis-400-bad-feature.handmade.json",
            PluginStatus.FATAL,
            ("imageanalysis.FEATURE_NOT_OFFERED", {}),
            "NotSupportedVisualFeature",
        ),
    ],
)
def test_service_refusals(
    plugin, served, photo, store, logs, monkeypatch, api_name, name, status, says, their_words
):
    if api_name == "3.2":
        monkeypatch.setenv("AZURE_VISION_API", "3.2")
    answer(served, name, api=api_name)

    assert plugin.process("item-1", str(photo)) == status

    assert len(served.calls) == 1  # a refusal is not retried, nor taken for a region's
    assert store.read("item-1") == {}
    (line,) = warnings_and_errors(logs)
    assert str(photo) in line and "azurevision" in line
    key, known = says
    assert_mentions(line, key, **known)
    assert their_words in line
    assert "Traceback" not in logs.text
    assert_no_key(logs)


def test_401_names_both_settings_in_plain_words(plugin, served, photo, logs):
    answer(served, "imageanalysis-401.handmade.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL
    (line,) = warnings_and_errors(logs)
    assert_mentions(
        line,
        "KEY_REFUSED",
        status=401,
        key_setting="AZURE_VISION_KEY",
        endpoint_setting="AZURE_VISION_ENDPOINT",
    )


RATE = {"4.0": "imageanalysis-429.handmade.json", "3.2": "cv32-429.handmade.json"}


def test_429_waits_as_the_message_says_then_succeeds(
    plugin, served, api, photo, store, waits, logs
):
    answer(served, RATE[api], api=api)
    answer(served, EXAMPLE[api], api=api)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    assert len(served.calls) == 2
    assert len(waits) == 1 and 3.0 <= waits[0] <= 3.3  # "Please retry after 3 seconds"
    assert store.read("item-1", "image")["azure_tags"]
    assert_no_key(logs)


def test_429_for_ever_names_the_rate_setting(plugin, served, photo, monkeypatch, logs):
    monkeypatch.setenv("PIXSTOR_AZURE_ATTEMPTS", "2")
    answer(served, RATE["4.0"])

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL
    assert len(served.calls) == 2
    assert "AZURE_VISION_REQUESTS_PER_SECOND" in logs.text


@pytest.mark.parametrize(
    "body",
    [
        {"tagsResult": {"values": [{"name": "x"}]}, "tags": [{"name": "x"}]},
        {
            "objectsResult": {
                "values": [{"boundingBox": {"x": 1}, "tags": [{"name": "a", "confidence": 1}]}]
            },
            "objects": [{"rectangle": {"x": 1}, "object": "a", "confidence": 1}],
        },
        {"tagsResult": "tags", "tags": "tags"},
        ["not", "an", "object"],
    ],
    ids=["tag-without-confidence", "box-without-size", "result-not-an-object", "list"],
)
def test_unexpected_json_shape_is_fatal(plugin, served, api, photo, store, logs, body):
    served.add(responses.POST, URLS[api], json=body, status=200)

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL
    assert_mentions(logs.text, "UNEXPECTED")
    assert store.read("item-1") == {}


def test_settings_from_ini_file_with_environment_winning(
    plugin, served, photo, tmp_path, monkeypatch, store
):
    ini = tmp_path / "pixstor-azure.ini"
    ini.write_text(
        "[azure_vision]\n"
        f"endpoint = {ENDPOINT}\n"
        "key = from-the-file\n"
        "api = 3.2\n"
        "max_tags = 2\n"
        "language = ja\n"
        "features = tags,caption,objects\n"
    )
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(ini))
    monkeypatch.delenv("AZURE_VISION_ENDPOINT")
    monkeypatch.setenv("AZURE_VISION_LANGUAGE", "pt")
    answer(served, "cv32-analyze-maximumset-200.handmade.json", api="3.2")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS
    call = served.calls[0]
    assert call.request.url.split("?")[0] == URLS["3.2"]  # the file's API
    assert call.request.headers["Ocp-Apim-Subscription-Key"] == KEY  # the environment's
    assert query(call)["language"] == "pt"
    assert store.read("item-1", "image")["azure_tags"] == ["furniture", "clothing"]


# --------------------------------------------------------------------------- the plugin


def test_namespace_and_schema(plugin):
    assert plugin.namespace() == "image"
    assert [(f["name"], f["value"]["datatype"]) for f in plugin.schema()] == [
        ("azure_tags", "[String]"),
        ("azure_caption", "String"),
        ("azure_objects", "[String]"),
        ("azure_object_boxes", "String"),
        ("azure_text", "[String]"),
        ("azure_vision_source", "String"),
    ]


# --------------------------------------------------------------------------- over real sockets


def test_against_the_fake_service_with_a_region_without_captions(
    plugin, tmp_path, store, logs, monkeypatch
):
    """The whole path over HTTP to tests/fakeazure.py, which words refusals as Azure does."""
    from tests.fakeazure import FakeAzure

    with FakeAzure() as fake:
        fake.unsupported_features = {"caption"}
        fake.read_lines = ["SCENE 12", "TAKE 3"]
        monkeypatch.setenv("AZURE_VISION_ENDPOINT", fake.url)
        monkeypatch.setenv("AZURE_VISION_KEY", fake.key)
        first = imagefactory.jpeg_exif_rotated(tmp_path / "a", size=(400, 300))
        second = imagefactory.png(tmp_path / "b", size=(300, 200), color=(0, 0, 255))

        assert plugin.process("item-1", str(first)) == PluginStatus.SUCCESS
        assert plugin.process("item-2", str(second)) == PluginStatus.SUCCESS

        asked = [r.query["features"] for r in fake.requests]
        assert fake.errors == []
    assert asked == ["tags,caption,objects,read"] + ["tags,objects,read"] * 2
    fields = store.read("item-1", "image")
    assert fields["azure_text"] == ["SCENE 12", "TAKE 3"]
    assert "azure_caption" not in fields
    (red,) = [b for b in boxes.from_json(fields["azure_object_boxes"]) if b.tag == "red box"]
    expected = imagefactory.displayed_rect((400, 300), (40, 30, 160, 120), 6)
    assert (red.left, red.top, red.width, red.height) == pytest.approx(expected, abs=0.01)
    assert "blue box" in store.read("item-2", "image")["azure_objects"]
    (line,) = warnings_and_errors(logs)
    assert "caption" in line and "AZURE_VISION_API=3.2" in line
    assert_no_key(logs, fake.key)


def test_against_the_fake_service_with_32_captions(plugin, tmp_path, store, logs, monkeypatch):
    from tests.fakeazure import FakeAzure

    with FakeAzure() as fake:
        monkeypatch.setenv("AZURE_VISION_ENDPOINT", fake.url)
        monkeypatch.setenv("AZURE_VISION_KEY", fake.key)
        monkeypatch.setenv("AZURE_VISION_API", "3.2")
        monkeypatch.setenv("AZURE_VISION_FEATURES", "tags,caption,objects")
        path = imagefactory.png(tmp_path, size=(300, 200), color=(0, 0, 255))

        assert plugin.process("item-1", str(path)) == PluginStatus.SUCCESS

        (received,) = fake.requests
        assert fake.errors == []
    assert received.path == "/vision/v3.2/analyze"
    assert received.query["visualFeatures"] == "Tags,Description,Objects"
    fields = store.read("item-1", "image")
    assert fields["azure_caption"] == "a picture with a blue box"
    assert "blue" in fields["azure_tags"]
    assert "azure_text" not in fields
    assert_no_key(logs, fake.key)
