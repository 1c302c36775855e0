"""What holds for all three plugins alike: the PixStor contract around ``extract``.

Hostile and vanished files end SKIPPED before any request; a service that is slow, down,
rate limiting or talking nonsense is retried within bounds and ends FATAL with nothing
written and no key in the log; a store that refuses the write ends ERRORED; nothing
unexpected escapes ``process``; ``handles`` answers without I/O. Each plugin's own file
tests what it asks its service, how it reads the answer and what it writes.
"""

import importlib
import re
from typing import List

import pytest
import requests
import responses

from pixstor_azure import runner
from pixstor_azure.ground.pixstor import PluginStatus
from tests import imagefactory
from tests.conftest import ENDPOINT, KEY, PROJECT, assert_no_key, recording, serve
from tests.wording import assert_mentions, row, says

PLUGINS = {
    "azureclassification": (
        "AzureClassificationPlugin",
        {
            "CUSTOM_VISION_ENDPOINT": ENDPOINT,
            "CUSTOM_VISION_KEY": KEY,
            "CUSTOM_VISION_CLASSIFY_PROJECT": PROJECT,
            "CUSTOM_VISION_CLASSIFY_ITERATION": "MyModel1",
        },
    ),
    "azureobjectdetection": (
        "AzureObjectDetectionPlugin",
        {
            "CUSTOM_VISION_ENDPOINT": ENDPOINT,
            "CUSTOM_VISION_KEY": KEY,
            "CUSTOM_VISION_DETECT_PROJECT": PROJECT,
            "CUSTOM_VISION_DETECT_ITERATION": "MyModel1",
        },
    ),
    "azurevision": (
        "AzureVisionPlugin",
        {"AZURE_VISION_ENDPOINT": ENDPOINT, "AZURE_VISION_KEY": KEY},
    ),
}


CUSTOM_VISION = f"{ENDPOINT}/customvision/v3.0/Prediction/{PROJECT}"
# Per plugin: the URL it posts to, and recorded answers: found something, 429, 503.
SERVICE = {
    "azureclassification": (
        f"{CUSTOM_VISION}/classify/iterations/MyModel1/image/nostore",
        "customvision-classify-nostore-200.handmade.json",
        "customvision-429.handmade.json",
        "customvision-503.handmade.json",
    ),
    "azureobjectdetection": (
        f"{CUSTOM_VISION}/detect/iterations/MyModel1/image/nostore",
        "customvision-detect-nostore-200.handmade.json",
        "customvision-detect-429.handmade.json",
        "customvision-503.handmade.json",
    ),
    "azurevision": (
        f"{ENDPOINT}/computervision/imageanalysis:analyze",
        "imageanalysis-analyze-200.json",
        "imageanalysis-429.handmade.json",
        "imageanalysis-503.handmade.json",
    ),
}
# Per plugin: the service its messages name.
NAMES = {
    "azureclassification": "Custom Vision",
    "azureobjectdetection": "Custom Vision",
    "azurevision": "Azure AI Vision",
}


@pytest.fixture(params=sorted(PLUGINS))
def module(request, monkeypatch):
    settings = PLUGINS[request.param][1]
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return importlib.import_module(request.param)


@pytest.fixture
def plugin(module):
    return getattr(module, PLUGINS[module.__name__][0])()


@pytest.fixture
def served():
    # No answer is registered: a request would fail, and the test checks there was none.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def url(module):
    return SERVICE[module.__name__][0]


@pytest.fixture
def photo(tmp_path):
    return str(imagefactory.jpeg(tmp_path, size=(640, 480)))


def answer(mock, module, which: str, headers=None) -> None:
    """Queue the plugin's recorded answer: "found", "429" or "503"."""
    url, *names = SERVICE[module.__name__]
    serve(mock, url, names[("found", "429", "503").index(which)], headers)


def one_value_per_field(schema: list) -> dict:
    """A valid value for every field of the schema."""
    return {f["name"]: ["x"] if f["value"]["datatype"] == "[String]" else "x" for f in schema}


def problems(logs) -> List[str]:
    return [r.getMessage() for r in logs.records if r.levelname in ("WARNING", "ERROR")]


HOSTILE = [
    (imagefactory.truncated_jpeg, "prepare.CORRUPT"),
    (imagefactory.random_bytes_jpg, "source.NO_FORMAT"),
    (imagefactory.text_file_png, "source.NO_FORMAT"),
    (imagefactory.svg, "source.NO_FORMAT"),
    (imagefactory.decompression_bomb, "prepare.BOMB"),
    (imagefactory.strip, "60000x50 px"),  # in each service's terms: the test below
    (imagefactory.tiny, "prepare.TOO_SMALL"),
]


@pytest.mark.parametrize(("make", "words"), HOSTILE, ids=[h[0].__name__ for h in HOSTILE])
def test_hostile_files_are_skipped_without_a_call(
    module, plugin, served, tmp_path, store, logs, make, words
):
    path = make(tmp_path)

    assert plugin.process("item-1", str(path)) == PluginStatus.SKIPPED

    assert not served.calls
    assert store.read("item-1") == {}
    (line,) = problems(logs)
    assert str(path) in line and module.__name__ in line
    if "." in words:
        assert_mentions(line, words)
    else:
        assert words in line


def test_the_strip_is_refused_in_the_services_own_terms(module, plugin, served, tmp_path, logs):
    plugin.process("item-1", str(imagefactory.strip(tmp_path)))

    (line,) = problems(logs)
    if module.__name__ == "azurevision":
        known = dict(service="Azure AI Vision 4.0", min_side=50, max_side=15999)
        assert_mentions(line, "prepare.OUTSIDE_LIMITS", **known)
    else:
        assert_mentions(line, "prepare.TOO_THIN", service="Custom Vision", max_aspect=25)


def asked_wait(module) -> float:
    """The seconds the plugin's recorded 429 asks for, in its message's own words."""
    message = recording(SERVICE[module.__name__][2])["body"]["error"]["message"]
    return float(re.search(r"retry after (\d+) second", message).group(1))


def test_429_waits_as_the_message_says_then_succeeds(
    module, plugin, served, photo, store, waits, logs
):
    answer(served, module, "429")
    answer(served, module, "found")

    assert plugin.process("item-1", photo) == PluginStatus.SUCCESS

    assert len(served.calls) == 2
    asked = asked_wait(module)
    assert len(waits) == 1 and asked <= waits[0] <= asked * 1.1
    assert store.read("item-1", "image")
    assert_no_key(logs)


def test_retry_after_header_wins_over_backoff(module, plugin, served, photo, waits):
    answer(served, module, "503", headers={"Retry-After": "7"})
    answer(served, module, "found")

    assert plugin.process("item-1", photo) == PluginStatus.SUCCESS
    assert len(waits) == 1 and 7.0 <= waits[0] <= 7.7


def test_503_then_success_backs_off(module, plugin, served, photo, store, waits):
    answer(served, module, "503")
    answer(served, module, "found")

    assert plugin.process("item-1", photo) == PluginStatus.SUCCESS
    assert len(served.calls) == 2
    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0  # first backoff: half to all of 1 s
    assert store.read("item-1", "image")


def test_503_for_ever_gives_up_after_bounded_attempts(
    module, plugin, served, url, photo, store, waits, logs
):
    served.add(responses.POST, url, json={"code": "Busy", "message": "later"}, status=503)

    assert plugin.process("item-1", photo) == PluginStatus.FATAL

    assert len(served.calls) == 5  # PIXSTOR_AZURE_ATTEMPTS default
    assert len(waits) == 4
    for attempt, wait in enumerate(waits):  # doubling from 1 s, jittered to half to all of it
        assert 2**attempt * 0.5 <= wait <= 2**attempt
    assert store.read("item-1") == {}
    (line,) = problems(logs)
    answered = says(
        "client.ANSWERED", name=NAMES[module.__name__], status=503, codes=" Busy", text="later"
    )
    why = says("client.ATTEMPTS_PART", count=5)
    assert f"{module.__name__}: FATAL:" in line
    assert_mentions(line, "client.GIVEN_UP", message=answered, why=why)
    assert_no_key(logs)


def test_attempts_is_a_setting(plugin, served, url, photo, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_ATTEMPTS", "2")
    served.add(responses.POST, url, json={}, status=502)

    assert plugin.process("item-1", photo) == PluginStatus.FATAL
    assert len(served.calls) == 2


def test_wait_longer_than_max_wait_gives_up(module, plugin, served, photo, monkeypatch, logs):
    asked = asked_wait(module)
    monkeypatch.setenv("PIXSTOR_AZURE_MAX_WAIT", str(asked - 1))
    answer(served, module, "429")

    assert plugin.process("item-1", photo) == PluginStatus.FATAL
    assert len(served.calls) == 1
    (line,) = problems(logs)
    known = dict(asked=asked, setting="PIXSTOR_AZURE_MAX_WAIT", max_wait=asked - 1)
    assert_mentions(line, "client.WAIT_TOO_LONG_PART", **known)


def test_wait_up_to_max_wait_is_honoured(module, plugin, served, photo, monkeypatch, waits):
    monkeypatch.setenv("PIXSTOR_AZURE_MAX_WAIT", str(asked_wait(module)))
    answer(served, module, "429")
    answer(served, module, "found")

    assert plugin.process("item-1", photo) == PluginStatus.SUCCESS
    assert len(waits) == 1


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            requests.exceptions.ReadTimeout("timed out"),
            ("client.TIMED_OUT", dict(kind="read", timeout=60)),
        ),
        (
            requests.exceptions.ConnectTimeout("timed out"),
            ("client.TIMED_OUT", dict(kind="connect", timeout=5)),
        ),
        (
            requests.exceptions.ConnectionError("Connection refused"),
            ("client.UNREACHABLE", dict(why="Connection refused")),
        ),
    ],
    ids=["read-timeout", "connect-timeout", "unreachable"],
)
def test_network_failures_are_retried_then_fatal(
    module, plugin, served, url, photo, store, logs, error, words
):
    served.add(responses.POST, url, body=error)

    assert plugin.process("item-1", photo) == PluginStatus.FATAL

    assert len(served.calls) == 5
    assert store.read("item-1") == {}
    (line,) = problems(logs)
    key, known = words
    failure = says(key, name=NAMES[module.__name__], **known)
    why = says("client.ATTEMPTS_PART", count=5)
    assert_mentions(line, "client.GIVEN_UP", message=failure, why=why)
    assert_no_key(logs)


def test_timeout_then_success(module, plugin, served, url, photo, store, waits):
    served.add(responses.POST, url, body=requests.exceptions.ReadTimeout("timed out"))
    answer(served, module, "found")

    assert plugin.process("item-1", photo) == PluginStatus.SUCCESS
    assert len(served.calls) == 2 and len(waits) == 1


def test_malformed_json_is_fatal_without_retry(plugin, served, url, photo, store, logs):
    served.add(responses.POST, url, body="<html>gateway says hello</html>", status=200)

    assert plugin.process("item-1", photo) == PluginStatus.FATAL

    assert len(served.calls) == 1
    assert store.read("item-1") == {}
    (line,) = problems(logs)
    assert_mentions(line, "client.NOT_JSON", status=200)
    assert_no_key(logs)


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        (
            "customvision-401.handmade.json",
            PluginStatus.FATAL,
            ("KEY_REFUSED", dict(status=401)),
        ),
        (
            "customvision-404-iteration.handmade.json",
            PluginStatus.FATAL,
            ("customvisioncloud.NOT_PUBLISHED", dict(iteration="MyModel1", project=PROJECT)),
        ),
        (
            "customvision-400-image-format.handmade.json",
            PluginStatus.SKIPPED,
            ("IMAGE_REFUSED", dict(status=400, codes=" BadRequestImageFormat")),
        ),
        (
            "customvision-400-image-size.handmade.json",
            PluginStatus.SKIPPED,
            ("IMAGE_REFUSED", dict(status=400, codes=" BadRequestImageSizeBytes")),
        ),
    ],
)
@pytest.mark.parametrize("module", ["azureclassification", "azureobjectdetection"], indirect=True)
def test_custom_vision_refusals(
    module, plugin, served, url, photo, store, logs, name, status, words
):
    rec = recording(name)
    served.add(responses.POST, url, json=rec["body"], status=rec["status"])

    assert plugin.process("item-1", photo) == status

    assert len(served.calls) == 1  # a refusal is not retried
    assert store.read("item-1") == {}
    (line,) = problems(logs)
    assert line.startswith(f"{photo}: {module.__name__}: {status.name}: ")
    key, known = words
    if key == "IMAGE_REFUSED":  # the client's words about what the service said, refused
        text = rec["body"]["message"]
        known = dict(message=says("client.ANSWERED", name="Custom Vision", text=text, **known))
    assert_mentions(line, key, **known)
    assert "Traceback" not in logs.text
    assert_no_key(logs)


def test_vanished_file_is_skipped(plugin, served, tmp_path, logs):
    assert plugin.process("item-1", str(tmp_path / "gone.jpg")) == PluginStatus.SKIPPED
    assert not served.calls
    (line,) = problems(logs)
    assert_mentions(line, "source.UNREADABLE", why="No such file or directory")


def test_store_refusing_the_write_is_errored(module, plugin, monkeypatch, store, logs):
    monkeypatch.setattr(module, "extract", lambda path: one_value_per_field(plugin.schema()))
    monkeypatch.setattr("pixstor_azure.ground.store.MetadataStore.write", lambda *a, **k: False)

    assert plugin.process("item-1", "any.jpg") == PluginStatus.ERRORED
    (line,) = problems(logs)
    assert "ERRORED: " + says(runner.STORE_REFUSED, why="") in line


def test_fields_outside_the_schema_are_refused_by_the_store(module, plugin, monkeypatch, store):
    monkeypatch.setattr(module, "extract", lambda path: {"azure_undeclared": "x"})

    assert plugin.process("item-1", "any.jpg") == PluginStatus.ERRORED
    assert store.read("item-1") == {}


def test_unexpected_exception_never_escapes(plugin, tmp_path, monkeypatch, logs):
    def explode(*args, **kwargs):
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr("pixstor_azure.images.prepare.prepare", explode)

    assert plugin.process("item-1", str(imagefactory.jpeg(tmp_path))) == PluginStatus.FATAL
    (line,) = problems(logs)
    error = "something nobody planned for"
    assert "FATAL: " + says(runner.UNEXPECTED_ERROR, kind="RuntimeError", error=error) in line


@pytest.mark.parametrize(
    ("module", "missing"),
    [(name, setting) for name in sorted(PLUGINS) for setting in PLUGINS[name][1]],
    indirect=["module"],
)
def test_missing_setting_is_fatal_and_logged_once(
    module, plugin, served, tmp_path, monkeypatch, logs, missing
):
    monkeypatch.delenv(missing)
    photo = str(imagefactory.jpeg(tmp_path))

    assert plugin.process("item-1", photo) == PluginStatus.FATAL
    assert plugin.process("item-2", photo) == PluginStatus.FATAL

    assert not served.calls
    (line,) = problems(logs)  # once per process, not once per file
    assert f"{module.__name__}: FATAL: {row('settings.NOT_SET').error(missing)}" in line
    assert "Traceback" not in logs.text


# Per plugin: a setting, a malformed value, and words the one log line must say about it (or
# the key of the problem that says them, tests/wording.py, alone or with fields it must say).
ZERO_TO_ONE = ("settings.OUT_OF_RANGE", {"minimum": 0, "maximum": 1})
ONE_TO_1000 = ("settings.OUT_OF_RANGE", {"minimum": 1, "maximum": 1000})
MALFORMED = {
    "azureclassification": [
        ("CUSTOM_VISION_CLASSIFY_PROJECT", "my-project", "customvisioncloud.PROJECT_NOT_GUID"),
        ("CUSTOM_VISION_CLASSIFY_THRESHOLD", "high", "settings.NOT_A_NUMBER"),
        ("CUSTOM_VISION_CLASSIFY_THRESHOLD", "1.5", ZERO_TO_ONE),
        ("CUSTOM_VISION_CLASSIFY_MAX_TAGS", "0", ONE_TO_1000),
        (
            "CUSTOM_VISION_ENDPOINT",
            "http://westus.api.cognitive.microsoft.com",
            ("settings.PLAIN_HTTP", {"host": "westus.api.cognitive.microsoft.com"}),
        ),
        ("CUSTOM_VISION_ENDPOINT", "westus.api.cognitive.microsoft.com", "settings.NOT_A_URL"),
        ("CUSTOM_VISION_STORE_IMAGES", "perhaps", "settings.NOT_A_FLAG"),
        ("CUSTOM_VISION_KEY", "two words", "settings.KEY_SPACES"),
    ],
    "azureobjectdetection": [
        ("CUSTOM_VISION_DETECT_PROJECT", "my-detector", "customvisioncloud.PROJECT_NOT_GUID"),
        ("CUSTOM_VISION_DETECT_THRESHOLD", "high", "settings.NOT_A_NUMBER"),
        ("CUSTOM_VISION_DETECT_THRESHOLD", "-0.1", ZERO_TO_ONE),
        ("CUSTOM_VISION_DETECT_MAX_BOXES", "0", ONE_TO_1000),
        ("CUSTOM_VISION_DETECT_MAX_BOXES", "ten", "settings.NOT_A_WHOLE_NUMBER"),
        ("CUSTOM_VISION_KEY", "two words", "settings.KEY_SPACES"),
    ],
    "azurevision": [
        ("AZURE_VISION_API", "5.0", "settings.NOT_A_CHOICE"),
        ("AZURE_VISION_API_VERSION", "latest", "imageanalysis.API_VERSION_NOT_A_DATE"),
        ("AZURE_VISION_FEATURES", "tags,faces", "settings.ENTRIES_UNKNOWN"),
        ("AZURE_VISION_LANGUAGE", "english please", "imageanalysis.LANGUAGE_NOT_A_CODE"),
        ("AZURE_VISION_GENDER_NEUTRAL_CAPTION", "maybe", "settings.NOT_A_FLAG"),
        ("AZURE_VISION_TAG_THRESHOLD", "1.5", ZERO_TO_ONE),
        ("AZURE_VISION_MAX_TAGS", "0", ONE_TO_1000),
        ("AZURE_VISION_OBJECT_THRESHOLD", "high", "settings.NOT_A_NUMBER"),
        ("AZURE_VISION_MAX_OBJECTS", "-3", ONE_TO_1000),
        (
            "AZURE_VISION_ENDPOINT",
            "http://westus.example.com",
            ("settings.PLAIN_HTTP", {"host": "westus.example.com"}),
        ),
        ("AZURE_VISION_KEY", "two words", "settings.KEY_SPACES"),
    ],
}


@pytest.mark.parametrize(
    ("module", "name", "value", "words"),
    [(module, *case) for module, cases in MALFORMED.items() for case in cases],
    indirect=["module"],
)
def test_malformed_setting_is_fatal_naming_it(
    module, plugin, served, photo, monkeypatch, logs, name, value, words
):
    monkeypatch.setenv(name, value)

    assert plugin.process("item-1", photo) == PluginStatus.FATAL

    assert not served.calls
    (line,) = problems(logs)
    assert name in line
    if isinstance(words, tuple):  # the key of a problem and fields it must say
        assert_mentions(line, words[0], **words[1])
    elif words.rpartition(".")[2].isupper():  # the key of a problem: "module.NAME"
        assert_mentions(line, words)
    else:
        assert words in line
    assert "two words" not in logs.text  # a malformed key is not echoed either


@pytest.mark.parametrize(
    ("ext", "mimetype", "expected"),
    [
        (".jpg", None, True),
        (".JPEG", None, True),
        (".PNG", None, True),
        (".tif", None, True),
        (".webp", None, True),
        (".bmp", None, True),
        (".gif", None, True),
        (".svg", None, False),
        (".mov", None, False),
        (".mp4", None, False),
        (".pdf", None, False),
        (".txt", None, False),
        (None, "image/jpeg", True),
        (None, "image/png", True),
        (None, "image/svg+xml", False),
        (None, "video/mp4", False),
        (None, None, False),
    ],
)
def test_handles(plugin, ext, mimetype, expected):
    assert plugin.handles(ext, mimetype) is expected


def test_handles_does_no_file_io(plugin, monkeypatch):
    def no_io(*args, **kwargs):
        raise AssertionError("handles() opened a file")

    monkeypatch.setattr("builtins.open", no_io)
    monkeypatch.setattr("os.stat", no_io)
    assert plugin.handles(".jpg") is True


def test_namespace_is_image(plugin):
    assert plugin.namespace() == "image"
    assert all(f["name"].startswith("azure_") and f["prompt"] for f in plugin.schema())
