"""Faults that hold for every file: one line per process, the following files fail at once
without a call, and the service is asked again at most once a minute; an outage pauses calls
for a short, growing while. Time is the suite's fake clock: nothing sleeps.

And what the services say, read right: a 400 about one picture skips it, a classifier's
Negative tag is never written, the 429 line names one code in one sentence."""

import importlib
import logging
import re
import socket

import pytest
import requests
import responses

import azureclassification
import azurevision
from pixstor_azure import runner
from pixstor_azure.answers import faults
from pixstor_azure.ground.errors import Held, Refused, Unavailable
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.services import imageanalysis
from tests import imagefactory
from tests.conftest import assert_no_key, recording
from tests.fakeazure import FakeAzure
from tests.fakecontainer import FakeContainer
from tests.fakeopenai import FakeOpenAI
from tests.fakeread import FakeRead, Line
from tests.sources import answered
from tests.test_every_plugin import PLUGINS, SERVICE
from tests.wording import assert_mentions, pattern, row_of, says

CLASSES = {name: cls for name, (cls, _) in PLUGINS.items()}
FOUND = {name: names[0] for name, (_, *names) in SERVICE.items()}
CUSTOM_VISION = ["azureclassification", "azureobjectdetection"]


@pytest.fixture(autouse=True)
def every_file_asks(monkeypatch):
    """No answer cache: what is counted here is what reaches the service."""
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", "off")


def plugin_for(monkeypatch, name):
    for setting, value in PLUGINS[name][1].items():
        monkeypatch.setenv(setting, value)
    module = importlib.import_module(name)
    return getattr(module, CLASSES[name])()


@pytest.fixture
def served():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def files(tmp_path):
    """Photographs to send, a new one each time."""
    made = iter(range(1000))

    def make():
        return str(imagefactory.jpeg(tmp_path / f"f{next(made)}", size=(320, 240)))

    return make


def serve(mock, name, rec):
    body = recording(rec)
    mock.add(responses.POST, SERVICE[name][0], json=body["body"], status=body["status"])


def problems(logs):
    return [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]


# Each: the plugin, the recording, the row its line says (with the fields checked) and the
# service's own words the line carries.
REFUSALS = [
    (
        "azureclassification",
        "customvision-401.handmade.json",
        ("KEY_REFUSED", dict(status=401, key_setting="CUSTOM_VISION_KEY")),
        "Access denied due to invalid",
    ),
    (
        "azureobjectdetection",
        "customvision-403-other-resource.handmade.json",
        ("OTHER_TIER", dict(endpoint_setting="CUSTOM_VISION_ENDPOINT", tier="OpenAI.S0")),
        "pricing tier OpenAI.S0",
    ),
    (
        "azureclassification",
        "customvision-404-iteration.handmade.json",
        (
            "customvisioncloud.NOT_PUBLISHED",
            dict(iteration="MyModel1", iteration_setting="CUSTOM_VISION_CLASSIFY_ITERATION"),
        ),
        "",
    ),
    (
        "azureobjectdetection",
        "customvision-404-project.handmade.json",
        ("customvisioncloud.NO_PROJECT", dict(project_setting="CUSTOM_VISION_DETECT_PROJECT")),
        "",
    ),
    (
        "azurevision",
        "imageanalysis-401.handmade.json",
        ("KEY_REFUSED", dict(status=401, key_setting="AZURE_VISION_KEY")),
        "Access denied due to invalid",
    ),
    (
        "azurevision",
        "imageanalysis-401-other-resource.handmade.json",
        ("OTHER_TIER", dict(endpoint_setting="AZURE_VISION_ENDPOINT", tier="OpenAI.S0")),
        "pricing tier OpenAI.S0",
    ),
    (
        "azurevision",
        "imageanalysis-404.handmade.json",
        (row_of(imageanalysis.ImageAnalysis40, status=404), {}),
        "Resource not found",
    ),
    (
        "azurevision",
        "imageanalysis-400-language.handmade.json",
        (row_of(imageanalysis.ImageAnalysis40, codes="NotSupportedLanguage"), {}),
        "Analyze query is invalid",
    ),
]


@pytest.mark.parametrize(
    ("name", "rec", "says", "their_words"),
    REFUSALS,
    ids=[r[1].split(".")[0] for r in REFUSALS],
)
def test_a_refusal_is_one_line_then_files_fail_without_a_call(
    monkeypatch, served, files, logs, store, name, rec, says, their_words
):
    plugin = plugin_for(monkeypatch, name)
    serve(served, name, rec)
    first = files()

    statuses = [plugin.process(f"item-{n}", p) for n, p in enumerate([first, files(), files()])]

    assert statuses == [PluginStatus.FATAL] * 3
    assert len(served.calls) == 1
    (line,) = problems(logs)
    assert line.startswith(f"{first}: {name}: FATAL: ")
    key, known = says
    assert_mentions(line, key, **known)
    assert their_words in line
    assert_mentions(line, runner.REFUSED_HOLD)
    assert store.read("item-0") == {}
    assert_no_key(logs)


def test_a_refused_service_is_asked_again_once_a_minute_and_cured_without_restart(
    monkeypatch, served, files, logs, clock, store
):
    plugin = plugin_for(monkeypatch, "azureclassification")
    serve(served, "azureclassification", "customvision-401.handmade.json")

    assert plugin.process("a", files()) == PluginStatus.FATAL
    clock.advance(59)
    assert plugin.process("b", files()) == PluginStatus.FATAL
    assert len(served.calls) == 1  # not within the minute
    clock.advance(2)
    assert plugin.process("c", files()) == PluginStatus.FATAL
    assert len(served.calls) == 2  # asked again: still refused, not logged again
    assert len(problems(logs)) == 1

    served.reset()  # the administrator sets the right key
    serve(served, "azureclassification", "customvision-classify-nostore-200.handmade.json")
    assert plugin.process("d", files()) == PluginStatus.FATAL  # within the minute: not asked
    assert not served.calls
    clock.advance(61)
    assert plugin.process("e", files()) == PluginStatus.SUCCESS
    assert store.read("e", "image")
    assert_mentions(logs.text, "faults.ANSWERS_AGAIN", name="Custom Vision", seconds=122)

    served.reset()  # and should it refuse again, that is a line again
    serve(served, "azureclassification", "customvision-401.handmade.json")
    assert plugin.process("f", files()) == PluginStatus.FATAL
    refusals = [line for line in problems(logs) if ": FATAL: Custom Vision " in line]
    assert len(refusals) == 2
    for line in refusals:
        assert_mentions(line, "KEY_REFUSED", name="Custom Vision", status=401)


def test_a_refusal_holds_back_only_what_it_refused(monkeypatch, served, files, logs):
    """The classifier's iteration is not published: the detector on the same resource, and
    the classifier once pointed at a published iteration, still ask at once."""
    classifier = plugin_for(monkeypatch, "azureclassification")
    detector = plugin_for(monkeypatch, "azureobjectdetection")
    serve(served, "azureclassification", "customvision-404-iteration.handmade.json")
    serve(served, "azureobjectdetection", FOUND["azureobjectdetection"])

    assert classifier.process("a", files()) == PluginStatus.FATAL
    assert detector.process("b", files()) == PluginStatus.SUCCESS

    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_ITERATION", "MyModel2")
    fixed = SERVICE["azureclassification"][0].replace("MyModel1", "MyModel2")
    rec = recording(FOUND["azureclassification"])
    served.add(responses.POST, fixed, json=rec["body"], status=200)
    assert classifier.process("c", files()) == PluginStatus.SUCCESS  # no minute to wait
    assert len(served.calls) == 3


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_a_host_name_that_does_not_resolve_is_one_line_naming_the_setting(
    monkeypatch, files, logs, waits, name
):
    plugin = plugin_for(monkeypatch, name)
    setting = "AZURE_VISION_ENDPOINT" if name == "azurevision" else "CUSTOM_VISION_ENDPOINT"
    monkeypatch.setenv(setting, "https://my-resourse.cognitiveservices.azure.com")
    looked_up = []

    def unknown(host, *args, **kwargs):
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)

    assert plugin.process("a", files()) == PluginStatus.FATAL
    assert plugin.process("b", files()) == PluginStatus.FATAL

    assert looked_up == ["my-resourse.cognitiveservices.azure.com"]  # once: no retries
    assert waits == []
    (line,) = problems(logs)
    host, why = "my-resourse.cognitiveservices.azure.com", "Name or service not known"
    assert_mentions(line, "faults.UNRESOLVED", host=host, why=why, setting=setting)


# ------------------------------------------------------------------ outages


@pytest.fixture
def one_attempt(monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_ATTEMPTS", "1")


def test_an_outage_pauses_calls_for_a_growing_while_then_resumes(
    monkeypatch, served, files, logs, clock, store, one_attempt
):
    plugin = plugin_for(monkeypatch, "azurevision")
    url = SERVICE["azurevision"][0]
    served.add(responses.POST, url, json={"error": {"code": "503", "message": "x"}}, status=503)

    for n in range(3):
        assert plugin.process(f"down-{n}", files()) == PluginStatus.FATAL
    assert len(served.calls) == 3
    lines = problems(logs)
    down = ": FATAL: " + pattern("client.ANSWERED", name="Azure AI Vision", status=503)
    assert len(lines) == 4 and sum(bool(re.search(down, x)) for x in lines) == 3
    (opened,) = [line for line in lines if re.search(pattern("faults.OUTAGE_OPENED"), line)]
    assert_mentions(opened, "faults.OUTAGE_OPENED", failures=3, seconds=30)

    assert plugin.process("paused", files()) == PluginStatus.FATAL
    assert len(served.calls) == 3 and len(problems(logs)) == 4  # no call, no line
    assert_mentions(logs.text, "faults.PAUSED", seconds=30)  # at the debug level

    clock.advance(31)
    assert plugin.process("probe", files()) == PluginStatus.FATAL  # still down: a longer pause
    assert len(served.calls) == 4
    assert_mentions(logs.text, "faults.OUTAGE_OPENED", seconds=60)
    clock.advance(31)
    assert plugin.process("paused-again", files()) == PluginStatus.FATAL
    assert len(served.calls) == 4

    served.reset()
    serve(served, "azurevision", FOUND["azurevision"])
    clock.advance(30)
    assert plugin.process("back", files()) == PluginStatus.SUCCESS
    assert store.read("back", "image")
    assert_mentions(logs.text, "faults.RESUMED", name="Azure AI Vision", seconds=92)


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ReadTimeout("timed out"), requests.exceptions.ConnectionError("reset")],
    ids=["timeout", "unreachable"],
)
@pytest.mark.parametrize("name", CUSTOM_VISION)
def test_timeouts_and_unreachable_count_towards_an_outage(
    monkeypatch, served, files, one_attempt, name, failure
):
    plugin = plugin_for(monkeypatch, name)
    served.add(responses.POST, SERVICE[name][0], body=failure)

    for n in range(4):
        assert plugin.process(f"i{n}", files()) == PluginStatus.FATAL
    assert len(served.calls) == 3


def test_throttling_and_refused_images_are_no_outage(monkeypatch, served, files, one_attempt):
    plugin = plugin_for(monkeypatch, "azureclassification")
    url = SERVICE["azureclassification"][0]
    for n in range(3):
        serve(served, "azureclassification", "customvision-429.handmade.json")
        assert plugin.process(f"busy-{n}", files()) == PluginStatus.FATAL
    serve(served, "azureclassification", "customvision-400-image-format.handmade.json")
    assert plugin.process("odd", files()) == PluginStatus.SKIPPED
    assert len(served.calls) == 4 and served.calls[-1].request.url.startswith(url)


def test_failures_between_successes_are_no_outage(monkeypatch, served, files, one_attempt):
    plugin = plugin_for(monkeypatch, "azurevision")
    url = SERVICE["azurevision"][0]
    for _ in range(3):
        served.add(responses.POST, url, json={"error": {"code": "500", "message": "x"}}, status=500)
        served.add(responses.POST, url, json={"error": {"code": "500", "message": "x"}}, status=500)
        serve(served, "azurevision", FOUND["azurevision"])
    statuses = [plugin.process(f"i{n}", files()) for n in range(9)]
    assert statuses.count(PluginStatus.SUCCESS) == 3 and len(served.calls) == 9


def _openai_classifier(monkeypatch, server, misbehave):
    api = server.mount("/openai/", FakeOpenAI())
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_BACKEND", "openai")
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_CLASSES", "red, blue")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url)
    monkeypatch.setenv("AZURE_OPENAI_KEY", server.key)
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "vision-4o")
    return azureclassification.AzureClassificationPlugin(), lambda: misbehave(api)


def _reader(monkeypatch, server):
    read = FakeRead(lines=[Line("SCENE 42", 0, 0)], outcome="failed").mount(server)
    read.outcome = "succeeded"
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    monkeypatch.setenv("AZURE_VISION_ENDPOINT", server.url)
    monkeypatch.setenv("AZURE_VISION_KEY", server.key)
    monkeypatch.setenv("AZURE_VISION_READ_ENDPOINT", server.url)
    monkeypatch.setenv("AZURE_VISION_READ_KEY", server.key)
    return azurevision.AzureVisionPlugin(), lambda: setattr(read, "outcome", "failed")


def _container(monkeypatch, server):
    container = server.mount("/", FakeContainer("classify", ["red", "green", "blue"]))
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_BACKEND", "container")
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_URL", server.url)
    return azureclassification.AzureClassificationPlugin(), lambda: setattr(
        container, "quirk", "preprocess"
    )


# Each: the plugin set up against a fake over real sockets, and how the service is made to
# answer 200 with a body that is an error; the status that file ends with.
ANSWERED_WITH_AN_ERROR = {
    "openai-off-schema": (
        lambda mp, server: _openai_classifier(
            mp, server, lambda api: api.misbehave("content", '{"classes": ["green"]}')
        ),
        PluginStatus.FATAL,
    ),
    "openai-content-filter": (
        lambda mp, server: _openai_classifier(
            mp, server, lambda api: api.misbehave("content_filter")
        ),
        PluginStatus.SKIPPED,
    ),
    "read-failed": (_reader, PluginStatus.SKIPPED),
    "container-json-string": (_container, PluginStatus.SKIPPED),
}


@pytest.mark.parametrize("case", sorted(ANSWERED_WITH_AN_ERROR))
def test_an_error_in_a_200_answer_ends_an_outage(
    monkeypatch, files, logs, clock, one_attempt, case
):
    """The service answered, even if what it said is an error about the picture (off the
    schema, withheld by a content filter, a reading that failed): the outage is over, and
    the next file is sent at once."""
    set_up, status = ANSWERED_WITH_AN_ERROR[case]
    with FakeAzure() as server:
        plugin, answer_with_an_error = set_up(monkeypatch, server)
        server.fail_next(503, times=faults.OUTAGE_AFTER)
        for n in range(faults.OUTAGE_AFTER):
            assert plugin.process(f"down-{n}", files()) == PluginStatus.FATAL
        assert plugin.process("paused", files()) == PluginStatus.FATAL
        assert len(server.requests) == faults.OUTAGE_AFTER  # the pause is open: not asked
        clock.advance(faults.FIRST_PAUSE + 1)

        answer_with_an_error()
        assert plugin.process("probe", files()) == status
        asked = len(server.requests)
        assert asked > faults.OUTAGE_AFTER  # the file let through was sent
        assert_mentions(logs.text, "faults.RESUMED")
        plugin.process("next", files())
        assert len(server.requests) > asked  # no pause left: sent at once
        assert server.errors == []


# ------------------------------------------------------------------ while one file asks again


class Backend:
    name = "Stub"
    endpoint_setting = "STUB_ENDPOINT"

    def __init__(self, error):
        self.error = error
        self.meanwhile = lambda: None

    def identity(self):
        return {"service": "stub", "host": "stub.example"}

    def ask(self, path):
        self.meanwhile()
        if self.error is not None:
            raise self.error
        return "answer"


@pytest.mark.parametrize(
    ("error", "held", "wait"),
    [
        (Refused("Stub", "Stub refused the key (401)", 401), Refused, faults.RECHECK),
        (Unavailable("Stub", "Stub answered 503"), Held, faults.FIRST_PAUSE),
    ],
    ids=["refusal", "outage"],
)
def test_while_one_file_asks_again_the_others_fail_at_once(clock, error, held, wait):
    backend = Backend(error)
    for _ in range(faults.OUTAGE_AFTER if held is Held else 1):
        with pytest.raises(type(error)):
            faults.ask(backend, "file")
    clock.advance(wait + 1)
    others = []

    def another_file_meanwhile():
        with pytest.raises(held):
            faults.ask(Backend(None), "another file")
        others.append("held")

    backend.error, backend.meanwhile = None, another_file_meanwhile
    assert faults.ask(backend, "file") == "answer"  # let through to ask again
    assert others == ["held"]  # while it asked, another file did not
    assert faults.ask(Backend(None), "another file") == "answer"  # answered: every file asks


# ------------------------------------------------------------------ what the services say


def test_a_400_invalid_request_naming_no_setting_skips_the_picture(
    monkeypatch, served, files, logs, store
):
    plugin = plugin_for(monkeypatch, "azurevision")
    serve(served, "azurevision", "imageanalysis-400-invalid-request.handmade.json")
    path = files()

    assert plugin.process("odd", path) == PluginStatus.SKIPPED

    (line,) = problems(logs)
    assert line.startswith(f"{path}: azurevision: SKIPPED: ")
    assert_mentions(line, "IMAGE_REFUSED", name="Azure AI Vision")
    assert "The input image could not be processed." in line  # the service's own words
    assert plugin.process("next", files()) == PluginStatus.SKIPPED
    assert len(served.calls) == 2  # about that picture only: the next one is sent


@pytest.mark.parametrize(
    "message",
    [
        "The 'api-version' query parameter is required.",
        "Unsupported Content-Type.",
        "At least one of features or model-name must be specified.",
    ],
)
def test_a_400_invalid_request_about_the_request_is_one_line_then_no_call(
    monkeypatch, served, files, logs, message
):
    plugin = plugin_for(monkeypatch, "azurevision")
    body = {"error": {"code": "InvalidRequest", "message": message}}
    served.add(responses.POST, SERVICE["azurevision"][0], json=body, status=400)

    assert plugin.process("a", files()) == PluginStatus.FATAL
    assert plugin.process("b", files()) == PluginStatus.FATAL
    (line,) = problems(logs)
    assert message in line and "AZURE_VISION_API_VERSION" in line
    assert len(served.calls) == 1  # the same request would be refused alike: not sent again


def test_no_rate_limit_slot_in_the_file_budget_is_no_outage(
    monkeypatch, served, files, one_attempt, tmp_path, clock, logs
):
    """Files that wait in vain for the client-side limit never reached the service: its
    pause for an outage stays shut, and the next file with a slot is sent."""
    monkeypatch.setenv("PIXSTOR_AZURE_RATE_FILE", str(tmp_path / "rate"))
    monkeypatch.setenv("CUSTOM_VISION_REQUESTS_PER_SECOND", "0.05")
    monkeypatch.setenv("PIXSTOR_AZURE_FILE_TIMEOUT", "5")
    plugin = plugin_for(monkeypatch, "azureclassification")
    for _ in range(2):
        serve(served, "azureclassification", FOUND["azureclassification"])

    assert plugin.process("first", files()) == PluginStatus.SUCCESS
    for n in range(faults.OUTAGE_AFTER + 1):
        assert plugin.process(f"crowded-{n}", files()) == PluginStatus.FATAL
    clock.sleep(30)  # the next slot is 20.8 s after the first
    assert plugin.process("later", files()) == PluginStatus.SUCCESS
    assert len(served.calls) == 2
    opened = pattern("faults.OUTAGE_OPENED")
    assert not any(re.search(opened, line) for line in problems(logs))


def test_a_redirect_is_not_followed_and_carries_no_key(monkeypatch, served, files, logs):
    plugin = plugin_for(monkeypatch, "azureclassification")
    served.add(
        responses.POST,
        SERVICE["azureclassification"][0],
        status=307,
        headers={"Location": "http://elsewhere.example/steal?x=1"},
    )

    assert plugin.process("a", files()) == PluginStatus.FATAL
    assert plugin.process("b", files()) == PluginStatus.FATAL
    (line,) = problems(logs)
    assert_mentions(line, "client.REDIRECTED", status=307, where=" to http://elsewhere.example")
    assert "steal" not in line
    assert len(served.calls) == 1  # never the other host, and once only


def test_a_classifiers_negative_tag_is_never_written(monkeypatch, served, files, store):
    plugin = plugin_for(monkeypatch, "azureclassification")
    serve(served, "azureclassification", "customvision-classify-negative-200.handmade.json")

    assert plugin.process("item", files()) == PluginStatus.SUCCESS

    assert answered(store.read("item", "image")) == {
        "azure_class": "Hemlock",
        "azure_classes": ["Hemlock"],
    }


def test_only_a_negative_tag_above_the_threshold_is_nothing_found(monkeypatch, served, files):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.8")
    plugin = plugin_for(monkeypatch, "azureclassification")
    serve(served, "azureclassification", "customvision-classify-negative-200.handmade.json")

    assert plugin.process("item", files()) == PluginStatus.SKIPPED


@pytest.mark.parametrize(
    ("name", "rec", "service", "setting"),
    [
        ("azureclassification", "customvision-429.handmade.json", "Custom Vision", "CUSTOM_VISION"),
        ("azurevision", "imageanalysis-429.handmade.json", "Azure AI Vision", "AZURE_VISION"),
    ],
)
def test_the_429_line_names_one_code_in_one_sentence(
    monkeypatch, served, files, logs, name, rec, service, setting
):
    monkeypatch.setenv("PIXSTOR_AZURE_ATTEMPTS", "2")
    plugin = plugin_for(monkeypatch, name)
    serve(served, name, rec)
    path = files()

    assert plugin.process("a", path) == PluginStatus.FATAL

    (line,) = problems(logs)
    said = recording(rec)["body"]["error"]["message"]
    first = said.split(". ")[0]  # "Requests to the ... exceeded rate limit of your ... tier"
    answered = says("client.ANSWERED", name=service, status=429, codes="", text=first)
    given_up = says("client.GIVEN_UP", message=answered, why=says("client.ATTEMPTS_PART", count=2))
    assert line == f"{path}: {name}: FATAL: " + says(
        "THROTTLED", message=given_up, rate_setting=f"{setting}_REQUESTS_PER_SECOND"
    )
    assert "retry after" not in line.lower()
