"""The engine contract (answers/engine.py), one suite for both engines: the node's own SQLite
files, and a PostgreSQL database on a real server.

Each engine made by ``make()`` stands for one worker process: with SQLite, the processes of one
node sharing its answer cache and rate file; with PostgreSQL, a process on any node (each with
a SQLite fallback of its own). A dead claimant is a real process, killed.
"""

import json
import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

from pixstor_azure.answers import cache, postgres
from pixstor_azure.answers.answer import fresh
from pixstor_azure.answers.engine import OUTAGE, REFUSED, Hold
from pixstor_azure.answers.local import SqliteEngine
from tests.conftest import ROOT

IDENTITY = {"service": "customvision", "host": "westeurope.api.cognitive.microsoft.com"}
OTHER = {"service": "vision", "host": "westeurope.api.cognitive.microsoft.com"}
CONTENT = "5d" * 32
KEY = "Custom Vision westeurope.api.cognitive.microsoft.com"


def answer(tag: str = "coffee"):
    body = {"predictions": [{"tagName": tag, "probability": 0.9}], "iteration": "it-1"}
    return fresh(body, (1024, 768), (4000, 3000), "it-1", 12345)


class Maker:
    """Engines of one kind on one shared store; ``spawn_args`` for a process of its own."""

    def __init__(self, kind: str, folder, url: str = "") -> None:
        self.kind, self.folder, self.url = kind, folder, url
        self.made = []

    def __call__(self):
        if self.kind == "sqlite":
            engine = SqliteEngine(
                cache.AnswerCache(self.folder / "answers.sqlite3"), str(self.folder / "rate")
            )
        else:
            own = self.folder / f"process{len(self.made) + 1}"
            own.mkdir()
            local = SqliteEngine(cache.AnswerCache(own / "answers.sqlite3"), str(own / "rate"))
            engine = postgres.PostgresEngine(postgres.parse(self.url), local, 2.0)
        self.made.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.made:
            engine.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def make(request, tmp_path):
    url = request.getfixturevalue("database")["node"] if request.param == "postgresql" else ""
    maker = Maker(request.param, tmp_path, url)
    yield maker
    maker.close()


def no_warnings(logs) -> bool:
    return not [r for r in logs.records if r.levelno >= logging.WARNING]


# ------------------------------------------------------------------ answers


def test_an_answer_kept_by_one_process_is_found_by_another(make, logs):
    first, second = make(), make()
    assert second.get(CONTENT, IDENTITY) is None
    assert first.put(CONTENT, IDENTITY, answer())
    found = second.get(CONTENT, IDENTITY)
    assert found.cached and found.body == answer().body
    assert (found.sent, found.display, found.model, found.bytes_sent) == (
        (1024, 768),
        (4000, 3000),
        "it-1",
        12345,
    )
    assert second.get(CONTENT, OTHER) is None  # another way of asking: another answer
    assert no_warnings(logs)


def test_an_answer_asked_again_replaces_the_kept_one(make):
    engine = make()
    engine.put(CONTENT, IDENTITY, answer("tea"))
    engine.put(CONTENT, IDENTITY, answer("coffee"))
    assert engine.get(CONTENT, IDENTITY).body["predictions"][0]["tagName"] == "coffee"


def test_an_error_body_is_not_kept(make):
    engine = make()
    assert not engine.put(CONTENT, IDENTITY, fresh({"error": {"code": "500"}}, (1, 1), (1, 1)))
    assert engine.get(CONTENT, IDENTITY) is None


# ------------------------------------------------------------------ claims


def test_one_claimant_at_a_time_and_the_answer_ends_the_claim(make):
    first, second = make(), make()
    assert first.claim(CONTENT, IDENTITY, 90.0)
    assert not second.claim(CONTENT, IDENTITY, 90.0)
    assert second.claim(CONTENT, OTHER, 90.0)  # another answer: a claim of its own
    first.put(CONTENT, IDENTITY, answer())
    assert second.get(CONTENT, IDENTITY) is not None
    assert second.claim(CONTENT, IDENTITY, 90.0)  # free again


def test_a_claimant_that_lets_go_frees_the_claim(make):
    first, second = make(), make()
    assert first.claim(CONTENT, IDENTITY, 90.0)
    first.release(CONTENT, IDENTITY)
    assert second.claim(CONTENT, IDENTITY, 90.0)
    assert not first.claim(CONTENT, IDENTITY, 90.0)


def test_a_claim_ends_with_its_lease(make, clock):
    first, second = make(), make()
    assert first.claim(CONTENT, IDENTITY, 30.0)
    clock.advance(29.0)
    assert not second.claim(CONTENT, IDENTITY, 30.0)
    clock.advance(2.0)
    assert second.claim(CONTENT, IDENTITY, 30.0)


def test_the_claim_of_a_process_that_died_is_taken_over_at_once(make):
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        import azurevision
        from pixstor_azure.answers import cache, postgres
        from pixstor_azure.answers.local import SqliteEngine
        kind, folder, url = sys.argv[1:4]
        local = SqliteEngine(cache.AnswerCache(Path(folder) / "answers.sqlite3"),
                             str(Path(folder) / "rate"))
        engine = local if kind == "sqlite" else postgres.PostgresEngine(
            postgres.parse(url), SqliteEngine(None, os.devnull), 5.0)
        print(engine.claim({CONTENT!r}, {IDENTITY!r}, 3600.0), flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, make.kind, str(make.folder), make.url],
        stdout=subprocess.PIPE,
        universal_newlines=True,
        timeout=60,
    )
    assert done.stdout.strip() == "True" and done.returncode == -9
    waiter, alive = make(), make()
    assert alive.claim(CONTENT, OTHER, 3600.0)
    # A database's server process ends when it reads the closed connection: at once, or nearly.
    deadline = time.monotonic() + 5.0
    while not waiter.claim(CONTENT, IDENTITY, 90.0):
        assert time.monotonic() < deadline, "the dead claimant's claim was never taken over"
        time.sleep(0.01)
    assert not waiter.claim(CONTENT, OTHER, 90.0)  # a live claimant's claim stays its own


# ------------------------------------------------------------------ the rate budget


def test_every_process_takes_its_turn_from_one_budget(make, clock):
    engines = [make() for _ in range(4)]
    gap = 0.1
    now = clock.wall()
    starts = [engines[n % 4].reserve(KEY, gap, now, None) for n in range(40)]
    assert starts[0] == pytest.approx(now, abs=0.01)
    spacing = [b - a for a, b in zip(starts, starts[1:])]
    assert min(spacing) == pytest.approx(gap, abs=1e-6)
    assert max(spacing) == pytest.approx(gap, abs=1e-6)
    # Another service's host has a budget of its own.
    later = engines[0].reserve("Azure AI Vision other.host", gap, now, None)
    assert later == pytest.approx(now, abs=0.01)


def test_a_start_too_far_away_is_not_taken(make, clock):
    first, second = make(), make()
    now = clock.wall()
    for _ in range(10):
        first.reserve(KEY, 0.5, now, None)
    assert second.reserve(KEY, 0.5, now, 4.0) is None  # the next is 5 s away
    assert second.reserve(KEY, 0.5, now, 5.5) == pytest.approx(now + 5.0, abs=0.01)


def test_a_429_pauses_every_process(make, clock):
    first, second = make(), make()
    now = clock.wall()
    first.reserve(KEY, 0.1, now, None)
    first.pause(KEY, now + 30.0)
    assert second.reserve(KEY, 0.1, now, 10.0) is None
    assert second.reserve(KEY, 0.1, now, None) == pytest.approx(now + 30.0, abs=0.01)
    assert first.reserve(KEY, 0.1, now, None) == pytest.approx(now + 30.1, abs=0.01)


# ------------------------------------------------------------------ holds


def test_a_hold_found_by_one_process_holds_for_every_process(make, clock):
    first, second = make(), make()
    now = clock.wall()
    error = json.dumps({"message": "Custom Vision answered 401: Access denied"})
    first.hold("refusal-key", Hold(REFUSED, now + 60.0, 0.0, now, error, node="node-a"))
    found = second.holds(["refusal-key", "outage-key"])
    assert list(found) == ["refusal-key"]
    assert found["refusal-key"].kind == REFUSED and found["refusal-key"].error == error
    assert found["refusal-key"].until == pytest.approx(now + 60.0, abs=0.01)
    assert found["refusal-key"].node == "node-a"


def test_one_process_of_all_probes_a_hold_whose_time_is_up(make, clock):
    engines = [make() for _ in range(3)]
    now = clock.wall()
    engines[0].hold("outage-key", Hold(OUTAGE, now + 30.0, 30.0, now, "{}"))
    assert not any(e.probe("outage-key", now + 10.0, now + 70.0) for e in engines)
    got = [e.probe("outage-key", now + 31.0, now + 91.0) for e in engines]
    assert got.count(True) == 1
    assert engines[2].holds(["outage-key"])["outage-key"].probing


def test_lifting_a_hold_says_what_was_lifted_once(make, clock):
    first, second = make(), make()
    now = clock.wall()
    first.hold("outage-key", Hold(OUTAGE, now + 30.0, 30.0, now - 100.0, "{}"))
    lifted = second.lift(["outage-key", "refusal-key"])
    assert list(lifted) == ["outage-key"]
    assert lifted["outage-key"].since == pytest.approx(now - 100.0, abs=0.01)
    assert first.lift(["outage-key"]) == {}
    assert first.holds(["outage-key"]) == {}


# ------------------------------------------------------------------ the node's file unusable


def test_an_unusable_rate_file_leaves_each_process_on_its_own(tmp_path, logs, clock):
    folder = tmp_path / "a-folder-not-a-file"
    folder.mkdir()
    engine = SqliteEngine(cache.AnswerCache(tmp_path / "answers.sqlite3"), str(folder))
    now = clock.wall()
    assert engine.reserve(KEY, 0.1, now, None) == now
    assert engine.reserve(KEY, 0.1, now, None) == pytest.approx(now + 0.1)
    assert engine.claim(CONTENT, IDENTITY, 90.0)
    engine.hold("k", Hold(REFUSED, now + 60, 0.0, now, "{}"))
    assert list(engine.holds(["k"])) == ["k"]
    said = [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and f"the rate file {folder} cannot be used" in said[0]
    os.rmdir(str(folder))
    clock.advance(61.0)
    assert engine.reserve(KEY, 0.1, clock.wall(), None) == clock.wall()  # the file, made now
    assert os.path.isfile(str(folder))
    engine.close()
