"""The contract of where answers, claims, rate slots and holds live: an ``Engine``.

Two implement it: the node's own SQLite files (``local.py``: the answer cache and the rate
file, the embedded default for one node), and a PostgreSQL database every node shares
(``postgres.py``, when ``PIXSTOR_AZURE_DATABASE`` is set), which falls back to the first
while the database cannot be used.

- answers: the raw answer of a service for a file's content and a backend's identity;
- claims: the one process, on any node, that is asking the service for an answer now; the
  others wait for it and reuse it (``fetch.py``); a claim ends with the answer, when its
  holder lets go, when its lease runs out, or when its holder is found gone;
- rate slots: the next free request start of each service and host (``ratelimit.py``), and
  the pause a 429 asked for, so that every process stays within the tier's rate together;
- holds: faults that hold for every file (``faults.py``), kept as ``Hold`` records;
- frames: the answered frames of each frame sequence, with their signatures
  (``frames.py``), so that a frame that looks like one reuses its answer.

Times given to and returned by an engine are seconds since the epoch (``clock.wall``).
"""

import abc
from typing import Dict, List, NamedTuple, Optional, Sequence

from .answer import Answer

REFUSED = "refused"
OUTAGE = "outage"


class Hold(NamedTuple):
    """A service held back for every file. ``error`` is the fault's error as ``faults.py``
    writes it down (errors never hold a key); ``node`` the node that found it."""

    kind: str  # REFUSED or OUTAGE
    until: float  # when the service is asked again
    pause: float  # an outage's current pause, seconds (0 for a refusal)
    since: float  # when the fault was first found
    error: str
    probing: bool = False  # a file was let through to ask after ``until``
    node: str = ""


class Reference(NamedTuple):
    """An answered frame of a sequence: its number and name, the content digest its answer is
    kept under, and its signature (``images/signature.py``)."""

    number: int
    digits: str  # the number as written (its padding: ``images/sequences.py``)
    name: str  # the file's name: what an inheriting frame's provenance names
    content: str
    signature: bytes


class Engine(abc.ABC):
    """Where the answers, claims, rate slots and holds of a node (or of every node) live.

    Its methods never raise for a fault of their own storage: a lookup finds nothing, a write
    is not kept, a claim is granted (the caller asks as if alone), a slot comes from a
    node-local count; and one log line says why.
    """

    name = ""  # "sqlite" or "postgresql", for -v and doctor

    @abc.abstractmethod
    def describe(self) -> str:
        """Where it keeps things, in words (never a password)."""

    # ---------------------------------------------------------------- answers

    @abc.abstractmethod
    def get(self, content: str, identity: dict) -> Optional[Answer]:
        """The answer kept for content digest ``content`` asked with ``identity``, or None."""

    @abc.abstractmethod
    def put(self, content: str, identity: dict, answer: Answer) -> bool:
        """Keep ``answer`` and end this process's claim of it; False when it was not kept."""

    # ---------------------------------------------------------------- claims

    @abc.abstractmethod
    def claim(self, content: str, identity: dict, lease: float) -> bool:
        """Claim the asking of an answer for ``lease`` seconds: True when this process is to
        ask (nobody else is, or their claim ran out or its holder is gone); False while
        another process is asking."""

    @abc.abstractmethod
    def release(self, content: str, identity: dict) -> None:
        """End this process's claim without an answer (the asking failed)."""

    # ---------------------------------------------------------------- rate slots

    @abc.abstractmethod
    def reserve(self, key: str, gap: float, now: float, within: Optional[float]) -> Optional[float]:
        """The time the next request for ``key`` may start (``now`` or later, starts ``gap``
        seconds apart), taken for it; None, and nothing taken, when that is more than
        ``within`` seconds away (None: no bound)."""

    @abc.abstractmethod
    def pause(self, key: str, until: float) -> None:
        """No request for ``key`` starts before ``until`` (a 429 asked to wait)."""

    # ---------------------------------------------------------------- holds

    @abc.abstractmethod
    def holds(self, keys: Sequence[str]) -> Dict[str, Hold]:
        """The holds kept under any of ``keys``."""

    @abc.abstractmethod
    def hold(self, key: str, hold: Hold) -> None:
        """Keep ``hold`` under ``key``, in place of any other."""

    @abc.abstractmethod
    def probe(self, key: str, now: float, until: float) -> bool:
        """When the hold under ``key`` is up at ``now``, hold the others back until ``until``
        while this process asks: True for the one process that got to ask."""

    @abc.abstractmethod
    def lift(self, keys: Sequence[str]) -> Dict[str, Hold]:
        """Drop the holds under ``keys`` (the service answered); those this call dropped."""

    # ---------------------------------------------------------------- frames

    @abc.abstractmethod
    def references(self, sequence: str, identity: dict, low: int, high: int) -> List[Reference]:
        """The answered frames ``low`` to ``high`` of ``sequence`` asked with ``identity``
        (none where no answers are kept: every frame is then asked)."""

    @abc.abstractmethod
    def refer(self, sequence: str, identity: dict, reference: Reference) -> None:
        """Keep ``reference``, an answered frame of ``sequence``, in place of any other of its
        number."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of connections and files; for tests and shutdown."""
