"""Faults of the database cost no file: a real server stopped, restarted, frozen, locked,
made read-only, filled up, logged into with the wrong password, without or with older tables.

Each time: every call returns (from the node's own fallback when it must), none waits past the
database's timeout or the file's budget, one warning says why, the database is tried again at
most once a minute, and it is used again once it is back, without a restart.
"""

import logging
import os
import subprocess
import threading
import time

import psycopg2
import pytest

from pixstor_azure.answers import cache, pgschema, postgres
from pixstor_azure.answers.answer import fresh
from pixstor_azure.answers.local import SqliteEngine
from pixstor_azure.ground import budget
from pixstor_azure.tool import db as dbtool
from tests.conftest import assert_no_key
from tests.postgres import NODE, NODE_PASSWORD, OWNER, OWNER_PASSWORD, init_database

IDENTITY = {"service": "customvision", "host": "westeurope.api.cognitive.microsoft.com"}
CONTENT = "a1" * 32
LATER = "b2" * 32
KEY = "Custom Vision westeurope.api.cognitive.microsoft.com"
TIMEOUT = 0.5  # PIXSTOR_AZURE_DATABASE_TIMEOUT for these tests
S = pgschema.SCHEMA


def answer(tag: str = "coffee"):
    return fresh({"predictions": [{"tagName": tag, "probability": 0.9}]}, (10, 10), (10, 10))


@pytest.fixture
def cluster(own_server, tmp_path):
    """A server of the test's own with the tables made, and an engine logged in as a node."""
    name = own_server.new_database()
    urls = init_database(own_server, name)
    local = SqliteEngine(cache.AnswerCache(tmp_path / "answers.sqlite3"), str(tmp_path / "rate"))
    engine = postgres.PostgresEngine(postgres.parse(urls["node"]), local, TIMEOUT, nodes=4)
    engine.server, engine.database = own_server, name
    yield engine
    engine.close()


def warnings(logs):
    return [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]


def timed(call, *args):
    started = time.monotonic()
    result = call(*args)
    return result, time.monotonic() - started


def test_a_stopped_server_costs_no_file_and_is_used_again_when_back(cluster, logs, clock):
    assert cluster.put(CONTENT, IDENTITY, answer())
    cluster.server.stop()
    found, took = timed(cluster.get, CONTENT, IDENTITY)
    assert found is None  # the node's own cache has not got it: asked as without a cache
    assert took < TIMEOUT + 0.5
    assert cluster.put(LATER, IDENTITY, answer("tea"))  # kept by the node meanwhile
    assert cluster.local.get(LATER, IDENTITY) is not None
    said = warnings(logs)
    assert len(said) == 1 and "cannot be used" in said[0] and "divided by 4 nodes" in said[0]
    cluster.server.start()
    assert cluster.get(CONTENT, IDENTITY) is None  # not tried again before a minute is up
    clock.advance(61.0)
    assert cluster.get(CONTENT, IDENTITY) is not None
    said = warnings(logs)
    assert len(said) == 2 and "is used again after 61 s" in said[1]
    assert_no_key(logs, NODE_PASSWORD)


def test_a_restart_between_two_files_is_not_even_a_log_line(cluster, logs):
    cluster.put(CONTENT, IDENTITY, answer())
    cluster.server.restart()
    assert cluster.get(CONTENT, IDENTITY) is not None  # a new connection at once
    assert warnings(logs) == []


def test_a_frozen_server_holds_no_file_past_the_timeout_and_is_tried_once_a_minute(
    cluster, logs, clock
):
    cluster.put(CONTENT, IDENTITY, answer())
    cluster.server.freeze()
    _, took = timed(cluster.get, CONTENT, IDENTITY)
    assert TIMEOUT * 0.8 < took < TIMEOUT + 0.5
    assert "did not answer within 0.5 s" in warnings(logs)[0]
    for _ in range(5):  # meanwhile the node goes on alone, without a wait
        _, took = timed(cluster.reserve, KEY, 0.1, clock.wall(), None)
        assert took < 0.1
    clock.advance(61.0)
    _, took = timed(cluster.get, CONTENT, IDENTITY)
    assert took > TIMEOUT * 0.8  # tried again: still frozen
    assert len(warnings(logs)) == 1  # the same fault: no second line
    cluster.server.thaw()
    clock.advance(61.0)
    assert cluster.get(CONTENT, IDENTITY) is not None
    assert "is used again" in warnings(logs)[-1]


def test_the_files_budget_bounds_each_wait_and_is_no_fault_of_the_database(cluster, logs):
    cluster.put(CONTENT, IDENTITY, answer())
    cluster.server.freeze()
    with budget.limit(0.2):
        found, took = timed(cluster.get, CONTENT, IDENTITY)
    assert found is None and took < 0.2 + 0.2
    assert warnings(logs) == []  # the file ran out of time, the database did not fail
    cluster.server.thaw()
    assert cluster.get(CONTENT, IDENTITY) is not None  # used at once


def test_a_lock_held_past_the_timeout_costs_no_file(cluster, logs):
    cluster.put(CONTENT, IDENTITY, answer())
    holder = psycopg2.connect(
        host=str(cluster.server.folder),
        port=cluster.server.port,
        user="postgres",
        dbname=cluster.database,
    )
    try:
        holder.cursor().execute(f"LOCK TABLE {S}.answers IN ACCESS EXCLUSIVE MODE")
        found, took = timed(cluster.get, CONTENT, IDENTITY)
        assert found is None and took < TIMEOUT + 0.5
        assert len(warnings(logs)) == 1
    finally:
        holder.close()


def test_a_read_only_database_costs_no_file(cluster, logs, clock):
    cluster.put(CONTENT, IDENTITY, answer())
    cluster.server.configure(default_transaction_read_only="on")
    assert cluster.put(LATER, IDENTITY, answer("tea"))  # kept by the node
    assert cluster.local.get(LATER, IDENTITY) is not None
    said = warnings(logs)
    assert len(said) == 1 and "it is read-only" in said[0]
    cluster.server.reset_configuration()
    clock.advance(61.0)
    assert cluster.put(LATER, IDENTITY, answer("tea"))
    assert cluster.get(LATER, IDENTITY) is not None
    assert "is used again" in warnings(logs)[-1]


def test_the_wrong_password_is_one_line_without_the_password(own_server, tmp_path, logs):
    name = own_server.new_database()
    urls = init_database(own_server, name)
    wrong = urls["node"].replace(NODE_PASSWORD, "not-the-pw-5566")
    local = SqliteEngine(cache.AnswerCache(tmp_path / "answers.sqlite3"), str(tmp_path / "rate"))
    engine = postgres.PostgresEngine(postgres.parse(wrong), local, TIMEOUT)
    try:
        assert engine.put(CONTENT, IDENTITY, answer())
        assert engine.get(CONTENT, IDENTITY) is not None  # from the node's own cache
        assert engine.claim(CONTENT, IDENTITY, 90.0)
        said = warnings(logs)
        assert len(said) == 1 and "refused the login" in said[0]
        assert_no_key(logs, "not-the-pw-5566", NODE_PASSWORD)
    finally:
        engine.close()


@pytest.mark.parametrize("version", [0, 1])
def test_tables_missing_or_older_say_to_run_db_init(own_server, tmp_path, logs, clock, version):
    name = own_server.new_database()
    owner = own_server.url(OWNER, OWNER_PASSWORD, name)
    if version:
        dbtool.init(owner, grant=None, target=version)
        own_server.sql(f"GRANT USAGE ON SCHEMA {S} TO {NODE}", db=name)
        own_server.sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {S} TO {NODE}", db=name)
    local = SqliteEngine(cache.AnswerCache(tmp_path / "answers.sqlite3"), str(tmp_path / "rate"))
    engine = postgres.PostgresEngine(
        postgres.parse(own_server.url(NODE, NODE_PASSWORD, name)), local, TIMEOUT
    )
    try:
        assert engine.put(CONTENT, IDENTITY, answer())
        said = warnings(logs)
        assert len(said) == 1 and "run `pixstor-azure db init`" in said[0]
        if version:
            assert f"at version 1, this release needs {pgschema.VERSION}" in said[0]
        dbtool.init(owner, grant=NODE)
        clock.advance(61.0)
        assert engine.put(CONTENT, IDENTITY, answer())
        assert own_server.sql(f"SELECT count(*) FROM {S}.answers", db=name) == [(1,)]
    finally:
        engine.close()


def test_a_database_out_of_space_costs_no_file(cluster, logs):
    small = _small_filesystem(cluster.server.folder / "small", cluster.server)
    try:
        cluster.server.sql(f"CREATE TABLESPACE small LOCATION '{small}'")
        cluster.server.sql(f"ALTER TABLE {S}.answers SET TABLESPACE small", db=cluster.database)
        rows = iter(range(10**6))
        for hashes in (200, 20, 0):  # large rows until the disk is full, then ever smaller
            with pytest.raises(psycopg2.errors.DiskFull):
                for n in rows:
                    cluster.server.sql(
                        f"INSERT INTO {S}.answers SELECT sha256(%(n)s::text::bytea), '\\x00', "
                        "coalesce((SELECT string_agg(sha256((%(n)s * 1000 + j)::text::bytea), '') "
                        "FROM generate_series(1, %(hashes)s) j), ''), 1, 1, 1, 1, 0, NULL, 0",
                        {"n": n, "hashes": hashes},
                        db=cluster.database,
                    )
        assert cluster.put(CONTENT, IDENTITY, answer())  # kept by the node
        assert cluster.local.get(CONTENT, IDENTITY) is not None
        said = warnings(logs)
        assert len(said) == 1 and "it is out of space" in said[0]
    finally:
        cluster.server.stop("immediate")
        subprocess.run(["umount", str(small)], check=False)


def _small_filesystem(folder, server) -> str:
    """A 2 MB file system of the server's user, for a tablespace to fill."""
    folder.mkdir()
    owner = server._owner()
    options = "size=2m,mode=700"
    if owner is not None:
        options += f",uid={owner[0].pw_uid},gid={owner[0].pw_gid}"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
    )
    if done.returncode != 0:
        why = f"a full disk needs a small file system, and mount failed: {done.stdout.strip()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    return str(folder)


def test_many_threads_of_one_process_share_the_connection_without_a_fault(cluster, logs):
    cluster.put(CONTENT, IDENTITY, answer())
    found = []

    def look() -> None:
        for _ in range(50):
            found.append(cluster.get(CONTENT, IDENTITY) is not None)

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [True] * 400
    assert warnings(logs) == []


def test_a_server_killed_under_a_statement_falls_back_then_recovers(cluster, logs, clock):
    cluster.put(CONTENT, IDENTITY, answer())
    cluster.server.stop("immediate")  # a crash: no goodbye to the connections
    assert cluster.get(CONTENT, IDENTITY) is None
    cluster.server.start()
    clock.advance(61.0)
    assert cluster.get(CONTENT, IDENTITY) is not None
    said = warnings(logs)
    assert len(said) == 2 and "is used again" in said[1]
