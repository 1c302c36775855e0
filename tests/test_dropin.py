"""Drop-in test: install the plugins as an administrator would and load them as PixStor does.

Each plugin and ``common/`` are copied into ``available/azure/``, the plugin is linked from
``enabled/``, a fake ``arcapix`` (the real import paths) is put on the path, and a fresh
interpreter loads the plugin by the link's path, finds the Plugin class, and processes a real
image against a local server that behaves like Azure. Our own code is not on that
interpreter's path: the plugin must find ``common/`` beside its real file.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import imagefactory
from tests.conftest import ROOT
from tests.fakeazure import FakeAzure
from tests.sources import answered

FAKE_ARCAPIX = Path(__file__).resolve().parent / "fake_arcapix"
CLASSIFY_PROJECT = "0f5b2c2e-4a0e-4a55-9d0c-1d6c1b8f2a01"
DETECT_PROJECT = "7d1c9e0a-2b3f-4c5d-8e9f-0a1b2c3d4e5f"

PLUGINS = {
    "azureclassification.py": (
        "AzureClassificationPlugin",
        {
            "CUSTOM_VISION_CLASSIFY_PROJECT": CLASSIFY_PROJECT,
            "CUSTOM_VISION_CLASSIFY_ITERATION": "published",
        },
        {"azure_class": "green", "azure_classes": ["green"]},
    ),
    "azureobjectdetection.py": (
        "AzureObjectDetectionPlugin",
        {
            "CUSTOM_VISION_DETECT_PROJECT": DETECT_PROJECT,
            "CUSTOM_VISION_DETECT_ITERATION": "published",
        },
        None,  # checked below: the fields' names only
    ),
    "azurevision.py": ("AzureVisionPlugin", {}, None),
}

LOADER = textwrap.dedent(
    """
    import importlib.util, inspect, json, logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    link, image, raw = sys.argv[1:4]
    spec = importlib.util.spec_from_file_location("pixstor_plugin", link)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from arcapix.search.metadata.plugins.base import Plugin
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Plugin) and c is not Plugin]
    import pixstor_azure, pixstor_azure.ground.pixstor
    plugin = classes[0]()
    print(json.dumps({
        "classes": [c.__name__ for c in classes],
        "common": pixstor_azure.__file__,
        "in_pixstor": pixstor_azure.ground.pixstor.IN_PIXSTOR,
        "handles": [plugin.handles(".jpg"), plugin.handles(".dpx"), plugin.handles(".svg")],
        "status": plugin.process("item-1", image).name,
        "raw_status": plugin.process("item-2", raw).name,
    }))
    """
)


@pytest.fixture(scope="module")
def server():
    with FakeAzure() as fake:
        fake.add_project(CLASSIFY_PROJECT, "classify", published=["published"])
        fake.add_project(DETECT_PROJECT, "detect", published=["published"])
        yield fake


def install(tmp_path: Path, plugin: str) -> Path:
    available = tmp_path / "plugins" / "available" / "azure"
    enabled = tmp_path / "plugins" / "enabled"
    available.mkdir(parents=True)
    enabled.mkdir()
    shutil.copy2(ROOT / plugin, available / plugin)
    shutil.copytree(ROOT / "common", available / "common")
    link = enabled / plugin
    link.symlink_to(available / plugin)
    return link


def raw_rgb(folder: Path) -> Path:
    """A picture in a format only PixStor's own loader reads, named like a DPX file."""
    path = folder / "frame.dpx"
    width, height = 64, 64
    pixels = bytes([0, 200, 0]) * 4096
    path.write_bytes(b"SDPXRAWRGB" + struct.pack(">HH", width, height) + pixels)  # DPX's magic
    return path


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_plugin_loads_from_enabled_link_and_writes_through_metadata(tmp_path, server, plugin):
    if not (ROOT / plugin).exists():
        pytest.fail(f"{plugin} is missing")
    class_name, settings, expected = PLUGINS[plugin]
    link = install(tmp_path, plugin)
    image = imagefactory.jpeg(tmp_path, size=(640, 480), color=(0, 160, 0))
    out = tmp_path / "metadata.jsonl"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(FAKE_ARCAPIX),
        "PYTHONNOUSERSITE": "1",
        "FAKE_ARCAPIX_OUT": str(out),
        "PIXSTOR_AZURE_RATE_FILE": str(tmp_path / "rate.sqlite3"),  # not the machine's own
        "PIXSTOR_AZURE_CONFIG": str(tmp_path / "none.ini"),
        "CUSTOM_VISION_ENDPOINT": server.url,
        "CUSTOM_VISION_KEY": server.key,
        "AZURE_VISION_ENDPOINT": server.url,
        "AZURE_VISION_KEY": server.key,
        **settings,
    }
    env["PIXSTOR_AZURE_CONFIG"] = ""  # default location: next to the plugin's real file
    (link.resolve().parent / "pixstor-azure.ini").write_text(
        "[pixstor_azure]\nmax_long_edge = 1024\n"
    )

    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            _with_site_packages(LOADER),
            str(link),
            str(image),
            str(raw_rgb(tmp_path)),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["classes"] == [class_name]
    assert Path(report["common"]).resolve().parent == (link.resolve().parent / "common")
    assert report["in_pixstor"] is True
    assert report["handles"] == [True, True, False]
    assert report["status"] == "SUCCESS", result.stderr
    assert report["raw_status"] == "SUCCESS", result.stderr
    writes = [json.loads(line) for line in out.read_text().splitlines()]
    assert [w["id"] for w in writes] == ["item-1", "item-2"]
    assert all(w["namespace"] == "image" for w in writes)
    if expected is not None:
        assert answered(writes[0]["data"]) == expected
    assert writes[0]["data"]  # some fields, all of them from the plugin's schema
    received = [r for r in server.requests if r.image_size]
    assert max(max(r.image_size) for r in received[-2:]) <= 1024  # the INI beside the plugin


def _with_site_packages(code: str) -> str:
    """Run with -S (no site-packages, so no installed copy of our code) yet with requests and
    Pillow: add only the folders that hold those two."""
    import PIL
    import requests

    folders = sorted({str(Path(m.__file__).resolve().parent.parent) for m in (PIL, requests)})
    return f"import sys; sys.path[1:1] = {folders!r}\n" + code
