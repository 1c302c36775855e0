"""AZURE_VISION_API=openai and CUSTOM_VISION_CLASSIFY_BACKEND=openai, through the two plugins.

Against the local fake over real sockets (tests/fakeopenai.py mounted in FakeAzure), which
checks that each request is well formed (path, api-key, api-version, a strict schema, the
class list in its enum, a data URL of a JPEG), and against hand-made recordings shaped as
Azure OpenAI's chat completions are (tests/recordings/openai-*.json). Every fault the service
can answer ends the file in the status and words an administrator needs, and never writes a
wrong field.
"""

import base64
import io
import json
import logging
import math
import os
from typing import Any, List, NamedTuple

import pytest
import responses
from PIL import Image, ImageDraw

import azureclassification
import azurevision
from pixstor_azure.answers import fetch
from pixstor_azure.answers.answer import fresh
from pixstor_azure.ground.errors import ImageRejected, ServiceError, SettingsError
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.ground.settings import Settings
from pixstor_azure.images import prepare
from pixstor_azure.services import base, customvision, openai, openaiclassify, registry, vision
from tests import imagefactory
from tests.conftest import assert_no_key, serve
from tests.fakeazure import FakeAzure
from tests.fakeopenai import FakeOpenAI, image_tokens
from tests.sources import answered
from tests.wording import assert_mentions, assert_problem, row, row_of, says

OPENAI_ENDPOINT = "https://contoso-vision.openai.azure.com"
OPENAI_KEY = "aoai-key-7c1e9f3a5b2d4e6f8a0b"
DEPLOYMENT = "vision-4o"
URL = f"{OPENAI_ENDPOINT}/openai/deployments/{DEPLOYMENT}/chat/completions"
CLASSES = "red, blue, night sky, logo on screen"


class Fake(NamedTuple):
    server: FakeAzure
    api: FakeOpenAI

    def body(self, n: int = -1) -> dict:
        return self.api.bodies[n]


@pytest.fixture(autouse=True)
def openai_settings(monkeypatch):
    """No Azure OpenAI setting from the machine; the plugins in openai mode."""
    for name in list(os.environ):
        if name.startswith("AZURE_OPENAI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_OPENAI_REQUESTS_PER_SECOND", "0")
    monkeypatch.setenv("AZURE_VISION_API", "openai")
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_BACKEND", "openai")
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_CLASSES", CLASSES)


@pytest.fixture
def fake(monkeypatch):
    with FakeAzure() as server:
        api = server.mount("/openai/", FakeOpenAI())
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url)
        monkeypatch.setenv("AZURE_OPENAI_KEY", server.key)
        monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "vision-4o")
        yield Fake(server, api)
        assert server.errors == []  # no bug in the fake itself


@pytest.fixture
def recorded(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", OPENAI_ENDPOINT)
    monkeypatch.setenv("AZURE_OPENAI_KEY", OPENAI_KEY)
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", DEPLOYMENT)
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def vision_plugin():
    return azurevision.AzureVisionPlugin()


@pytest.fixture
def classifier():
    return azureclassification.AzureClassificationPlugin()


@pytest.fixture
def blue(tmp_path):
    """800x600 PNG: blue, with a yellow rectangle and a grey band (imagefactory's scene)."""
    return imagefactory.png(tmp_path, size=(800, 600), color=(0, 0, 255))


@pytest.fixture
def blue_with_red(tmp_path):
    """400x300 JPEG, blue with a red patch of a tenth of its area."""
    im = Image.new("RGB", (400, 300), (0, 0, 255))
    ImageDraw.Draw(im).rectangle((0, 0, 119, 99), fill=(255, 0, 0))
    path = tmp_path / "blue_with_red.jpg"
    im.save(path, "JPEG", quality=95)
    return path


def sent_picture(body: dict) -> Image.Image:
    """The picture a request carried in its data URL (checked to be one)."""
    (part,) = [p for p in body["messages"][1]["content"] if p["type"] == "image_url"]
    url = part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def schema_of(body: dict) -> dict:
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    return response_format["json_schema"]["schema"]


def problems(logs) -> List[str]:
    return [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]


def chat(content: Any, finish: str = "stop", logprobs: Any = None) -> dict:
    """A chat completion body around ``content``, for parse tests."""
    return {
        "choices": [
            {
                "finish_reason": finish,
                "index": 0,
                "logprobs": logprobs,
                "message": {"content": content, "refusal": None, "role": "assistant"},
            }
        ],
        "model": "gpt-4o-2024-08-06",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


# --------------------------------------------------------------------------- vision, fake


def test_vision_request_and_fields_over_real_sockets(vision_plugin, fake, blue, store, logs):
    fake.server.read_lines = ["SCENE 42", "TAKE 3"]

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.SUCCESS

    received = fake.server.requests[-1]
    assert received.path == "/openai/deployments/vision-4o/chat/completions"
    assert received.query == {"api-version": "2024-10-21"}
    assert received.headers["api-key"] == fake.server.key
    assert received.headers["content-type"] == "application/json"
    body = fake.body()
    schema = schema_of(body)
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["tags", "caption", "objects", "text_lines"]
    assert body["max_tokens"] == 1000
    assert body["messages"][0]["role"] == "system"
    picture = sent_picture(body)
    assert picture.format == "JPEG" and picture.size == (800, 600)  # a PNG goes as JPEG
    assert body["messages"][1]["content"][1]["image_url"]["detail"] == "high"
    # Lower case (the fake writes "Blue"), no boxes: the names only.
    assert answered(store.read("blue", "image")) == {
        "azure_tags": ["blue", "white", "black", "abstract"],
        "azure_caption": "a picture with a blue box",
        "azure_objects": ["blue box"],
        "azure_text": ["SCENE 42", "TAKE 3"],
    }
    assert_no_key(logs, fake.server.key)


def test_only_the_features_asked_for_are_in_the_schema_and_the_fields(
    vision_plugin, fake, blue, store, monkeypatch
):
    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags,read")
    fake.server.read_lines = ["EXIT"]

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.SUCCESS

    assert list(schema_of(fake.body())["properties"]) == ["tags", "text_lines"]
    assert answered(store.read("blue", "image")) == {
        "azure_tags": ["blue", "white", "black", "abstract"],
        "azure_text": ["EXIT"],
    }


def test_max_tags_applies_and_the_tag_threshold_cannot_drop_a_tag(
    vision_plugin, fake, blue, store, monkeypatch
):
    monkeypatch.setenv("AZURE_VISION_MAX_TAGS", "2")
    monkeypatch.setenv("AZURE_VISION_TAG_THRESHOLD", "1")

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.SUCCESS

    assert store.read("blue", "image")["azure_tags"] == ["blue", "white"]


@pytest.mark.parametrize(("detail", "long_edge"), [("low", 512), ("high", 2048)])
def test_detail_sets_the_size_sent_and_the_image_tokens(
    fake, tmp_path, monkeypatch, detail, long_edge
):
    monkeypatch.setenv("AZURE_OPENAI_DETAIL", detail)
    path = imagefactory.jpeg(tmp_path, size=(3000, 2000))
    backend = registry.backend("vision", Settings.load())

    answer = backend.ask(str(path))

    picture = sent_picture(fake.body())
    assert max(picture.size) == long_edge
    assert answer.sent == picture.size and answer.display == (3000, 2000)
    assert fake.body()["messages"][1]["content"][1]["image_url"]["detail"] == detail
    usage = answer.body["usage"]
    image_part = image_tokens(picture.size[0], picture.size[1], detail)
    assert image_part == (85 if detail == "low" else 170 * 6 + 85)  # 1152x768 is 3x2 tiles
    assert usage["prompt_tokens"] > image_part
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert backend.identity()["edge"] == long_edge


def test_language_and_gender_neutral_caption_are_asked_for(fake, blue, monkeypatch):
    monkeypatch.setenv("AZURE_VISION_LANGUAGE", "es")
    monkeypatch.setenv("AZURE_VISION_GENDER_NEUTRAL_CAPTION", "true")

    vision.analyze(str(blue))

    text = fake.body()["messages"][1]["content"][0]["text"]
    assert "language whose code is es" in text
    assert '"person" rather than "man" or "woman"' in text


# --------------------------------------------------------------------------- classes, fake


def test_classes_are_the_enum_and_only_listed_ones_are_written(classifier, fake, blue, store):
    assert classifier.process("blue", str(blue)) == PluginStatus.SUCCESS

    body = fake.body()
    items = schema_of(body)["properties"]["classes"]["items"]
    assert items == {"type": "string", "enum": ["red", "blue", "night sky", "logo on screen"]}
    assert body["logprobs"] is True
    assert answered(store.read("blue", "image")) == {
        "azure_class": "blue",
        "azure_classes": ["blue"],
    }


@pytest.mark.parametrize(("threshold", "expected"), [("0.5", ["blue", "red"]), ("0.7", ["blue"])])
def test_the_threshold_applies_to_the_probability_read_from_logprobs(
    classifier, fake, blue_with_red, store, monkeypatch, threshold, expected
):
    # The fake writes blue at 0.99 and red (a tenth of the picture) at 0.6.
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", threshold)

    assert classifier.process("pic", str(blue_with_red)) == PluginStatus.SUCCESS

    assert answered(store.read("pic", "image")) == {
        "azure_class": "blue",
        "azure_classes": expected,
    }


def test_threshold_zero_asks_for_no_logprobs_and_writes_every_class_named(
    classifier, fake, blue_with_red, store, monkeypatch
):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0")

    assert classifier.process("pic", str(blue_with_red)) == PluginStatus.SUCCESS

    assert "logprobs" not in fake.body()
    assert store.read("pic", "image")["azure_classes"] == ["blue", "red"]


def test_none_of_these_writes_nothing(classifier, fake, tmp_path, store, monkeypatch, logs):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_CLASSES", "red, blue")
    path = imagefactory.jpeg(tmp_path, size=(400, 300), color=(0, 160, 0))

    assert classifier.process("green", str(path)) == PluginStatus.SKIPPED

    assert store.read("green") == {}
    assert "green" not in json.dumps(schema_of(fake.body()))


def test_classes_one_per_line_in_the_ini_file(classifier, fake, blue, store, tmp_path, monkeypatch):
    for name in ("CUSTOM_VISION_CLASSIFY_CLASSES", "AZURE_OPENAI_DEPLOYMENT"):
        monkeypatch.delenv(name)
    ini = tmp_path / "pixstor-azure.ini"
    ini.write_text(
        "[custom_vision]\n"
        "classify_classes =\n"
        "    red\n"
        "    night sky, blue\n"
        "    logo on screen\n"
        "[azure_openai]\n"
        "deployment = vision-4o\n"
    )
    ini.chmod(0o600)
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(ini))

    assert classifier.process("blue", str(blue)) == PluginStatus.SUCCESS

    enum = schema_of(fake.body())["properties"]["classes"]["items"]["enum"]
    assert enum == ["red", "night sky", "blue", "logo on screen"]
    assert store.read("blue", "image")["azure_class"] == "blue"


def test_logprobs_missing_writes_the_classes_named_and_says_so_once(
    classifier, fake, blue_with_red, store, monkeypatch, logs
):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.7")
    fake.api.misbehave("no_logprobs")

    assert classifier.process("pic", str(blue_with_red)) == PluginStatus.SUCCESS

    assert store.read("pic", "image")["azure_classes"] == ["blue", "red"]
    (warning,) = problems(logs)
    assert "no usable log-probabilities" in warning and "THRESHOLD" in warning


# --------------------------------------------------------------------------- faults, fake


def test_wrong_key_is_fatal_in_plain_words(vision_plugin, fake, blue, store, logs, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_KEY", "wrong-key-0000000000000000")

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.FATAL
    assert vision_plugin.process("next", str(blue)) == PluginStatus.FATAL

    assert len(fake.server.requests) == 1  # every file would fail alike: asked once
    (line,) = problems(logs)
    assert_mentions(line, "KEY_REFUSED", status=401, key_setting="AZURE_OPENAI_KEY")
    assert store.read("blue") == {} and store.read("next") == {}
    assert_no_key(logs, "wrong-key-0000000000000000", fake.server.key)


def test_unknown_deployment_names_the_setting(vision_plugin, fake, blue, logs, monkeypatch):
    monkeypatch.setenv(
        "AZURE_OPENAI_DEPLOYMENT", "gpt-4o"
    )  # the model's name, not the deployment's

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.FATAL

    (line,) = problems(logs)
    assert_mentions(line, "openai.NO_DEPLOYMENT", deployment="gpt-4o")


def test_unknown_api_version_names_the_setting(vision_plugin, fake, blue, logs, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "2099-01-01")

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.FATAL

    (line,) = problems(logs)
    assert_mentions(line, "openai.NO_CHAT_API", api_version="2099-01-01")


def test_model_without_structured_outputs_is_named(vision_plugin, fake, blue, logs, monkeypatch):
    fake.api.deployments["old-4o"] = "gpt-4o-2024-05-13"
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "old-4o")

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.FATAL

    (line,) = problems(logs)
    assert_mentions(line, "openai.NO_JSON_SCHEMA", deployment="old-4o")


def test_throttled_by_the_fake_waits_as_told_and_names_the_rate_setting(
    vision_plugin, blue, monkeypatch, waits, logs
):
    with FakeAzure(tps=0.05) as server:  # one request per 20 s
        server.mount("/openai/", FakeOpenAI())
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url)
        monkeypatch.setenv("AZURE_OPENAI_KEY", server.key)
        monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "vision-4o")
        monkeypatch.setenv("PIXSTOR_AZURE_ATTEMPTS", "2")
        monkeypatch.setenv("PIXSTOR_AZURE_CACHE", "off")

        assert vision_plugin.process("one", str(blue)) == PluginStatus.SUCCESS
        assert vision_plugin.process("two", str(blue)) == PluginStatus.FATAL

        assert [r.status for r in server.requests] == [200, 429, 429]
        # Told to come back in about 20 s (retry-after, retry-after-ms): waited that.
        assert waits and 18 <= waits[0] <= 22.1
        (line,) = problems(logs)
        assert "exceeded token rate limit" in line and "AZURE_OPENAI_REQUESTS_PER_SECOND" in line


def test_retry_after_header_is_honoured(vision_plugin, fake, blue, store, waits):
    fake.server.fail_next(
        429,
        {"error": {"code": "429", "message": "Rate limit is exceeded."}},
        headers={"retry-after": "3"},
    )

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.SUCCESS

    assert len(waits) == 1 and 3.0 <= waits[0] <= 3.3
    assert len(fake.server.requests) == 2


def test_retry_after_ms_header_is_honoured(vision_plugin, fake, blue, waits):
    fake.server.fail_next(
        429,
        {"error": {"code": "429", "message": "Rate limit is exceeded."}},
        headers={"retry-after-ms": "1500"},
    )

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.SUCCESS

    assert len(waits) == 1 and 1.5 <= waits[0] <= 1.65


def test_throttled_to_the_end_names_the_rate_setting(
    vision_plugin, recorded, blue, logs, monkeypatch
):
    monkeypatch.setenv("PIXSTOR_AZURE_ATTEMPTS", "2")
    serve(recorded, URL, "openai-429.handmade.json")
    serve(recorded, URL, "openai-429.handmade.json")

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.FATAL

    (line,) = problems(logs)
    assert_mentions(line, "client.ANSWERED", name=openai.SERVICE, status=429)
    assert_mentions(line, "client.ATTEMPTS_PART", count=2)
    assert_mentions(line, row_of(openai.Chat, status=429))
    assert "AZURE_OPENAI_REQUESTS_PER_SECOND" in line


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("prompt_filter", ("openai.FILTERED", dict(filtered=" (violence: high)"))),
        ("content_filter", ("openai.WITHHELD", dict(filtered=" (violence: high)"))),
        ("refusal", ("openai.DECLINED", dict(refusal="I'm sorry, I can't help with that."))),
    ],
)
def test_refused_pictures_are_skipped_not_fatal(vision_plugin, fake, blue, store, logs, kind, says):
    fake.api.misbehave(kind)

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.SKIPPED

    (line,) = problems(logs)
    assert ": SKIPPED: " in line
    key, known = says
    assert_mentions(line, key, **known)
    assert store.read("blue") == {}


def test_answer_cut_off_at_max_tokens_is_skipped(
    vision_plugin, fake, blue, store, logs, monkeypatch
):
    monkeypatch.setenv("AZURE_OPENAI_MAX_TOKENS", "16")

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.SKIPPED

    assert fake.body()["max_tokens"] == 16
    (line,) = problems(logs)
    assert_mentions(line, "openai.CUT_OFF", max_tokens=16)
    assert store.read("blue") == {}


def test_a_refused_answer_is_not_kept_the_next_try_asks_again(
    vision_plugin, fake, blue, store, tmp_path, monkeypatch
):
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", str(tmp_path / "answers.sqlite3"))
    fake.api.misbehave("refusal")
    assert vision_plugin.process("blue", str(blue)) == PluginStatus.SKIPPED

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.SUCCESS
    assert vision_plugin.process("again", str(blue)) == PluginStatus.SUCCESS

    assert len(fake.server.requests) == 2  # the refusal asked again, the answer was kept
    assert store.read("again", "image")["azure_caption"] == "a picture with a blue box"


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ('{"classes":["green"]}', "'green' is not in CUSTOM_VISION_CLASSIFY_CLASSES"),
        ('{"classes":"blue"}', "classes is a string, not a list of strings"),
        ('{"classes":["blue",3]}', "classes is a list of int, not a list of strings"),
        ('{"labels":["blue"]}', "classes is null or missing, not a list of strings"),
        ("blue", "not JSON"),
        ('["blue"]', "not a JSON object"),
    ],
)
def test_classes_outside_the_schema_write_nothing(
    classifier, fake, blue, store, logs, content, said
):
    fake.api.misbehave("content", content)

    assert classifier.process("blue", str(blue)) == PluginStatus.FATAL

    (line,) = problems(logs)
    assert_mentions(line, "openai.OFF_SCHEMA", what=said)
    assert store.read("blue") == {}


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            {"caption": "x", "tags": "blue, white", "objects": [], "text_lines": []},
            "tags is a string",
        ),
        (
            {"caption": None, "tags": [], "objects": [], "text_lines": []},
            "caption is null or missing",
        ),
        (
            {"caption": "x", "tags": [], "objects": [{"name": "cup"}], "text_lines": []},
            "a list of dict",
        ),
        ({"caption": "x", "tags": [], "objects": []}, "text_lines is null or missing"),
    ],
)
def test_vision_answers_outside_the_schema_write_nothing(
    vision_plugin, fake, blue, store, logs, answer, said
):
    fake.api.misbehave("content", json.dumps(answer))

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.FATAL

    (line,) = problems(logs)
    assert said in line
    assert store.read("blue") == {}


def test_empty_caption_is_no_caption(vision_plugin, fake, blue, store):
    answer = {"caption": "  ", "tags": ["Sky"], "objects": [" ", "cup"], "text_lines": ["", "OK"]}
    fake.api.misbehave("content", json.dumps(answer))

    assert vision_plugin.process("blue", str(blue)) == PluginStatus.SUCCESS

    assert answered(store.read("blue", "image")) == {
        "azure_tags": ["sky"],
        "azure_objects": ["cup"],
        "azure_text": ["OK"],
    }


def test_neither_the_key_nor_the_picture_is_ever_logged(vision_plugin, fake, blue, logs):
    fake.server.fail_next(400, {"error": {"code": "BadRequest", "message": "Invalid image data."}})
    vision_plugin.process("bad", str(blue))
    fake.api.misbehave("refusal")
    vision_plugin.process("refused", str(blue))
    vision_plugin.process("good", str(blue))

    data_url = fake.body()["messages"][1]["content"][1]["image_url"]["url"]
    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in logs.records)
    assert data_url.split(",", 1)[1][:40] not in text
    assert "/9j/" not in text  # how every base64 JPEG begins
    assert_no_key(logs, fake.server.key)


# --------------------------------------------------------------------------- recordings


def test_recorded_vision_answer(vision_plugin, recorded, tmp_path, store, logs):
    serve(recorded, URL, "openai-vision-200.handmade.json")
    path = imagefactory.jpeg(tmp_path, size=(1024, 768))

    assert vision_plugin.process("tram", str(path)) == PluginStatus.SUCCESS

    (call,) = recorded.calls
    assert call.request.url == URL + "?api-version=2024-10-21"
    assert call.request.headers["api-key"] == OPENAI_KEY
    assert call.request.headers["Content-Type"] == "application/json"
    sent = json.loads(call.request.body)
    assert sent_picture(sent).size == (1024, 768)
    fields = store.read("tram", "image")
    # 22 distinct tags, lower case, at most AZURE_VISION_MAX_TAGS (20), in the model's order.
    assert fields["azure_tags"][:4] == ["tram", "tree", "street", "city"]
    assert len(fields["azure_tags"]) == 20 and "track" not in fields["azure_tags"]
    assert fields["azure_caption"] == "A red tram passes a row of trees on a city street at dusk."
    assert fields["azure_objects"] == ["tram", "tree", "person", "lamp post"]
    assert fields["azure_text"] == ["14 Central Station", "Route 14"]
    assert "azure_object_boxes" not in fields
    assert_no_key(logs, OPENAI_KEY)


def test_recorded_answer_carries_the_model_and_the_usage(recorded, photo):
    serve(recorded, URL, "openai-vision-200.handmade.json")
    backend = registry.backend("vision", Settings.load())

    answer = backend.ask(str(photo))

    assert answer.model == "gpt-4o-2024-08-06"
    assert answer.body["usage"]["prompt_tokens"] == 765 + 290
    assert answer.bytes_sent > len(photo.read_bytes())  # base64 is a third larger
    assert backend.parse(answer).tags[0] == base.Tag("tram", 1.0)


@pytest.mark.parametrize(
    ("threshold", "expected"), [("0.5", ["exterior", "night"]), ("0.9", ["exterior"])]
)
def test_recorded_classes_with_logprobs(
    classifier, recorded, photo, store, monkeypatch, threshold, expected
):
    monkeypatch.setenv(
        "CUSTOM_VISION_CLASSIFY_CLASSES", "exterior, interior, night, crowd, logo on screen"
    )
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", threshold)
    serve(recorded, URL, "openai-classify-200.handmade.json")

    assert classifier.process("photo", str(photo)) == PluginStatus.SUCCESS

    assert answered(store.read("photo", "image")) == {
        "azure_class": "exterior",
        "azure_classes": expected,
    }
    assert json.loads(recorded.calls[0].request.body)["logprobs"] is True


def test_recorded_probabilities_are_those_of_the_tokens(recorded, photo, monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_CLASSES", "exterior, night")
    serve(recorded, URL, "openai-classify-200.handmade.json")
    backend = registry.backend(customvision.CLASSIFY.name, Settings.load())

    predictions = backend.parse(backend.ask(str(photo)))

    assert [p.tag for p in predictions] == ["exterior", "night"]
    assert predictions[0].probability == pytest.approx(0.99, abs=1e-5)
    assert predictions[1].probability == pytest.approx(0.6, abs=1e-5)


@pytest.mark.parametrize(
    ("name", "plugin", "status", "said"),
    [
        ("openai-401.handmade.json", "vision", "FATAL", ("KEY_REFUSED", dict(status=401))),
        (
            "openai-404-deployment.handmade.json",
            "vision",
            "FATAL",
            ("openai.NO_DEPLOYMENT", dict(deployment="vision-4o")),
        ),
        (
            "openai-400-content-filter.handmade.json",
            "vision",
            "SKIPPED",
            ("openai.FILTERED", dict(filtered=" (violence: high)")),
        ),
        (
            "openai-200-content-filter.handmade.json",
            "classification",
            "SKIPPED",
            ("openai.WITHHELD", dict(filtered=" (sexual: medium)")),
        ),
        (
            "openai-200-refusal.handmade.json",
            "classification",
            "SKIPPED",
            (
                "openai.DECLINED",
                dict(refusal="I'm sorry, but I can't help with describing this image."),
            ),
        ),
        ("openai-200-length.handmade.json", "vision", "SKIPPED", ("openai.CUT_OFF", {})),
        (
            "openai-400-json-schema-version.handmade.json",
            "vision",
            "FATAL",
            ("openai.NO_JSON_SCHEMA", {}),
        ),
        (
            "openai-vision-200-tags-string.handmade.json",
            "vision",
            "FATAL",
            ("openai.OFF_SCHEMA", dict(what="tags is a string, not a list of strings")),
        ),
        (
            "openai-classify-200-unlisted.handmade.json",
            "classification",
            "FATAL",
            ("openai.OFF_SCHEMA", dict(what="'sunset' is not in CUSTOM_VISION_CLASSIFY_CLASSES")),
        ),
    ],
)
def test_recorded_faults(
    vision_plugin, classifier, recorded, photo, store, logs, monkeypatch, name, plugin, status, said
):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_CLASSES", "exterior, interior, night")
    serve(recorded, URL, name)
    chosen = vision_plugin if plugin == "vision" else classifier

    assert chosen.process("photo", str(photo)) == getattr(PluginStatus, status)

    (line,) = problems(logs)
    key, known = said
    assert_mentions(line, key, **known)
    assert store.read("photo") == {}
    assert_no_key(logs, OPENAI_KEY)


def test_recorded_empty_caption_writes_the_other_fields(vision_plugin, recorded, photo, store):
    serve(recorded, URL, "openai-vision-200-empty-caption.handmade.json")

    assert vision_plugin.process("photo", str(photo)) == PluginStatus.SUCCESS

    fields = store.read("photo", "image")
    assert "azure_caption" not in fields
    assert fields["azure_objects"] == ["tram", "tree", "person", "lamp post"]


def test_a_deployment_that_takes_no_pictures_is_named(vision_plugin, recorded, photo, logs):
    body = {
        "error": {
            "message": "Invalid content type. image_url is only supported by certain models.",
            "type": "invalid_request_error",
            "param": "messages.[1].content.[1].type",
            "code": None,
        }
    }
    recorded.add(responses.POST, URL, json=body, status=400)

    assert vision_plugin.process("photo", str(photo)) == PluginStatus.FATAL

    (line,) = problems(logs)
    assert_mentions(line, "openai.NO_PICTURES")


@pytest.mark.parametrize(
    "body",
    [
        chat('{"classes":[]}', finish="length"),
        chat(None, finish="content_filter"),
        dict(chat(None), choices=[{"finish_reason": "stop", "message": {"refusal": "No."}}]),
    ],
)
def test_tokens_of_an_answer_not_used_are_counted_all_the_same(
    vision_plugin, recorded, photo, body
):
    recorded.add(responses.POST, URL, json=body)

    assert vision_plugin.process("photo", str(photo)) == PluginStatus.SKIPPED

    assert fetch.tally().snapshot()["tokens"] == body["usage"]["total_tokens"]


def test_a_picture_refused_as_image_data_is_skipped(vision_plugin, recorded, photo, logs):
    body = {"error": {"code": "BadRequest", "message": "Invalid image data.", "param": None}}
    recorded.add(responses.POST, URL, json=body, status=400)

    assert vision_plugin.process("photo", str(photo)) == PluginStatus.SKIPPED

    (line,) = problems(logs)
    answered = says(
        "client.ANSWERED",
        name=openai.SERVICE,
        status=400,
        codes=" BadRequest",
        text="Invalid image data.",  # the service's words
    )
    assert_mentions(line, "IMAGE_REFUSED", name=openai.SERVICE, message=answered)


# --------------------------------------------------------------------------- the backend alone


def test_identity_names_everything_that_changes_the_answer_and_never_the_key(recorded, monkeypatch):
    def identity() -> dict:
        return registry.backend(customvision.CLASSIFY.name, Settings.load()).identity()

    first = identity()
    assert first["service"] == "openai" and first["task"] == "classify"
    assert first["host"] == "contoso-vision.openai.azure.com"
    assert OPENAI_KEY not in json.dumps(first)
    changes = [
        ("AZURE_OPENAI_DEPLOYMENT", "other-4o"),
        ("AZURE_OPENAI_API_VERSION", "2025-01-01-preview"),
        ("AZURE_OPENAI_DETAIL", "low"),
        ("CUSTOM_VISION_CLASSIFY_CLASSES", "red, blue"),
        ("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0"),
        ("PIXSTOR_AZURE_MAX_LONG_EDGE", "1024"),
    ]
    for name, value in changes:
        with monkeypatch.context() as m:
            m.setenv(name, value)
            assert identity() != first, name
    with monkeypatch.context() as m:  # what only thresholds the stored answer: the same
        m.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.8")
        m.setenv("AZURE_OPENAI_KEY", "another-key-1234567890")
        m.setenv("AZURE_OPENAI_MAX_TOKENS", "2000")
        assert identity() == first


def test_a_stored_answer_gives_todays_fields(recorded, photo, monkeypatch):
    serve(recorded, URL, "openai-vision-200.handmade.json")
    backend = registry.backend("vision", Settings.load())
    stored = backend.ask(str(photo))
    monkeypatch.setenv("AZURE_VISION_MAX_TAGS", "3")

    found = vision._kept("photo", backend.parse(stored), vision.Keep.load(Settings.load()))

    assert [t.name for t in found.tags] == ["tram", "tree", "street"]


def test_a_prepared_image_in_another_format_goes_as_jpeg(tmp_path):
    png = imagefactory.png(tmp_path, size=(64, 48))
    prepared = prepare.PreparedImage(png.read_bytes(), "PNG", 64, 48, 64, 48, as_is=True)

    sent = openai.as_jpeg(prepared)

    assert sent.format == "JPEG" and not sent.as_is
    assert Image.open(io.BytesIO(sent.data)).format == "JPEG"
    assert openai.as_jpeg(sent) is sent


def test_probabilities_follow_token_bytes_across_split_characters():
    text = '{"classes":["café terrace","night"]}'
    raw = text.encode("utf-8")
    cut = raw.index("é".encode()) + 1  # the é split between two tokens
    night = raw.index(b"night")
    tokens = [
        {"token": '{"classes":["caf', "logprob": 0.0, "bytes": list(raw[: cut - 1])},
        {"token": "bytes:\\xc3", "logprob": math.log(0.8), "bytes": list(raw[cut - 1 : cut])},
        {"token": "bytes:\\xa9", "logprob": math.log(0.5), "bytes": list(raw[cut : cut + 1])},
        {"token": ' terrace","', "logprob": 0.0, "bytes": list(raw[cut + 1 : night])},
        {"token": "night", "logprob": math.log(0.3), "bytes": list(raw[night : night + 5])},
        {"token": '"]}', "logprob": 0.0, "bytes": list(raw[night + 5 :])},
    ]
    named = ["café terrace", "night"]

    # The first token holds the key and the start of the class: its 0 counts, as a part of
    # the class's tokens.
    assert openaiclassify._class_probabilities(text, tokens, named) == pytest.approx([0.4, 0.3])
    assert openaiclassify._class_probabilities(text, tokens[:-1], named) is None  # not the answer
    assert openaiclassify._class_probabilities(text, tokens, ["night", "café terrace"]) is None
    bad = [dict(tokens[0], logprob=float("nan")), *tokens[1:]]
    assert openaiclassify._class_probabilities(text, bad, named) is None


@pytest.mark.parametrize(
    ("body", "error", "said"),
    [
        (chat('{"classes":[]}', finish="length"), ImageRejected, ("openai.CUT_OFF", {})),
        (chat(None, finish="content_filter"), ImageRejected, ("openai.WITHHELD", {})),
        (
            chat(None, finish="tool_calls"),
            ServiceError,
            ("openai.NO_ANSWER", {"finish": "tool_calls"}),
        ),
        ({"choices": []}, ServiceError, ("UNEXPECTED", {})),
        ("not a body", ServiceError, ("UNEXPECTED", {})),
    ],
)
def test_envelopes_that_are_not_answers(recorded, body, error, said):
    backend = registry.backend(customvision.CLASSIFY.name, Settings.load())
    stored = fresh(body, (1, 1), (1, 1))

    with pytest.raises(error) as raised:
        backend.parse(stored)

    key, known = said
    assert_mentions(raised.value, key, **known)


def test_no_classes_is_none_of_these(recorded):
    backend = registry.backend(customvision.CLASSIFY.name, Settings.load())

    assert backend.parse(fresh(chat('{"classes":[]}'), (1, 1), (1, 1))) == []


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        (
            "AZURE_OPENAI_API_VERSION",
            "2024-06-01",
            ("openai.API_VERSION_TOO_OLD", dict(version="2024-06-01", default="2024-10-21")),
        ),
        (
            "AZURE_OPENAI_API_VERSION",
            "latest",
            ("openai.API_VERSION_NOT_A_DATE", dict(default="2024-10-21")),
        ),
        ("AZURE_OPENAI_DETAIL", "auto", ("settings.NOT_A_CHOICE", dict(choices="low, high"))),
        (
            "AZURE_OPENAI_MAX_TOKENS",
            "5",
            ("settings.OUT_OF_RANGE", dict(minimum=16, maximum=16384)),
        ),
        (
            "AZURE_OPENAI_ENDPOINT",
            "http://example.com",
            ("settings.PLAIN_HTTP", dict(host="example.com")),
        ),
        ("CUSTOM_VISION_CLASSIFY_CLASSES", " , ,", ("openaiclassify.NO_CLASS", {})),
        (
            "CUSTOM_VISION_CLASSIFY_CLASSES",
            "Night, crowd, night",
            ("openaiclassify.CLASS_TWICE", dict(class_name="night")),
        ),
        (
            "CUSTOM_VISION_CLASSIFY_CLASSES",
            ", ".join(f"class {i}" for i in range(501)),
            ("openaiclassify.TOO_MANY_CLASSES", dict(count=501, most=500)),
        ),
    ],
)
def test_settings_errors_name_the_setting(recorded, monkeypatch, name, value, said):
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as raised:
        registry.backend(customvision.CLASSIFY.name, Settings.load())

    if isinstance(said, tuple):  # the key of a problem, and the fields known
        key, known = said
        assert_problem(raised.value, name, key, **known)
    else:
        assert raised.value.setting == name and said in raised.value.problem


@pytest.mark.parametrize("name", ["AZURE_OPENAI_KEY", "AZURE_OPENAI_DEPLOYMENT"])
def test_missing_settings_end_every_file_fatal_once(
    vision_plugin, recorded, photo, logs, monkeypatch, name
):
    monkeypatch.delenv(name)

    assert vision_plugin.process("a", str(photo)) == PluginStatus.FATAL
    assert vision_plugin.process("b", str(photo)) == PluginStatus.FATAL

    said = row("settings.NOT_SET").error(name)
    held = says("runner.SETTINGS_HOLD", name="azurevision", error=said)
    assert problems(logs) == [f"azurevision: FATAL: {held}"]


def test_a_read_endpoint_reads_the_text_and_the_model_is_not_asked_to(
    vision_plugin, fake, blue, store, monkeypatch
):
    from tests.fakeread import FakeRead, Line

    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags,read")
    with FakeAzure() as reader_host:
        FakeRead(lines=[Line("SCENE 42")], polls=1, container=True).mount(reader_host)
        monkeypatch.setenv("AZURE_VISION_READ_ENDPOINT", reader_host.url)

        assert vision_plugin.process("blue", str(blue)) == PluginStatus.SUCCESS

    assert list(schema_of(fake.body())["properties"]) == ["tags"]  # no text_lines to pay for
    assert store.read("blue", "image")["azure_text"] == ["SCENE 42"]
