"""Text any log handler can write, whatever bytes a file name holds.

File names on Linux are bytes. Python decodes those that are not UTF-8 (common on archives from
old Macs and Windows shares) with lone surrogates, which a UTF-8 log handler refuses to write:
the one line that says why a file was skipped would be lost. ``printable`` gives such bytes as
``\\xNN`` escapes and leaves every other character as it is; ``guard`` has every logger of ours
do so for every line it logs.
"""

import logging
import os
import threading
from typing import Any

from . import runtime


def printable(text: Any) -> str:
    """``text`` (a str, a path or anything else) as a str any encoder can write."""
    if isinstance(text, bytes):
        raw = text
    else:
        text = os.fspath(text) if isinstance(text, os.PathLike) else text
        if isinstance(text, bytes):
            raw = text
        else:
            text = str(text)
            try:
                text.encode("utf-8")
                return text  # the common case: nothing to escape
            except UnicodeEncodeError:
                pass
            try:
                raw = text.encode("utf-8", "surrogateescape")  # the bytes of the name
            except UnicodeEncodeError:  # surrogates that no file name decoding makes
                return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


class Printable(logging.Filter):
    """Makes the text and the arguments of every record printable (see ``printable``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = printable(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_printable_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _printable_arg(v) for k, v in record.args.items()}
        return True


def _printable_arg(value: Any) -> Any:
    return printable(value) if isinstance(value, (str, os.PathLike)) else value


_PRINTABLE = Printable()


class Guarded:
    """How many loggers the process had when ours were last given the filter."""

    def __init__(self) -> None:
        self.known = -1
        self.lock = threading.Lock()


def guard(package: str) -> None:
    """Give every logger of ``package`` (ours: ``pixstor_azure``) the ``Printable`` filter, so
    that a line any module of ours logs about a file can be written whatever its name holds.
    Cheap enough for every file: loggers are looked at again only when there are new ones."""
    loggers = logging.Logger.manager.loggerDict
    state = runtime.current().get(Guarded)
    if state.known == len(loggers):
        return
    with state.lock:
        state.known = len(loggers)
        for name, logger in list(loggers.items()):
            ours = name == package or name.startswith(package + ".")
            if ours and isinstance(logger, logging.Logger) and _PRINTABLE not in logger.filters:
                logger.addFilter(_PRINTABLE)
