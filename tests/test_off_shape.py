"""A 200 whose body is not of the service's shape is never kept (issue 18): the file ends FATAL
with one line, and the repaired service is asked again for the same picture. Against the local
fake service over real sockets, with a real answer cache; the off-shape bodies are hand-written.
"""

import logging

import pytest

import azureclassification
import azurevision
from pixstor_azure.answers import cache, fetch
from pixstor_azure.answers.answer import fresh
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.ground.settings import Settings
from pixstor_azure.services import registry
from tests import imagefactory
from tests.wording import assert_mentions

JSON = {"Content-Type": "application/json; charset=utf-8"}
PREDICTION = '{"tagId": "x", "tagName": "red", "probability": %s}'


@pytest.fixture
def photo(tmp_path):
    return imagefactory.jpeg(tmp_path, size=(640, 480), color=(200, 30, 30), name="red.jpg")


def fatal_lines(caplog):
    return [r.getMessage() for r in caplog.records if ": FATAL: " in r.getMessage()]


@pytest.mark.parametrize(
    "body",
    [
        '{"predictions": [%s]}' % (PREDICTION % "NaN"),
        '{"predictions": [%s]}' % (PREDICTION % "Infinity"),
        '{"predictions": [%s]}' % (PREDICTION % "7.0"),
        '{"id": "", "project": "", "iteration": ""}',
    ],
    ids=["NaN", "Infinity", "7.0", "no-predictions"],
)
def test_an_off_shape_custom_vision_answer_is_fatal_and_not_kept(
    fake_classifier, cache_file, photo, caplog, body
):
    caplog.set_level(logging.DEBUG)
    plugin = azureclassification.AzureClassificationPlugin()
    fake_classifier.fail_next(200, body=body, headers=JSON)

    assert plugin.process("x", str(photo)) == PluginStatus.FATAL
    lines = fatal_lines(caplog)
    assert len(lines) == 1
    assert_mentions(lines[0], "UNEXPECTED", name="Custom Vision")
    assert_mentions(lines[0], "OFF_SHAPE")
    assert cache.current().count() == 0

    # The service is repaired: asked again, and its answer kept this time.
    assert plugin.process("x", str(photo)) == PluginStatus.SUCCESS
    assert len(fake_classifier.requests) == 2
    assert cache.current().count() == 1


@pytest.fixture
def vision(fake_classifier, monkeypatch):
    monkeypatch.setenv("AZURE_VISION_ENDPOINT", fake_classifier.url)
    monkeypatch.setenv("AZURE_VISION_KEY", fake_classifier.key)
    monkeypatch.setenv("AZURE_VISION_TAG_THRESHOLD", "0.1")
    return fake_classifier


MAINTENANCE = '{"status": "maintenance"}'


@pytest.mark.parametrize("api", ["4.0", "3.2"])
def test_a_vision_maintenance_answer_is_not_nothing_found(
    vision, cache_file, photo, caplog, api, monkeypatch
):
    monkeypatch.setenv("AZURE_VISION_API", api)
    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags,caption,objects")  # no Read API
    caplog.set_level(logging.DEBUG)
    plugin = azurevision.AzureVisionPlugin()
    vision.fail_next(200, body=MAINTENANCE)

    assert plugin.process("v", str(photo)) == PluginStatus.FATAL
    lines = fatal_lines(caplog)
    assert len(lines) == 1
    assert_mentions(
        lines[0],
        "UNEXPECTED",
        name="Azure AI Vision",
        what=f"none of {api}'s results: {MAINTENANCE}",
    )
    assert_mentions(lines[0], "OFF_SHAPE")
    assert "nothing found" not in caplog.text
    assert cache.current().count() == 0

    assert plugin.process("v", str(photo)) == PluginStatus.SUCCESS
    assert len(vision.requests) == 2


def test_a_vision_confidence_out_of_range_is_off_shape(vision, cache_file, photo):
    body = {
        "modelVersion": "2023-10-01",
        "metadata": {"width": 640, "height": 480},
        "tagsResult": {"values": [{"name": "red", "confidence": 7.0}]},
    }
    vision.fail_next(200, body=body)
    assert azurevision.AzureVisionPlugin().process("v", str(photo)) == PluginStatus.FATAL
    assert cache.current().count() == 0


def test_an_off_shape_answer_kept_by_an_earlier_version_is_asked_again(
    fake_classifier, cache_file, photo
):
    """A cache written before answers were checked may hold a poisoned answer: it is not used."""
    chosen = registry.backend("classify", Settings.load())
    body = {"predictions": [{"tagName": "red", "probability": 7.0}]}
    poisoned = fresh(body, (640, 480), (640, 480))
    assert cache.current().put(fetch.digest(str(photo)), chosen.identity(), poisoned)
    assert fetch.lookup(chosen, str(photo)) is None  # a dry run counts it as a call to make
    plugin = azureclassification.AzureClassificationPlugin()

    assert plugin.process("x", str(photo)) == PluginStatus.SUCCESS
    assert len(fake_classifier.requests) == 1
    assert plugin.process("x", str(photo)) == PluginStatus.SUCCESS
    assert len(fake_classifier.requests) == 1  # the good answer replaced it
