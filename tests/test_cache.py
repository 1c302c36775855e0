"""The answer cache, through the plugins against the local fake service over real sockets.

The same content is never paid for twice (copies and renames included), a threshold change
re-derives the fields from the kept answer, a setting that changes the answer asks again,
errors are never kept, and a cache that cannot be used never costs a file.
"""

import hashlib
import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

import azureclassification
import azurevision
from pixstor_azure.answers import cache, fetch
from pixstor_azure.answers.answer import fresh
from pixstor_azure.ground import runtime
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.ground.settings import Settings
from pixstor_azure.ground.store import MetadataStore
from pixstor_azure.services import customvision, registry
from tests import imagefactory
from tests.conftest import ROOT, recording

SUCCESS = PluginStatus.SUCCESS
RED = (200, 30, 30)


@pytest.fixture
def fake(fake_classifier, monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.2")
    return fake_classifier


@pytest.fixture
def vision(fake_classifier, monkeypatch):
    """The same fake as Azure AI Vision."""
    monkeypatch.setenv("AZURE_VISION_ENDPOINT", fake_classifier.url)
    monkeypatch.setenv("AZURE_VISION_KEY", fake_classifier.key)
    monkeypatch.setenv("AZURE_VISION_TAG_THRESHOLD", "0.1")
    return fake_classifier


@pytest.fixture
def photo(tmp_path):
    """A red 640x480 JPEG: the fake classifies it red."""
    return imagefactory.jpeg(tmp_path, size=(640, 480), color=(200, 30, 30), name="red.jpg")


@pytest.fixture
def plugin():
    return azureclassification.AzureClassificationPlugin()


def red(folder, n, width=300):
    """The n-th of several red JPEGs, each of its own content (and size)."""
    return imagefactory.jpeg(folder, size=(width + n, 200), color=RED, name=f"{n:02}.jpg")


def two_colours(folder, name="halves.png"):
    """Left half red, right half blue: the fake classifies it red 0.5, blue 0.5."""
    im = Image.new("RGB", (400, 300), (220, 20, 20))
    im.paste((20, 20, 220), (200, 0, 400, 300))
    path = folder / name
    im.save(path)
    return path


def cache_warnings(logs):
    return [
        r.getMessage()
        for r in logs.records
        if r.name.endswith(".cache") and r.levelno >= logging.WARNING
    ]


def kept(path):
    with sqlite3.connect(str(path)) as connection:
        return connection.execute("SELECT count(*) FROM answers").fetchone()[0]


# ------------------------------------------------------------------------ never pay twice


def test_same_content_twice_is_one_call(plugin, fake, store, cache_file, photo, logs):
    assert plugin.process("a", str(photo)) == SUCCESS
    assert plugin.process("b", str(photo)) == SUCCESS

    assert len(fake.requests) == 1
    assert store.read("b", "image") == store.read("a", "image") != {}
    assert "Custom Vision answer reused from the cache" in logs.text
    tally = fetch.tally().snapshot()
    assert tally["calls"] == {"Custom Vision": 1}
    assert tally["hits"] == {"Custom Vision": 1}
    assert tally["bytes_sent"] == fake.requests[0].body_size
    assert tally["bytes_on_disk"] == tally["bytes_on_disk_reused"] == photo.stat().st_size
    assert kept(cache_file) == 1


def test_copied_and_renamed_files_make_no_call(plugin, fake, store, cache_file, tmp_path):
    original = imagefactory.jpeg(tmp_path / "day1", size=(640, 480), color=(200, 30, 30))
    assert plugin.process("original", str(original)) == SUCCESS
    copy = tmp_path / "project-b" / "copy of plain.jpg"
    copy.parent.mkdir()
    shutil.copyfile(str(original), str(copy))  # a new file: new inode and times
    renamed = original.with_name("renamed.jpg")
    original.rename(renamed)

    assert plugin.process("copy", str(copy)) == SUCCESS
    assert plugin.process("renamed", str(renamed)) == SUCCESS

    assert len(fake.requests) == 1
    fields = store.read("original", "image")
    assert fields and store.read("copy", "image") == store.read("renamed", "image") == fields


def test_threshold_change_rederives_fields_without_a_call(
    plugin, fake, store, cache_file, tmp_path, monkeypatch
):
    path = two_colours(tmp_path)
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.6")
    assert plugin.process("x", str(path)) == PluginStatus.SKIPPED  # red and blue are at 0.5

    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.3")
    assert plugin.process("x", str(path)) == SUCCESS
    assert sorted(store.read("x", "image")["azure_classes"]) == ["blue", "red"]

    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_MAX_TAGS", "1")
    assert plugin.process("x", str(path)) == SUCCESS
    assert len(store.read("x", "image")["azure_classes"]) == 1

    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("CUSTOM_VISION_CLASSIFY_ITERATION", "staging"),
        ("PIXSTOR_AZURE_MAX_LONG_EDGE", "256"),
        ("CUSTOM_VISION_ENDPOINT", "localhost"),
    ],
)
def test_a_setting_that_changes_the_answer_asks_again(
    plugin, fake, cache_file, photo, monkeypatch, setting, value
):
    fake.add_project(
        os.environ["CUSTOM_VISION_CLASSIFY_PROJECT"], "classify", ["production", "staging"]
    )
    if setting == "CUSTOM_VISION_ENDPOINT":
        value = fake.url.replace("127.0.0.1", "localhost")  # the same server, another host
    before = os.environ.get(setting)
    assert plugin.process("x", str(photo)) == SUCCESS

    monkeypatch.setenv(setting, value)
    assert plugin.process("x", str(photo)) == SUCCESS
    assert len(fake.requests) == 2

    if before is None:
        monkeypatch.delenv(setting)
    else:
        monkeypatch.setenv(setting, before)
    assert plugin.process("x", str(photo)) == SUCCESS  # the first answer, still kept
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("AZURE_VISION_FEATURES", "tags,caption"),
        ("AZURE_VISION_LANGUAGE", "es"),
        ("PIXSTOR_AZURE_MAX_LONG_EDGE", "256"),
        ("AZURE_VISION_GENDER_NEUTRAL_CAPTION", "true"),
    ],
)
def test_vision_settings_that_change_the_answer_ask_again(
    vision, store, cache_file, photo, monkeypatch, setting, value
):
    plugin = azurevision.AzureVisionPlugin()
    assert plugin.process("x", str(photo)) == SUCCESS
    first = store.read("x", "image")
    monkeypatch.setenv(setting, value)

    assert plugin.process("x", str(photo)) == SUCCESS

    assert len(vision.requests) == 2
    if setting == "AZURE_VISION_LANGUAGE":
        assert store.read("x", "image")["azure_tags"] != first["azure_tags"]


def test_vision_threshold_change_needs_no_call(vision, store, cache_file, photo, monkeypatch):
    plugin = azurevision.AzureVisionPlugin()
    assert plugin.process("x", str(photo)) == SUCCESS
    every_tag = store.read("x", "image")["azure_tags"]
    monkeypatch.setenv("AZURE_VISION_MAX_TAGS", "1")

    assert plugin.process("x", str(photo)) == SUCCESS

    assert store.read("x", "image")["azure_tags"] == every_tag[:1]
    assert len(every_tag) > 1 and len(vision.requests) == 1


def test_lookup_never_calls(plugin, fake, cache_file, photo):
    chosen = registry.backend(customvision.CLASSIFY.name, Settings.load())
    assert fetch.lookup(chosen, str(photo)) is None
    assert plugin.process("x", str(photo)) == SUCCESS

    found = fetch.lookup(chosen, str(photo))

    assert found is not None and found.cached
    assert found.sent == found.display == (640, 480)  # sent as it is
    assert max(chosen.parse(found), key=lambda p: p.probability).tag == "red"
    assert len(fake.requests) == 1
    assert fetch.tally().snapshot()["total_hits"] == 0  # looking is not reusing


# ------------------------------------------------------------------------ what is never kept


@pytest.mark.parametrize("status", [429, 500, 503])
def test_errors_are_not_kept(plugin, fake, cache_file, photo, monkeypatch, status):
    monkeypatch.setenv("PIXSTOR_AZURE_ATTEMPTS", "1")
    fake.fail_next(status)
    assert plugin.process("x", str(photo)) == PluginStatus.FATAL

    assert plugin.process("x", str(photo)) == SUCCESS
    assert plugin.process("x", str(photo)) == SUCCESS

    assert len(fake.requests) == 2
    assert fetch.tally().snapshot()["failed"] == {"Custom Vision": 1}


def test_only_calls_sent_are_counted_as_failed(plugin, fake, cache_file, photo, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a picture")
    assert plugin.process("broken", str(broken)) == PluginStatus.SKIPPED  # never sent
    fake.fail_next(401)
    assert plugin.process("x", str(photo)) == PluginStatus.FATAL  # sent and refused
    assert plugin.process("y", str(photo)) == PluginStatus.FATAL  # held back: not sent

    assert len(fake.requests) == 1
    assert fetch.tally().snapshot()["failed"] == {"Custom Vision": 1}


def test_a_refused_image_is_not_kept(plugin, fake, cache_file, photo):
    refusal = recording("customvision-400-image-format.handmade.json")
    fake.fail_next(400, body=refusal["body"])
    assert plugin.process("x", str(photo)) == PluginStatus.SKIPPED

    assert plugin.process("x", str(photo)) == SUCCESS
    assert len(fake.requests) == 2


def test_an_error_body_is_never_kept(cache_file):
    store = cache.current()
    for body in ({"error": {"code": "Throttled"}}, "Too many requests", None):
        assert not store.put("ab" * 32, {"service": "x"}, fresh(body, (1, 1), (1, 1)))
    assert store.get("ab" * 32, {"service": "x"}) is None


def test_no_key_no_image_no_path_in_the_cache(vision, cache_file, tmp_path):
    path = imagefactory.jpeg(tmp_path / "secret-project-name", size=(640, 480), color=RED)
    assert azureclassification.AzureClassificationPlugin().process("c", str(path)) == SUCCESS
    assert azurevision.AzureVisionPlugin().process("v", str(path)) == SUCCESS
    assert len(vision.requests) == 2

    stored = b"".join(
        p.read_bytes() for p in cache_file.parent.iterdir() if p.name.startswith(cache_file.name)
    )
    assert vision.key.encode() not in stored
    image = path.read_bytes()
    assert image[len(image) // 2 : len(image) // 2 + 64] not in stored
    assert b"secret-project-name" not in stored
    assert kept(cache_file) == 2  # yet both answers are there


# ------------------------------------------------------------------------ where, and off


def test_off_asks_every_time_and_writes_nothing(plugin, fake, photo, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", "OFF")
    assert plugin.process("a", str(photo)) == SUCCESS
    assert plugin.process("b", str(photo)) == SUCCESS

    assert len(fake.requests) == 2
    assert not list(tmp_path.rglob("answers.sqlite3*"))


def test_default_is_beside_the_metadata_store_readable_by_its_owner_only(
    plugin, fake, photo, tmp_path, monkeypatch
):
    monkeypatch.setenv("PIXSTOR_AZURE_STORE", str(tmp_path / "elsewhere" / "fields.sqlite3"))
    assert plugin.process("a", str(photo)) == SUCCESS

    path = tmp_path / "elsewhere" / "answers.sqlite3"
    assert kept(path) == 1
    assert path.stat().st_mode & 0o777 == 0o600


def test_deleting_the_cache_files_clears_it_while_plugins_run(plugin, fake, cache_file, photo):
    assert plugin.process("a", str(photo)) == SUCCESS
    for path in cache_file.parent.glob(cache_file.name + "*"):
        path.unlink()  # as the README says: the file and its -wal and -shm

    assert plugin.process("b", str(photo)) == SUCCESS  # asked again, kept in a new file
    assert plugin.process("c", str(photo)) == SUCCESS

    assert len(fake.requests) == 2
    assert kept(cache_file) == 1


def test_a_cache_deleted_in_part_is_not_remade_beside_its_old_log(
    plugin, fake, cache_file, photo, logs
):
    assert plugin.process("a", str(photo)) == SUCCESS
    assert cache_file.with_name(cache_file.name + "-wal").exists()
    cache_file.unlink()  # the -wal and -shm files left behind

    assert plugin.process("b", str(photo)) == SUCCESS
    assert not cache_file.exists()
    (line,) = cache_warnings(logs)
    assert "-wal or -shm file is there" in line
    for path in cache_file.parent.iterdir():
        path.unlink()
    assert plugin.process("c", str(photo)) == SUCCESS
    assert plugin.process("d", str(photo)) == SUCCESS

    assert len(fake.requests) == 3
    assert kept(cache_file) == 1


# ------------------------------------------------------------------------ a cache in trouble


def _corrupt(path, monkeypatch):
    path.parent.mkdir(parents=True)
    path.write_bytes(random.Random(7).getrandbits(8 * 8192).to_bytes(8192, "little"))


def _under_a_file(path, monkeypatch):
    path.parent.write_text("a file where the cache's folder should be")


def _metadata_store(path, monkeypatch):
    other = MetadataStore(path.parent / "metadata.sqlite3")
    other.write("item", "image", "plugin", {"azure_class": "kept as it was"})
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", str(other.path))


@pytest.mark.parametrize("trouble", [_corrupt, _under_a_file, _metadata_store])
def test_a_cache_that_cannot_be_used_costs_no_file(
    plugin, fake, store, cache_file, tmp_path, logs, monkeypatch, trouble
):
    trouble(cache_file, monkeypatch)
    files = [
        imagefactory.jpeg(tmp_path, size=(300 + n, 200), color=RED, name=f"{n}.jpg")
        for n in range(3)
    ]
    files.append(files[0])

    statuses = [plugin.process(f"item-{n}", str(f)) for n, f in enumerate(files)]

    assert statuses == [SUCCESS] * 4
    assert len(fake.requests) == 4  # as without a cache
    (line,) = cache_warnings(logs)
    assert "cannot be used" in line and "answered by the service without it" in line


def test_a_repaired_cache_is_used_again_without_a_restart(
    plugin, fake, cache_file, tmp_path, logs, clock, monkeypatch
):
    _corrupt(cache_file, monkeypatch)
    assert plugin.process("0", str(red(tmp_path, 0))) == SUCCESS
    cache_file.unlink()  # what the warning says to do

    assert plugin.process("1", str(red(tmp_path, 1))) == SUCCESS  # within the minute: no cache
    clock.advance(cache.AnswerCache.retry_after)
    assert plugin.process("2", str(red(tmp_path, 2))) == SUCCESS
    assert plugin.process("2 again", str(red(tmp_path, 2))) == SUCCESS

    assert len(fake.requests) == 3
    assert kept(cache_file) == 1
    assert len(cache_warnings(logs)) == 1


def test_a_foreign_database_is_left_untouched(plugin, fake, cache_file, photo, monkeypatch):
    _metadata_store(cache_file, monkeypatch)
    other = cache_file.parent / "metadata.sqlite3"
    before = sqlite3.connect(str(other)).execute("PRAGMA journal_mode").fetchone()

    assert plugin.process("x", str(photo)) == SUCCESS

    connection = sqlite3.connect(str(other))
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "answers" not in tables
    assert connection.execute("PRAGMA journal_mode").fetchone() == before
    assert MetadataStore(other).read("item", "image") == {"azure_class": "kept as it was"}


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anyway")
def test_a_read_only_folder_costs_no_file(plugin, fake, cache_file, tmp_path, logs):
    cache_file.parent.mkdir()
    cache_file.parent.chmod(0o500)
    try:
        for n in range(3):
            assert plugin.process(
                f"{n}",
                str(imagefactory.jpeg(tmp_path, size=(300 + n, 200), color=RED, name=f"{n}.jpg")),
            )
        assert len(fake.requests) == 3
        (line,) = cache_warnings(logs)
        assert "must be able to write" in line
    finally:
        cache_file.parent.chmod(0o700)


def test_a_cache_locked_past_the_timeout_is_skipped_then_used_again(
    plugin, fake, store, cache_file, tmp_path, logs, monkeypatch
):
    monkeypatch.setattr(cache.AnswerCache, "busy_timeout", 0.05)
    cache.current().count()  # made as the plugins make it, then left in rollback-journal mode
    runtime.current().get(cache.Caches).close()
    holder = sqlite3.connect(str(cache_file), isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")  # another process writing: no one may even read
    holder.execute("INSERT INTO setups VALUES (x'00', 'held')")
    files = [
        imagefactory.jpeg(tmp_path, size=(300 + n, 200), color=RED, name=f"{n}.jpg")
        for n in range(3)
    ]

    assert [plugin.process(f"{n}", str(f)) for n, f in enumerate(files)] == [SUCCESS] * 3
    assert len(fake.requests) == 3
    (line,) = cache_warnings(logs)
    assert "stayed locked" in line and "answered by the service meanwhile" in line

    holder.execute("ROLLBACK")
    holder.close()
    assert plugin.process("again", str(files[0])) == SUCCESS  # asked: nothing could be kept
    assert plugin.process("and again", str(files[0])) == SUCCESS  # reused
    assert len(fake.requests) == 4
    assert len(cache_warnings(logs)) == 1


def test_a_write_lock_held_by_another_process_costs_no_file(
    plugin, fake, cache_file, tmp_path, logs, monkeypatch
):
    monkeypatch.setattr(cache.AnswerCache, "busy_timeout", 0.05)
    cache.current().count()
    holder = sqlite3.connect(str(cache_file), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # WAL: others may read, not write
    try:
        for n in range(3):
            path = red(tmp_path, n)
            assert plugin.process(f"{n}", str(path)) == SUCCESS
    finally:
        holder.execute("ROLLBACK")
    assert len(fake.requests) == 3
    (line,) = cache_warnings(logs)
    assert "stayed locked" in line


def test_a_cache_too_small_for_an_answer_costs_no_file(
    plugin, fake, cache_file, tmp_path, logs, monkeypatch
):
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE_MAX_MB", "0.001")  # less than its empty tables
    monkeypatch.setenv("PIXSTOR_AZURE_SEQUENCES", "off")  # 00.jpg... alike: each asked here
    assert not cache.current().put("ab" * 32, {"service": "test"}, _filler(0, 30000))
    for n in range(3):
        assert plugin.process(f"{n}", str(red(tmp_path, n))) == SUCCESS
    assert len(fake.requests) == 3
    (line,) = cache_warnings(logs)
    assert "is full" in line


# ------------------------------------------------------------------------ size and sharing


def _filler(n, size=3000):
    """An answer that does not compress: about ``size`` bytes in the file."""
    noise = random.Random(n).getrandbits(8 * size).to_bytes(size, "little").hex()
    return fresh({"predictions": [{"tagName": noise}]}, (10, 10), (10, 10))


def test_the_size_is_bounded_and_the_oldest_answers_go_first(cache_file, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE_MAX_MB", "0.25")
    store = cache.current()
    identity = {"service": "test"}
    contents = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(200)]

    assert all(store.put(c, identity, _filler(n)) for n, c in enumerate(contents))

    connection = sqlite3.connect(str(cache_file))
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert cache_file.stat().st_size <= 0.25 * 1024 * 1024
    count = store.count()
    assert 20 < count < 200
    assert store.get(contents[-1], identity) is not None
    assert store.get(contents[0], identity) is None
    assert all(store.get(c, identity) is not None for c in contents[-count:])


def test_a_lowered_bound_shrinks_the_file_when_it_is_next_opened(cache_file, monkeypatch):
    store = cache.current()
    for n in range(100):
        store.put(hashlib.sha256(str(n).encode()).hexdigest(), {"s": 1}, _filler(n))
    runtime.reset()
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE_MAX_MB", "0.1")

    count = cache.current().count()

    sqlite3.connect(str(cache_file)).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert 0 < count < 30
    assert cache_file.stat().st_size <= 0.1 * 1024 * 1024


WORKER = textwrap.dedent(
    """
    import json, logging, sys
    from concurrent.futures import ThreadPoolExecutor
    sys.path.insert(0, sys.argv[1])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import azureclassification
    plugin = azureclassification.AzureClassificationPlugin()
    files = sys.argv[2:]
    print("ready", flush=True)
    sys.stdin.readline()  # go: both processes start at once
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda f: plugin.process(f, f).name, files))
    print(json.dumps(statuses), flush=True)
    """
)


def two_at_once(script: str, files: list, tmp_path) -> list:
    """``script`` run by two processes, one on ``files`` and one on them reversed, each with its
    own metadata store, released together once both are ready: [(process, (stdout, stderr))]."""
    workers = []
    for n, order in enumerate((files, files[::-1])):
        env = dict(os.environ, PIXSTOR_AZURE_STORE=str(tmp_path / f"store-{n}.sqlite3"))
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", script, str(ROOT), *order],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                universal_newlines=True,
            )
        )
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    return [(worker, worker.communicate(timeout=120)) for worker in workers]


def test_two_processes_share_one_new_cache(plugin, fake, cache_file, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_SEQUENCES", "off")  # the files are frames that look alike
    files = [str(red(tmp_path / "in", n, 120)) for n in range(24)]

    for worker, (out, err) in two_at_once(WORKER, files, tmp_path):
        assert worker.returncode == 0, err
        assert json.loads(out.splitlines()[-1]) == ["SUCCESS"] * 24, err
        assert err == ""  # no cache trouble, no error of any kind
    assert 24 <= len(fake.requests) <= 48
    connection = sqlite3.connect(str(cache_file))
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert kept(cache_file) == 24
    asked = len(fake.requests)
    assert all(plugin.process(f, f) == SUCCESS for f in files)
    assert len(fake.requests) == asked


def test_threads_share_one_cache(plugin, fake, cache_file, tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("PIXSTOR_AZURE_SEQUENCES", "off")  # the files are frames that look alike

    files = [
        str(imagefactory.jpeg(tmp_path, size=(120 + n, 90), color=RED, name=f"{n:02}.jpg"))
        for n in range(8)
    ]
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda f: plugin.process(f, f), files * 3)) == {SUCCESS}
    assert 8 <= len(fake.requests) <= 8 * 3
    assert kept(cache_file) == 8
    asked = len(fake.requests)
    assert all(plugin.process(f, f) == SUCCESS for f in files)
    assert len(fake.requests) == asked


# ------------------------------------------------------------------------ digests and tallies


def bytes_read() -> int:
    """What this process has read so far, by its kernel's count (every read, every file)."""
    with open("/proc/self/io") as f:
        return int(dict(line.split(": ") for line in f.read().splitlines())["rchar"])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="no /proc/self/io here")
def test_digest_is_the_sha256_of_the_bytes_read_once(photo):
    first = fetch.digest(str(photo))
    before = bytes_read()
    second = fetch.digest(str(photo))
    read = bytes_read() - before

    assert first == second == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert read < photo.stat().st_size / 10  # the second time, the file was not read again


def test_a_file_replaced_with_the_same_size_and_time_is_read_again(tmp_path):
    jpeg = b"\xff\xd8\xff"  # what a JPEG starts with: only pictures are hashed
    path = tmp_path / "frame.jpg"
    path.write_bytes(jpeg + b"A" * 1000)
    stamp = path.stat()
    first = fetch.digest(str(path))
    # As rsync -t or a restore does it: a new file renamed over the old one, times kept.
    other = tmp_path / ".frame.jpg.tmp"
    other.write_bytes(jpeg + b"B" * 1000)
    os.utime(str(other), ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    os.replace(str(other), str(path))
    second = fetch.digest(str(path))
    # And rewritten in place, its modification time put back.
    with open(str(path), "r+b") as f:
        f.write(jpeg + b"C" * 1000)
    os.utime(str(path), ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    third = fetch.digest(str(path))

    assert len({first, second, third}) == 3
    assert third == hashlib.sha256(jpeg + b"C" * 1000).hexdigest()


class Chat:
    """A backend answering like Azure OpenAI chat completions: a body with ``usage``."""

    name = "Azure OpenAI"
    endpoint_setting = None

    def __init__(self, usage):
        self.usage = usage
        self.asked = 0

    def identity(self):
        return {"service": "openai-test", "deployment": "d"}

    def ask(self, path):
        self.asked += 1
        body = {"choices": [{"message": {"content": "{}"}}], "usage": self.usage}
        return fresh(body, (10, 10), (10, 10), bytes_sent=123)

    def check(self, answer):
        """Every answer it gives is of its shape (``Service.check``)."""


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        ({"prompt_tokens": 1000, "completion_tokens": 30, "total_tokens": 1030}, 1030),
        ({"prompt_tokens": 1000, "completion_tokens": 30}, 1030),
        ("not usage", 0),
    ],
)
def test_tokens_are_counted_for_calls_only(cache_file, photo, usage, tokens):
    chat = Chat(usage)
    first = fetch.fetch(chat, str(photo))
    second = fetch.fetch(chat, str(photo))

    assert chat.asked == 1 and not first.cached and second.cached
    assert second.body == first.body and second.bytes_sent == 123
    tally = fetch.tally().snapshot()
    assert tally["tokens"] == tokens
    assert tally["calls"] == {"Azure OpenAI": 1} and tally["hits"] == {"Azure OpenAI": 1}


class Retrained:
    """A Custom Vision-like backend whose published iteration is replaced under the same name."""

    name = "Custom Vision"
    endpoint_setting = None

    def __init__(self):
        self.iteration = "0f1e2d3c-0000-4000-8000-000000000001"
        self.asked = []

    def identity(self):
        return {"service": "customvision-test", "iteration": "production"}

    def ask(self, path):
        self.asked.append(os.path.basename(path))
        body = {"iteration": self.iteration, "predictions": []}
        return fresh(body, (10, 10), (10, 10))

    def check(self, answer):
        """Every answer it gives is of its shape (``Service.check``)."""


def test_an_answer_from_a_replaced_model_is_asked_again(cache_file, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_SEQUENCES", "off")  # 00.jpg and 01.jpg look alike
    backend = Retrained()
    old, new = str(red(tmp_path, 0)), str(red(tmp_path, 1))
    fetch.fetch(backend, old)
    assert fetch.fetch(backend, old).cached
    runtime.reset()  # a new process: it has not seen the service answer yet
    backend.iteration = "0f1e2d3c-0000-4000-8000-000000000002"  # re-published as "production"
    assert fetch.fetch(backend, old).cached  # nothing says otherwise yet

    fetch.fetch(backend, new)  # a new file: the service answers with the new iteration
    again = fetch.fetch(backend, old)

    assert not again.cached and again.body["iteration"] == backend.iteration
    assert fetch.fetch(backend, old).cached
    assert backend.asked == ["00.jpg", "01.jpg", "00.jpg"]


def test_a_forked_worker_shares_the_cache_with_its_parent(cache_file):
    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    store = cache.current()
    identity = {"service": "test"}
    assert store.put("aa" * 32, identity, _filler(1, 100))
    pid = os.fork()
    if pid == 0:  # the child: what a PixStor worker forked after loading the plugin does
        code = 1
        try:
            child = cache.current()
            ok = child is not store and child.get("aa" * 32, identity) is not None
            code = 0 if ok and child.put("bb" * 32, identity, _filler(2, 100)) else 1
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0

    assert store.get("bb" * 32, identity) is not None  # the parent's own connection
    assert store.put("cc" * 32, identity, _filler(3, 100))
    assert store.count() == 3
    check = sqlite3.connect(str(cache_file))
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# ------------------------------------------------------------------------ inside PixStor

PIXSTOR_LOADER = textwrap.dedent(
    """
    import importlib.util, inspect, json, logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    link = sys.argv[1]
    spec = importlib.util.spec_from_file_location("pixstor_plugin", link)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import pixstor_azure.ground.pixstor
    plugin = module.AzureClassificationPlugin()
    statuses = [plugin.process(f"item-{n}", path).name for n, path in enumerate(sys.argv[2:])]
    print(json.dumps({"in_pixstor": pixstor_azure.ground.pixstor.IN_PIXSTOR, "statuses": statuses}))
    """
)


def test_inside_pixstor_the_same_content_is_one_call_and_the_cache_is_beside_the_plugins(
    fake, tmp_path
):
    available = tmp_path / "plugins" / "available" / "azure"
    enabled = tmp_path / "plugins" / "enabled"
    enabled.mkdir(parents=True)
    shutil.copytree(str(ROOT / "common"), str(available / "common"))
    shutil.copy2(str(ROOT / "azureclassification.py"), str(available))
    link = enabled / "azureclassification.py"
    link.symlink_to(available / "azureclassification.py")
    first = imagefactory.jpeg(tmp_path / "ingest", size=(640, 480), color=RED, name="a.jpg")
    second = tmp_path / "ingest" / "b.jpg"
    shutil.copyfile(str(first), str(second))
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("CUSTOM_VISION_", "PATH", "PIXSTOR_AZURE_CONFIG"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "fake_arcapix"), *_libraries()]),
        PYTHONNOUSERSITE="1",
        FAKE_ARCAPIX_OUT=str(tmp_path / "metadata.jsonl"),
    )

    result = subprocess.run(
        [sys.executable, "-S", "-c", PIXSTOR_LOADER, str(link), str(first), str(second)],
        cwd=str(tmp_path),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"in_pixstor": True, "statuses": ["SUCCESS", "SUCCESS"]}, result.stderr
    assert len(fake.requests) == 1
    assert kept(available / "cache" / "answers.sqlite3") == 1
    writes = [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert writes[0]["data"] == writes[1]["data"] != {}


def _libraries():
    """The folders holding requests and Pillow, without the rest of site-packages."""
    import PIL
    import requests

    return sorted({os.path.dirname(os.path.dirname(m.__file__)) for m in (PIL, requests)})
