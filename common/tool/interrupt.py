"""Ctrl-C and ``kill``: the tool stops at once, keeps what is done and says how far it got.

Inside ``interruptible()`` the first SIGINT or SIGTERM raises ``KeyboardInterrupt`` in the main
thread, which stops handing out work, and the caller prints its summary; a second one ends the
process at once. Work already done is safe either way: each file is one SQLite transaction.
"""

import contextlib
import os
import signal
import threading
from typing import Iterator, Optional


class Caught:
    """The signal that interrupted the run, if one did."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None

    def exit_status(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal ended."""
        return 128 + (self.signum or signal.SIGINT)


@contextlib.contextmanager
def interruptible() -> Iterator[Caught]:
    caught = Caught()

    def handler(signum: int, frame: object) -> None:
        if caught.signum is not None:
            os._exit(128 + signum)  # asked twice: no more waiting for anything
        caught.signum = signum
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield caught  # signals reach the main thread only; nothing to install here
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
