"""Log a message once per process: PixStor calls a plugin for every file, and a problem that
holds for every file (a setting, a refusal, a file mode) is worth one line, not a million."""

import logging
import threading
from typing import Optional, Set, Tuple

from . import runtime


class Logged:
    """The (logger, key) pairs this process has logged once already."""

    def __init__(self) -> None:
        self.seen: Set[Tuple[str, str]] = set()
        self.lock = threading.Lock()

    def first(self, logger: logging.Logger, key: str) -> bool:
        with self.lock:
            if (logger.name, key) in self.seen:
                return False
            self.seen.add((logger.name, key))
            return True

    def forget(self, key: str) -> None:
        """Log ``key`` again, whichever logger logged it."""
        with self.lock:
            self.seen = {(name, seen) for name, seen in self.seen if seen != key}


def log_once(logger: logging.Logger, level: int, message: str, key: Optional[str] = None) -> bool:
    """Log ``message`` unless ``logger`` already logged it (or another message with the same
    ``key``, when one is given: e.g. the same error first met on another file); True when it
    was logged now."""
    if not runtime.current().get(Logged).first(logger, message if key is None else key):
        return False
    logger.log(level, message)
    return True


def forget(key: str) -> None:
    """Let the message logged once under ``key`` (its text, when it had no key) be logged again,
    e.g. after the fault it reported was cured."""
    runtime.current().get(Logged).forget(key)
