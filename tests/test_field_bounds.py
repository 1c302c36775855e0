"""Every value and every field written is bounded (issue 18): a tag name of megabytes, a
thousand long boxes or a page of long lines are cut, each with a debug line, and what remains
is still well-formed (the boxes' JSON whole, its labels those of the boxes). From the plugins,
against the local fake service over real sockets; the long answers are hand-written."""

import json
import logging

import pytest

import azureclassification
import azureobjectdetection
import azurevision
from pixstor_azure.ground import boxes
from pixstor_azure.ground.fields import FIELD_CHARS, VALUE_CHARS
from pixstor_azure.ground.pixstor import PluginStatus
from tests import imagefactory
from tests.conftest import ROOT
from tests.fakeazure import FakeAzure
from tests.toolrun import Tool, serve

DETECT_PROJECT = "9a7e2c41-0b6d-4f3e-8c5a-2d1f0e9b8a76"


@pytest.fixture
def photo(tmp_path):
    return imagefactory.jpeg(tmp_path, size=(640, 480), color=(200, 30, 30), name="red.jpg")


def cut_lines(caplog):
    return [r.getMessage() for r in caplog.records if " cut " in r.getMessage()]


def test_a_tag_name_of_megabytes_is_cut(fake_classifier, photo, store, caplog):
    caplog.set_level(logging.DEBUG)
    huge = "Cherry" * 1_000_000  # 6 MB, under the 8 MB an answer may be
    body = {"predictions": [{"tagId": "x", "tagName": huge, "probability": 0.9}]}
    fake_classifier.fail_next(200, body=body)

    status = azureclassification.AzureClassificationPlugin().process("x", str(photo))

    assert status == PluginStatus.SUCCESS
    written = store.read("x", "image")
    assert written["azure_class"] == huge[:VALUE_CHARS]
    assert written["azure_classes"] == [huge[:VALUE_CHARS]]
    lines = cut_lines(caplog)
    assert len(lines) == 2  # one per field
    assert f"azure_class: a value of {len(huge)} characters cut to {VALUE_CHARS}" in lines[0]


def test_a_thousand_long_boxes_stay_whole_json_within_the_bound(
    fake_classifier, photo, store, monkeypatch
):
    fake_classifier.add_project(DETECT_PROJECT, "detect", published=["production"])
    monkeypatch.setenv("CUSTOM_VISION_DETECT_PROJECT", DETECT_PROJECT)
    monkeypatch.setenv("CUSTOM_VISION_DETECT_ITERATION", "production")
    monkeypatch.setenv("CUSTOM_VISION_DETECT_MAX_BOXES", "1000")
    box = {"left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}
    predictions = [
        {
            "tagId": str(i),
            "tagName": f"{i:04}" + "x" * 2000,
            "probability": 0.999 - i / 2000,
            "boundingBox": box,
        }
        for i in range(1000)
    ]
    fake_classifier.fail_next(200, body={"predictions": predictions})

    status = azureobjectdetection.AzureObjectDetectionPlugin().process("d", str(photo))

    assert status == PluginStatus.SUCCESS
    written = store.read("d", "image")
    kept = boxes.from_json(written["azure_detected_boxes"])  # still JSON, still boxes
    assert len(written["azure_detected_boxes"]) <= FIELD_CHARS
    assert 0 < len(kept) < 1000
    assert kept[0].tag == "0000" + "x" * (VALUE_CHARS - 4)  # the most probable first
    labels = written["azure_detected"]
    assert sum(map(len, labels)) <= FIELD_CHARS
    assert all(len(label) == VALUE_CHARS for label in labels)
    assert set(b.tag for b in kept) <= set(labels)


def test_a_page_of_long_lines_is_cut_to_the_field_bound(fake_classifier, photo, store, monkeypatch):
    monkeypatch.setenv("AZURE_VISION_ENDPOINT", fake_classifier.url)
    monkeypatch.setenv("AZURE_VISION_KEY", fake_classifier.key)
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    fake_classifier.read_lines = [f"line {i} " + "y" * 1500 for i in range(200)]

    status = azurevision.AzureVisionPlugin().process("v", str(photo))

    assert status == PluginStatus.SUCCESS
    text = store.read("v", "image")["azure_text"]
    assert all(len(line) <= VALUE_CHARS for line in text)
    assert sum(map(len, text)) <= FIELD_CHARS
    assert text[0].startswith("line 0 ") and text[1].startswith("line 1 ")  # in reading order
    assert len(text) == FIELD_CHARS // VALUE_CHARS


def test_the_bounds_are_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{VALUE_CHARS:,} characters" in readme and f"{FIELD_CHARS:,} characters" in readme


def test_retag_writes_within_the_bounds_too(tmp_path):
    """``retag`` derives the fields again from the kept answer, without the plugin's process:
    the same bounds hold. The tool in a subprocess, with a real answer cache."""
    with FakeAzure() as server:
        serve(server)
        huge = "Cherry" * 100_000
        body = {"predictions": [{"tagId": "x", "tagName": huge, "probability": 0.9}]}
        server.fail_next(200, body=body)
        folder = tmp_path / "in"
        imagefactory.jpeg(folder, size=(320, 240), color=(200, 30, 30))
        tool = Tool(tmp_path, server)
        assert tool.run("tag", "-p", "classification", str(folder)).returncode == 0
        retagged = tool.run("retag", "-vv", "-p", "classification")
        shown = tool.run("show", str(folder))

    assert retagged.count("azureclassification", "SUCCESS") == 1, retagged
    assert f"a value of {len(huge)} characters cut to {VALUE_CHARS}" in retagged.stderr
    (stored,) = json.loads(shown.stdout).values()
    assert stored["image.azure_class"] == huge[:VALUE_CHARS]
    assert len(server.requests) == 1
