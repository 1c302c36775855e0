"""The container backend over real sockets, against a server that behaves as the Docker
container Custom Vision exports (tests/fakecontainer.py mounted in tests/fakeazure.py): its
routes, 4 MiB limit, unsorted classifications with ``boundingBox: null``, empty ids, and errors
that come as HTTP 500 text, HTTP 200 text or an HTTP 200 JSON string."""

import json
import random
from pathlib import Path

import pytest
import requests
from PIL import Image

import azureclassification
import azureobjectdetection
from pixstor_azure.ground.errors import (
    ImageRejected,
    Refused,
    ServiceError,
    SettingsError,
    Unavailable,
)
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.ground.settings import Settings
from pixstor_azure.images import prepare
from pixstor_azure.services import container, customvision, registry
from tests import imagefactory
from tests.fakeazure import FakeAzure
from tests.fakecontainer import HARNESS, FakeContainer
from tests.sources import answered
from tests.wording import assert_mentions, assert_problem, assert_says, row_of, says

# the row of a URL where no container answers
NO_CONTAINER = row_of(container.CustomVisionContainer, status=404)

CLASSIFY, DETECT = customvision.CLASSIFY, customvision.DETECT
COLOURS = ["blue", "green", "red", "white", "black"]  # labels.txt order, not by probability


def serve(monkeypatch, kind: str, labels, url_suffix: str = ""):
    task = CLASSIFY if kind == "classify" else DETECT
    server = FakeAzure().start()
    api = server.mount("/", FakeContainer(kind, labels))
    monkeypatch.setenv(task.setting("BACKEND"), "container")
    monkeypatch.setenv(task.setting("URL"), server.url + url_suffix)
    return server, api


@pytest.fixture
def classifier(monkeypatch):
    server, api = serve(monkeypatch, "classify", COLOURS)
    yield server, api
    server.stop()


@pytest.fixture
def detector(monkeypatch):
    server, api = serve(monkeypatch, "detect", ["red", "green", "blue"])
    yield server, api
    server.stop()


def edge() -> int:
    """The long edge sent to the container: Custom Vision's, at most the container's 1600."""
    return min(prepare.edge_settings(Settings.load(), custom_vision=True)[0], 1600)


def stripes(folder: Path, shares, name: str = "s.png") -> Path:
    im = Image.new("RGB", (400, 300), (128, 128, 128))
    x = 0
    for colour, share in shares:
        width = round(400 * share)
        im.paste(colour, (x, 0, x + width, 300))
        x += width
    path = folder / name
    im.save(path)
    return path


def test_the_harness_answers_as_the_container_does(classifier):
    server, _ = classifier

    assert requests.get(server.url + "/", timeout=5).text == HARNESS


def test_classifier_plugin_posts_the_picture_to_image_without_a_key(classifier, store, tmp_path):
    server, api = classifier
    path = imagefactory.png(tmp_path, size=(800, 600), color=(0, 0, 255))

    status = azureclassification.AzureClassificationPlugin().process("item", str(path))

    assert status == PluginStatus.SUCCESS
    assert answered(store.read("item", "image")) == {
        "azure_class": "blue",
        "azure_classes": ["blue"],
    }
    (received,) = server.requests
    assert (received.method, received.path, received.status) == ("POST", "/image", 200)
    assert received.headers["content-type"] == "application/octet-stream"
    assert not any("key" in name for name in received.headers)
    assert received.body_size == path.stat().st_size  # within limits: sent as it is
    assert api.answered == 1


def test_unsorted_classifications_meet_the_thresholds(classifier, tmp_path, monkeypatch):
    # The container lists blue before red (labels.txt order), whatever the probabilities.
    path = stripes(tmp_path, [((255, 0, 0), 0.6), ((0, 0, 255), 0.3)])
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.2")
    backend = registry.backend(CLASSIFY.name, Settings.load())

    answer = backend.ask(str(path))

    assert [p["tagName"] for p in answer.body["predictions"]] == ["blue", "red"]
    assert answer.body["predictions"][0]["boundingBox"] is None
    assert answer.body["id"] == answer.body["project"] == ""
    found = customvision.predict(str(path), CLASSIFY)
    assert [(p.tag, round(p.probability, 2)) for p in found] == [("red", 0.6), ("blue", 0.3)]


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_detector_boxes_are_where_the_colour_is_as_displayed(
    detector, store, tmp_path, orientation
):
    server, _ = detector
    size, rect = (400, 300), (40, 30, 160, 120)
    path = imagefactory.jpeg_exif_rotated(tmp_path, orientation, size, rect, (255, 0, 0))

    status = azureobjectdetection.AzureObjectDetectionPlugin().process("d", str(path))

    assert status == PluginStatus.SUCCESS
    fields = store.read("d", "image")
    assert fields["azure_detected"] == ["red"]
    (box,) = json.loads(fields["azure_detected_boxes"])
    expected = imagefactory.displayed_rect(size, rect, orientation)
    found = (box["left"], box["top"], box["width"], box["height"])
    assert found == pytest.approx(expected, abs=0.01)
    # The container is sent the picture upright: it cannot be trusted with EXIF.
    displayed = size if orientation == 1 else size[::-1]
    assert server.requests[-1].image_size == displayed


def noise_png(folder: Path) -> Path:
    """2400x1600 px of noise, which does not compress: an 11 MB PNG."""
    count = 2400 * 1600 * 3
    noise = random.Random(8).getrandbits(count * 8).to_bytes(count, "little")
    path = folder / "noise.png"
    Image.frombytes("RGB", (2400, 1600), noise).save(path, compress_level=1)
    return path


def test_a_large_picture_is_sent_within_the_containers_limits(classifier, tmp_path, monkeypatch):
    server, _ = classifier
    # Asked for more than the container's own code keeps (1600 px): it gets 1600.
    monkeypatch.setenv("CUSTOM_VISION_MAX_LONG_EDGE", "4000")
    path = noise_png(tmp_path)
    assert path.stat().st_size > 4 * 1024 * 1024
    backend = registry.backend(CLASSIFY.name, Settings.load())

    backend.ask(str(path))

    received = server.requests[-1]
    assert received.status == 200
    assert received.body_size <= 4 * 1024 * 1024
    assert received.image_format == "JPEG" and received.image_size == (1600, 1067)
    assert backend.identity()["edge"] == 1600


def test_by_default_the_custom_vision_long_edge_is_sent(classifier, tmp_path):
    server, _ = classifier

    registry.backend(CLASSIFY.name, Settings.load()).ask(str(noise_png(tmp_path)))

    assert max(server.requests[-1].image_size) == edge()


def test_a_json_string_with_200_skips_the_picture(classifier, tmp_path):
    _, api = classifier
    api.quirk = "preprocess"
    plugin = azureclassification.AzureClassificationPlugin()

    path = stripes(tmp_path, [((255, 0, 0), 1.0)])

    with pytest.raises(ImageRejected) as caught:
        registry.backend(CLASSIFY.name, Settings.load()).ask(str(path))
    assert_mentions(
        caught.value, "container.NOT_PREPROCESSED", body_line="Error: Could not preprocess image"
    )
    assert plugin.process("p", str(path)) == PluginStatus.SKIPPED


def test_the_negative_tag_is_never_written(monkeypatch, store, tmp_path):
    # A classifier with Custom Vision's Negative tag: the container lists it as any label,
    # without a tagType. Grey is none of the colours, so Negative scores most.
    server, _ = serve(monkeypatch, "classify", ["blue", "Negative", "red"])
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.2")
    path = stripes(tmp_path, [((128, 128, 128), 0.7), ((255, 0, 0), 0.3)])
    try:
        answer = registry.backend(CLASSIFY.name, Settings.load()).ask(str(path))
        status = azureclassification.AzureClassificationPlugin().process("n", str(path))
    finally:
        server.stop()

    negative = [p for p in answer.body["predictions"] if p["tagName"] == "Negative"]
    assert len(negative) == 1 and negative[0]["probability"] > 0.6
    assert "tagType" not in negative[0]
    assert status == PluginStatus.SUCCESS
    assert answered(store.read("n", "image")) == {"azure_class": "red", "azure_classes": ["red"]}


def test_text_with_200_is_an_error_not_an_empty_answer(classifier, tmp_path, logs):
    _, api = classifier
    api.quirk = "text"
    plugin = azureclassification.AzureClassificationPlugin()

    status = plugin.process("t", str(stripes(tmp_path, [((255, 0, 0), 1.0)])))

    assert status == PluginStatus.FATAL
    assert_mentions(logs.text, "container.NOT_PREDICTIONS", body_line="Error processing image")


def test_error_processing_image_with_500_skips_the_picture(classifier, tmp_path, waits, logs):
    # The container's answer when it fails on one picture (one its Pillow cannot open): the
    # file is skipped, and pictures that fail so are no outage, however many in a row.
    server, api = classifier
    plugin = azureclassification.AzureClassificationPlugin()
    picture = stripes(tmp_path, [((255, 0, 0), 1.0)])

    statuses = []
    for name in "abcd":
        # Once: a retry would be answered, so SKIPPED shows none was made.
        server.fail_next(500, "Error processing image", {"Content-Type": "text/html"})
        statuses.append(plugin.process(name, str(picture)))
    status = plugin.process("good", str(picture))

    assert statuses == [PluginStatus.SKIPPED] * 4
    assert len(server.requests) == 5 and waits == []  # asked once each: no retry, no wait
    assert status == PluginStatus.SUCCESS and api.answered == 1  # asked: no outage's pause
    skipped = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert len(skipped) == 4
    unreadable = says(
        "container.UNREADABLE",
        name=container.SERVICE,
        status=500,
        said_line="Error processing image",
    )
    assert unreadable in skipped[0]


def test_another_500_is_retried_then_an_outage(classifier, tmp_path, waits, logs):
    server, _ = classifier
    server.fail_next(500, "Internal Server Error", {"Content-Type": "text/html"}, times=5)
    plugin = azureclassification.AzureClassificationPlugin()

    status = plugin.process("e", str(stripes(tmp_path, [((255, 0, 0), 1.0)])))

    assert status == PluginStatus.FATAL
    assert len(server.requests) == 5 and len(waits) == 4
    assert any(
        "500" in r.getMessage() and "Internal Server Error" in r.getMessage()
        for r in logs.records
        if r.levelname == "ERROR"
    )
    server.fail_next(500, "Internal Server Error", {"Content-Type": "text/html"}, times=5)
    with pytest.raises(Unavailable):
        registry.backend(CLASSIFY.name, Settings.load()).ask(str(tmp_path / "s.png"))


def test_413_is_a_refused_picture(classifier, tmp_path):
    server, _ = classifier
    server.fail_next(
        413, "<title>413 Request Entity Too Large</title>", {"Content-Type": "text/html"}
    )
    plugin = azureclassification.AzureClassificationPlugin()

    status = plugin.process("big", str(stripes(tmp_path, [((255, 0, 0), 1.0)])))

    assert status == PluginStatus.SKIPPED


@pytest.mark.parametrize("body", [["not", "an", "envelope"], {"predictions": "none"}, {}])
def test_a_body_without_predictions_is_an_error(classifier, tmp_path, body):
    server, _ = classifier
    server.fail_next(200, body)

    with pytest.raises(ServiceError) as caught:
        registry.backend(CLASSIFY.name, Settings.load()).ask(str(stripes(tmp_path, [])))

    assert_mentions(caught.value, "container.NOT_PREDICTIONS")


def test_the_url_of_the_route_itself_is_taken(monkeypatch, tmp_path):
    server, _ = serve(monkeypatch, "classify", COLOURS, url_suffix="/image")
    try:
        found = customvision.predict(str(stripes(tmp_path, [((0, 255, 0), 1.0)])), CLASSIFY)
        assert [p.tag for p in found] == ["green"]
        assert server.requests[-1].path == "/image"
    finally:
        server.stop()


def test_a_url_where_no_container_answers_is_refused_once(monkeypatch, tmp_path, logs):
    server, _ = serve(monkeypatch, "classify", COLOURS, url_suffix="/v1/predict")
    try:
        plugin = azureclassification.AzureClassificationPlugin()
        statuses = [plugin.process(n, str(stripes(tmp_path, [], name=f"{n}.png"))) for n in "ab"]
        asked = len(server.requests)
    finally:
        server.stop()

    assert statuses == [PluginStatus.FATAL, PluginStatus.FATAL]
    assert asked == 1  # a refusal: the second file fails without asking
    fatal = [r.getMessage() for r in logs.records if r.levelname == "ERROR"]
    assert len(fatal) == 1
    assert (
        says(
            NO_CONTAINER,
            endpoint_setting="CUSTOM_VISION_CLASSIFY_URL",
            url=f"{server.url}/v1/predict",
            status=404,
        )
        in fatal[0]
    )


@pytest.mark.parametrize("status", [404, 405])
def test_404_and_405_are_refusals_naming_the_url_setting(classifier, tmp_path, status):
    server, _ = classifier
    server.fail_next(status, "<title>Not here</title>", {"Content-Type": "text/html"})

    with pytest.raises(Refused) as caught:
        registry.backend(CLASSIFY.name, Settings.load()).ask(str(stripes(tmp_path, [])))

    assert caught.value.http_status == status
    assert_says(
        caught.value,
        NO_CONTAINER,
        endpoint_setting="CUSTOM_VISION_CLASSIFY_URL",
        url=server.url,
        status=status,
    )


def test_plain_http_to_another_machine_is_refused_by_default(monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_DETECT_BACKEND", "container")
    monkeypatch.setenv("CUSTOM_VISION_DETECT_URL", "http://192.0.2.10:8080")

    with pytest.raises(SettingsError) as caught:
        registry.backend(DETECT.name, Settings.load())

    assert caught.value.setting == "CUSTOM_VISION_DETECT_URL"


def test_plain_http_to_a_host_the_administrator_names_is_allowed(monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_HTTP_HOSTS", "192.0.2.10:8080")
    monkeypatch.setenv("CUSTOM_VISION_DETECT_BACKEND", "container")
    monkeypatch.setenv("CUSTOM_VISION_DETECT_URL", "http://192.0.2.10:8080/")

    backend = registry.backend(DETECT.name, Settings.load())

    assert backend.identity()["url"] == "http://192.0.2.10:8080"


def test_url_must_be_set(monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_BACKEND", "container")

    with pytest.raises(SettingsError) as caught:
        registry.backend(CLASSIFY.name, Settings.load())

    assert_problem(caught.value, "CUSTOM_VISION_CLASSIFY_URL", "settings.NOT_SET")


def test_identity_names_the_container_and_no_key(classifier):
    server, _ = classifier
    backend = registry.backend(CLASSIFY.name, Settings.load())

    identity = backend.identity()

    assert backend.endpoint_setting == "CUSTOM_VISION_CLASSIFY_URL"
    assert identity["url"] == server.url and identity["api"] == "container"
    assert identity["edge"] == edge()


@pytest.mark.parametrize(
    "make",
    [
        imagefactory.truncated_jpeg,
        imagefactory.random_bytes_jpg,
        imagefactory.decompression_bomb,
        imagefactory.text_file_png,
        imagefactory.svg,
        imagefactory.tiny,
    ],
)
def test_hostile_files_are_skipped_without_a_request(classifier, tmp_path, make):
    server, _ = classifier

    status = azureclassification.AzureClassificationPlugin().process("x", str(make(tmp_path)))

    assert status == PluginStatus.SKIPPED
    assert server.requests == []


def test_pictures_of_any_mode_reach_the_container_as_rgb(classifier, tmp_path):
    server, _ = classifier
    backend = registry.backend(CLASSIFY.name, Settings.load())

    answer = backend.ask(str(imagefactory.png_alpha(tmp_path)))

    # Transparency laid on white: the container sees mostly white, not black.
    tags = {p.tag: p.probability for p in backend.parse(answer)}
    assert tags.get("white", 0) > 0.7 and "black" not in tags
    assert server.requests[-1].image_format in ("PNG", "JPEG")
