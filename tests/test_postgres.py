"""The PostgreSQL engine against a real server: answers, claims, the rate budget and holds shared
by every node, the tables `db init` makes and the grants it gives, `db status` and `db import`.

Each "node" here is an engine with a connection and a node-local fallback of its own, as each
worker process of each node has; a dead claimant is a real process killed.
"""

import sqlite3
import subprocess
import sys
import textwrap

import psycopg2
import pytest

from pixstor_azure.answers import cache, pgschema, postgres
from pixstor_azure.answers.local import SqliteEngine
from pixstor_azure.ground.errors import SettingsError
from pixstor_azure.ground.settings import Settings
from pixstor_azure.tool import cli
from pixstor_azure.tool import db as dbtool
from tests.conftest import ROOT, assert_no_key
from tests.postgres import NODE, NODE_PASSWORD, OWNER, OWNER_PASSWORD
from tests.test_engines import CONTENT, IDENTITY, KEY, OTHER, answer
from tests.wording import assert_mentions, assert_problem


@pytest.fixture
def node(tmp_path):
    """``node(url)``: an engine as one worker process of one node has it (its own SQLite
    fallback in a folder of its own)."""
    made = []

    def make(url: str, timeout: float = 2.0, nodes: int = 1) -> postgres.PostgresEngine:
        folder = tmp_path / f"node{len(made) + 1}"
        folder.mkdir()
        local = SqliteEngine(cache.AnswerCache(folder / "answers.sqlite3"), str(folder / "rate"))
        engine = postgres.PostgresEngine(postgres.parse(url), local, timeout, nodes)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


# ------------------------------------------------------------------ the setting


def test_the_setting_names_the_extra_when_the_driver_is_missing(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.modules["psycopg2"] = None  # as on a node without the [postgres] extra
        import azurevision
        from pixstor_azure.answers import postgres
        from pixstor_azure.ground.errors import SettingsError
        from pixstor_azure.ground.settings import Settings
        try:
            postgres.target(Settings({{"PIXSTOR_AZURE_DATABASE": "postgresql://u:pw1@h/db"}}))
        except SettingsError as exc:
            print(exc)
        """
    )
    said = subprocess.run(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, universal_newlines=True, timeout=60
    ).stdout
    assert "setting PIXSTOR_AZURE_DATABASE" in said
    assert_mentions(said, "postgres.NO_DRIVER", extra="postgres", driver="psycopg2-binary")
    assert "pw1" not in said


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("mysql://pixstor:secret-pw-77@db/pixstor", "postgres.NOT_A_POSTGRES_URL"),
        ("db.example.com:5432", "postgres.NOT_A_POSTGRES_URL"),
        # libpq would quote the password
        ("postgresql://pixstor:secret%zz-pw-77@db/pixstor", "postgres.NOT_READ_BY_LIBPQ"),
        (
            "postgresql://pixstor@db/pixstor?sslmode=verify-full&password=secret-pw-77&bogus=1",
            "postgres.NOT_READ_BY_LIBPQ",
        ),
    ],
)
def test_a_setting_that_is_not_a_url_libpq_reads_is_named_never_shown(value, problem):
    with pytest.raises(SettingsError) as raised:
        postgres.target(Settings({"PIXSTOR_AZURE_DATABASE": value}))
    assert_problem(raised.value, "PIXSTOR_AZURE_DATABASE", problem)
    assert "secret" not in str(raised.value) and "77" not in str(raised.value)


def test_the_url_is_shown_without_its_password():
    found = postgres.parse(
        "postgresql://pixstor_node:p%40ss-w0rd-91@db1.example.com:5433/pixstor?sslmode=verify-full"
    )
    assert (
        found.shown == "postgresql://pixstor_node@db1.example.com:5433/pixstor?sslmode=verify-full"
    )
    assert found.password == "p@ss-w0rd-91"
    assert postgres.clean("failed for p@ss-w0rd-91 and p%40ss-w0rd-91", found) == (
        "failed for **** and ****"
    )


def test_not_set_is_each_node_on_its_own():
    assert postgres.target(Settings({})) is None


# ------------------------------------------------------------------ db init, status, import


def test_init_is_versioned_and_a_second_run_has_nothing_to_do(postgres_server):
    name = postgres_server.new_database()
    try:
        owner = postgres_server.url(OWNER, OWNER_PASSWORD, name)
        first = dbtool.init(owner, target=1)
        assert "from version 0 to 1" in first[0]
        then = dbtool.init(owner, grant=NODE)
        assert f"from version 1 to {pgschema.VERSION}" in then[0]
        assert dbtool.init(owner)[0].endswith(f"schema version {pgschema.VERSION}, nothing to do")
        versions = postgres_server.sql(
            f"SELECT version FROM {pgschema.SCHEMA}.schema_version ORDER BY version", db=name
        )
        assert [v for (v,) in versions] == list(range(1, pgschema.VERSION + 1))
    finally:
        postgres_server.drop_database(name)


def test_the_nodes_role_may_use_the_tables_and_change_none_of_them(database, postgres_server):
    url = database["node"]
    empty = postgres_server.new_database()
    try:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            dbtool.init(postgres_server.url(NODE, NODE_PASSWORD, empty))
    finally:
        postgres_server.drop_database(empty)
    link = psycopg2.connect(url)
    link.autocommit = True
    try:
        cursor = link.cursor()
        for statement in (
            f"CREATE TABLE {pgschema.SCHEMA}.other (x int)",
            f"DROP TABLE {pgschema.SCHEMA}.answers",
            f"TRUNCATE {pgschema.SCHEMA}.answers",
            f"DELETE FROM {pgschema.SCHEMA}.answers",
            f"ALTER TABLE {pgschema.SCHEMA}.rates ADD COLUMN y int",
        ):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute(statement)
    finally:
        link.close()


def test_a_role_name_that_is_not_plain_is_refused_before_any_change(postgres_server):
    name = postgres_server.new_database()
    try:
        owner = postgres_server.url(OWNER, OWNER_PASSWORD, name)
        with pytest.raises(ValueError):
            dbtool.init(owner, grant='node"; DROP TABLE x; --')
        found = postgres_server.sql(
            "SELECT to_regclass(%s) IS NULL", (f"{pgschema.SCHEMA}.answers",), db=name
        )
        assert found == [(True,)]
    finally:
        postgres_server.drop_database(name)


def test_status_shows_answers_size_oldest_claims_rates_and_nodes(database, node, clock):
    engine = node(database["node"])
    engine.put(CONTENT, IDENTITY, answer())
    engine.put("6e" * 32, OTHER, answer())
    engine.claim("7f" * 32, IDENTITY, 90.0)
    engine.reserve(KEY, 0.1, clock.wall(), None)
    said = "\n".join(dbtool.status(postgres.parse(database["owner"])))
    now = pgschema.VERSION
    assert f"schema version {now} (this release needs {now})" in said
    assert "answers: 2 in " in said
    assert "oldest answer: asked " in said
    assert "1 from customvision" in said and "1 from vision" in said
    assert "claims: 1 answers being asked now" in said
    assert f"rate {KEY}: " in said and "spaced for 10.00/s" in said
    assert f"nodes seen in the last hour: 1: {engine.node}" in said
    assert NODE_PASSWORD not in said and OWNER_PASSWORD not in said


def test_import_copies_a_nodes_cache_once(database, node, tmp_path):
    sqlite = cache.AnswerCache(tmp_path / "old.sqlite3")
    contents = [f"{n:064x}" for n in range(25)]
    for content in contents:
        sqlite.put(content, IDENTITY, answer(content[-4:]))
    sqlite.close()
    engine = node(database["node"])
    engine.put(contents[0], IDENTITY, answer("kept in the database"))
    said = dbtool.import_cache(postgres.parse(database["owner"]), tmp_path / "old.sqlite3")
    assert "25 answers read, 24 copied" in said[0] and "1 were there already" in said[0]
    for content in contents[1:]:
        assert engine.get(content, IDENTITY).body["predictions"][0]["tagName"] == content[-4:]
    assert engine.get(contents[0], IDENTITY).body["predictions"][0]["tagName"] == (
        "kept in the database"
    )
    again = dbtool.import_cache(postgres.parse(database["owner"]), tmp_path / "old.sqlite3")
    assert "25 answers read, 0 copied" in again[0]


def test_import_refuses_a_file_that_is_no_answer_cache(database, tmp_path):
    other = tmp_path / "metadata.sqlite3"
    sqlite3.connect(str(other)).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ValueError, match="not an answer cache"):
        dbtool.import_cache(postgres.parse(database["owner"]), other)


def test_the_db_commands_run_from_the_tool(database, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_DATABASE", database["owner"])
    assert cli.main(["db", "init"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert cli.main(["db", "status"]) == 0
    out = capsys.readouterr().out
    assert "answers: 0 in " in out and OWNER_PASSWORD not in out
    monkeypatch.setenv("PIXSTOR_AZURE_DATABASE", database["owner"].replace(OWNER_PASSWORD, "x1"))
    assert cli.main(["db", "status"]) == 1
    out = capsys.readouterr().out
    assert "password authentication failed" in out and OWNER_PASSWORD not in out


def test_the_db_commands_say_what_they_miss(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIXSTOR_AZURE_DATABASE", raising=False)
    assert cli.main(["db", "status"]) == 1
    assert_mentions(capsys.readouterr().err, "db.DATABASE_NOT_SET")
    # Nothing is asked of the database before the file to import is known.
    monkeypatch.setenv("PIXSTOR_AZURE_DATABASE", "postgresql://pixstor@db.invalid/pixstor")
    monkeypatch.setenv("PIXSTOR_AZURE_CACHE", "off")
    assert cli.main(["db", "import"]) == 1
    assert_mentions(capsys.readouterr().err, "db.CACHE_OFF")


def test_doctor_says_the_database_works_or_why_not(database, monkeypatch, own_server):
    lines, ok = dbtool.check(Settings({"PIXSTOR_AZURE_DATABASE": database["node"]}))
    said = "\n".join(lines)
    assert ok, said
    assert f"works: schema version {pgschema.VERSION}, a lookup takes" in said
    assert NODE_PASSWORD not in said
    # Another server, whose database has no tables yet.
    name = own_server.new_database()
    lines, ok = dbtool.check(
        Settings({"PIXSTOR_AZURE_DATABASE": own_server.url(OWNER, OWNER_PASSWORD, name)})
    )
    assert ok is False and "run `pixstor-azure db init`" in lines[-1]
    own_server.stop()
    lines, ok = dbtool.check(
        Settings({"PIXSTOR_AZURE_DATABASE": own_server.url(OWNER, OWNER_PASSWORD, name)})
    )
    assert ok is False and lines[-1].startswith("cannot connect:")
    assert dbtool.check(Settings({})) == (
        ["not set: each node keeps its own answer cache and rate limit"],
        None,
    )


def test_no_password_in_any_log_line(database, node, logs):
    engine = node(database["node"].replace(NODE_PASSWORD, "wrong-pw-4411"))
    engine.put(CONTENT, IDENTITY, answer())
    assert_no_key(logs, "wrong-pw-4411", NODE_PASSWORD)
