"""A service's raw answer for one file, and the one place every backend's answer is fetched.

Every backend (the Custom Vision cloud, its exported container or ONNX model, Azure AI Vision,
the Read APIs, Azure OpenAI) is a ``Service``: the contract is written in ``services/base.py``
(its ``name``, ``endpoint_setting``, ``identity()``, ``ask(path)``, ``parse(answer)``...).
This layer sits below the services, so it takes one as it is given (typed ``Any``).

``fetch(backend, path)`` is how callers get an answer: from the answers kept (``engines.py``:
the node's answer cache, or the database every node shares) when the same content was answered
before with the same ``identity()``, else from the service, and then kept. ``lookup`` reads
the kept answers only. ``tally()`` counts what this process paid for and what it got for free.
"""

import collections
import contextlib
import hashlib
import logging
import os
import threading
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

from ..ground import runtime
from ..ground.errors import ImageError, ServiceError
from ..images import source
from . import claims, engines, faults, frames, offline
from .answer import Answer, identity_key, model_of

log = logging.getLogger(__name__)


def fetch(backend: Any, path: str) -> Answer:
    """The answer of ``backend`` for the file at ``path``: the cached one, else the service's.

    The answers live in the engine (``engines.py``: the node's SQLite cache, or the database
    every node shares); of the processes that need the same answer at once, one asks and the
    others wait for its answer (``claims.py``). A frame of a sequence may reuse the answer of a
    frame it looks like (``frames.py``). Where the answer came from is told to ``watching``."""
    answer, inherited = _fetch(backend, path)
    runtime.current().get(Sources).saw(backend, answer, inherited)
    return answer


def _fetch(backend: Any, path: str) -> Tuple[Answer, Optional[str]]:
    """The answer, and the name of the frame it is inherited from (None: the file's own)."""
    store = engines.current() if engines.keeps_answers() else None
    content = _content(path) if store is not None else None
    identity = backend.identity()
    models = _models()
    if store is not None and content is not None:
        found = store.get(content[0], identity)
        if found is not None and not _fits(backend, found):
            found = None  # kept before answers were checked: asked again
        if found is not None and not models.current(identity, found):
            log.debug(
                "%s: %s asked again: the kept answer is from model %s, the service now "
                "answers with %s",
                path,
                backend.name,
                model_of(found),
                models.latest(identity),
            )
        elif found is not None:
            return _reused(backend, path, content[1], found), None

    def usable(kept: Answer) -> bool:
        return models.current(identity, kept) and _fits(backend, kept)

    shot = frames.Shot.of(backend, path) if store is not None and content is not None else None
    try:
        if shot is not None and store is not None:  # a shot is only made with a store
            reused = shot.reuse(store, identity, usable)
            if reused is not None:
                tally().inherited(backend.name, content[1] if content else 0)
                return reused.answer, reused.reference.name
        offline.check(backend)  # retag forbids calls: then a miss raises NotCached
        if store is not None and content is not None:
            found = claims.take(store, content[0], identity, backend.name, usable)
            if found is not None:
                return _reused(backend, path, content[1], found), None
        fresh = None  # type: Optional[Answer]
        try:
            try:
                asked = faults.ask(backend, path)
            except ServiceError as exc:
                if exc.sent:
                    tally().call_failed(backend.name)
                raise
            tally().called(backend.name, asked, content[1] if content else _size(path))
            backend.check(asked)  # an answer not of the service's shape is never kept
            models.saw(identity, asked)
            fresh = asked
        finally:
            if store is not None and content is not None:
                kept = claims.done(store, content[0], identity, fresh)  # every process sees it
                if kept and shot is not None:
                    shot.keep(store, identity, content[0])  # an answered frame of its sequence
        return fresh, None
    finally:
        if shot is not None and store is not None:
            shot.done(store)


def _fits(backend: Any, kept: Answer) -> bool:
    """Whether a kept answer is of the service's shape (``Service.check``)."""
    try:
        backend.check(kept)
    except ServiceError:
        return False
    return True


def _reused(backend: Any, path: str, file_bytes: int, found: Answer) -> Answer:
    tally().reused(backend.name, file_bytes)
    log.debug(
        "%s: %s answer reused from the cache (asked %s)",
        path,
        backend.name,
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found.asked)),
    )
    return found


def lookup(backend: Any, path: str) -> Optional[Answer]:
    """The cached answer of ``backend`` for ``path``, or None; never calls the service.

    Not counted in ``tally()``: it is for looking ahead (``--dry-run``) and re-deriving fields.
    """
    if not engines.keeps_answers():
        return None
    content = _content(path)
    if content is None:
        return None
    found = engines.current().get(content[0], backend.identity())
    return found if found is not None and _fits(backend, found) else None  # as ``fetch`` uses


class Models:
    """The model each setup last answered with in this process.

    An iteration re-published under the same name, or a service's model update, changes the
    answers but not the settings: a kept answer from another model than the one a fresh answer
    came from is asked again. Before the first fresh answer of a process, kept ones are used.
    """

    def __init__(self) -> None:
        self.latest_by_setup = {}  # type: Dict[str, str]
        self.lock = threading.Lock()

    def saw(self, identity: dict, fresh: Answer) -> None:
        model = model_of(fresh)
        if model is not None:
            with self.lock:
                self.latest_by_setup[identity_key(identity)] = model

    def latest(self, identity: dict) -> Optional[str]:
        with self.lock:
            return self.latest_by_setup.get(identity_key(identity))

    def current(self, identity: dict, kept: Answer) -> bool:
        """False when ``kept`` came from a model other than the latest seen for its setup."""
        latest, model = self.latest(identity), model_of(kept)
        return latest is None or model is None or model == latest


def _models() -> Models:
    return runtime.current().get(Models)


def digest(path: str) -> str:
    """The SHA-256 of the file's bytes (hex), read once per process while the file is unchanged.

    Raises OSError, saying why, when the file cannot be read as a picture: missing, not
    readable, not a regular file, too large, not a picture, or out of its file's time budget.
    """
    try:
        return _digests().digest(os.fspath(path))[0]
    except ImageError as exc:
        raise OSError(str(exc)) from None


def _content(path: str) -> Optional[Tuple[str, int]]:
    """(digest, size) of a file that held still while it was read, else None: no caching."""
    try:
        found, size, steady = _digests().digest(os.fspath(path))
    except (OSError, ImageError):
        return None  # the backend refuses the file in the same words when it opens it
    return (found, size) if steady else None


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class Digests:
    """SHA-256 of the files this process read, the most recent first out last.

    A file is known by its path and what ``fstat`` says of it once opened (``source``, which
    also refuses what is not a regular picture file before a byte of it is hashed). The inode
    and the change time are in the key as well as the size and modification time: a copy
    renamed over the file (rsync, restores) may keep both of those, never its inode, and
    touching the change time takes privileges no copy tool has. Within a file's budget, the
    digest and the decode open the same file or the decode is refused (``source``): the
    answer kept under a digest is always the answer for those bytes.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.known = collections.OrderedDict()  # type: collections.OrderedDict
        self.lock = threading.Lock()

    def digest(self, path: str) -> Tuple[str, int, bool]:
        """(hex digest, size, steady): steady is False when the file changed while read.

        Raises ImageError when the file is not a picture to read, or its file's time budget
        runs out while it is read; OSError when reading it fails.
        """
        with source.open_picture(path) as opened:
            before = opened.stamp
            key = (path, *before)
            with self.lock:
                known = self.known.get(key)
                if known is not None:
                    self.known.move_to_end(key)
                    return known, before.size, True
            sha = hashlib.sha256()
            for chunk in source.chunks(opened.file):
                sha.update(chunk)
            after = source.stamp_of(os.fstat(opened.file.fileno()))
        found = sha.hexdigest()
        steady = after == before == source.stamp_of(os.stat(path))
        if steady:
            with self.lock:
                self.known[key] = found
                while len(self.known) > self.size:
                    self.known.popitem(last=False)
        return found, before.size, steady


def _digests() -> Digests:
    return runtime.current().get(Digests)


class Tally:
    """What this process got from services and from the cache, for the tool's summary.

    ``calls``: answers each service gave (per ``backend.name``); ``failed``: asks that
    were sent and ended in an error (not a file held back or never sent); ``hits``: answers
    reused from the cache, per service; ``bytes_sent``: bytes uploaded for the calls;
    ``bytes_on_disk``: size of the files those calls answered
    (to set against ``bytes_sent``); ``bytes_on_disk_reused``: size of the files answered
    from the cache; ``tokens``: tokens billed, where an answer carries Azure OpenAI's
    ``usage``.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = collections.Counter()  # type: collections.Counter
        self.failed = collections.Counter()  # type: collections.Counter
        self.hits = collections.Counter()  # type: collections.Counter
        self.inherited_from_frames = collections.Counter()  # type: collections.Counter
        self.bytes_sent = 0
        self.bytes_on_disk = 0
        self.bytes_on_disk_reused = 0
        self.tokens = 0

    def called(self, service: str, fresh: Answer, file_bytes: int) -> None:
        tokens = _tokens(fresh.body)
        with self.lock:
            self.calls[service] += 1
            self.bytes_sent += fresh.bytes_sent
            self.bytes_on_disk += file_bytes
            self.tokens += tokens

    def reused(self, service: str, file_bytes: int) -> None:
        with self.lock:
            self.hits[service] += 1
            self.bytes_on_disk_reused += file_bytes

    def inherited(self, service: str, file_bytes: int) -> None:
        """A frame reused the answer of a frame of its sequence it looks like: no call."""
        with self.lock:
            self.inherited_from_frames[service] += 1
            self.bytes_on_disk_reused += file_bytes

    def call_failed(self, service: str) -> None:
        with self.lock:
            self.failed[service] += 1

    def spent(self, body: Any) -> None:
        """Counts the tokens of an answer that is billed but not used (refused, cut off)."""
        tokens = _tokens(body)
        with self.lock:
            self.tokens += tokens

    def snapshot(self) -> Dict[str, Any]:
        """A consistent copy: the counters per service as dicts, and their totals."""
        with self.lock:
            return {
                "calls": dict(self.calls),
                "failed": dict(self.failed),
                "hits": dict(self.hits),
                "inherited": dict(self.inherited_from_frames),
                "total_inherited": sum(self.inherited_from_frames.values()),
                "total_calls": sum(self.calls.values()),
                "total_failed": sum(self.failed.values()),
                "total_hits": sum(self.hits.values()),
                "bytes_sent": self.bytes_sent,
                "bytes_on_disk": self.bytes_on_disk,
                "bytes_on_disk_reused": self.bytes_on_disk_reused,
                "tokens": self.tokens,
            }


class Source(NamedTuple):
    """Where one answer came from: what answered, which model, when, and for a frame that
    reused another's answer, that frame's name."""

    service: str
    api: str
    model: Optional[str]
    asked: float
    inherited: Optional[str]

    def describe(self) -> str:
        """In words: ``Azure AI Vision 4.0, model 2023-10-01, asked 2026-12-06 05:40:12 UTC,
        inherited from plate.1001.exr``."""
        words = [f"{self.service} {self.api}".strip()]
        words.append(f"model {self.model}" if self.model else "model not named")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.asked))
        words.append(f"asked {when} UTC")
        if self.inherited:
            words.append(f"inherited from {self.inherited}")
        return ", ".join(words)


class Sources:
    """The answers each thread fetched while it was ``watching``."""

    def __init__(self) -> None:
        self.local = threading.local()

    def saw(self, backend: Any, answer: Answer, inherited: Optional[str]) -> None:
        seen = getattr(self.local, "seen", None)
        if seen is not None:
            api = backend.identity().get("api", "")
            seen.append(Source(backend.name, str(api), model_of(answer), answer.asked, inherited))


@contextlib.contextmanager
def watching() -> Iterator[List[Source]]:
    """The sources of the answers this thread fetches within the ``with``, in order."""
    sources = runtime.current().get(Sources)
    outer = getattr(sources.local, "seen", None)
    seen: List[Source] = []
    sources.local.seen = seen
    try:
        yield seen
    finally:
        sources.local.seen = outer


def provenance(seen: List[Source]) -> str:
    """What a plugin's ``…_source`` field says: each answer's source, ``; ``-separated."""
    return "; ".join(source.describe() for source in seen)


def tally() -> Tally:
    """This process's ``Tally``."""
    return runtime.current().get(Tally)


def _tokens(body: Any) -> int:
    """Tokens an Azure OpenAI answer says it used (its ``usage``); 0 for other answers."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return 0
    total = _count(usage.get("total_tokens"))
    if total is not None:
        return total
    parts = [_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))]
    return sum(p for p in parts if p is not None)


def _count(value: Any) -> Optional[int]:
    """``value`` when it is a count (an int, not a bool, 0 or more), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
