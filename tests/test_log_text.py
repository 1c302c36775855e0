"""What we log or raise cannot carry a key or forge a line (issue 18): a key a gateway echoes
back is redacted wherever it goes, and control characters in file names and in what services
say are escaped. In whole processes writing a real UTF-8 log file, against real sockets."""

import os
import re

import pytest

from pixstor_azure.ground.errors import ServiceError
from pixstor_azure.ground.settings import Settings
from pixstor_azure.services import registry
from tests import imagefactory
from tests.fakeazure import FakeAzure
from tests.test_wholeprocess import PROJECT, run_plugin
from tests.toolrun import Tool, serve

KEY = "fake-key-0123456789abcdef"  # what run_plugin sets as CUSTOM_VISION_KEY
# What a gateway says about a key it refuses, quoting it, and a service text that tries to
# start a line of its own and to colour a terminal.
ECHOED = {
    "error": {
        "code": "401",
        "message": f"Access denied for key {KEY}.\nERROR forged: \x1b[31mall is well\x1b[0m",
    }
}
LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]+:")


def lines_of(log):
    return log.split("\n")[:-1]  # split on newlines only: the log file's own line ends


def test_a_key_echoed_by_the_gateway_is_never_logged(tmp_path):
    with FakeAzure(key=KEY) as server:
        server.add_project(PROJECT, "classify", published=["production"])
        server.fail_next(401, body=ECHOED)
        photo = imagefactory.jpeg(tmp_path / "a", size=(320, 240))
        statuses, log = run_plugin(tmp_path, {"CUSTOM_VISION_ENDPOINT": server.url}, photo)

    assert statuses == ["FATAL"]
    assert "Access denied for key ****" in log  # debug level holds the service's words
    assert KEY not in log
    assert "\x1b" not in log
    for line in lines_of(log):
        assert LINE.match(line), line
    assert "\\nERROR forged: \\x1b[31mall is well" in log


def test_a_file_name_cannot_forge_a_log_line(tmp_path):
    folder = tmp_path / "in"
    forged = "x\nERROR ok.jpg: azureclassification: FATAL: forged.jpg"
    coloured = "\x1b[31mred\u2028.jpg"
    paths = [imagefactory.jpeg(folder, size=(320, 240), name=name) for name in (forged, coloured)]
    with FakeAzure(key=KEY) as server:
        server.add_project(PROJECT, "classify", published=["production"])
        server.fail_next(503, times=50)
        statuses, log = run_plugin(
            tmp_path,
            {"CUSTOM_VISION_ENDPOINT": server.url, "PIXSTOR_AZURE_ATTEMPTS": "1"},
            *paths,
        )

    assert statuses == ["FATAL", "FATAL"]
    assert "\x1b" not in log and "\u2028" not in log
    for line in lines_of(log):
        assert LINE.match(line), line
    assert "x\\nERROR ok.jpg: azureclassification: FATAL: forged.jpg: azureclassification:" in log
    assert "\\x1b[31mred\\u2028.jpg: azureclassification: FATAL" in log


def test_an_error_raised_carries_no_key(fake_classifier, photo):
    fake_classifier.fail_next(401, body={"error": {"code": "401", "message": f"no {KEY}!"}})
    backend = registry.backend("classify", Settings.load())
    assert fake_classifier.key == KEY

    with pytest.raises(ServiceError) as caught:
        backend.find(str(photo))

    error = caught.value
    said = " ".join(str(x) for x in (error, error.message, error.said, error.detail, error.args))
    assert "no ****!" in said
    assert KEY not in said


def test_the_tool_prints_no_key_and_no_escape(tmp_path):
    with FakeAzure(key=KEY) as server:
        serve(server)
        server.fail_next(401, body=ECHOED, times=5)
        folder = tmp_path / "in"
        imagefactory.jpeg(folder, size=(320, 240), name="\x1b[2Jwiped.jpg")
        result = Tool(tmp_path, server).run("tag", "-vv", "-p", "classification", str(folder))

    assert result.returncode == 1, result
    text = result.stdout + result.stderr
    assert KEY not in text
    assert "\x1b" not in text
    assert "\\x1b[2Jwiped.jpg" in result.stderr
    assert os.path.exists(str(folder))


def test_a_key_cut_in_two_by_the_body_kept_for_debugging_is_hidden_too(fake_classifier, photo):
    """The raw body is kept for the debug line to its first 1000 characters: the key straddles
    the cut, and its first half must not show either."""
    prefix = '{"error": {"code": "401", "message": "'
    message = "x" * (1000 - len(prefix) - len(KEY) // 2) + KEY
    fake_classifier.fail_next(401, body={"error": {"code": "401", "message": message}})
    backend = registry.backend("classify", Settings.load())

    with pytest.raises(ServiceError) as caught:
        backend.find(str(photo))

    detail = caught.value.detail
    assert len(detail) == 1000 - len(KEY) // 2 + len("****"), detail[-40:]
    assert detail.endswith("x****")
    assert KEY[: len(KEY) // 2] not in detail


def test_doctor_prints_what_the_service_said_without_the_key_on_one_line(tmp_path):
    with FakeAzure(key=KEY) as server:
        serve(server)
        server.fail_next(401, body=ECHOED, times=5)
        result = Tool(tmp_path, server).run("doctor", "-p", "classification")

    assert result.returncode == 1, result
    assert KEY not in result.stdout + result.stderr
    assert "\x1b" not in result.stdout
    (line,) = [x for x in result.stdout.splitlines() if "Access denied" in x]
    assert "for key ****.\\nERROR forged: \\x1b[31mall is well" in line
