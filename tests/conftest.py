"""Fixtures shared by the whole suite.

Every test starts from a clean slate: no settings from the machine's environment or from a
``pixstor-azure.ini`` beside the plugins, a fresh SQLite store, no cached decoded images, no
waiting between retries (the waits asked for are recorded in ``waits`` instead).
"""

import io
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import pytest
import responses
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = Path(__file__).resolve().parent / "recordings"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# common/ under the name the plugins give it, loaded by the plugins' own bootstrap.
import azurevision  # noqa: E402, F401
from pixstor_azure import http, runtime  # noqa: E402
from pixstor_azure.store import MetadataStore  # noqa: E402
from tests import imagefactory  # noqa: E402
from tests.fakeazure import FakeAzure  # noqa: E402

KEY = "test-key-5f2b9c1e7a3d4b8f"
PROJECT = "64b822c5-8082-4b36-a426-27225f4aa18c"
ENDPOINT = "https://westus.api.cognitive.microsoft.com"
_PREFIXES = ("CUSTOM_VISION_", "AZURE_VISION_", "PIXSTOR_AZURE_")


def recording(name: str) -> dict:
    """A recorded response from tests/recordings (see each file's ``origin``)."""
    return json.loads((RECORDINGS / name).read_text(encoding="utf-8"))


def serve(
    mock: responses.RequestsMock, url: str, name: str, headers: Optional[dict] = None
) -> None:
    """Queue recording ``name`` as the answer to a POST to ``url``; ``headers`` adds to its own."""
    rec = recording(name)
    headers = {**rec["headers"], **(headers or {})}
    mock.add(responses.POST, url, json=rec["body"], status=rec["status"], headers=headers)


def sent_image(call) -> Image.Image:
    """The image a recorded call uploaded."""
    return Image.open(io.BytesIO(call.request.body))


@pytest.fixture(autouse=True)
def clean_state(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    empty = tmp_path / "empty.ini"
    empty.write_text("")
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(empty))
    monkeypatch.setenv("PIXSTOR_AZURE_STORE", str(tmp_path / "store.sqlite3"))
    # No client-side rate limit unless a test sets one: then ``waits`` holds only retries.
    monkeypatch.setenv("CUSTOM_VISION_REQUESTS_PER_SECOND", "0")
    monkeypatch.setenv("AZURE_VISION_REQUESTS_PER_SECOND", "0")
    runtime.reset()  # a new process, as far as our code can tell
    yield
    runtime.reset()


@pytest.fixture(autouse=True)
def waits(monkeypatch):
    """Seconds each retry or rate-limit pause asked to sleep, in order; nobody sleeps."""
    asked: List[float] = []
    monkeypatch.setattr(http, "sleep", asked.append)
    return asked


@pytest.fixture
def store(clean_state):
    return MetadataStore.default()


@pytest.fixture
def photo(tmp_path):
    """A real 640x480 JPEG, well within every service's limits."""
    return imagefactory.jpeg(tmp_path, size=(640, 480))


@pytest.fixture
def fake_classifier(monkeypatch):
    """A local server behaving like Custom Vision, with a published classifier set up to use."""
    with FakeAzure() as server:
        project = "3c9a1f0e-5b7d-4e2a-9f1c-8d6b4a2e0c17"
        server.add_project(project, "classify", published=["production"])
        monkeypatch.setenv("CUSTOM_VISION_ENDPOINT", server.url)
        monkeypatch.setenv("CUSTOM_VISION_KEY", server.key)
        monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_PROJECT", project)
        monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_ITERATION", "production")
        yield server


@pytest.fixture
def classify_env(monkeypatch):
    """Settings for the classification plugin, pointing at the recorded endpoint."""
    monkeypatch.setenv("CUSTOM_VISION_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("CUSTOM_VISION_KEY", KEY)
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_PROJECT", PROJECT)
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_ITERATION", "MyModel1")


@pytest.fixture
def logs(caplog):
    """Captured log records at every level, with a check that no key ever shows."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_key(caplog, *extra: str) -> None:
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    for secret in (KEY, *extra):
        assert secret not in text
