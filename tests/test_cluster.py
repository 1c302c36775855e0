"""Several processes, standing for nodes (or for the workers of one node), tagging at once with
the command-line tool against one FakeAzure: each answer is paid once, the tier's rate is
shared with no 429, and a fault found by one holds for all.

With PostgreSQL each process is a node of its own (its own store, answer cache and rate file,
one database); with SQLite they are the workers of one node (one answer cache, one rate file).
"""

import threading
import time

import pytest

import azureclassification
from pixstor_azure.answers import pacing, postgres
from pixstor_azure.answers.local import SqliteEngine
from pixstor_azure.ground import clock as pixstor_clock
from pixstor_azure.ground.errors import ServiceError
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.http import client
from tests.fakeazure import FakeAzure
from tests.toolrun import CLASSIFY_PROJECT, Tool, frames, serve

PICTURES = 12
# frames() names its pictures as a sequence's frames, which may reuse each other's answers: off,
# so that each picture is an answer of its own.
NOT_A_SEQUENCE = {"PIXSTOR_AZURE_SEQUENCES": "off"}


def nodes(tmp_path, fake, count: int, url: str = "", **settings: str):
    """``count`` tools: nodes of their own sharing the database at ``url``, else the workers
    of one node sharing its answer cache and rate file."""
    tools = []
    for n in range(count):
        own = tmp_path / f"node{n}"
        shared = {
            "PIXSTOR_AZURE_CACHE": str(own / "answers.sqlite3"),
            "PIXSTOR_AZURE_RATE_FILE": str(own / "run" / "rate.sqlite3"),
        }
        if url:
            shared["PIXSTOR_AZURE_DATABASE"] = url
        else:  # one node: its workers share the cache and the rate file
            shared = {
                "PIXSTOR_AZURE_CACHE": str(tmp_path / "answers.sqlite3"),
                "PIXSTOR_AZURE_RATE_FILE": str(tmp_path / "run" / "rate.sqlite3"),
            }
        tools.append(Tool(own, fake, **{**shared, **NOT_A_SEQUENCE, **settings}))
    return tools


def run_together(tools, *args: str):
    """Start every tool at once; their results, once all are done."""
    running = [tool.start(*args) for tool in tools]
    results = [process.communicate(timeout=300) for process in running]
    for process, (_, err) in zip(running, results):
        assert process.returncode == 0, err
    return results


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
def test_processes_over_the_same_pictures_pay_each_answer_once(engine, tmp_path, request):
    url = request.getfixturevalue("database")["node"] if engine == "postgresql" else ""
    pictures = frames(tmp_path / "pictures", PICTURES)
    with FakeAzure() as fake:
        serve(fake)
        tools = nodes(tmp_path, fake, 3, url)
        run_together(tools, "tag", "--jobs", "2", "--no-progress", str(tmp_path / "pictures"))
        billed = [r for r in list(fake.requests) if r.method == "POST"]
    assert len(billed) == len(pictures) * 3  # three plugins: three answers per picture
    for tool in tools:  # and every process wrote every picture's fields
        shown = tool.run("show", str(tmp_path / "pictures"))
        assert shown.returncode == 0 and shown.stdout.count("azure_classes") == len(pictures)


@pytest.mark.parametrize("shared", [True, False], ids=["one budget", "each its own"])
def test_nodes_share_the_tiers_rate_with_no_429(shared, tmp_path, request):
    tier = 20.0
    url = request.getfixturevalue("database")["node"] if shared else ""
    with FakeAzure(tps=tier) as fake:
        serve(fake)
        tools = []
        for n in range(3):
            own = tmp_path / f"node{n}"
            frames(own / "pictures", 40, first=40 * n)  # each node's pictures its own
            settings = {
                "CUSTOM_VISION_REQUESTS_PER_SECOND": f"{tier:g}",
                "PIXSTOR_AZURE_CACHE": str(own / "answers.sqlite3"),
                "PIXSTOR_AZURE_RATE_FILE": str(own / "run" / "rate.sqlite3"),
            }
            if url:
                settings["PIXSTOR_AZURE_DATABASE"] = url
            tools.append(Tool(own, fake, **settings, **NOT_A_SEQUENCE))
        counts = []

        def sample() -> None:  # answers given, over time, while all three run
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not _answered(fake):
                time.sleep(0.02)
            time.sleep(1.5)
            counts.append((time.monotonic(), _answered(fake)))
            time.sleep(3.0)
            counts.append((time.monotonic(), _answered(fake)))

        sampler = threading.Thread(target=sample)
        sampler.start()
        args = ("tag", "-p", "classification", "--jobs", "3", "--no-progress", "pictures")
        running = [tool.start(*args) for tool in tools]
        for process in running:
            process.communicate(timeout=300)
        sampler.join()
        rate = (counts[1][1] - counts[0][1]) / (counts[1][0] - counts[0][0])
    if shared:
        assert fake.rate_limited == 0
        assert rate >= 0.8 * tier  # the bench measures 0.95: this machine may be busy
    else:  # each node at the tier's rate: three times too many
        assert fake.rate_limited > 0


def _answered(fake) -> int:
    return sum(1 for r in list(fake.requests) if r.status == 200)


def test_a_wrong_key_found_on_one_node_holds_on_every_node(database, tmp_path):
    frames(tmp_path / "pictures", 4)
    with FakeAzure() as fake:
        serve(fake)
        first, second = nodes(tmp_path, fake, 2, database["node"], CUSTOM_VISION_KEY="wrong-key-71")
        args = ("tag", "-p", "classification", "--jobs", "1", "--no-progress", "pictures")
        done = first.run(*args, cwd=tmp_path)
        assert done.returncode == 1
        asked = len(fake.requests)
        assert asked == 1  # the first file found it; the others failed without asking
        done = second.run(*args, cwd=tmp_path)
        assert done.returncode == 1 and "401" in done.stderr
        assert len(fake.requests) == asked  # the other node asked nothing
        assert "wrong-key-71" not in done.stderr + done.stdout


def test_a_429_pauses_every_node(database, monkeypatch, tmp_path, clock):
    monkeypatch.setenv("PIXSTOR_AZURE_DATABASE", database["node"])
    with FakeAzure() as fake:
        serve(fake)
        fake.fail_next(429, headers={"Retry-After": "3"})
        url = (
            f"{fake.url}/customvision/v3.0/Prediction/{CLASSIFY_PROJECT}/classify/iterations/"
            "production/image/nostore"
        )
        # One attempt: this node gives up at once, and only the pause makes the others wait.
        config = client.HttpConfig(attempts=1, pacer=pacing.RatePacer(pacing.RateLimit(10.0)))
        started = pixstor_clock.wall()
        picture = frames(tmp_path, 1)[0].read_bytes()
        headers = {"Prediction-Key": fake.key}
        with pytest.raises(ServiceError, match="429"):
            client.post("Custom Vision", url, config, headers=headers, data=picture)
    # Another node's next request starts after the wait the service asked of this one.
    other = postgres.PostgresEngine(
        postgres.parse(database["node"]), SqliteEngine(None, str(tmp_path / "rate")), 2.0
    )
    try:
        start = other.reserve("Custom Vision 127.0.0.1", 0.1, started, None)
    finally:
        other.close()
    assert start >= started + 3.0


def test_threads_of_one_process_meeting_one_picture_pay_once(
    fake_classifier, photo, store, monkeypatch
):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0")  # every class is written
    fake_classifier.fail_next(200, delay=0.5)  # the first answer takes a while: all meet
    plugin = azureclassification.AzureClassificationPlugin()
    statuses = []

    def work(n: int) -> None:
        statuses.append(plugin.process(f"item-{n}", str(photo)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [PluginStatus.SUCCESS] * 4
    assert len([r for r in fake_classifier.requests if r.method == "POST"]) == 1
    assert store.read("item-3", "image") == store.read("item-0", "image")
