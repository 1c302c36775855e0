"""The stand-in for PixStor's runtime: schema checks as PixStor's index would make, the store."""

import sqlite3

import pytest

from pixstor_azure.ground.standin import Metadata, Plugin, PluginStatus, SchemaMismatch, check
from pixstor_azure.ground.store import MetadataStore, Run

SCHEMA = [
    {"name": "title", "prompt": "Title", "value": {"datatype": "String"}},
    {"name": "tags", "prompt": "Tags", "value": {"datatype": "[String]"}},
    {"name": "flag", "prompt": "Flag", "value": {"datatype": "Boolean"}},
    {"codec": [{"name": "video", "prompt": "Video", "value": {"datatype": "String"}}]},
]


class Sample(Plugin):
    def namespace(self):
        return "image"

    def schema(self):
        return SCHEMA


def test_valid_data_passes():
    check({"title": "x", "tags": ["a", "b"], "flag": True, "codec": {"video": "h264"}}, SCHEMA)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"other": "x"}, "not in the plugin's schema"),
        ({"title": ["x"]}, "must hold String"),
        ({"tags": "a"}, "must be a list"),
        ({"tags": ["a", 3]}, "must hold [String]"),
        ({"flag": "yes"}, "must hold Boolean"),
        ({"title": True}, "must hold String"),
        ({"codec": "h264"}, "must be a dict"),
        ({"codec": {"audio": "aac"}}, "not in the plugin's schema"),
    ],
)
def test_mismatches_are_refused(data, words):
    with pytest.raises(SchemaMismatch, match=words.replace("[", r"\[").replace("]", r"\]")):
        check(data, SCHEMA)


def test_metadata_update_writes_to_the_store(store):
    assert Metadata("id-1", Sample()).update({"title": "a", "tags": ["x"]}) is True
    assert store.read("id-1") == {"image.tags": ["x"], "image.title": "a"}
    assert store.items() == ["id-1"]


def test_a_plugins_new_write_replaces_its_old_fields(store):
    metadata = Metadata("id-1", Sample())
    metadata.update({"title": "a", "tags": ["x"]})
    metadata.update({"tags": ["y"]})
    assert store.read("id-1", "image") == {"tags": ["y"]}


def test_other_plugins_fields_are_kept(store):
    store.write("id-1", "image", "OtherPlugin", {"other": "kept"})
    Metadata("id-1", Sample()).update({"title": "a"})
    assert store.read("id-1", "image") == {"other": "kept", "title": "a"}


def test_refused_write_returns_false_and_keeps_the_old_state(tmp_path, store):
    store.write("id-1", "image", "Sample", {"title": "old"})
    connection = store._connection()
    connection.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON fields WHEN NEW.value LIKE '%new%' "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    assert store.write("id-1", "image", "Sample", {"title": "new", "tags": "x"}) is False
    assert store.read("id-1", "image") == {"title": "old"}


def test_unwritable_store_returns_false(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert (
        MetadataStore(blocker / "sub" / "db.sqlite3").write("i", "image", "P", {"a": "b"}) is False
    )


def test_store_location_is_a_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_STORE", str(tmp_path / "elsewhere.sqlite3"))
    MetadataStore.default().write("i", "image", "P", {"a": "b"})
    rows = sqlite3.connect(str(tmp_path / "elsewhere.sqlite3")).execute("SELECT * FROM fields")
    assert [r[:4] for r in rows] == [("i", "image", "a", '"b"')]


def test_statuses_have_pixstors_names():
    assert {s.name for s in PluginStatus} == {
        "SUCCESS",
        "SKIPPED",
        "ERRORED",
        "FATAL",
        "INPROGRESS",
    }


# ------------------------------------------------------------------ the tool's run records

RUN = Run("id-1", "Sample", "ab" * 32, 10, 20, "sig", "")


def test_a_run_is_written_with_the_fields(store):
    assert store.write("id-1", "image", "Sample", {"title": "a"}, RUN) is True
    assert store.read("id-1") == {"image.title": "a"}
    assert store.run("id-1", "Sample")[:7] == RUN._replace(status="SUCCESS")[:7]


def test_a_refused_write_writes_neither_fields_nor_run(store):
    store._connection().execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    assert store.write("id-1", "image", "Sample", {"title": "a"}, RUN) is False
    assert store.read("id-1") == {}  # the fields went back with the run row
    assert store.run("id-1", "Sample") is None


def test_the_plugins_write_no_run(store):
    assert Metadata("id-1", Sample()).update({"title": "a"}) is True
    assert store.run("id-1", "Sample") is None


def test_record_keeps_or_removes_the_fields(store):
    Metadata("id-1", Sample()).update({"title": "a"})

    assert store.record(RUN._replace(status="FATAL"), "image", None)
    assert store.read("id-1", "image") == {"title": "a"}  # a failure keeps the last good ones
    assert store.record(RUN._replace(status="SKIPPED"), "image", {})
    assert store.read("id-1", "image") == {}
    assert store.run("id-1", "Sample").status == "SKIPPED"
    assert store.items_of("Sample") == ["id-1"]


def test_search_matches_any_value_of_a_list(store):
    store.write("id-1", "image", "P", {"tags": ["sky", "sea"]})
    store.write("id-2", "image", "P", {"tags": ["sand"]})

    assert list(store.search("image", "tags", lambda v: v == "sea")) == ["id-1"]
    assert list(store.search("image", "tags", lambda v: v.startswith("s"))) == ["id-1", "id-2"]
