"""Benchmark of several nodes sharing one PostgreSQL database (a script, not a test).

Usage, from the repository root (Python 3.8 or later, psycopg2, and PostgreSQL's server
binaries: ``apt-get install postgresql``; run as root, the server runs as ``postgres``)::

    python bench/cluster.py                 # every part, about 5 minutes
    python bench/cluster.py --answers 100000 --seconds 10   # quicker
    python bench/cluster.py --parts latency # only some: rate, billed, latency

It starts a PostgreSQL server of its own in a temporary folder (tests/postgres.py), makes the
tables with ``db init`` and logs the "nodes" in as the role the README sets up. Each process
stands for one node (its own store, answer cache and rate file), runs the command-line tool's
``tag`` as an administrator would, and calls a local FakeAzure (tests/fakeazure.py) that counts
what it is sent and, for the rate, enforces the tier's rate per resource as a token bucket (a
second's burst) answering 429 above it.

(a) rate: 1, 2 and 4 processes, each tagging pictures of its own with the classifier
    (``--jobs 4``), ``CUSTOM_VISION_REQUESTS_PER_SECOND`` set to the tier's rate (``--tier``):
    the rate the resource answered, over the middle of ``--seconds``, as a share of the tier,
    and the 429s it sent. With the database; and, for comparison, each node on its own with the
    tier's rate (what the README asked to divide before).
(b) billed: N processes tagging the same ``--pictures`` pictures with the three plugins, all
    started at once, in the same order: the calls the service was sent, against the distinct
    answers (pictures x 3). As N nodes sharing the database; and as N workers of one node
    sharing its SQLite answer cache and rate file (claims through the rate file).
(c) latency: a cache hit through the engine (``PostgresEngine.get``: one indexed lookup and the
    answer decompressed) with ``--answers`` answers in the database, p50 and p99 over 20,000
    lookups of random answers, one thread; target p99 <= 5 ms.
(d) storage: bytes the answers take in the database (table, TOAST and index), per answer and
    per million, for a mix of the three plugins' recorded answers.

The exit status is 1 when a target is missed.
"""

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import azurevision  # noqa: E402, F401  (loads common/ as pixstor_azure, as the plugins do)
from pixstor_azure.answers import cache, pgschema, postgres  # noqa: E402
from pixstor_azure.answers.local import SqliteEngine  # noqa: E402
from tests import postgres as pgtest  # noqa: E402
from tests.fakeazure import FakeAzure  # noqa: E402
from tests.toolrun import Tool, frames, serve  # noqa: E402

S = pgschema.SCHEMA
RECORDINGS = ROOT / "tests" / "recordings"
LATENCY_TARGET_MS = 5.0
RATE_TARGET = 0.95
IDENTITY = {
    "service": "customvision",
    "host": "westeurope.api.cognitive.microsoft.com",
    "api": "prediction-v3.0",
    "task": "classify",
    "project": "64b822c5-8082-4b36-a426-27225f4aa18c",
    "iteration": "production",
    "edge": 1024,
}


def recorded(name: str):
    return json.loads((RECORDINGS / name).read_text(encoding="utf-8"))["body"]


# ------------------------------------------------------------------ the server


class Bench:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        found = pgtest.binaries()
        if found is None:
            raise SystemExit("no PostgreSQL server binaries: apt-get install postgresql")
        self.clusters = pgtest.Clusters(found)
        self.server = self.clusters.new()
        conf = self.server.data / "postgresql.conf"
        # A server as it would be run: fsync on (the tests turn it off), more memory.
        conf.write_text(
            conf.read_text()
            .replace("fsync = off", "fsync = on")
            .replace("shared_buffers = 32MB", "shared_buffers = 512MB")
        )
        self.server.start()
        self.server.make_roles()

    def database(self) -> Dict[str, str]:
        name = self.server.new_database()
        return pgtest.init_database(self.server, name)

    def close(self) -> None:
        self.clusters.close()


# ------------------------------------------------------------------ (a) rate


def rate(bench: Bench, processes: int, tier: float, seconds: float, shared: bool) -> dict:
    """The rate the service answered and its 429s, for ``processes`` nodes tagging at once."""
    urls = bench.database() if shared else None
    with FakeAzure(tps=tier) as fake:
        serve(fake)
        tools = []
        for n in range(processes):
            folder = bench.folder / f"rate-{processes}-{shared}-{n}"
            # Each node's pictures of its own (each frame is as wide as its number says).
            count = int(tier * (seconds + 10) / processes) + 20
            frames(folder / "pictures", count, first=n * count)
            settings = {
                "CUSTOM_VISION_REQUESTS_PER_SECOND": f"{tier:g}",
                "PIXSTOR_AZURE_RATE_FILE": str(folder / "run" / "rate.sqlite3"),
                "PIXSTOR_AZURE_CACHE": str(folder / "answers.sqlite3"),
                # frames() names pictures as a sequence's frames: each an answer of its own.
                "PIXSTOR_AZURE_SEQUENCES": "off",
            }
            if urls:
                settings["PIXSTOR_AZURE_DATABASE"] = urls["node"]
            tools.append(Tool(folder, fake, **settings))
        running = [
            t.start("tag", "-p", "classification", "--jobs", "4", "--no-progress", "pictures")
            for t in tools
        ]
        answered = _count_over(fake, seconds)
        for process in running:
            process.terminate()
        for process in running:
            process.communicate(timeout=60)
        return {
            "processes": processes,
            "shared": shared,
            "rate": answered / tier,
            "429s": fake.rate_limited,
        }


def _count_over(fake: FakeAzure, seconds: float) -> float:
    """Answers per second the fake gave (200s), over the middle of ``seconds`` (a few seconds
    for the processes to start are left out first)."""
    deadline = time.monotonic() + 60
    while not _answered(fake) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3.0)  # every process under way
    first, started = _answered(fake), time.monotonic()
    time.sleep(seconds)
    return (_answered(fake) - first) / (time.monotonic() - started)


def _answered(fake: FakeAzure) -> int:
    return sum(1 for r in list(fake.requests) if r.status == 200 and r.method == "POST")


# ------------------------------------------------------------------ (b) billed calls


def billed(bench: Bench, processes: int, pictures: int, shared: bool) -> dict:
    """Calls the service was sent when ``processes`` tag the same pictures at once."""
    urls = bench.database() if shared else None
    folder = bench.folder / f"billed-{processes}-{shared}"
    made = frames(folder / "pictures", pictures)
    with FakeAzure() as fake:
        serve(fake)
        tools = []
        for n in range(processes):
            own = folder / f"node{n}"
            settings = {
                # Without a database: the workers of one node, sharing its SQLite files.
                "PIXSTOR_AZURE_RATE_FILE": str(folder / "run" / "rate.sqlite3"),
                "PIXSTOR_AZURE_CACHE": str(folder / "answers.sqlite3"),
                # frames() names pictures as a sequence's frames: each an answer of its own.
                "PIXSTOR_AZURE_SEQUENCES": "off",
            }
            if urls:  # nodes of their own, sharing the database
                settings["PIXSTOR_AZURE_DATABASE"] = urls["node"]
                settings["PIXSTOR_AZURE_RATE_FILE"] = str(own / "run" / "rate.sqlite3")
                settings["PIXSTOR_AZURE_CACHE"] = str(own / "answers.sqlite3")
            tool = Tool(own, fake, **settings)
            tools.append(tool)
        start = threading.Barrier(processes)
        results = [None] * processes

        def run(n: int) -> None:
            start.wait()
            results[n] = tools[n].run(
                "tag", "--jobs", "1", "--no-progress", str(folder / "pictures"), timeout=600
            )

        threads = [threading.Thread(target=run, args=(n,)) for n in range(processes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        failed = [r for r in results if r.returncode != 0]
        calls = sum(1 for r in list(fake.requests) if r.method == "POST")
    return {
        "processes": processes,
        "shared": shared,
        "calls": calls,
        "distinct": len(made) * 3,
        "failed runs": len(failed),
    }


# ------------------------------------------------------------------ (c), (d) a million answers


def fill(bench: Bench, answers: int) -> Dict[str, str]:
    """A database holding ``answers`` answers: the three plugins' recorded answers in turn,
    each under a content digest of its own; filled on the server, a million in a few seconds."""
    urls = bench.database()
    bodies = [
        cache.pack(recorded("customvision-classify-200.json")),
        cache.pack(recorded("customvision-detect-200.json")),
        cache.pack(recorded("imageanalysis-analyze-200.json")),
    ]
    key, described = cache.setup(IDENTITY)
    owner = postgres.connect(postgres.parse(urls["owner"]))
    try:
        postgres.rows_of(
            owner,
            f"INSERT INTO {S}.setups VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (key, described),
        )
        step = 250000
        for first in range(0, answers, step):
            postgres.rows_of(
                owner,
                f"INSERT INTO {S}.answers SELECT sha256(i::text::bytea), %(setup)s, "
                "(ARRAY[%(a)s, %(b)s, %(c)s])[1 + i %% 3], 1024, 768, 4000, 3000, "
                "extract(epoch from now()) - i, 'it-1', 100000 "
                "FROM generate_series(%(first)s, %(last)s) i",
                {
                    "setup": key,
                    "a": bodies[0],
                    "b": bodies[1],
                    "c": bodies[2],
                    "first": first,
                    "last": min(answers, first + step) - 1,
                },
                600.0,
            )
        postgres.rows_of(owner, f"VACUUM ANALYZE {S}.answers", None, 600.0)
    finally:
        owner.close()
    bench.server.sql("CHECKPOINT")  # the fill's writes on disk: lookups measured alone
    return urls


def latency(bench: Bench, urls: Dict[str, str], answers: int, lookups: int = 20000) -> dict:
    folder = Path(tempfile.mkdtemp(dir=str(bench.folder)))
    local = SqliteEngine(cache.AnswerCache(folder / "answers.sqlite3"), str(folder / "rate"))
    engine = postgres.PostgresEngine(postgres.parse(urls["node"]), local, 2.0)
    rng = random.Random(7)
    contents = [
        hashlib.sha256(str(rng.randrange(answers)).encode()).hexdigest() for _ in range(lookups)
    ]
    for content in contents[:500]:  # the connection made, the server's caches warm
        engine.get(content, IDENTITY)
    took = []
    for content in contents:
        started = time.perf_counter()
        found = engine.get(content, IDENTITY)
        took.append((time.perf_counter() - started) * 1000)
        assert found is not None and found.cached
    engine.close()
    took.sort()
    return {
        "answers": answers,
        "p50 ms": took[len(took) // 2],
        "p99 ms": took[int(len(took) * 0.99)],
        "mean ms": statistics.mean(took),
    }


def storage(bench: Bench, urls: Dict[str, str], answers: int) -> dict:
    owner = postgres.connect(postgres.parse(urls["owner"]))
    try:
        total, index = postgres.rows_of(
            owner,
            f"SELECT pg_total_relation_size('{S}.answers'), pg_indexes_size('{S}.answers')",
        )[0]
        body = postgres.rows_of(owner, f"SELECT avg(octet_length(body)) FROM {S}.answers")[0][0]
    finally:
        owner.close()
    return {
        "answers": answers,
        "bytes per answer": total / answers,
        "of which index": index / answers,
        "compressed body": float(body),
        "GB per million": total / answers * 1e6 / 1e9,
    }


# ------------------------------------------------------------------ main


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="rate,billed,latency")
    parser.add_argument("--answers", type=int, default=1000000)
    parser.add_argument("--pictures", type=int, default=100)
    parser.add_argument("--tier", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    missed = False
    with tempfile.TemporaryDirectory(prefix="pixstor-azure-cluster-") as folder:
        os.chmod(folder, 0o755)
        bench = Bench(Path(folder))
        try:
            if "rate" in parts:
                print("(a) rate: the tier's rate reached and the 429s, processes as nodes")
                for shared in (True, False):
                    for processes in (1, 2, 4):
                        row = rate(bench, processes, args.tier, args.seconds, shared)
                        ok = not shared or (row["rate"] >= RATE_TARGET and row["429s"] == 0)
                        missed |= not ok
                        print(f"  {json.dumps(row)}{'' if ok else '  MISSED'}", flush=True)
            if "billed" in parts:
                print("(b) billed calls: processes tagging the same pictures at once")
                for shared in (True, False):
                    for processes in (1, 2, 4):
                        row = billed(bench, processes, args.pictures, shared)
                        ok = row["calls"] == row["distinct"] and not row["failed runs"]
                        missed |= not ok
                        print(f"  {json.dumps(row)}", flush=True)
            if "latency" in parts:
                print(f"(c), (d) a cache hit and storage with {args.answers:,} answers")
                started = time.monotonic()
                urls = fill(bench, args.answers)
                print(f"  filled in {time.monotonic() - started:.0f} s", flush=True)
                row = latency(bench, urls, args.answers)
                ok = row["p99 ms"] <= LATENCY_TARGET_MS
                missed |= not ok
                print(f"  {json.dumps(row)}{'' if ok else '  MISSED'}")
                print(f"  {json.dumps(storage(bench, urls, args.answers))}")
        finally:
            bench.close()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
