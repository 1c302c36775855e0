"""Frame sequences: a frame that looks like an answered frame of its sequence reuses its answer.

``fetch`` asks this module before it asks a service for a file that is a frame of a sequence
(``images/sequences.py``: ``plate.1001.exr``), while ``PIXSTOR_AZURE_SEQUENCES`` is on:

* the frame's signature (``images/signature.py``) is made from the picture the process decoded
  for the services anyway;
* the nearest answered frame of its sequence on each side, asked with the same setup, at
  most ``PIXSTOR_AZURE_SEQUENCE_MAX_GAP`` frames away, is compared with it, the nearer first
  (before, at equal distance); the first whose ``change`` is within
  ``PIXSTOR_AZURE_SEQUENCE_THRESHOLD`` gives its answer, with no call. Only the nearest on
  each side: a frame never reuses an answer across an answered frame it does not look like.
  For answers that say where things are (boxes: ``Service.places``), the frame must also be
  near-identical: at most ``PIXSTOR_AZURE_SEQUENCE_BOX_THRESHOLD`` of it changed in place. A
  cut is such a change: across it most of the picture is new (``signature.change``);
* otherwise the frame is asked, and becomes an answered frame itself (``keep``).

Two processes must not both pay for the first frame of a shot. Before asking, a frame claims its
stretch of the sequence (``MAX_GAP`` frames) through the engine's claims (``Engine.claim``,
across processes and nodes) and, within a process, an event its other threads wait on. A frame
that finds the stretch claimed waits for that answer, within its file's budget, and compares
again: alike, it reuses it; not, it asks. The order frames come in does not matter: a frame
compares with answered frames on both sides.
"""

import hashlib
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, cast

from ..ground import budget, clock, runtime
from ..ground.errors import ImageError
from ..ground.setting_registry import (
    SEQUENCE_BOX_THRESHOLD,
    SEQUENCE_MAX_GAP,
    SEQUENCE_THRESHOLD,
    SEQUENCES,
)
from ..ground.settings import Settings
from ..images import sequences, signature
from ..images.sequences import Frame
from ..images.signature import Signature
from . import claims, engines
from .answer import Answer, identity_key
from .engine import Engine, Reference


class Reused(NamedTuple):
    """An answered frame's answer, for a frame that looks like it."""

    answer: Answer
    reference: Reference


class Stretches(claims.Asking):
    """The stretches of sequences this process's threads are asking a first frame of, by
    (sequence, setup, stretch): a runtime slot of its own beside ``claims.Asking``."""


class Shot:
    """A file that is a frame of a sequence, on its way to an answer for one backend."""

    def __init__(self, frame: Frame, sig: Signature, places: bool, settings: Settings) -> None:
        self.frame = frame
        self.signature = sig
        self.places = places
        self.threshold = settings.get(SEQUENCE_THRESHOLD)
        self.box_threshold = settings.get(SEQUENCE_BOX_THRESHOLD)
        self.gap = settings.get(SEQUENCE_MAX_GAP)
        self.sequence = "\0".join(frame.key)  # folder and pattern
        self.claimed: Optional[Tuple[str, dict, Tuple[str, str, int]]] = None

    @classmethod
    def of(cls, backend: Any, path: str) -> Optional["Shot"]:
        """The shot ``path`` is a frame of, or None: not a frame, sequences off, or a file
        the backend will refuse in its own words."""
        settings = Settings.load()
        if not settings.get(SEQUENCES):
            return None
        frame = sequences.frame_of(path)
        if frame is None:
            return None
        try:
            # The picture the services are sent is decoded once a process: this shares it.
            picture = backend.picture(path)
        except ImageError:
            return None
        return cls(frame, signature.of(picture), backend.places(), settings)

    # ---------------------------------------------------------------- reuse

    def reuse(
        self, store: Engine, identity: dict, usable: Callable[[Answer], bool]
    ) -> Optional[Reused]:
        """The answer of an answered frame this one looks like; else None, and this frame
        holds its stretch's claim until ``done``: it is to be asked."""
        found = self.nearest(store, identity, usable)
        if found is not None:
            return found
        key = (self.sequence, identity_key(identity), self.frame.number // self.gap)
        stretches = runtime.current().get(Stretches)
        look = claims.FIRST_LOOK
        while True:
            event, mine = stretches.enter(key)
            if mine:
                if store.claim(_stretch(key), identity, claims.lease()):
                    self.claimed = (_stretch(key), identity, key)
                    found = self.nearest(store, identity, usable)  # answered meanwhile?
                    if found is not None:
                        self.done(store)
                    return found
                # Another process asks for a frame of this stretch: look again in a while.
                stretches.leave(key)
                left = budget.remaining()
                if left is not None and left < look:
                    return None  # no time left to wait: asked
                clock.sleep(look)
                look = min(look * 2, claims.LONGEST_LOOK)
            else:
                # Another thread of this process asks (real time: its exchange takes real time).
                left = budget.remaining()
                if not event.wait(claims.lease() if left is None else max(0.0, left)):
                    return None
            found = self.nearest(store, identity, usable)
            if found is not None or not mine:
                return found  # not alike what the other thread got: asked, unclaimed

    def nearest(
        self, store: Engine, identity: dict, usable: Callable[[Answer], bool]
    ) -> Optional[Reused]:
        """The nearest answered frame within the gap, on either side, if this frame looks
        like it, with its answer. On each side only the nearest counts: a frame never reuses
        an answer across an answered frame it does not look like (a cut, a change)."""
        number = self.frame.number
        found = store.references(self.sequence, identity, number - self.gap, number + self.gap)
        found = [
            r
            for r in found
            if r.number != number
            and sequences.same_sequence(self.frame, self.frame._replace(digits=r.digits))
        ]
        before = max((r for r in found if r.number < number), key=_number, default=None)
        after = min((r for r in found if r.number > number), key=_number, default=None)
        sides = [r for r in (before, after) if r is not None]
        sides.sort(key=lambda r: (abs(r.number - number), r.number))
        for reference in sides:
            if not self.alike(reference):
                continue
            answer = store.get(reference.content, identity)
            if answer is not None and usable(answer):
                return Reused(answer, reference)
        return None

    def alike(self, reference: Reference) -> bool:
        try:
            theirs = Signature.from_bytes(reference.signature)
        except ValueError:  # kept by another release: not compared
            return False
        if signature.change(self.signature, theirs) > self.threshold:
            return False
        return not self.places or signature.moved(self.signature, theirs) <= self.box_threshold

    # ---------------------------------------------------------------- after the asking

    def keep(self, store: Engine, identity: dict, content: str) -> None:
        """This frame was asked: its answer, kept under ``content``, is an answered frame."""
        frame = self.frame
        reference = Reference(
            frame.number, frame.digits, frame.name, content, self.signature.to_bytes()
        )
        store.refer(self.sequence, identity, reference)

    def done(self, store: Engine) -> None:
        """Let this frame's claim of its stretch go (after its answer is kept, or not)."""
        if self.claimed is None:
            return
        content, identity, key = self.claimed
        self.claimed = None
        try:
            store.release(content, identity)
        finally:
            runtime.current().get(Stretches).leave(key)


def _number(reference: Reference) -> int:
    return reference.number


def _stretch(key: Tuple[str, str, int]) -> str:
    """The claim of a stretch of a sequence, as a content digest of its own."""
    sequence, _, band = key
    text = f"frames\0{sequence}\0{band}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(text).hexdigest()


class Foresight:
    """For a dry run, which asks nothing: the frames a run would ask, so that the frames that
    would reuse their answers are counted as such (``tag --dry-run``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.asked: Dict[Tuple[str, str], List[Reference]] = {}

    def would_reuse(self, backend: Any, path: str) -> bool:
        """Whether the run would give this frame another frame's answer (else it would ask,
        and the frame is noted as answered)."""
        if not engines.keeps_answers():
            return False
        shot = Shot.of(backend, path)
        if shot is None:
            return False
        identity = backend.identity()
        key = (shot.sequence, identity_key(identity))
        with self.lock:
            view = cast(Engine, _Foreseen(engines.current(), self.asked.get(key, [])))
            if shot.nearest(view, identity, lambda answer: True) is not None:
                return True
            frame = shot.frame
            noted = Reference(frame.number, frame.digits, frame.name, "", shot.signature.to_bytes())
            self.asked.setdefault(key, []).append(noted)
        return False


class _Foreseen:
    """The answered frames kept, and those a dry run would ask (their answers not there)."""

    def __init__(self, store: Engine, asked: List[Reference]) -> None:
        self.store = store
        self.asked = asked

    def references(self, sequence: str, identity: dict, low: int, high: int) -> List[Reference]:
        found = self.store.references(sequence, identity, low, high)
        return found + [r for r in self.asked if low <= r.number <= high]

    def get(self, content: str, identity: dict) -> Optional[Answer]:
        if content:
            return self.store.get(content, identity)
        return Answer({}, (0, 0), (0, 0), 0.0)  # would be asked: there by then
