"""Text from the Read APIs: Read 3.2 and Document Intelligence prebuilt-read, cloud or container.

Most tests run the whole plugin over real sockets against ``tests/fakeread.py`` mounted on
``tests/fakeazure.py`` (202, Operation-Location, polls, Retry-After, failed readings, the
container's own address and missing key); a few read the hand-made recordings of both APIs'
documented shapes. Nobody sleeps: every wait is recorded in ``waits``.
"""

import logging

import pytest
import responses

import azurevision
from pixstor_azure.answers import ratelimit
from pixstor_azure.ground.errors import ServiceError
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.ground.settings import Settings
from pixstor_azure.services import read, registry, withread
from tests import imagefactory
from tests.conftest import ENDPOINT, KEY, assert_no_key, recording
from tests.fakeazure import FakeAzure
from tests.fakeread import CONTAINER, DOC_INTEL, READ_32, FakeRead, Line
from tests.sources import answered
from tests.wording import assert_mentions, says

READ_KEY = "read-key-7c1e9a5b3d2f4e6a"
# Two columns of a slate: read column by column, as a person would, unlike row by row.
LINES = [Line("SCENE 42", 0, 0), Line("ROLL 7", 1, 0), Line("TAKE 3", 0, 1), Line("CAM B", 1, 1)]
NATURAL = ["SCENE 42", "TAKE 3", "ROLL 7", "CAM B"]
PROTOCOLS = [READ_32, DOC_INTEL]


@pytest.fixture
def plugin():
    return azurevision.AzureVisionPlugin()


@pytest.fixture
def photo(tmp_path):
    """Blue, with a yellow box: the fake analyze finds tags, a caption and an object in it."""
    return imagefactory.jpeg(tmp_path, size=(640, 480), color=(0, 0, 255))


@pytest.fixture
def vision_fake(monkeypatch):
    """Azure AI Vision (analyze 4.0 and 3.2) at AZURE_VISION_ENDPOINT, with its own key."""
    with FakeAzure(key="vision-key-2b4d6f8a0c1e3a5c") as fake:
        fake.read_lines = ["READ BY 4.0"]
        monkeypatch.setenv("AZURE_VISION_ENDPOINT", fake.url)
        monkeypatch.setenv("AZURE_VISION_KEY", fake.key)
        yield fake


@pytest.fixture
def read_fake():
    """Another host for the Read API (a resource or a container), with another key."""
    with FakeAzure(key=READ_KEY) as fake:
        yield fake


def use_read_endpoint(monkeypatch, fake, protocol=READ_32, key=READ_KEY):
    monkeypatch.setenv("AZURE_VISION_READ_ENDPOINT", fake.url)
    monkeypatch.setenv("AZURE_VISION_READ_API", protocol)
    if key is not None:
        monkeypatch.setenv("AZURE_VISION_READ_KEY", key)


def problems(logs):
    return [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]


# --------------------------------------------------------------------------- 3.2 reads again


def test_32_mode_reads_text_from_read_32_of_the_same_resource(
    plugin, store, photo, vision_fake, monkeypatch, waits, logs
):
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    reader = FakeRead(lines=LINES, polls=3).mount(vision_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    fields = store.read("item-1", "image")
    assert fields["azure_text"] == NATURAL
    assert fields["azure_tags"] and fields["azure_caption"]  # 3.2's analyze still answers
    analyze, start, *polls = vision_fake.requests
    assert (analyze.method, analyze.path) == ("POST", "/vision/v3.2/analyze")
    assert analyze.query["visualFeatures"] == "Tags,Description,Objects"
    assert (start.method, start.path, start.query) == (
        "POST",
        "/vision/v3.2/read/analyze",
        {"readingOrder": "natural"},
    )
    assert start.headers["content-type"] == "application/octet-stream"
    assert start.image_format == "JPEG" and start.status == 202
    (operation,) = reader.operations
    assert [(r.method, r.path) for r in polls] == [
        ("GET", f"/vision/v3.2/read/analyzeResults/{operation}")
    ] * 4  # notStarted, running, running, succeeded
    assert {r.headers["ocp-apim-subscription-key"] for r in vision_fake.requests} == {
        vision_fake.key
    }
    assert waits == [1.0, 1.5, 2.0, 2.5]  # 1-2 s at first, as Microsoft asks, then spaced out
    assert vision_fake.errors == [] and problems(logs) == []
    assert_no_key(logs, vision_fake.key)


def test_retry_after_says_how_long_to_wait_between_askings(
    plugin, store, photo, vision_fake, monkeypatch, waits
):
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    FakeRead(lines=LINES, polls=2, retry_after="3").mount(vision_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    assert waits == [3.0, 3.0, 3.0]  # the 202's, then each running answer's
    assert answered(store.read("item-1", "image")) == {"azure_text": NATURAL}
    assert vision_fake.requests[0].path == "/vision/v3.2/read/analyze"


def test_come_back_at_once_is_still_a_short_pause(plugin, photo, vision_fake, monkeypatch, waits):
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    FakeRead(lines=LINES, polls=1, retry_after="0").mount(vision_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS
    assert waits == [read.SHORTEST_POLL] * 2


@pytest.mark.parametrize(
    ("max_wait", "retry_after", "expected_polls", "named"),
    [
        ("30", "10", 2, says("read.MAX_WAIT_PART", seconds=30)),
        ("600", "10", 8, says("read.BUDGET_PART", seconds=90)),
        ("10", None, 4, says("read.MAX_WAIT_PART", seconds=10)),  # 1 + 1.5 + 2 + 2.5, then 3
    ],
    ids=["max-wait", "file-budget", "own-interval"],
)
def test_a_reading_that_never_ends_is_waited_for_a_bounded_time(
    plugin,
    photo,
    vision_fake,
    monkeypatch,
    waits,
    logs,
    max_wait,
    retry_after,
    expected_polls,
    named,
):
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    monkeypatch.setenv("PIXSTOR_AZURE_MAX_WAIT", max_wait)
    reader = FakeRead(lines=LINES, polls=10_000, retry_after=retry_after).mount(vision_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL

    (operation,) = reader.operations.values()
    assert operation.asked == expected_polls
    assert len(waits) == expected_polls
    (line,) = problems(logs)
    assert_mentions(line, "read.TOO_LONG", named=named)
    assert_mentions(line, "read.RUNNING_PART", polls=expected_polls)


# --------------------------------------------------------------------------- another endpoint


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_read_endpoint_takes_the_text_while_analyze_keeps_the_rest(
    plugin, store, photo, vision_fake, read_fake, monkeypatch, logs, protocol
):
    use_read_endpoint(monkeypatch, read_fake, protocol)
    FakeRead(protocol, lines=LINES).mount(read_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    fields = store.read("item-1", "image")
    assert fields["azure_text"] == NATURAL  # not the 4.0 analyze's "READ BY 4.0"
    assert fields["azure_tags"] and fields["azure_caption"] and fields["azure_objects"]
    (analyze,) = vision_fake.requests
    assert analyze.path == "/computervision/imageanalysis:analyze"
    assert analyze.query["features"] == "tags,caption,objects"  # read is not paid for twice
    assert all("read" in r.path.lower() for r in read_fake.requests)
    # Each key goes to its own host only.
    assert analyze.headers["ocp-apim-subscription-key"] == vision_fake.key
    assert {r.headers["ocp-apim-subscription-key"] for r in read_fake.requests} == {READ_KEY}
    start = read_fake.requests[0]
    if protocol == DOC_INTEL:
        assert start.path == "/documentintelligence/documentModels/prebuilt-read:analyze"
        assert start.query == {"api-version": "2024-11-30"}
    else:
        assert (start.path, start.query) == (
            "/vision/v3.2/read/analyze",
            {"readingOrder": "natural"},
        )
    assert problems(logs) == []
    assert_no_key(logs, vision_fake.key, READ_KEY)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_container_without_key_is_asked_where_it_is_not_where_it_says(
    plugin, store, photo, vision_fake, read_fake, monkeypatch, protocol
):
    use_read_endpoint(monkeypatch, read_fake, protocol, key=None)
    reader = FakeRead(protocol, lines=LINES, container=True).mount(read_fake)
    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags,read")

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    assert store.read("item-1", "image")["azure_text"] == NATURAL
    # The container names its results at http://localhost:5000; they were asked for here.
    (operation,) = reader.operations
    gets = [r for r in read_fake.requests if r.method == "GET"]
    assert len(gets) == 3 and all(r.path.endswith(operation) for r in gets)
    assert all("ocp-apim-subscription-key" not in r.headers for r in read_fake.requests)
    assert CONTAINER.startswith("http://localhost:5000")


def test_read_endpoint_works_in_every_api_mode_even_with_text_alone(
    plugin, store, photo, read_fake, monkeypatch
):
    # Neither AZURE_VISION_ENDPOINT nor any Azure OpenAI setting: only the reader is needed.
    monkeypatch.setenv("AZURE_VISION_API", "openai")
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    use_read_endpoint(monkeypatch, read_fake, DOC_INTEL)
    FakeRead(DOC_INTEL, lines=LINES).mount(read_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS
    assert answered(store.read("item-1", "image")) == {"azure_text": NATURAL}


def test_40_without_read_endpoint_reads_in_its_one_analyze_call(
    plugin, store, photo, vision_fake, monkeypatch
):
    reader = FakeRead(lines=LINES).mount(vision_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    (analyze,) = vision_fake.requests
    assert analyze.query["features"] == "tags,caption,objects,read"
    assert store.read("item-1", "image")["azure_text"] == ["READ BY 4.0"]
    assert reader.started == 0


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("vision-key-2b4d6f8a0c1e3a5c", "read.READ_KEY_REFUSED"),
        (None, "read.NO_KEY"),
    ],
    ids=["the-vision-key", "none"],
)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_keys_are_checked_per_host(
    plugin, photo, vision_fake, read_fake, monkeypatch, logs, protocol, key, says
):
    use_read_endpoint(monkeypatch, read_fake, protocol, key=key)
    FakeRead(protocol, lines=LINES).mount(read_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL
    assert plugin.process("item-2", str(photo)) == PluginStatus.FATAL

    (line,) = problems(logs)  # once, not once per file
    assert_mentions(
        line,
        says,
        status=401,
        key_setting="AZURE_VISION_READ_KEY",
        endpoint_setting="AZURE_VISION_READ_ENDPOINT",
    )
    assert len(read_fake.requests) == 1  # the second file was not sent
    assert_no_key(logs, vision_fake.key, READ_KEY)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_endpoint_speaking_the_other_protocol_is_a_settings_problem(
    plugin, photo, read_fake, monkeypatch, logs, protocol
):
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    use_read_endpoint(monkeypatch, read_fake, protocol)
    other = DOC_INTEL if protocol == READ_32 else READ_32
    FakeRead(other, lines=LINES).mount(read_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL

    (line,) = problems(logs)
    assert_mentions(line, "read.NOT_HERE", status=404)


# --------------------------------------------------------------------------- reading order


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_lines_come_in_reading_order(plugin, store, photo, read_fake, monkeypatch, protocol):
    # Read 3.2 lists row by row unless asked for natural order; Document Intelligence lists
    # row by row and says the natural order in each line's span.
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    use_read_endpoint(monkeypatch, read_fake, protocol)
    FakeRead(protocol, lines=LINES).mount(read_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS
    assert store.read("item-1", "image")["azure_text"] == NATURAL


def test_read_32_pages_in_page_order_and_blank_lines_dropped():
    body = recording("read32-result-200.handmade.json")["body"]
    assert read.lines(body, READ_32) == [
        "SCENE 42",
        "TAKE 3",
        "Viva la vida",
        "ROLL 7",
        "Director: A. Smith",
    ]


def test_document_intelligence_lines_follow_their_spans_not_the_list():
    body = recording("docintel-result-200.handmade.json")["body"]
    assert read.lines(body, DOC_INTEL) == ["SLATE", "SCENE 42", "TAKE 3", "CAM B"]
    # Without spans the list's own order is all there is.
    for line in body["analyzeResult"]["pages"][0]["lines"]:
        del line["spans"]
    assert read.lines(body, DOC_INTEL) == ["SLATE", "CAM B", "SCENE 42", "TAKE 3"]


# --------------------------------------------------------------------------- failed readings


@pytest.mark.parametrize(
    ("protocol", "error", "status", "words"),
    [
        (READ_32, None, PluginStatus.SKIPPED, says("read.NO_REASON_PART")),
        (
            DOC_INTEL,
            recording("docintel-result-failed.handmade.json")["body"]["error"],
            PluginStatus.SKIPPED,
            ": The file is corrupted or format is unsupported. Refer to documentation",
        ),
        (
            DOC_INTEL,
            {"code": "InternalServerError", "message": "An unexpected error occurred."},
            PluginStatus.FATAL,
            ": An unexpected error occurred.",
        ),
    ],
    ids=["read32", "docintel-image", "docintel-outage"],
)
def test_a_failed_reading_is_said_in_plain_words(
    plugin, store, photo, read_fake, monkeypatch, logs, protocol, error, status, words
):
    use_read_endpoint(monkeypatch, read_fake, protocol)
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    FakeRead(protocol, lines=LINES, outcome="failed", error=error).mount(read_fake)

    assert plugin.process("item-1", str(photo)) == status

    (line,) = problems(logs)
    assert_mentions(line, "read.READING_FAILED", status="failed", reason=words)
    assert store.read("item-1") == {}


RECORDED = {
    READ_32: (
        "/vision/v3.2/read/analyze",
        "read32-analyze-202.handmade.json",
        ["read32-result-running.handmade.json", "read32-result-200.handmade.json"],
        [1.0, 1.5],  # our own pauses: the service said nothing
        ["SCENE 42", "TAKE 3", "Viva la vida", "ROLL 7", "Director: A. Smith"],
    ),
    DOC_INTEL: (
        "/documentintelligence/documentModels/prebuilt-read:analyze",
        "docintel-analyze-202.handmade.json",
        ["docintel-result-200.handmade.json"],
        [2.0],  # the 202's Retry-After
        ["SLATE", "SCENE 42", "TAKE 3", "CAM B"],
    ),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_recorded_answers_served_in_turn(plugin, store, photo, monkeypatch, waits, protocol):
    path, accepted, results, pauses, text = RECORDED[protocol]
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    monkeypatch.setenv("AZURE_VISION_READ_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("AZURE_VISION_READ_KEY", KEY)
    monkeypatch.setenv("AZURE_VISION_READ_API", protocol)
    started = recording(accepted)
    location = started["headers"]["Operation-Location"]
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, ENDPOINT + path, status=202, headers=started["headers"], body=b"")
        for name in results:
            mock.add(responses.GET, location.split("?")[0], json=recording(name)["body"])

        assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

        assert [c.request.method for c in mock.calls] == ["POST"] + ["GET"] * len(results)
        assert all(c.request.headers["Ocp-Apim-Subscription-Key"] == KEY for c in mock.calls)
        assert mock.calls[-1].request.url == location  # its query (api-version) kept
    assert answered(store.read("item-1", "image")) == {"azure_text": text}
    assert waits == pauses


@pytest.mark.parametrize(
    ("name", "status", "says", "their_words"),
    [
        (
            "read32-400-image-format-flat.handmade.json",
            PluginStatus.SKIPPED,
            ("IMAGE_REFUSED", {}),
            "InvalidImageFormat",
        ),
        (
            "docintel-400-invalid-content-dimensions.handmade.json",
            PluginStatus.SKIPPED,
            ("IMAGE_REFUSED", {}),
            "InvalidRequest/InvalidContentDimensions",
        ),
        (
            "docintel-401.handmade.json",
            PluginStatus.FATAL,
            ("read.READ_KEY_REFUSED", dict(status=401)),
            "",
        ),
    ],
)
def test_recorded_refusals(
    plugin, photo, read_fake, monkeypatch, logs, name, status, says, their_words
):
    protocol = READ_32 if name.startswith("read32") else DOC_INTEL
    use_read_endpoint(monkeypatch, read_fake, protocol)
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    refusal = recording(name)
    read_fake.fail_next(refusal["status"], refusal["body"], refusal["headers"])

    assert plugin.process("item-1", str(photo)) == status

    (line,) = problems(logs)
    key, known = says
    assert_mentions(line, key, **known)
    assert their_words in line


# --------------------------------------------------------------------------- the same HTTP rules


def test_polls_are_retried_like_every_call(plugin, store, photo, read_fake, monkeypatch, waits):
    use_read_endpoint(monkeypatch, read_fake)
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    FakeRead(lines=LINES, polls=0).mount(read_fake)
    read_fake.fail_next(200, delay=0.001)  # the POST goes through
    read_fake.fail_next(503)  # the first asking for the result does not
    read_fake.fail_next(429, headers={"Retry-After": "4"})  # nor the second

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    assert [r.status for r in read_fake.requests] == [202, 503, 429, 200]
    assert waits[0] == 1.0 and waits[1] <= 1.0  # the poll's pause, the backoff after the 503
    assert 4.0 <= waits[2] <= 4.4  # the 429's own word, a little over
    assert store.read("item-1", "image")["azure_text"] == NATURAL


def test_read_32_on_the_vision_resource_shares_its_rate_limit(
    plugin, photo, vision_fake, monkeypatch, waits
):
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags,read")
    monkeypatch.setenv("AZURE_VISION_REQUESTS_PER_SECOND", "1")
    FakeRead(lines=LINES, polls=0).mount(vision_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS

    gap = ratelimit.interval(1.0)
    # analyze at once; the Read POST a slot later; the GET after its pause, then the rest of
    # its slot: one limit for every call to the resource.
    assert waits == pytest.approx([gap, 1.0, gap - 1.0], abs=1e-4)


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "make",
    [
        imagefactory.truncated_jpeg,
        imagefactory.random_bytes_jpg,
        imagefactory.text_file_png,
        imagefactory.decompression_bomb,
        imagefactory.tiny,
        imagefactory.strip,
    ],
)
def test_hostile_files_are_skipped_before_anything_is_sent(
    plugin, tmp_path, read_fake, monkeypatch, logs, make
):
    use_read_endpoint(monkeypatch, read_fake)
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    FakeRead(lines=LINES).mount(read_fake)

    assert plugin.process("item-1", str(make(tmp_path))) == PluginStatus.SKIPPED
    assert read_fake.requests == []


@pytest.mark.parametrize(
    ("faults", "words"),
    [
        ([(202, b"")], ("read.NO_OPERATION_LOCATION", dict(status=202))),
        ([(200, "<html>busy</html>")], ("client.NOT_JSON", dict(status=200))),
        ([(200, {"status": "paused"})], ("read.UNKNOWN_STATUS", dict(found="paused"))),
        ([(200, ["succeeded"])], ("read.UNKNOWN_STATUS", dict(found=None))),
        (
            [(200, {"status": "succeeded", "analyzeResult": {"readResults": [{"lines": [{}]}]}})],
            ("UNEXPECTED", dict(what="KeyError: 'text'")),
        ),
        (
            [
                (
                    200,
                    {
                        "status": "succeeded",
                        "analyzeResult": {"readResults": [{"lines": [{"text": 42}]}]},
                    },
                )
            ],
            ("UNEXPECTED", dict(what="TypeError: a line's text is int, not text")),
        ),
        ([(404, None)], ("read.READING_GONE", {})),
    ],
    ids=[
        "no-location",
        "not-json",
        "unknown-status",
        "not-an-object",
        "no-text",
        "text-int",
        "lost",
    ],
)
def test_hostile_answers_are_plain_errors(
    plugin, photo, read_fake, monkeypatch, logs, faults, words
):
    use_read_endpoint(monkeypatch, read_fake)
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    FakeRead(lines=LINES, polls=0).mount(read_fake)
    if faults[0][0] != 202:
        read_fake.fail_next(200, delay=0.001)  # the POST goes through; the faults answer polls
    for status, body in faults:
        read_fake.fail_next(status, body)

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL

    (line,) = problems(logs)
    if isinstance(words, tuple):  # a row of the service's
        key, known = words
        assert_mentions(line, key, **known)
    else:  # what http says of any service
        assert words in line
    assert_no_key(logs, READ_KEY)


def test_the_operation_location_is_followed_on_the_endpoints_own_host():
    base = "http://10.0.0.7:5000"
    assert read.follow(base, f"{CONTAINER}/vision/v3.2/read/operations/abc") == (
        f"{base}/vision/v3.2/read/operations/abc"
    )
    assert read.follow(
        "https://x.cognitiveservices.azure.com",
        "https://evil.example/documentintelligence/documentModels/prebuilt-read/analyzeResults/"
        "r1?api-version=2024-11-30",
    ) == (
        "https://x.cognitiveservices.azure.com/documentintelligence/documentModels/prebuilt-read/"
        "analyzeResults/r1?api-version=2024-11-30"
    )
    assert read.follow("https://proxy.lan/ocr", "/vision/v3.2/read/operations/abc") == (
        "https://proxy.lan/ocr/vision/v3.2/read/operations/abc"
    )
    assert read.follow("https://proxy.lan/ocr", "https://proxy.lan/ocr/vision/x?a=1") == (
        "https://proxy.lan/ocr/vision/x?a=1"
    )


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "setting", "words"),
    [
        (
            {"AZURE_VISION_READ_API": "tesseract"},
            "AZURE_VISION_READ_API",
            ("settings.NOT_A_CHOICE", {}),
        ),
        (
            {"AZURE_VISION_READ_API": "document-intelligence"},
            "AZURE_VISION_READ_API",
            (
                "read.DOC_INTEL_WITHOUT_ENDPOINT",
                dict(
                    protocol="document-intelligence", endpoint_setting="AZURE_VISION_READ_ENDPOINT"
                ),
            ),
        ),
        (
            {"AZURE_VISION_READ_ENDPOINT": "http://ocr.studio.lan:5000"},
            "AZURE_VISION_READ_ENDPOINT",
            ("settings.PLAIN_HTTP", dict(host="ocr.studio.lan")),
        ),
        (
            {"AZURE_VISION_READ_ENDPOINT": "https://ocr.studio.lan/?key=x"},
            "AZURE_VISION_READ_ENDPOINT",
            ("settings.NOT_A_BASE_URL", {}),
        ),
        (
            {
                "AZURE_VISION_READ_ENDPOINT": "https://ocr.studio.lan",
                "AZURE_VISION_READ_KEY": "a b",
            },
            "AZURE_VISION_READ_KEY",
            ("settings.KEY_SPACES", {}),
        ),
    ],
    ids=["unknown-api", "docintel-without-endpoint", "plain-http", "query", "key-with-space"],
)
def test_settings_errors_name_the_setting_once(
    plugin, photo, vision_fake, monkeypatch, logs, settings, setting, words
):
    monkeypatch.setenv("AZURE_VISION_API", "3.2")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)

    assert plugin.process("item-1", str(photo)) == PluginStatus.FATAL
    assert plugin.process("item-2", str(photo)) == PluginStatus.FATAL

    (line,) = problems(logs)
    assert f"setting {setting} " in line
    if isinstance(words, tuple):  # the key of a problem, and the fields known
        key, known = words
        assert_mentions(line, key, **known)
    else:
        assert words in line
    assert vision_fake.requests == []


def test_read_settings_are_ignored_when_read_is_not_asked_for(
    plugin, photo, vision_fake, monkeypatch
):
    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags")
    monkeypatch.setenv("AZURE_VISION_READ_API", "tesseract")
    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS


def test_a_read_key_without_endpoint_is_not_used_and_said_once(
    plugin, photo, vision_fake, monkeypatch, logs
):
    monkeypatch.setenv("AZURE_VISION_READ_KEY", READ_KEY)
    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS
    assert plugin.process("item-2", str(photo)) == PluginStatus.SUCCESS
    (line,) = problems(logs)
    assert "AZURE_VISION_READ_KEY is set but AZURE_VISION_READ_ENDPOINT is not" in line
    assert all(r.headers["ocp-apim-subscription-key"] != READ_KEY for r in vision_fake.requests)


# --------------------------------------------------------------------------- the answer cache


def test_the_read_answer_is_cached_on_its_own(
    plugin, store, photo, vision_fake, read_fake, monkeypatch
):
    use_read_endpoint(monkeypatch, read_fake)
    reader = FakeRead(lines=LINES, polls=0).mount(read_fake)

    assert plugin.process("item-1", str(photo)) == PluginStatus.SUCCESS
    assert plugin.process("item-2", str(photo)) == PluginStatus.SUCCESS  # both from the cache
    assert (len(vision_fake.requests), reader.started) == (1, 1)

    # Another reader: the analyze answer is still good; only the text is asked again.
    use_read_endpoint(monkeypatch, read_fake, DOC_INTEL)
    FakeRead(DOC_INTEL, lines=LINES[:1], polls=0).mount(read_fake)
    assert plugin.process("item-3", str(photo)) == PluginStatus.SUCCESS
    assert len(vision_fake.requests) == 1
    assert store.read("item-3", "image")["azure_text"] == ["SCENE 42"]
    assert (
        store.read("item-1", "image")["azure_tags"] == store.read("item-3", "image")["azure_tags"]
    )


def test_the_backend_pair_answers_as_one_for_checks(photo, vision_fake, read_fake, monkeypatch):
    """``doctor`` and the like call a backend's ask/parse directly: the pair asks both."""
    use_read_endpoint(monkeypatch, read_fake)
    FakeRead(lines=LINES, polls=0).mount(read_fake)
    chosen = registry.backend("vision", Settings.load())
    assert isinstance(chosen, withread.WithRead)
    assert chosen.name == "Azure AI Vision"  # Read 3.2 is Azure AI Vision's own API
    assert chosen.identity()["read"]["host"] == read_fake.url.split("//")[1]
    assert READ_KEY not in str(chosen.identity()) and READ_KEY not in repr(chosen.reader)

    answer = chosen.ask(str(photo))

    found = chosen.parse(answer)
    assert found.text == NATURAL and found.tags
    assert answer.model and "2022-04-30" in answer.model


def test_unexpected_bodies_never_pass_as_text():
    for body in ({"status": "succeeded"}, {"analyzeResult": {"pages": [{"lines": [{}]}]}}):
        with pytest.raises(ServiceError) as raised:
            read.lines(body, DOC_INTEL)
        assert_mentions(raised.value, "UNEXPECTED", name="Document Intelligence")


def test_plain_http_to_a_container_named_in_the_allowed_hosts(monkeypatch):
    monkeypatch.setenv("AZURE_VISION_FEATURES", "read")
    monkeypatch.setenv("AZURE_VISION_READ_ENDPOINT", "http://ocr.studio.lan:5000")
    monkeypatch.setenv("PIXSTOR_AZURE_HTTP_HOSTS", "ocr.studio.lan:5000")
    chosen = registry.backend("vision", Settings.load())
    assert isinstance(chosen, read.Read)
    assert (chosen.endpoint, chosen.key) == ("http://ocr.studio.lan:5000", None)
    assert chosen.analyze_url == "http://ocr.studio.lan:5000/vision/v3.2/read/analyze"
