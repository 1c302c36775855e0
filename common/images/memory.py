"""The memory decoded pixels may take at once in one process (``PIXSTOR_AZURE_DECODE_MEMORY_MB``).

A process decodes on several threads (PixStor's workers, the tool's ``-j``): four 169 MP 16-bit
PNGs decoded at once took 5.1 GB. So before a picture is decoded, what its decode holds at its
height is reserved here (``prepare`` works it out from the picture's size and mode), and a
thread whose picture does not fit waits for others to finish, for no longer than its file's
time budget; then the file ends SKIPPED and says why.

A picture that needs more than the whole of it is not refused: it waits until nothing else is
being decoded, then takes all of it, so it is decoded alone. How large that can be is bounded
elsewhere: ``PIXSTOR_AZURE_MAX_FILE_MB`` and Pillow's decompression-bomb limit.
"""

import contextlib
import threading
import time
from typing import Iterator

from ..ground import budget, runtime
from ..ground.errors import ImageError
from ..ground.setting_registry import DECODE_MEMORY_MB, FILE_TIMEOUT
from ..ground.settings import Settings

MB = 1 << 20


class NoRoom(ImageError):
    """No room to decode the picture within its file's time budget: the file is not at fault,
    and is tried again the next time it is asked for."""


class DecodeMemory:
    """The bytes reserved by the decodes running in this process, and the room they wait on."""

    def __init__(self) -> None:
        self.used = 0
        self.room = threading.Condition()

    @classmethod
    def current(cls) -> "DecodeMemory":
        return runtime.current().get(cls)

    @property
    def limit(self) -> int:
        """The setting, in bytes (read each time: the settings file may change)."""
        return Settings.load().get(DECODE_MEMORY_MB) * MB

    @contextlib.contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        """Hold ``size`` bytes of the room (all of it, when ``size`` is larger) for the
        ``with``; wait for them first, bounded by this thread's file budget.

        The wait is on the real clock, not ``clock.now``: threads wait in real time, whatever
        clock the budgets read (a test's fake one included).
        """
        limit = self.limit
        wanted = min(size, limit)
        left = budget.remaining()
        deadline = None if left is None else time.monotonic() + max(0.0, left)
        with self.room:
            while self.used + wanted > limit:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    raise NoRoom(
                        f"waited all of the file's time budget ({FILE_TIMEOUT.name}, "
                        f"{budget.total() or 0:g} s) for room to decode it: other pictures "
                        f"held {DECODE_MEMORY_MB.name} ({limit // MB} MB)"
                    )
                self.room.wait(wait)
            self.used += wanted
        try:
            yield
        finally:
            with self.room:
                self.used -= wanted
                self.room.notify_all()
