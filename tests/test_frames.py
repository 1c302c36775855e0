"""answers/frames.py through the plugins: frames of a sequence that look alike share one call.

Real frames (tests/sequencefactory.py: things moving, a pan, a fade, hard cuts), the fake
Azure (it answers from the colours it is sent), the answer cache, the plugins' process(). What
asking every frame gives is measured by asking every frame (``PIXSTOR_AZURE_SEQUENCES=off``).
bench/sequences.py measures the same on 1,020 frames.
"""

import json
import random
import re
import sqlite3
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

import azureclassification
import azureobjectdetection
from pixstor_azure.answers import cache
from pixstor_azure.answers.engine import Reference
from pixstor_azure.ground import boxes
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.tool import browse
from tests import sequencefactory, toolrun
from tests.fakeazure import FakeAzure
from tests.sources import answered
from tests.test_cache import two_at_once

# Five shots of 16 frames: a car moving, a pan with a thing coming in, a fade in, one thing
# of two leaving, a fade out; four hard cuts.
SHOTS = sequencefactory.short(16, sequencefactory.SHOTS[:5])
CLASSIFY_PROJECT = "3c9a1f0e-5b7d-4e2a-9f1c-8d6b4a2e0c17"
DETECT_PROJECT = "5b0c4e2a-0d1f-4a3e-9c2b-7e6f5d4c3b2a"
SUCCESS = PluginStatus.SUCCESS


@pytest.fixture
def server(monkeypatch, tmp_path):
    with FakeAzure() as fake:
        fake.add_project(CLASSIFY_PROJECT, "classify", published=["production"])
        fake.add_project(DETECT_PROJECT, "detect", published=["production"])
        for name, value in {
            "CUSTOM_VISION_ENDPOINT": fake.url,
            "CUSTOM_VISION_KEY": fake.key,
            "CUSTOM_VISION_CLASSIFY_PROJECT": CLASSIFY_PROJECT,
            "CUSTOM_VISION_CLASSIFY_ITERATION": "production",
            "CUSTOM_VISION_DETECT_PROJECT": DETECT_PROJECT,
            "CUSTOM_VISION_DETECT_ITERATION": "production",
            # The fake's probability is a colour's share of the picture: 1 % and more counts.
            "CUSTOM_VISION_CLASSIFY_THRESHOLD": "0.01",
            "CUSTOM_VISION_DETECT_THRESHOLD": "0.5",
            "PIXSTOR_AZURE_CACHE": str(tmp_path / "cache" / "answers.sqlite3"),
        }.items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def frames(tmp_path):
    return sequencefactory.write(tmp_path / "plates", SHOTS)


def run(plugin, truths, store, prefix, order=None):
    """Each frame through ``plugin``; {frame number: its stored fields}."""
    for truth in order or truths:
        # SKIPPED: nothing in the frame reaches the threshold (nothing is then written).
        status = plugin.process(f"{prefix}{truth.number}", str(truth.path))
        assert status in (SUCCESS, PluginStatus.SKIPPED)
    return {t.number: store.read(f"{prefix}{t.number}", "image") or {} for t in truths}


def every_frame_asked(plugin, truths, store, monkeypatch, tmp_path):
    monkeypatch.setenv("PIXSTOR_AZURE_SEQUENCES", "off")
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", str(tmp_path / "each" / "answers.sqlite3"))
    try:
        return run(plugin, truths, store, "each-")
    finally:
        monkeypatch.delenv("PIXSTOR_AZURE_SEQUENCES")
        monkeypatch.setenv("PIXSTOR_AZURE_CACHE", str(tmp_path / "cache" / "answers.sqlite3"))


def inherited_from(source):
    found = re.search(r"inherited from (\S+)$", source)
    return found.group(1) if found else None


def shot_of(truths, name):
    return next(t.shot for t in truths if t.path.name == name)


def test_off_asks_every_frame_as_before(server, frames, store, monkeypatch, tmp_path):
    plugin = azureclassification.AzureClassificationPlugin()
    asked = every_frame_asked(plugin, frames, store, monkeypatch, tmp_path)
    contents = {t.path.read_bytes() for t in frames}  # a black frame twice: one answer
    assert len(server.requests) == len(contents)
    assert not any("inherited" in f.get("azure_classification_source", "") for f in asked.values())
    # Each frame as a file of its own, in a folder of its own: what the plugin did before.
    for truth in frames[::7]:
        alone = truth.path.parent.parent / f"alone-{truth.number}" / "picture.png"
        alone.parent.mkdir()
        alone.write_bytes(truth.path.read_bytes())
        plugin.process(f"alone-{truth.number}", str(alone))
        assert answered(store.read(f"alone-{truth.number}", "image") or {}) == answered(
            asked[truth.number]
        )


def test_frames_that_look_alike_share_one_call(server, frames, store, monkeypatch, tmp_path):
    plugin = azureclassification.AzureClassificationPlugin()
    each = every_frame_asked(plugin, frames, store, monkeypatch, tmp_path)
    server.reset()
    reused = run(plugin, frames, store, "seq-")

    calls = len(server.requests)
    assert len(SHOTS) <= calls <= len(frames) // 3
    agree = sum(answered(reused[t.number]) == answered(each[t.number]) for t in frames) / len(
        frames
    )
    assert agree >= 0.95
    sources = {n: f.get("azure_classification_source", "") for n, f in reused.items() if f}
    assert all(s.startswith("Custom Vision prediction-v3.0, model ") for s in sources.values())
    named = [inherited_from(s) for s in sources.values() if inherited_from(s)]
    assert len(named) >= len(sources) - calls  # a frame not asked says which frame it reuses
    for truth in frames:
        name = inherited_from(sources.get(truth.number, ""))
        if name is not None:  # never across a cut
            assert shot_of(frames, name) == truth.shot, (truth.number, name)
        if truth.first:  # just after a cut, and the first frame: asked
            assert name is None


def test_any_order_respects_the_cuts(server, frames, store):
    plugin = azureclassification.AzureClassificationPlugin()
    order = list(frames)
    random.Random(7).shuffle(order)
    reused = run(plugin, frames, store, "shuffled-", order)
    assert len(server.requests) <= len(frames) // 3
    for truth in frames:
        name = inherited_from(reused[truth.number].get("azure_classification_source", ""))
        if truth.first and name is not None:  # just after a cut: never from before it
            assert shot_of(frames, name) >= truth.shot


def test_boxes_are_reused_only_from_near_identical_frames(
    server, frames, store, monkeypatch, tmp_path
):
    classify = azureclassification.AzureClassificationPlugin()
    detect = azureobjectdetection.AzureObjectDetectionPlugin()
    run(classify, frames, store, "classes-")
    classes_calls = len(server.requests)
    each = every_frame_asked(detect, frames, store, monkeypatch, tmp_path)
    server.reset()
    found = run(detect, frames, store, "boxes-")
    assert classes_calls < len(server.requests) < len(frames)  # stricter, still some reuse
    ious = []
    for truth in frames:
        if inherited_from(found[truth.number].get("azure_detection_source", "")) is None:
            continue
        theirs = boxes.from_json(each[truth.number]["azure_detected_boxes"])
        ours = boxes.from_json(found[truth.number]["azure_detected_boxes"])
        assert [b.tag for b in ours] == [b.tag for b in theirs]
        ious.extend(_iou(mine, asked) for mine, asked in zip(ours, theirs))
    assert ious and sum(ious) / len(ious) >= 0.9


def _iou(a, b):
    left, top = max(a.left, b.left), max(a.top, b.top)
    right = min(a.left + a.width, b.left + b.width)
    bottom = min(a.top + a.height, b.top + b.height)
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union else 1.0


def test_threads_do_not_both_pay_for_a_shots_first_frame(server, tmp_path):
    still = [s for s in sequencefactory.SHOTS if s.name == "lock-off"]
    truths = sequencefactory.write(tmp_path / "still", sequencefactory.short(8, still))
    plugin = azureclassification.AzureClassificationPlugin()
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda t: plugin.process(t.number, str(t.path)), truths))
    assert set(statuses) == {SUCCESS}
    assert len(server.requests) == 1


WORKER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import azureclassification
    plugin = azureclassification.AzureClassificationPlugin()
    files = sys.argv[2:]
    print("ready", flush=True)
    sys.stdin.readline()  # go: both processes start at once
    print(json.dumps([plugin.process(f, f).name for f in files]), flush=True)
    """
)


def test_two_processes_do_not_both_pay_for_a_shots_first_frame(server, tmp_path):
    still = [s for s in sequencefactory.SHOTS if s.name == "lock-off"]
    truths = sequencefactory.write(tmp_path / "still", sequencefactory.short(6, still))
    files = [str(t.path) for t in truths]
    for worker, (out, err) in two_at_once(WORKER, files, tmp_path):
        assert worker.returncode == 0, err
        assert json.loads(out.splitlines()[-1]) == ["SUCCESS"] * len(files), err
    assert len(server.requests) == 1


def test_search_finds_the_files_of_a_model_and_those_of_one_frame(server, frames, store, capsys):
    plugin = azureclassification.AzureClassificationPlugin()
    stored = run(plugin, frames, store, "")
    first = frames[0].path.name
    heirs = {
        str(n)
        for n, f in stored.items()
        if inherited_from(f.get("azure_classification_source", "")) == first
    }
    assert heirs
    capsys.readouterr()
    assert browse.search("azure_classification_source", f"inherited from {first}") == 0
    assert set(capsys.readouterr().out.split()) == heirs
    model = re.search(r"model (\S+),", stored[frames[0].number]["azure_classification_source"])
    assert browse.search("azure_classification_source", f"model {model.group(1)}") == 0
    assert len(capsys.readouterr().out.split()) == sum(1 for f in stored.values() if f)


def test_a_cache_of_the_previous_release_gets_the_frames_table(tmp_path, monkeypatch):
    path = tmp_path / "answers.sqlite3"
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", str(path))
    assert cache.current().count() == 0  # made now, with the frames table
    cache.current().close()
    old = sqlite3.connect(str(path))
    old.execute("DROP TABLE frames")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    runtime_cache = cache.AnswerCache(path)
    reference = Reference(1001, "1001", "plate.1001.exr", "ab" * 32, b"signature")
    runtime_cache.refer("/shots\0plate.\0.exr", {"service": "test"}, reference)
    found = runtime_cache.references("/shots\0plate.\0.exr", {"service": "test"}, 1000, 1002)
    assert found == [reference]
    runtime_cache.close()
    assert sqlite3.connect(str(path)).execute("PRAGMA user_version").fetchone() == (2,)


def test_the_dry_run_counts_the_calls_sequences_save(tmp_path):
    with FakeAzure() as fake:
        toolrun.serve(fake)
        tool = toolrun.Tool(tmp_path / "tool", fake, CUSTOM_VISION_CLASSIFY_THRESHOLD="0.01")
        sequencefactory.write(tmp_path / "plates", SHOTS[:3])
        plugin = ("-p", "classification", "--no-progress")

        dry = tool.run("tag", *plugin, "--dry-run", str(tmp_path / "plates"))
        assert dry.returncode == 0, dry
        assert fake.requests == []
        would = dry.count("azureclassification", "would call")
        saved = re.search(r"(\d+) calls saved by frame sequences", dry.stderr)
        assert saved and would + int(saved.group(1)) == 48  # three shots of 16 frames

        real = tool.run("tag", *plugin, "-j", "1", str(tmp_path / "plates"))  # in order
        assert real.returncode == 0, real
        assert real.number("calls made") == len(fake.requests) == would
        assert real.number("answers of a frame alike reused") == int(saved.group(1))
