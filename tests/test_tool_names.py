"""The tool on file names that are not UTF-8 and on names with control characters, as a new
user runs it (issue 18): ``tag`` stores them, ``show``, ``search`` and ``draw`` give them
escaped as the logs do, and a worker that stops on an error fails the run in one line. The
real command in a subprocess, against the local fake service."""

import json
import os
import shutil

import pytest

from tests import imagefactory
from tests.fakeazure import FakeAzure
from tests.toolrun import Tool, serve

RED = (200, 30, 30)


@pytest.fixture
def server():
    with FakeAzure() as fake:
        serve(fake)
        yield fake


def named(folder, raw_name: bytes, tmp_path):
    """A red picture in ``folder`` under the name ``raw_name`` (bytes, as the disk holds it)."""
    folder.mkdir(parents=True, exist_ok=True)
    picture = imagefactory.jpeg(tmp_path / "src", size=(320, 240), color=RED, name="red.jpg")
    path = os.fsencode(str(folder)) + b"/" + raw_name
    shutil.copyfile(os.fsencode(str(picture)), path)
    return os.fsdecode(path)


def test_a_name_that_is_not_utf8_is_tagged_shown_searched_and_drawn(tmp_path, server):
    folder = tmp_path / "in"
    named(folder, b"caf\xe9.jpg", tmp_path)  # Latin-1 e-acute: not UTF-8
    named(folder, "th\u00e9.jpg".encode("utf-8"), tmp_path)  # a UTF-8 name beside it
    tool = Tool(tmp_path, server)

    tagged = tool.run("tag", "-p", "classification", "-p", "detection", str(folder))
    assert tagged.returncode == 0, tagged
    assert tagged.count("azureclassification", "SUCCESS") == 2, tagged
    assert tagged.count("azureobjectdetection", "SUCCESS") == 2, tagged
    assert "not reached" not in tagged.stderr and "Traceback" not in tagged.stderr
    again = tool.run("tag", "-p", "classification", "-p", "detection", str(folder))
    assert again.count("azureclassification", "unchanged") == 2, again  # its record is found

    shown = tool.run("show", str(folder))
    assert shown.returncode == 0, shown
    stored = json.loads(shown.stdout)
    escaped = [name for name in stored if name.endswith("/caf\\xe9.jpg")]
    assert len(escaped) == 1 and stored[escaped[0]]["image.azure_class"] == "red"
    assert any(name.endswith("/th\u00e9.jpg") for name in stored)

    found = tool.run("search", "azure_class", "red")
    assert found.returncode == 0, found
    assert sorted(line.rsplit("/", 1)[1] for line in found.stdout.splitlines()) == [
        "caf\\xe9.jpg",
        "th\u00e9.jpg",
    ]

    out = tmp_path / "drawn"
    drawn = tool.run("draw", "--out", str(out), str(folder))
    assert drawn.returncode == 0, drawn
    assert "Traceback" not in drawn.stderr
    assert sorted(os.listdir(os.fsencode(str(out)))) == [
        b"caf\xe9.boxes.jpg",
        "th\u00e9.boxes.jpg".encode("utf-8"),
    ]
    assert any(line.endswith("/caf\\xe9.boxes.jpg") for line in drawn.stdout.splitlines())


def test_a_name_with_control_characters_is_printed_escaped(tmp_path, server):
    folder = tmp_path / "in"
    named(folder, b"x\nERROR \x1b[31mok.jpg", tmp_path)
    tool = Tool(tmp_path, server)

    assert tool.run("tag", "-p", "classification", str(folder)).returncode == 0
    for result in (
        tool.run("show", str(folder)),
        tool.run("search", "azure_class", "red"),
        tool.run("show", str(tmp_path / "in" / "nothing-here.jpg")),
    ):
        assert "\x1b" not in result.stdout + result.stderr
    shown = tool.run("show", str(folder))
    assert any(name.endswith("/x\\nERROR \\x1b[31mok.jpg") for name in json.loads(shown.stdout))
    found = tool.run("search", "azure_class", "red")
    assert found.stdout.count("\n") == 1 and "x\\nERROR" in found.stdout


def test_a_worker_that_stops_on_an_error_fails_the_run_in_one_line(tmp_path, server):
    """The store named is a folder: it cannot be opened, in the first worker that reads it."""
    folder = tmp_path / "in"
    named(folder, b"a.jpg", tmp_path)
    named(folder, b"b.jpg", tmp_path)
    store = tmp_path / "a-folder"
    store.mkdir()
    tool = Tool(tmp_path, server, PIXSTOR_AZURE_STORE=str(store))

    result = tool.run("tag", "-p", "classification", "-j", "2", str(folder))

    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result
    assert "not reached: run the same command again" not in result.stderr
    stopped = [line for line in result.stderr.splitlines() if str(store) in line]
    assert len(stopped) == 1, result
    assert stopped[0].startswith("stopped: a worker failed on "), result
    assert result.count("azureclassification", "stopped") == 2, result
