"""Files of ours alone: what another user (or another program) plants where the plugins look is
never trusted, followed or written, and what we make is ours alone whatever the umask.

As root, the default rate file used to be trusted whoever owned it: a file planted by another
user made every file FATAL, a view over a recursive query hung the process, and a symbolic link
made root create or overwrite a file of the planter's choosing."""

import logging
import os
import sqlite3
import threading

import pytest

from pixstor_azure.answers import cache, ratelimit
from pixstor_azure.answers.answer import fresh
from pixstor_azure.ground import private
from pixstor_azure.ground.store import MetadataStore

KEY = "Custom Vision host"
NEVER_ENDS = (
    "CREATE VIEW slots AS WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) "
    "SELECT x AS key, x AS next FROM r"
)


def reserve(path):
    """A slot from the rate file at ``path``, in a thread that must end within 20 s."""
    found = []
    worker = threading.Thread(
        target=lambda: found.append(ratelimit.limiters().reserve(KEY, 4, 100.0, None, str(path))),
        daemon=True,
    )
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "the rate file hung the process"
    return found[0]


def refused(caplog, why):
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    assert why in lines[0]


def test_a_link_planted_as_the_rate_file_is_not_followed(tmp_path, caplog):
    target = tmp_path / "elsewhere" / "chosen-by-the-planter"
    target.parent.mkdir()
    link = tmp_path / "rate.sqlite3"
    link.symlink_to(target)

    assert reserve(link) == 100.0  # this process's own slots

    assert not target.exists()  # neither created nor written
    refused(caplog, "is a link")


def test_a_view_planted_in_the_rate_file_is_refused_before_it_is_read(tmp_path, caplog):
    path = tmp_path / "rate.sqlite3"
    with sqlite3.connect(str(path)) as planted:
        planted.execute(NEVER_ENDS)
    path.chmod(0o600)

    assert reserve(path) == 100.0

    refused(caplog, "holds a view 'slots' that is not ours")


def test_a_fifo_planted_as_the_rate_file_blocks_nothing(tmp_path, caplog):
    path = tmp_path / "rate.sqlite3"
    os.mkfifo(str(path), 0o600)

    assert reserve(path) == 100.0

    refused(caplog, "is not a regular file")


def test_a_folder_another_user_made_for_the_rate_file_is_not_used(tmp_path, caplog, another_user):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o700)
    os.chown(str(folder), another_user, another_user)

    assert reserve(folder / "rate.sqlite3") == 100.0

    assert not (folder / "rate.sqlite3").exists()
    refused(caplog, "belongs to another user")


def test_a_trigger_planted_in_the_answer_cache_is_refused(tmp_path, caplog):
    path = tmp_path / "answers.sqlite3"
    kept = cache.AnswerCache(path)
    assert kept.put("ab" * 32, {"service": "x"}, fresh({"tags": []}, (1, 1), (1, 1)))
    kept.close()
    with sqlite3.connect(str(path)) as planted:
        planted.execute("CREATE TRIGGER spy AFTER INSERT ON answers BEGIN DELETE FROM answers; END")

    again = cache.AnswerCache(path)
    assert again.get("ab" * 32, {"service": "x"}) is None  # not read: refused whole
    assert "holds a trigger 'spy' that is not ours" in caplog.text
    again.close()


def test_what_we_make_is_ours_alone_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        store = MetadataStore(tmp_path / "made" / "store" / "metadata.sqlite3")
        assert store.write("item", "image", "Plugin", {"azure_tags": ["a"]})
        kept = cache.AnswerCache(tmp_path / "made" / "cache" / "answers.sqlite3")
        assert kept.put("ab" * 32, {"service": "x"}, fresh({"tags": []}, (1, 1), (1, 1)))
        reserve(tmp_path / "made" / "rate" / "rate.sqlite3")
    finally:
        os.umask(old)
        store.close()
        kept.close()
    made = sorted(p for p in (tmp_path / "made").rglob("*"))
    assert made
    for path in made:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_private_refuses_a_group_writable_folder(tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir()
    folder.chmod(0o775)
    with pytest.raises(private.NotOurs, match="can be written by other users"):
        private.file(folder / "x.sqlite3")
    assert not (folder / "x.sqlite3").exists()
