"""Fixtures shared by the whole suite.

Every test starts from a clean slate: no settings from the machine's environment or from a
``pixstor-azure.ini`` beside the plugins, a fresh SQLite store, a fresh rate limit file, no
cached decoded images, and a fake clock: nothing sleeps for real, time passes only when the
code under test waits (the waits asked for are recorded in ``waits``) or a test moves it on.

``pytest --shuffle`` runs the modules, and the tests of each module, in a random order (the
seed is printed at the end; ``--shuffle-seed=SEED`` repeats an order): every test must pass
alone and in any order.
"""

import atexit
import functools
import io
import json
import logging
import os
import pwd
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import List, Optional

import pytest
import responses
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = Path(__file__).resolve().parent / "recordings"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Test modules import onnxruntime themselves: without this, onnxruntime would write its device id
# into the developer's home (common/services/ortquiet.py; test_localread.py proves our own
# imports need no help).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

# common/ under the name the plugins give it, loaded by the plugins' own bootstrap.
import azurevision  # noqa: E402, F401
from pixstor_azure.answers import ratelimit  # noqa: E402
from pixstor_azure.ground import clock as pixstor_clock  # noqa: E402
from pixstor_azure.ground import runtime  # noqa: E402
from pixstor_azure.ground.store import MetadataStore  # noqa: E402
from tests import imagefactory  # noqa: E402
from tests.fakeazure import FakeAzure  # noqa: E402

# The PostgreSQL server fixtures (postgres_server, database, own_server...) for every module.
pytest_plugins = ("tests.postgres",)

KEY = "test-key-5f2b9c1e7a3d4b8f"
PROJECT = "64b822c5-8082-4b36-a426-27225f4aa18c"
ENDPOINT = "https://westus.api.cognitive.microsoft.com"
_PREFIXES = ("CUSTOM_VISION_", "AZURE_VISION_", "AZURE_OPENAI_", "PIXSTOR_AZURE_")


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
    monkeypatch.setenv("PIXSTOR_AZURE_RATE_FILE", str(tmp_path / "rate.sqlite3"))

    # Nor the machine's own rate limit file, when a test leaves the setting out.
    def default_rate_file() -> str:
        return str(tmp_path / "default-rate.sqlite3")

    default_rate_file.__wrapped__ = ratelimit.default_file  # type: ignore[attr-defined]
    monkeypatch.setattr(ratelimit, "default_file", default_rate_file)
    # No client-side rate limit unless a test sets one: then ``waits`` holds only retries.
    monkeypatch.setenv("CUSTOM_VISION_REQUESTS_PER_SECOND", "0")
    monkeypatch.setenv("AZURE_VISION_REQUESTS_PER_SECOND", "0")
    runtime.reset()  # a new process, as far as our code can tell
    yield
    runtime.reset()


class FakeClock:
    """Time that passes only when the code under test sleeps, or when a test moves it on.

    ``now`` is the monotonic clock (durations: budgets, pauses), ``wall`` the time of day
    (the rate limit shared between processes, HTTP dates); both move together, by every
    sleep in turn: threads that sleep at once move it on each, so that fake time runs at least
    as fast as real time would and a rate measured on it is never flattered.
    """

    START = 1000.0

    def __init__(self) -> None:
        self.monotonic = self.START
        self.epoch = time.time()
        self.slept: List[float] = []
        self.lock = threading.Lock()

    def now(self) -> float:
        return self.monotonic

    def wall(self) -> float:
        return self.epoch + (self.monotonic - self.START)

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)
            self.monotonic += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.monotonic += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The fake clock every wait, pause and time budget of ours reads."""
    fake = FakeClock()
    monkeypatch.setattr(pixstor_clock, "now", fake.now)
    monkeypatch.setattr(pixstor_clock, "wall", fake.wall)
    monkeypatch.setattr(pixstor_clock, "sleep", fake.sleep)
    return fake


@pytest.fixture(autouse=True)
def waits(clock):
    """Seconds each retry or rate-limit pause asked to sleep, in order; nobody sleeps."""
    return clock.slept


@pytest.fixture(scope="session")
def another_user() -> int:
    """The uid of a second local user, who plants files where we look. Giving a file to
    another user needs root (CI runs as root); a user is made when the node has none to use."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root (CI runs the suite as root)")
    for name in ("nobody", "pixstor-azure-other"):
        try:
            return pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
    subprocess.run(["useradd", "--no-create-home", "pixstor-azure-other"], check=True)
    return pwd.getpwnam("pixstor-azure-other").pw_uid


@pytest.fixture
def cache_file(tmp_path, monkeypatch):
    """The answer cache on, in a file of the test's own."""
    path = tmp_path / "cache" / "answers.sqlite3"
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", str(path))
    return path


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


# ------------------------------------------------------------------ the 40 MP photograph


def _built_once(build):
    """``build(folder, ...)`` made once per session; each call gets its own copy (a copy
    takes milliseconds, building takes seconds)."""
    made = {}
    lock = threading.Lock()

    @functools.wraps(build)
    def cached(folder, *args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        with lock:
            if key not in made:
                scratch = tempfile.mkdtemp(prefix="pixstor-azure-tests-")
                atexit.register(shutil.rmtree, scratch, True)
                made[key] = build(scratch, *args, **kwargs)
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copyfile(made[key], target / made[key].name))

    return cached


# Before the test modules are imported, so that those that list it (parametrize) get this one.
imagefactory.jpeg_40mp = _built_once(imagefactory.jpeg_40mp)


# ------------------------------------------------------------------ random order


def pytest_addoption(parser):
    group = parser.getgroup("shuffle")
    group.addoption(
        "--shuffle",
        action="store_true",
        help="run the modules, and the tests of each module, in a random order",
    )
    group.addoption(
        "--shuffle-seed",
        type=int,
        default=None,
        metavar="SEED",
        help="the order of an earlier --shuffle run, by the seed it printed (implies --shuffle)",
    )


def _shuffle_seed(config) -> Optional[int]:
    seed = config.getoption("--shuffle-seed", None)
    if seed is not None:
        return seed
    if not config.getoption("--shuffle", False):
        return None
    if not hasattr(config, "_shuffle_seed"):
        config._shuffle_seed = random.randrange(10**6)
    return config._shuffle_seed


def pytest_report_header(config):
    seed = _shuffle_seed(config)
    return None if seed is None else f"shuffled: --shuffle-seed={seed} repeats this order"


def pytest_terminal_summary(terminalreporter, config):
    seed = _shuffle_seed(config)
    if seed is not None:  # also under -q, which hides the header
        terminalreporter.write_line(f"shuffled: --shuffle-seed={seed} repeats this order")


def pytest_collection_modifyitems(config, items):
    seed = _shuffle_seed(config)
    if seed is None:
        return
    rng = random.Random(seed)
    modules = OrderedDict()  # module-scoped fixtures stay set up once per module
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    order = list(modules.values())
    rng.shuffle(order)
    for tests in order:
        rng.shuffle(tests)
    items[:] = [item for tests in order for item in tests]
