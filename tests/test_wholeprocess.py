"""Whole processes, as PixStor runs the plugins: a file's time budget against a service that
accepts the connection and never answers, log lines for file names that are not UTF-8 written
by a real UTF-8 ``FileHandler``, and files that would block, run on or take gigabytes."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests import imagefactory
from tests.conftest import ROOT
from tests.fakeazure import FakeAzure
from tests.wording import assert_mentions, says

PROJECT = "3c9a1f0e-5b7d-4e2a-9f1c-8d6b4a2e0c17"

PLUGIN = textwrap.dedent(
    """
    import json, logging, os, sys
    from concurrent.futures import ThreadPoolExecutor
    log_file, jobs, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    handler = logging.FileHandler(log_file, encoding="utf-8")  # errors="strict", as by default
    logging.basicConfig(level=logging.DEBUG, handlers=[handler])
    import azureclassification
    plugin = azureclassification.AzureClassificationPlugin()
    names = [os.fsdecode(os.fsencode(f)) for f in files]
    with ThreadPoolExecutor(jobs) as pool:  # as PixStor's workers, or the tool's -j
        done = pool.map(lambda n: plugin.process("item-%d" % n, names[n]).name, range(len(names)))
        statuses = list(done)
    # The peak of this program's own memory: VmHWM starts afresh at exec, where ru_maxrss
    # keeps the forking parent's (a test runner grown to a gigabyte).
    try:
        with open("/proc/self/status") as status:
            hwm = [line.split()[1] for line in status if line.startswith("VmHWM:")]
        peak_mb = int(hwm[0]) / 1024
    except (OSError, IndexError):
        import resource
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps([statuses, peak_mb]))
    """
)


def run_plugin(
    tmp_path, env: dict, *files, peak: bool = False, jobs: int = 1, prefix=(), timeout=60
) -> tuple:
    """Run the classification plugin in a fresh interpreter over ``files``, on ``jobs``
    threads, its command line after ``prefix``; its statuses and the text of its log file
    (and, with ``peak``, its peak memory in MB)."""
    log_file = tmp_path / "plugin.log"
    (tmp_path / "none.ini").write_text("")
    result = subprocess.run(
        [*prefix, sys.executable, "-c", PLUGIN, str(log_file), str(jobs), *map(os.fsdecode, files)],
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
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    assert "Logging error" not in result.stderr, result.stderr  # a line the handler refused
    statuses, peak_mb = json.loads(result.stdout)
    log = log_file.read_text(encoding="utf-8")
    return (statuses, log, peak_mb) if peak else (statuses, log)


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
    spent = says(
        "client.NO_TIME_FOR_ANOTHER_PART",
        name="",
        attempts=says("client.ONE_ATTEMPT_PART", name=""),
    )
    given_up = says(
        "client.GIVEN_UP",
        name="",
        message=says("client.NO_ANSWER_IN_TIME", name="Custom Vision"),
        why=says(
            "client.OUT_OF_TIME_PART",
            name="",
            spent=spent,
            setting="PIXSTOR_AZURE_FILE_TIMEOUT",
            seconds=1,
        ),
    )
    assert all(given_up in line for line in lines)


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
    assert "caf\\x8e-broken.jpg: azureclassification: SKIPPED: " in skipped
    assert_mentions(skipped, "prepare.CORRUPT")
    assert "\\xe9t\\xe9-photo.jpg: azureclassification: SUCCESS" in log


# --------------------------------------------------------------------------- files, not answers
#
# Issue 18: files that are not regular pictures, a file the plugin may not read, and honest
# pictures that would take gigabytes. The answer cache is on in each run, so every file's
# content would be hashed before anything else.


def skipped_lines(log: str) -> list:
    return [line for line in log.splitlines() if ": SKIPPED: " in line]


def with_cache(tmp_path, **more) -> dict:
    return {"PIXSTOR_AZURE_CACHE": str(tmp_path / "answers.sqlite3"), **more}


def test_files_that_are_not_regular_pictures_are_skipped_at_once(tmp_path, silent):
    """A FIFO named x.jpg, /dev/zero linked as a .jpg, a 20 GB sparse .jpg of zeros and a 20
    GB one that starts as a real JPEG: no read blocks or runs on, no call is made."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    fifo = folder / "x.jpg"
    os.mkfifo(str(fifo))
    zero = folder / "zero.jpg"
    zero.symlink_to("/dev/zero")
    zeros = imagefactory.sparse_file(folder, "zeros.jpg")
    head = imagefactory.jpeg(tmp_path / "src", size=(320, 240)).read_bytes()
    huge = imagefactory.sparse_file(folder, "huge.jpg", head=head)
    started = time.monotonic()

    statuses, log = run_plugin(
        tmp_path,
        with_cache(tmp_path, CUSTOM_VISION_ENDPOINT=silent.url),
        fifo,
        zero,
        zeros,
        huge,
        timeout=30,
    )

    assert time.monotonic() - started < 20
    assert statuses == ["SKIPPED"] * 4
    assert not silent.accepted
    lines = skipped_lines(log)
    assert len(lines) == 4
    assert lines[0].endswith(
        "x.jpg: azureclassification: SKIPPED: " + says("source.NOT_REGULAR", what=" (a FIFO)")
    )
    assert lines[1].endswith("SKIPPED: " + says("source.NOT_REGULAR", what=" (a character device)"))
    assert lines[2].endswith("zeros.jpg: azureclassification: SKIPPED: " + says("source.NO_FORMAT"))
    huge = says(
        "source.TOO_LARGE", size="20480 MB", setting="PIXSTOR_AZURE_MAX_FILE_MB", largest=2048
    )
    assert lines[3].endswith("huge.jpg: azureclassification: SKIPPED: " + huge)


def test_hashing_a_huge_file_stops_when_the_files_budget_runs_out(tmp_path, silent):
    """The size limit raised out of the way: a 20 GB file is read (hashed) for 2 s, not for
    the minutes all of it would take."""
    head = imagefactory.jpeg(tmp_path / "src", size=(320, 240)).read_bytes()
    huge = imagefactory.sparse_file(tmp_path / "pictures", "huge.jpg", head=head)
    started = time.monotonic()

    statuses, log = run_plugin(
        tmp_path,
        with_cache(
            tmp_path,
            CUSTOM_VISION_ENDPOINT=silent.url,
            PIXSTOR_AZURE_FILE_TIMEOUT="2",
            PIXSTOR_AZURE_MAX_FILE_MB="100000",
        ),
        huge,
        timeout=60,
    )

    assert time.monotonic() - started < 15
    assert statuses == ["SKIPPED"]
    assert not silent.accepted
    (line,) = skipped_lines(log)
    assert line.endswith(
        "SKIPPED: " + says("source.OUT_OF_TIME", setting="PIXSTOR_AZURE_FILE_TIMEOUT", seconds=2)
    )


def _without_privileges() -> list:
    """The command prefix under which this user cannot read a file of mode 000."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root, and no setpriv to drop the privilege of reading any file")
    dropped = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={dropped}", f"--inh-caps={dropped}"]


def test_a_file_the_plugin_may_not_read_says_permission_denied(tmp_path, silent):
    prefix = _without_privileges()
    photo = imagefactory.jpeg(tmp_path / "pictures", size=(320, 240))
    photo.chmod(0)

    statuses, log = run_plugin(
        tmp_path, with_cache(tmp_path, CUSTOM_VISION_ENDPOINT=silent.url), photo, prefix=prefix
    )

    assert statuses == ["SKIPPED"]
    assert not silent.accepted
    (line,) = skipped_lines(log)
    denied = says("source.PERMISSION_DENIED")
    assert line.endswith(f"plain.jpg: azureclassification: SKIPPED: {denied}")


def test_a_200_mb_text_chunk_is_never_loaded(tmp_path):
    """Pillow reads a text chunk whole, and copies it, before it refuses it (1.16 GB at the
    peak for this file); the picture around it is sent as any other."""
    picture = imagefactory.png_with_text_chunk(tmp_path / "pictures", megabytes=200)

    with FakeAzure() as server:
        server.add_project(PROJECT, "classify", published=["production"])
        statuses, log, peak_mb = run_plugin(
            tmp_path,
            with_cache(tmp_path, CUSTOM_VISION_ENDPOINT=server.url, CUSTOM_VISION_KEY=server.key),
            picture,
            peak=True,
        )
        sent = len(server.requests)

    assert statuses[0] in ("SUCCESS", "SKIPPED") and sent == 1, log
    assert says("runner.NOTHING_FOUND", name="") in log or statuses == ["SUCCESS"]
    assert peak_mb < 200  # the plugin and its libraries take about 60 MB


def test_four_big_16_bit_pictures_at_once_wait_for_room_to_decode(tmp_path):
    """Four 30 MP 16-bit PNGs on four threads, in a process whose decoded pixels may take 200
    MB at once: each decode takes about 170 MB at its height (2 bytes a pixel as stored, 4
    to reduce it), so they decode one after the other, every one is still sent, and the
    process grows no more than it does on one thread (four at once: about 300 MB more)."""
    ramp = imagefactory.png_16bit(tmp_path / "src")
    folder = tmp_path / "pictures"
    folder.mkdir()
    files = [folder / f"{n}.png" for n in range(4)]
    for path in files:
        shutil.copyfile(str(ramp), str(path))  # four files: four inodes, four decodes
    one_mb = 6000 * 5000 * 6 / 2**20

    peaks, sent = {}, {}
    with FakeAzure() as server:
        server.add_project(PROJECT, "classify", published=["production"])
        for jobs in (1, 4):
            server.reset()
            statuses, log, peaks[jobs] = run_plugin(
                tmp_path,
                {
                    "CUSTOM_VISION_ENDPOINT": server.url,
                    "CUSTOM_VISION_KEY": server.key,
                    "PIXSTOR_AZURE_DECODE_MEMORY_MB": "200",
                },
                *files,
                peak=True,
                jobs=jobs,
            )
            sent[jobs] = len(server.requests)
            assert "FATAL" not in statuses, log

    assert sent == {1: 4, 4: 4}
    assert peaks[4] < peaks[1] + one_mb / 2, peaks  # one decode at a time
