"""What holds for all three plugins alike: the PixStor contract around ``extract``.

Hostile and vanished files end SKIPPED before any request, a store that refuses the write
ends ERRORED, nothing unexpected escapes ``process``, and ``handles`` answers without I/O.
Each plugin's own file tests what it asks the service and what it writes.
"""

from __future__ import annotations

import importlib

import pytest
import responses

from common.pixstor import PluginStatus
from tests import imagefactory
from tests.conftest import ENDPOINT, KEY, PROJECT

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


def one_value_per_field(schema: list) -> dict:
    """A valid value for every field of the schema."""
    return {f["name"]: ["x"] if f["value"]["datatype"] == "[String]" else "x" for f in schema}


def problems(logs) -> list[str]:
    return [r.getMessage() for r in logs.records if r.levelname in ("WARNING", "ERROR")]


HOSTILE = [
    (imagefactory.truncated_jpeg, "corrupt or truncated"),
    (imagefactory.random_bytes_jpg, "not an image"),
    (imagefactory.text_file_png, "not an image"),
    (imagefactory.svg, "not an image"),
    (imagefactory.decompression_bomb, "decompression bomb"),
    (imagefactory.strip, "60000x50 px"),
    (imagefactory.tiny, "too small"),
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
    assert str(path) in line and module.__name__ in line and words in line


def test_the_strip_is_refused_in_the_services_own_terms(module, plugin, served, tmp_path, logs):
    plugin.process("item-1", str(imagefactory.strip(tmp_path)))

    (line,) = problems(logs)
    if module.__name__ == "azurevision":
        assert "cannot be brought within Azure AI Vision 4.0's limits (50 to 15999" in line
    else:
        assert "too long and thin for Custom Vision (at most 25:1)" in line


def test_vanished_file_is_skipped(plugin, served, tmp_path, logs):
    assert plugin.process("item-1", str(tmp_path / "gone.jpg")) == PluginStatus.SKIPPED
    assert not served.calls
    (line,) = problems(logs)
    assert "cannot read the file (No such file or directory)" in line


def test_store_refusing_the_write_is_errored(module, plugin, monkeypatch, store, logs):
    monkeypatch.setattr(module, "extract", lambda path: one_value_per_field(plugin.schema()))
    monkeypatch.setattr("common.store.MetadataStore.write", lambda *a, **k: False)

    assert plugin.process("item-1", "any.jpg") == PluginStatus.ERRORED
    (line,) = problems(logs)
    assert "ERRORED: the metadata store refused the fields" in line


def test_fields_outside_the_schema_are_refused_by_the_store(module, plugin, monkeypatch, store):
    monkeypatch.setattr(module, "extract", lambda path: {"azure_undeclared": "x"})

    assert plugin.process("item-1", "any.jpg") == PluginStatus.ERRORED
    assert store.read("item-1") == {}


def test_unexpected_exception_never_escapes(plugin, tmp_path, monkeypatch, logs):
    def explode(*args, **kwargs):
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr("common.images.prepare", explode)

    assert plugin.process("item-1", str(imagefactory.jpeg(tmp_path))) == PluginStatus.FATAL
    (line,) = problems(logs)
    assert "FATAL: unexpected RuntimeError: something nobody planned for" in line


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
    assert f"{module.__name__}: FATAL: setting {missing} is not set" in line
    assert "Traceback" not in logs.text


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
