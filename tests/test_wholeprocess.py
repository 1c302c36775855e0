"""Whole processes, as PixStor runs the plugins: a file's time budget against a service that
accepts the connection and never answers, and log lines for file names that are not UTF-8
written by a real UTF-8 ``FileHandler``."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from tests import imagefactory
from tests.conftest import ROOT
from tests.fakeazure import FakeAzure

PROJECT = "3c9a1f0e-5b7d-4e2a-9f1c-8d6b4a2e0c17"

PLUGIN = textwrap.dedent(
    """
    import json, logging, os, sys
    log_file, files = sys.argv[1], sys.argv[2:]
    handler = logging.FileHandler(log_file, encoding="utf-8")  # errors="strict", as by default
    logging.basicConfig(level=logging.DEBUG, handlers=[handler])
    import azureclassification
    plugin = azureclassification.AzureClassificationPlugin()
    names = [os.fsdecode(os.fsencode(f)) for f in files]
    print(json.dumps([plugin.process("item-%d" % n, f).name for n, f in enumerate(names)]))
    """
)


def run_plugin(tmp_path, env: dict, *files) -> tuple:
    """Run the classification plugin in a fresh interpreter over ``files``; its statuses and
    the text of its log file."""
    log_file = tmp_path / "plugin.log"
    (tmp_path / "none.ini").write_text("")
    result = subprocess.run(
        [sys.executable, "-c", PLUGIN, str(log_file), *map(os.fsdecode, files)],
        cwd=str(tmp_path),
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "LC_ALL": "C.UTF-8",
            "PIXSTOR_AZURE_CONFIG": str(tmp_path / "none.ini"),
            "PIXSTOR_AZURE_STORE": str(tmp_path / "store.sqlite3"),
            "PIXSTOR_AZURE_RATE_FILE": str(tmp_path / "rate.sqlite3"),
            "PIXSTOR_AZURE_CACHE": "off",
            "CUSTOM_VISION_KEY": "fake-key-0123456789abcdef",
            "CUSTOM_VISION_CLASSIFY_PROJECT": PROJECT,
            "CUSTOM_VISION_CLASSIFY_ITERATION": "production",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Logging error" not in result.stderr, result.stderr  # a line the handler refused
    return json.loads(result.stdout), log_file.read_text(encoding="utf-8")


class Silent:
    """A server that accepts every connection and never answers; counts the connections."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.accepted = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        self.socket.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent():
    server = Silent()
    yield server
    server.close()


def test_a_service_that_never_answers_costs_a_file_its_budget_not_five_timeouts(tmp_path, silent):
    """Read timeout 60 s, 5 attempts (the defaults), budget 1 s: one attempt per file, cut
    short when the budget runs out, each file on a budget of its own."""
    first, second = (imagefactory.jpeg(tmp_path / d, size=(320, 240)) for d in "ab")

    statuses, log = run_plugin(
        tmp_path,
        {"CUSTOM_VISION_ENDPOINT": silent.url, "PIXSTOR_AZURE_FILE_TIMEOUT": "1"},
        first,
        second,
    )

    assert statuses == ["FATAL", "FATAL"]
    assert len(silent.accepted) == 2  # one attempt each
    lines = [line for line in log.splitlines() if ": FATAL: " in line]
    assert len(lines) == 2 and str(first) in lines[0] and str(second) in lines[1]
    assert all(
        "Custom Vision did not answer in time, after 1 attempt: no time left for another in "
        "the file's time budget (PIXSTOR_AZURE_FILE_TIMEOUT, 1 s)" in line
        for line in lines
    )


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse such names")
def test_file_names_that_are_not_utf8_are_logged_by_a_utf8_file_handler(tmp_path):
    """Names from an old Mac (MacRoman) and a Windows share (cp1252): the line saying why each
    was skipped, and every debug line of a file that succeeds, reach the log file."""
    folder = os.fsencode(str(tmp_path))
    broken = folder + b"/caf\x8e-broken.jpg"  # MacRoman e-acute; a truncated JPEG
    good = folder + b"/\xe9t\xe9-photo.jpg"  # cp1252 e-acute; a real photograph
    with open(broken, "wb") as f:
        f.write(imagefactory.truncated_jpeg(tmp_path).read_bytes())
    photo = imagefactory.jpeg(tmp_path / "src", size=(320, 240), color=(0, 160, 0))
    with open(good, "wb") as f:
        f.write(photo.read_bytes())

    with FakeAzure() as server:
        server.add_project(PROJECT, "classify", published=["production"])
        statuses, log = run_plugin(
            tmp_path,
            {
                "CUSTOM_VISION_ENDPOINT": server.url,
                "CUSTOM_VISION_KEY": server.key,
                "CUSTOM_VISION_CLASSIFY_THRESHOLD": "0.3",
            },
            broken,
            good,
        )

    assert statuses == ["SKIPPED", "SUCCESS"]
    (skipped,) = [line for line in log.splitlines() if "SKIPPED" in line]
    assert "caf\\x8e-broken.jpg: azureclassification: SKIPPED: corrupt or truncated" in skipped
    assert "\\xe9t\\xe9-photo.jpg: azureclassification: SUCCESS" in log
