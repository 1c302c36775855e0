"""Log a message once per process: PixStor calls a plugin for every file, and a problem that
holds for every file (a setting, a region, a file mode) is worth one line, not a million."""

from __future__ import annotations

import logging
import threading

_seen: set[tuple[str, str]] = set()
_lock = threading.Lock()


def log_once(logger: logging.Logger, level: int, message: str) -> bool:
    """Log ``message`` unless ``logger`` already logged it; True when it was logged now."""
    with _lock:
        if (logger.name, message) in _seen:
            return False
        _seen.add((logger.name, message))
    logger.log(level, message)
    return True


def forget() -> None:
    """Let every message be logged again (for tests)."""
    with _lock:
        _seen.clear()
