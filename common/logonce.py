"""Log a message once per process: PixStor calls a plugin for every file, and a problem that
holds for every file (a setting, a region, a file mode) is worth one line, not a million."""

import logging
import threading

from . import runtime


class Logged:
    """The (logger, message) pairs this process has logged once already."""

    def __init__(self) -> None:
        self.seen = set()  # type: Set[Tuple[str, str]]
        self.lock = threading.Lock()

    def first(self, logger: logging.Logger, message: str) -> bool:
        with self.lock:
            if (logger.name, message) in self.seen:
                return False
            self.seen.add((logger.name, message))
            return True

    def forget(self, logger: logging.Logger, message: str) -> None:
        with self.lock:
            self.seen.discard((logger.name, message))


def log_once(logger: logging.Logger, level: int, message: str) -> bool:
    """Log ``message`` unless ``logger`` already logged it; True when it was logged now."""
    if not runtime.current().get(Logged).first(logger, message):
        return False
    logger.log(level, message)
    return True
