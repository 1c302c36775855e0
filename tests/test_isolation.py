"""One interpreter, many vendors: our plugins, another vendor's top-level ``common`` package and
that vendor's plugin (``from common.utils import x``) load together in every order and all work;
our code never touches ``sys.path``; installed, it never claims the name ``common``.

Each order runs in a process where none of them was loaded yet: one interpreter is started,
imports only the standard library, Pillow and requests (shared by all, not under test) and forks
a child per order, which is much quicker than an interpreter per order.
"""

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import imagefactory
from tests.conftest import ROOT
from tests.fakeazure import FakeAzure

OURS = {
    "azureclassification": "AzureClassificationPlugin",
    "azureobjectdetection": "AzureObjectDetectionPlugin",
    "azurevision": "AzureVisionPlugin",
}
CLASSIFY_PROJECT = "0f5b2c2e-4a0e-4a55-9d0c-1d6c1b8f2a01"
DETECT_PROJECT = "7d1c9e0a-2b3f-4c5d-8e9f-0a1b2c3d4e5f"

FOREIGN_PLUGIN = textwrap.dedent(
    """
    # Another vendor's plugin, written as plugins often are: its own folder on sys.path,
    # and a package of its own named "common".
    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
    from common.utils import x
    """
)

RUNNER = textwrap.dedent(
    """
    import importlib, importlib.util, itertools, json, os, sys, traceback
    # What every vendor shares (the standard library, Pillow, requests): loaded once, before the
    # forks, so that each child spends its time on what is under test.
    for shared in ("argparse base64 collections concurrent.futures configparser datetime "
                   "email.utils enum hashlib ipaddress logging math queue random re signal "
                   "socket sqlite3 stat struct tempfile typing uuid warnings weakref zipfile "
                   "zlib PIL.Image PIL.ImageDraw PIL.ImageOps requests requests.adapters").split():
        importlib.import_module(shared)
    enabled, foreign, image = sys.argv[1:4]
    gone = image + ".gone"
    stores = os.environ["PIXSTOR_AZURE_STORE"]
    os.mkdir(stores)
    OURS = json.loads(sys.argv[4])
    sys.path.append(foreign)  # where the other vendor's "common" is installed

    def load(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def run(number, order):
        # A store of its own: the children run two at a time.
        os.environ["PIXSTOR_AZURE_STORE"] = os.path.join(stores, "%d.sqlite3" % number)
        loaded = {}
        for step in order:
            if step in OURS:
                before = list(sys.path)
                loaded[step] = load(step, os.path.join(enabled, step + ".py"))
                assert sys.path == before, (step, "changed sys.path")
            elif step == "foreign_common":
                loaded[step] = importlib.import_module("common.utils")
            else:
                loaded[step] = load("foreign_plugin", os.path.join(foreign, "theirplugin.py"))
        assert loaded["foreign_plugin"].x == 42
        assert loaded["foreign_common"].x == 42
        common = sys.modules["common"]
        assert os.path.dirname(common.__file__) == os.path.join(foreign, "common"), common
        # Every plugin runs: one (in turn) tags the photograph through the service, the
        # others go the whole way to the service's door with a file that has vanished.
        sent = sorted(OURS)[number % len(OURS)]
        for n, (step, cls) in enumerate(sorted(OURS.items())):
            plugin = getattr(loaded[step], cls)()
            assert plugin.handles(".jpg") is True
            path, expected = (image, "SUCCESS") if step == sent else (gone, "SKIPPED")
            status = plugin.process("item-%d" % n, path)
            assert status.name == expected, (step, status)

    def start(number, order):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                run(number, order)
                code = 0
            except BaseException:
                os.write(write, traceback.format_exc().encode())
                code = 1
            os._exit(code)
        os.close(write)
        return order, pid, os.fdopen(read, "rb")

    def finish(order, pid, pipe):
        with pipe:
            error = pipe.read().decode()
        os.waitpid(pid, 0)
        return [[list(order), error]] if error else []

    failures = []
    orders = list(itertools.permutations(list(OURS) + ["foreign_common", "foreign_plugin"]))
    numbered = list(enumerate(orders))
    for pair in zip(numbered[::2], numbered[1::2]):  # two at a time: as many as the cores
        for child in [start(*numbered_order) for numbered_order in pair]:
            failures += finish(*child)
    print(json.dumps({"orders": len(orders), "failures": failures}))
    """
)


def _site_packages_of(*modules) -> list:
    return sorted({str(Path(m.__file__).resolve().parent.parent) for m in modules})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="one child per order needs os.fork")
def test_our_plugins_another_common_and_its_plugin_load_together_in_every_order(tmp_path):
    import PIL
    import requests

    available = tmp_path / "plugins" / "available" / "azure"
    enabled = tmp_path / "plugins" / "enabled"
    available.mkdir(parents=True)
    enabled.mkdir()
    shutil.copytree(ROOT / "common", available / "common")
    for name in OURS:
        shutil.copy2(ROOT / f"{name}.py", available / f"{name}.py")
        (enabled / f"{name}.py").symlink_to(available / f"{name}.py")
    foreign = tmp_path / "vendor"
    (foreign / "common").mkdir(parents=True)
    (foreign / "common" / "__init__.py").write_text("")
    (foreign / "common" / "utils.py").write_text("x = 42\n")
    (foreign / "theirplugin.py").write_text(FOREIGN_PLUGIN)
    image = imagefactory.jpeg(tmp_path, size=(96, 64), color=(0, 160, 0))

    with FakeAzure() as server:
        server.add_project(CLASSIFY_PROJECT, "classify", published=["published"])
        server.add_project(DETECT_PROJECT, "detect", published=["published"])
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONNOUSERSITE": "1",
            "PIXSTOR_AZURE_CONFIG": str(tmp_path / "none.ini"),
            "PIXSTOR_AZURE_STORE": str(tmp_path / "stores"),  # a folder: one store per child
            "PIXSTOR_AZURE_RATE_FILE": str(tmp_path / "rate.sqlite3"),
            "PIXSTOR_AZURE_CACHE": "off",
            "CUSTOM_VISION_REQUESTS_PER_SECOND": "0",  # every child shares the node's limit
            "AZURE_VISION_REQUESTS_PER_SECOND": "0",
            "CUSTOM_VISION_ENDPOINT": server.url,
            "CUSTOM_VISION_KEY": server.key,
            "CUSTOM_VISION_CLASSIFY_PROJECT": CLASSIFY_PROJECT,
            "CUSTOM_VISION_CLASSIFY_ITERATION": "published",
            "CUSTOM_VISION_DETECT_PROJECT": DETECT_PROJECT,
            "CUSTOM_VISION_DETECT_ITERATION": "published",
            "CUSTOM_VISION_CLASSIFY_THRESHOLD": "0.01",
            "AZURE_VISION_ENDPOINT": server.url,
            "AZURE_VISION_KEY": server.key,
        }
        (tmp_path / "none.ini").write_text("")
        # -S: no site-packages, so no installed copy of our code; only Pillow and requests.
        code = f"import sys; sys.path[1:1] = {_site_packages_of(PIL, requests)!r}\n" + RUNNER
        ours = [json.dumps(OURS)]
        result = subprocess.run(
            [sys.executable, "-S", "-c", code, str(enabled), str(foreign), str(image), *ours],
            cwd=str(tmp_path),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=300,
        )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["orders"] == 120 == len(list(itertools.permutations(range(5))))
    assert report["failures"] == [], report["failures"][:1]


def test_installing_never_claims_the_name_common(tmp_path):
    """What ``pip install`` puts in site-packages: setuptools' own build of the modules and
    packages (build_py) and the top-level names it records (egg_info's top_level.txt)."""
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 61:
        pytest.skip(f"setuptools {setuptools.__version__}: pyproject.toml asks for 61 or later")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", *[f"{p}.py" for p in OURS]):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "common", source / "common", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "meta").mkdir()

    steps = ["egg_info", "-e", str(tmp_path / "meta"), "build_py", "-d", str(tmp_path / "site")]
    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", *steps],
        cwd=str(source),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    installed = sorted(p.name for p in (tmp_path / "site").iterdir())
    assert installed == sorted(["pixstor_azure", *[f"{p}.py" for p in OURS]])
    (top_level,) = (tmp_path / "meta").glob("*.egg-info/top_level.txt")
    assert sorted(top_level.read_text().split()) == sorted(["pixstor_azure", *OURS])
    package = tmp_path / "site" / "pixstor_azure"
    shipped = sorted(p.name for p in package.glob("*.py"))
    assert shipped == sorted(p.name for p in (ROOT / "common").glob("*.py"))
