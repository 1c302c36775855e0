"""azureclassification.py over real sockets against a server that behaves like Custom Vision:
its limits, error bodies and rate limiting (tests/fakeazure.py), with real photographs."""

import threading

import pytest

import azureclassification
from pixstor_azure.ground.pixstor import PluginStatus
from tests import imagefactory
from tests.conftest import ROOT, assert_no_key
from tests.sources import answered
from tests.wording import assert_mentions


@pytest.fixture
def fake(fake_classifier, monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.2")
    return fake_classifier


@pytest.fixture
def plugin():
    return azureclassification.AzureClassificationPlugin()


@pytest.mark.parametrize(
    ("photo", "expected"),
    [
        # What the fake's colour rules see, at a threshold of 0.12: the red saucer on the
        # coffee table, the night sky around the rocket; the tabby cat has no strong colour.
        ("coffee.jpg", ["red", "black"]),
        ("astronaut.jpg", ["black"]),
        ("rocket.jpg", ["black"]),
        ("cat.jpg", None),
    ],
)
def test_real_photographs(plugin, fake, store, monkeypatch, photo, expected):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.12")
    path = ROOT / "images" / photo

    status = plugin.process(photo, str(path))

    received = fake.requests[-1]
    assert received.status == 200
    assert received.headers["content-type"] == "application/octet-stream"
    assert received.image_format == "JPEG"
    assert received.body_size == path.stat().st_size  # within limits: sent as it is
    if expected is None:
        assert status == PluginStatus.SKIPPED
        assert store.read(photo) == {}
    else:
        assert status == PluginStatus.SUCCESS
        assert answered(store.read(photo, "image")) == {
            "azure_class": expected[0],
            "azure_classes": expected,
        }


def test_colour_the_model_knows_comes_out_first(plugin, fake, store, tmp_path):
    path = imagefactory.png(tmp_path, size=(800, 600), color=(0, 0, 255))

    assert plugin.process("blue", str(path)) == PluginStatus.SUCCESS
    assert store.read("blue", "image")["azure_class"] == "blue"


def test_40_megapixel_photo_goes_within_the_4mb_limit(plugin, fake, store, tmp_path):
    path = imagefactory.jpeg_40mp(tmp_path)
    assert path.stat().st_size > 4 * 1024 * 1024

    plugin.process("big", str(path))

    received = fake.requests[-1]
    assert received.status == 200
    # 1024: CUSTOM_VISION_MAX_LONG_EDGE's default
    assert received.body_size <= 4_000_000 and max(received.image_size) == 1024


def test_keep_alive_one_connection_for_many_files(plugin, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", "off")  # the same file each time: asked each time
    path = imagefactory.jpeg(tmp_path)
    for n in range(5):
        plugin.process(f"item-{n}", str(path))
    assert len(fake.requests) == 5
    assert fake.connections == 1


def test_unpublished_iteration(plugin, fake, logs, monkeypatch, tmp_path):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_ITERATION", "Iteration 3")

    assert plugin.process("x", str(imagefactory.jpeg(tmp_path))) == PluginStatus.FATAL
    assert_mentions(logs.text, "customvisioncloud.NOT_PUBLISHED", iteration="Iteration 3")
    assert_no_key(logs, fake.key)


def test_wrong_key(plugin, fake, logs, monkeypatch, tmp_path):
    monkeypatch.setenv("CUSTOM_VISION_KEY", "not-the-key-000000")

    assert plugin.process("x", str(imagefactory.jpeg(tmp_path))) == PluginStatus.FATAL
    assert_mentions(logs.text, "KEY_REFUSED", status=401, key_setting="CUSTOM_VISION_KEY")
    assert_no_key(logs, fake.key, "not-the-key-000000")


def test_read_timeout_is_bounded(plugin, fake, logs, monkeypatch, tmp_path):
    monkeypatch.setenv("PIXSTOR_AZURE_READ_TIMEOUT", "0.2")
    monkeypatch.setenv("PIXSTOR_AZURE_ATTEMPTS", "2")
    fake.fail_next(200, delay=1.0, times=2)

    assert plugin.process("x", str(imagefactory.jpeg(tmp_path))) == PluginStatus.FATAL
    assert len(fake.requests) == 2  # each given up after its read timeout, not the delay
    assert_mentions(logs.text, "client.TIMED_OUT", kind="read", timeout=0.2)


def test_server_gone(plugin, fake, logs, tmp_path):
    fake.stop()
    assert plugin.process("x", str(imagefactory.jpeg(tmp_path))) == PluginStatus.FATAL
    assert_mentions(logs.text, "client.UNREACHABLE", name="Custom Vision")


def test_rate_limited_service(plugin, fake, store, monkeypatch, tmp_path, clock, waits):
    """An F0-like resource (4 per second): a burst of threads gets 429s, waits as told and
    every file ends SUCCESS; with the client-side limit set, no 429 at all. The service's
    buckets refill by the suite's fake clock, so the waits work without sleeping."""
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", "off")  # one file: every burst must call
    fake.clock = clock.now
    fake.tps = 4
    path = imagefactory.png(tmp_path, size=(300, 200), color=(255, 0, 0))

    def burst(count: int) -> list:
        statuses: list = []
        threads = [
            threading.Thread(target=lambda n=n: statuses.append(plugin.process(f"i{n}", str(path))))
            for n in range(count)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return statuses

    assert burst(8) == [PluginStatus.SUCCESS] * 8
    assert fake.rate_limited > 0 and all(1.0 <= w <= 1.1 for w in waits)  # "retry after 1 s"

    clock.advance(1.0)  # let the bucket refill
    fake.rate_limited = 0
    monkeypatch.setenv("CUSTOM_VISION_REQUESTS_PER_SECOND", "3")
    # One after the other: with fake time, threads that wait at once would send at once.
    statuses = [plugin.process(f"j{n}", str(path)) for n in range(6)]
    assert statuses == [PluginStatus.SUCCESS] * 6
    assert fake.rate_limited == 0
