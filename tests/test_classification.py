"""azureclassification.py end to end: PixStor's call -> Custom Vision (recorded) -> the store.

Answers are recorded responses from tests/recordings, served with ``responses``; each test
checks what the plugin sent, the status ``process`` returned, and what reached the store.
"""

import io
import re

import pytest
import responses
from PIL import Image

import azureclassification
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.ground.standin import check
from tests import imagefactory
from tests.conftest import ENDPOINT, KEY, PROJECT, assert_no_key, sent_image, serve
from tests.sources import answered
from tests.wording import assert_mentions

URL = (
    f"{ENDPOINT}/customvision/v3.0/Prediction/{PROJECT}/classify/iterations/MyModel1/image/nostore"
)


@pytest.fixture
def plugin():
    return azureclassification.AzureClassificationPlugin()


@pytest.fixture
def served(classify_env):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def answer(mock, name, url=URL, headers=None):
    serve(mock, url, name, headers)


def test_classes_at_or_above_threshold_most_probable_first(plugin, served, photo, store, logs):
    answer(served, "customvision-classify-nostore-200.handmade.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    assert answered(store.read("item-1", "image")) == {
        "azure_class": "Hemlock",
        "azure_classes": ["Hemlock", "Japanese Cherry", "Maple"],
    }
    request = served.calls[0].request
    assert request.headers["Prediction-Key"] == KEY
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.headers["Accept"] == "application/json"
    assert len(request.body) <= 4_000_000
    assert sent_image(served.calls[0]).size == (640, 480)
    assert_no_key(logs)


def test_extract_returns_exactly_what_process_writes(plugin, served, photo, store):
    answer(served, "customvision-classify-nostore-200.handmade.json")
    answer(served, "customvision-classify-nostore-200.handmade.json")

    fields = azureclassification.extract(str(photo))
    plugin.process("item-1", str(photo))

    assert store.read("item-1", "image") == fields
    check(fields, plugin.schema())  # names and datatypes are the schema's
    assert {f["name"] for f in plugin.schema()} == set(fields)


def test_threshold_and_maximum_are_settings(plugin, served, photo, store, monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.55")
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_MAX_TAGS", "1")
    answer(served, "customvision-classify-nostore-200.handmade.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    assert answered(store.read("item-1", "image")) == {
        "azure_class": "Hemlock",
        "azure_classes": ["Hemlock"],
    }


def test_nothing_above_threshold_writes_nothing_and_says_so(plugin, served, photo, store, logs):
    # The spec's own example: Hemlock 0.05, Japanese Cherry 0.0002.
    answer(served, "customvision-classify-200.json")

    assert azureclassification.extract(str(photo)) == {}
    assert plugin.process("item-1", str(photo)) == PluginStatus.SKIPPED

    assert store.read("item-1") == {}
    assert_mentions(logs.text, "runner.NOTHING_FOUND")


def test_an_untyped_negative_tag_is_never_a_class(plugin, served, photo, store):
    # As an exported model answers: the Negative tag by its name, without a tagType.
    predictions = [
        {"probability": 0.93, "tagId": "", "tagName": "Negative", "boundingBox": None},
        {"probability": 0.71, "tagId": "", "tagName": "Hemlock", "boundingBox": None},
    ]
    served.add(responses.POST, URL, json={"id": "", "predictions": predictions}, status=200)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    assert answered(store.read("item-1", "image")) == {
        "azure_class": "Hemlock",
        "azure_classes": ["Hemlock"],
    }


def test_store_images_setting_uses_the_storing_path(plugin, served, photo, store, monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_STORE_IMAGES", "true")
    answer(served, "customvision-classify-nostore-200.handmade.json", url=URL[: -len("/nostore")])

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS
    assert not served.calls[0].request.url.endswith("/nostore")


def test_iteration_name_is_quoted_into_the_path(plugin, served, photo, monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_ITERATION", "film stills/v2")
    url = URL.replace("MyModel1", "film%20stills%2Fv2")
    answer(served, "customvision-classify-nostore-200.handmade.json", url=url)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS


def test_unexpected_json_shape_is_fatal(plugin, served, photo, store, logs):
    served.add(responses.POST, URL, json={"predictions": [{"tagName": "x"}]}, status=200)

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL
    assert_mentions(logs.text, "UNEXPECTED")
    assert store.read("item-1") == {}


def test_settings_from_ini_file_with_environment_winning(
    plugin, served, photo, tmp_path, monkeypatch, store
):
    ini = tmp_path / "pixstor-azure.ini"
    ini.write_text(
        "[custom_vision]\n"
        f"endpoint = {ENDPOINT}\n"
        "key = from-the-file\n"
        f"classify_project = {PROJECT}\n"
        "classify_iteration = MyModel1\n"
        "classify_max_tags = 1\n"
    )
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(ini))
    monkeypatch.delenv("CUSTOM_VISION_ENDPOINT")
    monkeypatch.delenv("CUSTOM_VISION_CLASSIFY_PROJECT")
    monkeypatch.delenv("CUSTOM_VISION_CLASSIFY_ITERATION")
    answer(served, "customvision-classify-nostore-200.handmade.json")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS
    assert served.calls[0].request.headers["Prediction-Key"] == KEY  # the environment's
    assert store.read("item-1", "image")["azure_classes"] == ["Hemlock"]  # the file's maximum


FORMATS = [
    imagefactory.jpeg_exif_rotated,
    imagefactory.cmyk_jpeg,
    imagefactory.tiff_16bit,
    imagefactory.png_alpha,
    imagefactory.gif_palette,
    imagefactory.bmp,
    imagefactory.webp,
    imagefactory.jpeg_40mp,
]


@pytest.mark.parametrize("make", FORMATS, ids=[f.__name__ for f in FORMATS])
def test_every_real_format_is_sent_within_limits(plugin, served, tmp_path, store, make):
    path = make(tmp_path)
    answer(served, "customvision-classify-nostore-200.handmade.json")

    assert plugin.process("item-1", str(path)) == PluginStatus.SUCCESS

    body = served.calls[0].request.body
    assert len(body) <= 4_000_000
    sent = Image.open(io.BytesIO(body))
    assert sent.format in {"JPEG", "PNG", "BMP", "GIF"}
    assert max(sent.size) <= 2048
    with Image.open(path) as original:
        ratio = original.width / original.height
    if make is imagefactory.jpeg_exif_rotated:
        ratio = 1 / ratio  # orientation 6: displayed on its side
    assert sent.width / sent.height == pytest.approx(ratio, rel=0.01)
    assert store.read("item-1", "image")["azure_class"] == "Hemlock"


def test_namespace_and_schema(plugin):
    assert plugin.namespace() == "image"
    assert [(f["name"], f["value"]["datatype"]) for f in plugin.schema()] == [
        ("azure_class", "String"),
        ("azure_classes", "[String]"),
        ("azure_classification_source", "String"),
    ]
    assert all(re.match(r"\w", f["prompt"]) for f in plugin.schema())
