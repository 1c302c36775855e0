"""``pixstor-azure doctor``: each outcome in plain words, through the real command, never a key."""

import socket
import time

import pytest

from tests.fakeazure import FakeAzure
from tests.fakeread import FakeRead, Line
from tests.toolrun import Tool, serve
from tests.wording import assert_mentions

WRONG_KEY = "wrong-key-9d8c7b6a5f4e3d2c"


@pytest.fixture
def server():
    with FakeAzure() as fake:
        serve(fake)
        yield fake


def doctor(tool, *args):
    result = tool.run("doctor", *args)
    assert "Traceback" not in result.stderr, result
    for name in ("CUSTOM_VISION_KEY", "AZURE_VISION_KEY"):
        secret = tool.env.get(name, "no key set")
        assert secret not in result.stdout + result.stderr
    return result


def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_plugin_works_and_says_what_answers_it(tmp_path, server):
    result = doctor(Tool(tmp_path, server))

    assert result.returncode == 0, result
    for label in ("azureclassification", "azureobjectdetection", "azurevision"):
        assert f"{label}: works: answered by the service in " in result.stdout
    assert "azureclassification: uses cloud backend, Custom Vision: host=127.0.0.1" in (
        result.stdout
    )
    assert "iteration=production" in result.stdout
    assert "azurevision: uses Image Analysis 4.0 backend" in result.stdout
    assert "model 2023-10-01" in result.stdout  # the model version the answer names
    assert len(server.requests) == 3  # one small picture each, no retries


def test_a_wrong_key(tmp_path, server):
    tool = Tool(tmp_path, server, CUSTOM_VISION_KEY=WRONG_KEY)

    result = doctor(tool, "-p", "classification")

    assert result.returncode == 1
    assert "azureclassification: wrong key: Custom Vision" in result.stdout
    assert_mentions(result.stdout, "KEY_REFUSED", status=401, key_setting="CUSTOM_VISION_KEY")


def test_a_wrong_endpoint(tmp_path, server):
    tool = Tool(tmp_path, server, AZURE_VISION_ENDPOINT=server.url + "/not-vision")

    result = doctor(tool, "-p", "vision")

    assert result.returncode == 1
    assert "azurevision: wrong endpoint: " in result.stdout
    assert "AZURE_VISION_ENDPOINT" in result.stdout


def test_an_iteration_not_published(tmp_path, server):
    tool = Tool(tmp_path, server, CUSTOM_VISION_DETECT_ITERATION="Iteration 3")

    result = doctor(tool, "-p", "detection")

    assert result.returncode == 1
    assert "azureobjectdetection: iteration not published: " in result.stdout
    assert_mentions(result.stdout, "customvisioncloud.NOT_PUBLISHED", iteration="Iteration 3")


def test_a_feature_not_offered_in_the_region(tmp_path, server):
    server.unsupported_features.add("caption")

    result = doctor(Tool(tmp_path, server), "-p", "vision")

    assert result.returncode == 1
    assert "azurevision: works" in result.stdout  # the other features still answer
    assert "azurevision: feature not offered in this region: caption" in result.stdout


def test_only_features_the_region_does_not_offer(tmp_path, server):
    server.unsupported_features.add("caption")
    tool = Tool(tmp_path, server, AZURE_VISION_FEATURES="caption")

    result = doctor(tool, "-p", "vision")

    assert result.returncode == 1
    assert "azurevision: feature not offered in this region: " in result.stdout


def test_throttled(tmp_path, server):
    server.fail_next(429)

    result = doctor(Tool(tmp_path, server), "-p", "classification")

    assert result.returncode == 1
    assert "azureclassification: throttled: " in result.stdout
    assert "CUSTOM_VISION_REQUESTS_PER_SECOND" in result.stdout
    assert len(server.requests) == 1  # one try: no waiting through retries


def test_unreachable(tmp_path, server):
    tool = Tool(tmp_path, server, CUSTOM_VISION_ENDPOINT=f"http://127.0.0.1:{closed_port()}")

    result = doctor(tool, "-p", "classification")

    assert result.returncode == 1
    assert "azureclassification: unreachable: check CUSTOM_VISION_ENDPOINT" in result.stdout


def test_a_service_that_never_answers_is_said_within_the_file_budget(tmp_path, server):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        tool = Tool(
            tmp_path,
            server,
            CUSTOM_VISION_ENDPOINT=endpoint,
            PIXSTOR_AZURE_HTTP_HOSTS="127.0.0.1",
            PIXSTOR_AZURE_FILE_TIMEOUT="2",
        )

        started = time.monotonic()
        result = doctor(tool, "-p", "classification")

    assert result.returncode == 1
    assert "azureclassification: no answer in time from CUSTOM_VISION_ENDPOINT" in result.stdout
    assert time.monotonic() - started < 30  # not five read timeouts of 60 s


def test_plugins_not_set_up_are_said_and_nothing_set_up_fails(tmp_path):
    result = doctor(Tool(tmp_path))

    assert result.returncode == 1
    assert "azurevision: not set up (" in result.stdout
    assert "AZURE_VISION_ENDPOINT" in result.stdout
    assert "no plugin is set up" in result.stdout


def test_a_plugin_not_set_up_is_not_a_failure_unless_named(tmp_path, server):
    tool = Tool(tmp_path, server)
    del tool.env["CUSTOM_VISION_DETECT_PROJECT"]

    assert doctor(tool).returncode == 0
    named = doctor(tool, "-p", "detection")
    assert named.returncode == 1
    assert "azureobjectdetection: settings: setting CUSTOM_VISION_DETECT_PROJECT" in (named.stdout)


def test_a_host_name_that_does_not_resolve(tmp_path, server):
    tool = Tool(tmp_path, server, CUSTOM_VISION_ENDPOINT="https://no-such-resource.invalid")

    result = doctor(tool, "-p", "classification")

    assert result.returncode == 1
    assert "azureclassification: wrong endpoint: check CUSTOM_VISION_ENDPOINT" in result.stdout
    assert "no-such-resource.invalid" in result.stdout


def test_vision_with_a_read_api_is_checked_whole(tmp_path, server):
    FakeRead(lines=[Line("SCENE 42")], polls=1).mount(server)
    tool = Tool(tmp_path, server, AZURE_VISION_API="3.2")

    result = doctor(tool, "-p", "vision")

    assert result.returncode == 0, result
    assert "azurevision: uses Image Analysis 3.2 backend, Azure AI Vision: host=" in result.stdout
    assert "; Azure AI Vision: protocol=vision-3.2" in result.stdout
    assert "azurevision: works" in result.stdout
    assert [r.path for r in server.requests if r.method == "POST"] == [
        "/vision/v3.2/analyze",
        "/vision/v3.2/read/analyze",
    ]


def test_a_reading_that_failed_is_a_failure_of_a_service_that_answered(tmp_path, server):
    FakeRead(lines=[Line("SCENE 42")], polls=1, outcome="failed").mount(server)
    tool = Tool(tmp_path, server, AZURE_VISION_API="3.2")

    result = doctor(tool, "-p", "vision")

    assert result.returncode == 1, result
    assert "azurevision: failed: " in result.stdout
    assert_mentions(result.stdout, "read.READING_FAILED", name="Azure AI Vision", status="failed")
    assert "unreachable" not in result.stdout


def test_a_model_run_here_is_named_by_its_file_and_form(tmp_path):
    pytest.importorskip("onnxruntime")
    from tests import onnxmodels

    model = onnxmodels.export(tmp_path / "models", onnxmodels.classifier_s1(), ["r", "g", "b"])
    tool = Tool(
        tmp_path,
        CUSTOM_VISION_CLASSIFY_BACKEND="onnx",
        CUSTOM_VISION_CLASSIFY_MODEL=str(model),
    )

    result = doctor(tool, "-p", "classification")

    assert result.returncode == 0, result
    assert f"uses onnx backend, Custom Vision ONNX model: file={model} (classification [S1])" in (
        result.stdout
    )
    assert "works: answered on this machine" in result.stdout


def test_azure_openai_is_named_as_such(tmp_path):
    tool = Tool(
        tmp_path,
        AZURE_VISION_API="openai",
        AZURE_OPENAI_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
        AZURE_OPENAI_KEY=WRONG_KEY,
        AZURE_OPENAI_DEPLOYMENT="gpt-4o",
        PIXSTOR_AZURE_HTTP_HOSTS="127.0.0.1",
    )

    result = doctor(tool, "-p", "vision")

    assert "azurevision: uses Azure OpenAI backend, " in result.stdout, result
    assert WRONG_KEY not in result.stdout + result.stderr
