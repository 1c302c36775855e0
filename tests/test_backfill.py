"""``pixstor-azure tag`` and ``retag`` over an archive, end to end: the real command in a
subprocess, against FakeAzure on a real socket. Each picture is paid for once."""

import shutil
import signal
import sqlite3
import threading

import pytest

from pixstor_azure.ground.store import MetadataStore
from tests import imagefactory
from tests.fakeazure import FakeAzure
from tests.fakeread import FakeRead, Line
from tests.toolrun import Tool, frames, sent_widths, serve, width

CLASSIFY = ("-p", "classification", "--no-progress")


@pytest.fixture
def server():
    with FakeAzure() as fake:
        serve(fake)
        yield fake


@pytest.fixture
def tool(tmp_path, server):
    return Tool(tmp_path, server)


@pytest.fixture
def archive(tmp_path):
    folder = tmp_path / "archive"
    frames(folder / "day1", 3)
    frames(folder / "day2", 2, first=3)
    (folder / "day2" / "notes.txt").write_text("not a picture")
    return folder


def stored(tool, path, field="azure_classes"):
    value = MetadataStore(tool.store).read(str(path.resolve()), "image").get(field)
    return value


def wait_for(condition, what, timeout=60.0):
    """Wait (on an event, not a sleep loop of fixed length) until ``condition()`` holds."""
    event = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        event.wait(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_second_run_makes_no_request(tool, server, archive):
    first = tool.run("tag", *CLASSIFY, str(archive))
    assert first.returncode == 0, first
    assert len(server.requests) == 5
    assert first.count("azureclassification", "SUCCESS") == 5
    assert "files: 6 found, 5 handled, 1 not handled" in first.stderr
    assert first.number("calls made") == 5

    second = tool.run("tag", *CLASSIFY, str(archive))

    assert second.returncode == 0, second
    assert len(server.requests) == 5  # not one more
    assert second.count("azureclassification", "unchanged") == 5
    assert second.number("calls made") == 0


def test_force_asks_again_and_the_cache_answers(tool, server, archive):
    tool.run("tag", *CLASSIFY, str(archive))

    forced = tool.run("tag", *CLASSIFY, "--force", str(archive))

    assert forced.returncode == 0, forced
    assert forced.count("azureclassification", "SUCCESS") == 5
    assert forced.number("answers reused") == 5  # derived again, from the answer cache
    assert len(server.requests) == 5


def test_a_copied_and_a_renamed_file_make_no_request(tool, server, archive):
    assert tool.run("tag", *CLASSIFY, str(archive)).returncode == 0
    day1 = archive / "day1"
    copy = archive / "copies" / "same-picture.jpg"
    copy.parent.mkdir()
    shutil.copy2(str(day1 / "frame0000.jpg"), str(copy))
    renamed = day1 / "renamed.jpg"
    (day1 / "frame0001.jpg").rename(renamed)
    before = len(server.requests)

    again = tool.run("tag", *CLASSIFY, str(archive))

    assert again.returncode == 0, again
    assert len(server.requests) == before
    assert again.count("azureclassification", "SUCCESS") == 2  # the copy and the renamed file
    assert again.number("answers reused") == 2
    assert stored(tool, copy) == stored(tool, day1 / "frame0000.jpg") == ["red"]
    assert stored(tool, renamed) == ["blue"]


def test_a_file_changed_on_disk_gets_the_answer_for_its_new_content(tool, server, archive):
    tool.run("tag", *CLASSIFY, str(archive))
    frames(archive / "day1", 1)[0].write_bytes((archive / "day1" / "frame0001.jpg").read_bytes())
    before = len(server.requests)

    again = tool.run("tag", *CLASSIFY, str(archive))

    # frame0000 now holds frame0001's picture: a content already answered, so no request.
    assert len(server.requests) == before
    assert again.count("azureclassification", "SUCCESS") == 1
    assert stored(tool, archive / "day1" / "frame0000.jpg") == ["blue"]


def test_a_new_threshold_and_retag_change_the_fields_without_a_request(tool, server, archive):
    assert tool.run("tag", *CLASSIFY, str(archive)).returncode == 0
    picture = archive / "day1" / "frame0000.jpg"
    assert stored(tool, picture) == ["red"]
    before = len(server.requests)
    tool.env["CUSTOM_VISION_CLASSIFY_THRESHOLD"] = "0.03"

    retag = tool.run("retag", "-p", "classification")

    assert retag.returncode == 0, retag
    assert len(server.requests) == before
    assert retag.count("azureclassification", "SUCCESS") == 5
    assert retag.number("calls made") == 0
    assert retag.number("answers reused") == 5
    classes = stored(tool, picture)
    assert classes[0] == "red" and len(classes) > 1  # the white and black of the band too
    # The records now hold today's settings: tag has nothing to do.
    after = tool.run("tag", *CLASSIFY, str(archive))
    assert after.count("azureclassification", "unchanged") == 5
    assert len(server.requests) == before


def test_retag_removes_fields_nothing_passes_any_more(tool, server, archive):
    tool.run("tag", *CLASSIFY, str(archive))
    tool.env["CUSTOM_VISION_CLASSIFY_THRESHOLD"] = "0.99"

    retag = tool.run("retag", "-p", "classification", str(archive / "day1"))

    assert retag.returncode == 0, retag
    assert retag.count("azureclassification", "SKIPPED") == 3  # day1 only
    assert stored(tool, archive / "day1" / "frame0000.jpg") is None
    assert stored(tool, archive / "day2" / "frame0003.jpg") == ["blue"]


def test_retag_never_calls_even_without_a_cached_answer(tmp_path, server, archive):
    tool = Tool(tmp_path, server, PIXSTOR_AZURE_CACHE="off")
    tool.run("tag", *CLASSIFY, str(archive))
    before = len(server.requests)

    retag = tool.run("retag", "-p", "classification")

    assert len(server.requests) == before
    assert retag.count("azureclassification", "no cached answer") == 5
    assert stored(tool, archive / "day1" / "frame0000.jpg") == ["red"]  # left as it was


def test_an_interrupted_run_resumes_and_does_every_file_exactly_once(tool, server, archive):
    pictures = sorted(archive.rglob("*.jpg"))
    # The third request hangs until the test is over: the run is interrupted while waiting.
    server.fail_next(200, times=2)
    server.fail_next(200, delay=600)
    process = tool.start("tag", *CLASSIFY, "-j", "1", str(archive))
    wait_for(lambda: len(server.requests) == 3, "the third request")

    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "azureclassification: SUCCESS 2" in err
    assert "azureclassification: left 3" in err
    done = [p for p in pictures if stored(tool, p)]
    assert done == pictures[:2]
    first_run = sent_widths(server)

    resumed = tool.run("tag", *CLASSIFY, str(archive))

    assert resumed.returncode == 0, resumed
    assert resumed.count("azureclassification", "unchanged") == 2
    assert resumed.count("azureclassification", "SUCCESS") == 3
    second_run = sent_widths(server)[len(first_run) :]
    # Files done before the interruption were not asked again; every other one once.
    assert sorted(second_run) == sorted(width(p) for p in pictures[2:])
    assert all(stored(tool, p) for p in pictures)


def test_retry_failed_runs_only_the_files_that_failed(tmp_path, server, archive):
    tool = Tool(tmp_path, server, PIXSTOR_AZURE_ATTEMPTS="1")
    server.fail_next(200)
    server.fail_next(503)  # the second file fails
    first = tool.run("tag", *CLASSIFY, "-j", "1", str(archive))
    assert first.returncode == 1, first
    assert first.count("azureclassification", "FATAL") == 1
    failed = sorted(archive.rglob("*.jpg"))[1]
    assert stored(tool, failed) is None
    new = frames(archive / "day3", 1, first=9)[0]  # new since: not a failure to retry
    before = len(server.requests)

    retry = tool.run("tag", *CLASSIFY, "--retry-failed", str(archive))

    assert retry.returncode == 0, retry
    assert sent_widths(server)[before:] == [width(failed)]
    assert retry.count("azureclassification", "SUCCESS") == 1
    assert retry.count("azureclassification", "not retried") == 5
    assert stored(tool, failed) == ["blue"]
    assert stored(tool, new) is None


def test_dry_run_foresees_what_the_run_then_does(tool, server, archive):
    assert tool.run("tag", *CLASSIFY, str(archive / "day1")).returncode == 0
    shutil.copy2(str(archive / "day1" / "frame0000.jpg"), str(archive / "day2" / "copy.jpg"))
    shutil.copy2(str(archive / "day2" / "frame0003.jpg"), str(archive / "day2" / "twin.jpg"))
    before = len(server.requests)

    dry = tool.run("tag", *CLASSIFY, "--dry-run", str(archive))

    assert dry.returncode == 0, dry
    assert len(server.requests) == before  # nothing sent
    assert dry.count("azureclassification", "unchanged") == 3  # day1
    assert dry.count("azureclassification", "from the cache") == 2  # copy.jpg, twin.jpg
    assert dry.count("azureclassification", "would call") == 2  # frame0003, frame0004
    cost = "Custom Vision (prediction-v3.0): 2 calls, 0.0040 USD at 2 USD per 1,000 calls"
    assert cost in dry.stderr
    assert "PIXSTOR_AZURE_PRICE_CUSTOM_VISION" in dry.stderr

    real = tool.run("tag", *CLASSIFY, "-j", "3", str(archive))

    assert real.returncode == 0, real
    assert len(server.requests) - before == 2
    assert real.number("calls made") == 2
    assert real.number("answers reused") == 2
    assert real.count("azureclassification", "unchanged") == 3


def test_dry_run_prices_are_settings(tmp_path, server, archive):
    tool = Tool(tmp_path, server, PIXSTOR_AZURE_PRICE_CUSTOM_VISION="1.5")

    dry = tool.run("tag", *CLASSIFY, "--dry-run", str(archive))

    cost = "Custom Vision (prediction-v3.0): 5 calls, 0.0075 USD at 1.5 USD per 1,000 calls"
    assert cost in dry.stderr
    assert "from PIXSTOR_AZURE_PRICE_CUSTOM_VISION" in dry.stderr
    assert not tool.store.exists()  # nothing written, not even an empty store


def test_max_calls_stops_cleanly_and_the_next_run_continues(tool, server, archive):
    stopped = tool.run("tag", *CLASSIFY, "-j", "2", "--max-calls", "2", str(archive))

    assert stopped.returncode == 3, stopped
    assert len(server.requests) == 2
    assert stopped.count("azureclassification", "SUCCESS") == 2
    assert stopped.count("azureclassification", "left") == 3
    assert "stopped at --max-calls 2" in stopped.stderr

    rest = tool.run("tag", *CLASSIFY, "--max-calls", "3", str(archive))

    assert rest.returncode == 0, rest
    assert len(server.requests) == 5
    assert rest.count("azureclassification", "unchanged") == 2


def test_max_calls_does_not_count_answers_from_the_cache(tool, server, archive):
    tool.run("tag", *CLASSIFY, str(archive / "day1"))
    for picture in (archive / "day1").glob("*.jpg"):
        shutil.copy2(str(picture), str(archive / "day2" / ("copy-" + picture.name)))
    before = len(server.requests)

    run = tool.run("tag", *CLASSIFY, "--max-calls", "2", str(archive / "day2"))

    assert run.returncode == 0, run  # 3 copies from the cache, 2 calls: all done
    assert len(server.requests) - before == 2
    assert run.count("azureclassification", "SUCCESS") == 5


def test_two_processes_tagging_one_folder_share_one_cache(tmp_path, server, archive):
    frames(archive / "day3", 6, first=5)
    first, second = Tool(tmp_path / "a", server), Tool(tmp_path / "b", server)
    second.env["PIXSTOR_AZURE_CACHE"] = first.env["PIXSTOR_AZURE_CACHE"]
    second.env["PIXSTOR_AZURE_STORE"] = first.env["PIXSTOR_AZURE_STORE"]

    processes = [t.start("tag", *CLASSIFY, "-j", "2", str(archive)) for t in (first, second)]
    results = [(*p.communicate(timeout=120), p.returncode) for p in processes]

    for _, err, status in results:
        assert status == 0, err
        assert "Traceback" not in err and "ERRORED" not in err and "FATAL" not in err
    pictures = sorted(archive.rglob("*.jpg"))
    assert all(stored(first, p) for p in pictures)
    assert len(server.requests) <= 2 * len(pictures)
    # Every answer is in the one cache: a third installation sharing it pays for nothing.
    third = Tool(tmp_path / "c", server, PIXSTOR_AZURE_CACHE=first.env["PIXSTOR_AZURE_CACHE"])
    before = len(server.requests)
    assert third.run("tag", *CLASSIFY, str(archive)).returncode == 0
    assert len(server.requests) == before


def test_a_corrupt_cache_file_still_tags_every_file(tool, server, archive):
    tool.cache.write_bytes(b"this is not an SQLite database" * 100)

    run = tool.run("tag", *CLASSIFY, str(archive))

    assert run.returncode == 0, run
    assert run.count("azureclassification", "SUCCESS") == 5
    assert len(server.requests) == 5
    assert run.stderr.count("answer cache") == 1  # said once, not once per file
    assert "Traceback" not in run.stderr


def test_the_store_records_digest_signature_and_status_never_a_key(tool, server, archive):
    tool.run("tag", *CLASSIFY, str(archive))

    rows = sqlite3.connect(str(tool.store)).execute("SELECT * FROM runs").fetchall()

    assert len(rows) == 5
    for _, plugin, digest, size, mtime_ns, signature, status, updated in rows:
        assert plugin == "AzureClassificationPlugin" and status == "SUCCESS"
        assert len(digest) == 64 and size > 0 and mtime_ns > 0 and updated > 0
        assert len(signature) == 32
    dump = "\n".join(sqlite3.connect(str(tool.store)).iterdump())
    assert server.key not in dump


def test_a_settings_change_that_shapes_the_fields_is_not_unchanged(tool, server, archive):
    tool.run("tag", *CLASSIFY, str(archive))
    tool.env["CUSTOM_VISION_CLASSIFY_MAX_TAGS"] = "2"

    again = tool.run("tag", *CLASSIFY, str(archive))

    assert again.count("azureclassification", "SUCCESS") == 5
    assert again.number("answers reused") == 5
    assert len(server.requests) == 5


def test_retag_leaves_files_gone_or_changed_since_for_tag(tool, server, archive):
    tool.run("tag", *CLASSIFY, str(archive))
    (archive / "day1" / "frame0000.jpg").unlink()
    changed = archive / "day1" / "frame0001.jpg"
    changed.write_bytes((archive / "day2" / "frame0003.jpg").read_bytes() + b"\0")

    retag = tool.run("retag", "-p", "classification")

    assert retag.returncode == 0, retag
    assert retag.count("azureclassification", "gone") == 1
    assert retag.count("azureclassification", "changed on disk") == 1
    assert retag.count("azureclassification", "SUCCESS") == 3
    assert len(server.requests) == 5


def test_dry_run_prices_vision_per_feature_asked(tmp_path, server, archive):
    tool = Tool(tmp_path, server, AZURE_VISION_FEATURES="tags,caption")

    dry = tool.run("tag", "-p", "vision", "--dry-run", str(archive))

    assert dry.returncode == 0, dry
    assert "Azure AI Vision (4.0): 5 calls, 0.0100 USD at 2 USD per 1,000 calls" in dry.stderr
    assert len(server.requests) == 0


def test_vision_with_a_read_api_counts_and_caches_each_answer(tmp_path, server):
    FakeRead(lines=[Line("SCENE 42")], polls=1).mount(server)
    tool = Tool(tmp_path, server, AZURE_VISION_API="3.2")
    stills = tmp_path / "stills"
    frames(stills, 3)

    dry = tool.run("tag", "-p", "vision", "--dry-run", str(stills))

    assert "Azure AI Vision (3.2): 3 calls, 0.0090 USD at 3 USD per 1,000" in dry.stderr, dry
    assert "Azure AI Vision (vision-3.2): 3 calls, 0.0045 USD at 1.5 USD per 1,000" in dry.stderr
    assert not server.requests

    real = tool.run("tag", "-p", "vision", str(stills))

    assert real.returncode == 0, real
    posts = [r.path for r in server.requests if r.method == "POST"]
    assert sorted(posts) == ["/vision/v3.2/analyze"] * 3 + ["/vision/v3.2/read/analyze"] * 3
    assert stored(tool, stills / "frame0000.jpg", "azure_text") == ["SCENE 42"]
    shutil.copy2(str(stills / "frame0000.jpg"), str(stills / "copy.jpg"))
    before = len(server.requests)
    again = tool.run("tag", "-p", "vision", "--max-calls", "0", str(stills))
    assert again.returncode == 0, again  # the copy: both answers from the cache, no call
    assert len(server.requests) == before
    assert again.count("azurevision", "SUCCESS") == 1


def test_max_calls_says_how_many_files_are_left_not_file_plugin_pairs(tool, server, archive):
    both = ("-p", "classification", "-p", "detection", "--no-progress", "-j", "1")

    stopped = tool.run("tag", *both, "--max-calls", "2", str(archive))

    assert stopped.returncode == 3, stopped
    assert len(server.requests) == 2  # the first file, both plugins
    assert stopped.count("azureclassification", "left") == 4
    assert stopped.count("azureobjectdetection", "left") == 4
    assert "2 billed calls made or allowed; 4 file(s) left" in stopped.stderr


def onnx_classifier(tool, tmp_path):
    """Chooses an exported classifier run here (tests/onnxmodels.py) for the tool."""
    pytest.importorskip("numpy")
    pytest.importorskip("onnxruntime")
    onnxmodels = pytest.importorskip("tests.onnxmodels")
    model = onnxmodels.export(tmp_path / "models", onnxmodels.classifier_s1(), ["r", "g", "b"])
    tool.env.update(
        {"CUSTOM_VISION_CLASSIFY_BACKEND": "onnx", "CUSTOM_VISION_CLASSIFY_MODEL": str(model)}
    )


def test_a_model_run_here_is_not_a_billed_call(tool, server, archive, tmp_path):
    onnx_classifier(tool, tmp_path)

    dry = tool.run("tag", *CLASSIFY, "--dry-run", str(archive))
    run = tool.run("tag", *CLASSIFY, "--max-calls", "0", str(archive))

    assert "5 pictures run on your own machines (nothing billed)" in dry.stderr
    assert "cost:" not in dry.stderr and "USD" not in dry.stderr
    assert run.returncode == 0, run
    assert run.count("azureclassification", "SUCCESS") == 5
    assert server.requests == []


def test_a_call_sent_again_after_no_answer_is_counted_as_maybe_billed_twice(tmp_path, server):
    """The first request reaches the service and its answer comes after the read timeout: the
    retry may be billed a second time, and the summary says so."""
    photo = imagefactory.jpeg(tmp_path / "one", size=(320, 240))
    server.fail_next(200, delay=2.0)
    tool = Tool(tmp_path, server, PIXSTOR_AZURE_READ_TIMEOUT="0.5", PIXSTOR_AZURE_BACKOFF="0")

    result = tool.run("tag", *CLASSIFY, str(photo))

    assert result.returncode == 0, result
    assert result.number("calls made") == 1  # the answer of the second request
    assert result.number("calls that may have been billed twice") == 1
    assert "sent again after the first got no answer in time" in result.stderr
