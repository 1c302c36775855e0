"""The client-side rate limit: never over the rate in any second, yet at least 0.95 of it used,
whatever the threads and the network's jitter; shared by the processes of a node."""

import heapq
import json
import logging
import os
import random
import subprocess
import sys
import textwrap

import pytest

from pixstor_azure.answers import ratelimit
from pixstor_azure.ground.setting_registry import RATE_FILE
from tests.conftest import ROOT

KEY = "Custom Vision westus.api.cognitive.microsoft.com"


def simulate(slots, rate: float, workers: int, seconds: float = 60.0, seed: int = 7) -> list:
    """When requests reach the service: ``workers`` threads each send a file as soon as the
    limit lets them, wait 30 to 150 ms for the answer and send the next; each request takes
    0 to 30 ms more than the others on its way (jitter). Simulated time: nothing sleeps."""
    rng = random.Random(seed)
    ready = [(0.0, worker) for worker in range(workers)]
    arrivals = []
    while ready:
        now, worker = heapq.heappop(ready)
        if now > seconds:
            continue
        start = slots.reserve(KEY, ratelimit.interval(rate), now, None)
        assert start >= now
        arrivals.append(start + rng.uniform(0.0, 0.03))
        heapq.heappush(ready, (start + rng.uniform(0.03, 0.15), worker))
    return sorted(arrivals)


def busiest_second(times: list) -> int:
    """The most requests any one second (a window [t, t + 1], both ends in) holds."""
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] < t - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def used(times: list, rate: float, start: float = 5.0, end: float = 55.0) -> float:
    """The share of the rate used between ``start`` and ``end`` seconds."""
    return sum(start <= t < end for t in times) / ((end - start) * rate)


@pytest.fixture(params=["process", "node"])
def slots(request, tmp_path):
    if request.param == "process":
        yield ratelimit.ProcessSlots()
        return
    node = ratelimit.NodeSlots(str(tmp_path / "rate.sqlite3"))
    yield node
    node.close()


@pytest.mark.parametrize(("rate", "workers"), [(1, 2), (2, 4), (10, 4), (20, 8)])
def test_never_over_the_rate_yet_at_least_095_of_it(slots, rate, workers):
    arrivals = simulate(slots, rate, workers)

    assert busiest_second(arrivals) <= rate
    assert used(arrivals, rate) >= 0.95


def test_spacing_requests_exactly_one_over_the_rate_apart_goes_over_it(monkeypatch):
    """What the margin is for, and proof that the simulation can see it."""
    monkeypatch.setattr(ratelimit, "MARGIN", 0.0)

    assert busiest_second(simulate(ratelimit.ProcessSlots(), 10, 4)) > 10


def test_a_slot_further_than_the_budget_is_not_taken(slots):
    gap = ratelimit.interval(1)
    assert slots.reserve(KEY, gap, 100.0, None) == 100.0
    assert slots.reserve(KEY, gap, 100.0, 0.5) is None  # 1.04 s away
    assert slots.reserve(KEY, gap, 100.0, 2.0) == pytest.approx(100.0 + gap)  # not taken before


def test_a_slot_left_from_before_the_clock_was_set_back_is_forgotten(slots):
    slots.reserve(KEY, 1.0, 1_000_000.0, None)
    assert slots.reserve(KEY, 1.0, 100.0, None) == 100.0  # not a wait of 11 days


def test_keys_do_not_share_slots(slots):
    slots.reserve(KEY, 1.0, 100.0, None)
    assert (
        slots.reserve("Azure AI Vision westus.api.cognitive.microsoft.com", 1.0, 100.0, None)
        == 100.0
    )


def test_the_default_file_is_in_a_folder_of_the_users_own_in_the_temporary_folder():
    import tempfile

    path = ratelimit.default_file.__wrapped__()  # conftest points the default at tmp_path
    folder = os.path.dirname(path)
    assert os.path.dirname(folder) == tempfile.gettempdir()
    assert os.path.basename(folder) == f"pixstor-azure-{os.geteuid()}"


def test_an_unusable_file_falls_back_to_this_process_with_one_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    (tmp_path / "a file").write_text("")
    missing = str(tmp_path / "a file" / "rate.sqlite3")  # a folder that cannot be
    limiters = ratelimit.limiters()

    first = limiters.reserve(KEY, 4, 100.0, None, missing)
    second = limiters.reserve(KEY, 4, 100.0, None, missing)

    assert (first, second) == (100.0, pytest.approx(100.0 + ratelimit.interval(4)))
    (line,) = [r.getMessage() for r in caplog.records]
    assert missing in line and RATE_FILE.name in line


def test_a_file_that_failed_is_tried_again_a_minute_later(tmp_path, clock):
    folder = tmp_path / "not yet"
    folder.mkdir()
    folder.chmod(0o777)  # anyone could plant the file: refused
    path = str(folder / "rate.sqlite3")
    limiters = ratelimit.limiters()
    limiters.reserve(KEY, 4, 100.0, None, path)  # this process's own slots meanwhile
    folder.chmod(0o700)

    limiters.reserve(KEY, 4, 100.0, None, path)
    assert not os.path.exists(path)  # within the minute: not tried again
    clock.sleep(ratelimit.RETRY_AFTER)
    limiters.reserve(KEY, 4, 100.0, None, path)
    assert os.path.exists(path)


def test_a_new_file_is_the_users_alone(tmp_path):
    path = tmp_path / "rate.sqlite3"
    ratelimit.limiters().reserve(KEY, 4, 100.0, None, str(path))

    assert path.stat().st_mode & 0o777 == 0o600


def test_a_file_another_user_made_is_not_shared(tmp_path, caplog, another_user):
    path = tmp_path / "rate.sqlite3"
    path.touch()
    os.chown(str(path), another_user, another_user)  # planted by someone else (root included)

    assert ratelimit.limiters().reserve(KEY, 4, 100.0, None, str(path)) == 100.0

    assert path.stat().st_size == 0  # not written to
    assert "belongs to another user" in caplog.text


CHILD = textwrap.dedent(
    """
    import json, sys, time
    import azurevision  # loads common/ as pixstor_azure, as PixStor does
    from pixstor_azure.answers import ratelimit
    path, rate, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    limiters = ratelimit.limiters()
    print("ready", flush=True)
    sys.stdin.readline()  # both start together
    starts = [limiters.reserve("Custom Vision host", rate, time.time(), None, path)
              for _ in range(count)]
    print(json.dumps(starts), flush=True)
    """
)


def test_two_worker_processes_share_one_rate(tmp_path):
    """Two real processes take their request slots from one node file at once: together
    they stay under the rate (each alone would take all of it)."""
    rate, count = 100, 100
    path = str(tmp_path / "node.sqlite3")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, path, str(rate), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            env=env,
            cwd=str(tmp_path),
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        starts = []
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            starts.extend(json.loads(out))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()

    starts.sort()
    assert len(starts) == 2 * count
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= ratelimit.interval(rate) * (1 - 1e-9)
    assert busiest_second(starts) <= rate
