"""Text any log handler can write, one line per record, without a key in it.

File names on Linux are bytes. Python decodes those that are not UTF-8 (common on archives from
old Macs and Windows shares) with lone surrogates, which a UTF-8 log handler refuses to write:
the one line that says why a file was skipped would be lost. A name (or what a service says)
may also hold a newline that starts a forged line of its own, or a terminal's escapes.
``printable`` gives such bytes as ``\\xNN`` escapes, control characters as ``\\n``, ``\\x1b``,
``\\u2028``, and every configured key (``Secrets``) as ``****``; ``guard`` has every logger of
ours do so for every line it logs.
"""

import logging
import os
import re
import threading
from typing import Any, Tuple

from . import runtime

REDACTED = "****"
# A key shorter than this is no key any service issues: never looked for in text.
SHORTEST_SECRET = 4
# What ends a line or drives a terminal: C0 and C1 controls, DEL, and Unicode's line and
# paragraph separators (which str.splitlines and some log viewers take as line ends).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The shortest start of a key, ending a text cut short, that is taken for the key's start.
_PARTIAL = 8
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class Secrets:
    """The keys this process was given (``settings`` adds each one it reads): never shown."""

    def __init__(self) -> None:
        # Longest first, so that a key holding another is hidden whole.
        self.values: Tuple[str, ...] = ()
        self.lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) < SHORTEST_SECRET or value in self.values:
            return
        with self.lock:
            self.values = tuple(sorted({*self.values, value}, key=len, reverse=True))


def keep_secret(value: str) -> None:
    """Redact ``value`` from every text of ours logged or raised from now on."""
    runtime.current().get(Secrets).add(value)


def redact(text: str) -> str:
    """``text`` with every key of ``Secrets`` as ``****``, and the start of one that ends a
    text cut short (a service's body cut to its first 1000 characters)."""
    for secret in runtime.current().get(Secrets).values:
        if secret in text:
            text = text.replace(secret, REDACTED)
        head = secret[:_PARTIAL]
        cut = text.rfind(head, max(0, len(text) - len(secret)))
        if cut >= 0 and secret.startswith(text[cut:]):
            text = text[:cut] + REDACTED
    return text


def _escape(found: Any) -> str:
    char = found.group(0)
    shown = _SHORT.get(char)
    if shown is not None:
        return shown
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: Any) -> str:
    """``text`` (a str, a path or anything else) as one line any encoder can write, without a
    key: bytes that are not UTF-8 as ``\\xNN``, control characters escaped, keys redacted."""
    return redact(_CONTROL.sub(_escape, _decoded(text)))


def _decoded(text: Any) -> str:
    """``text`` as a str any encoder can write: bytes that are not UTF-8 as ``\\xNN``."""
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
    """Makes every record one printable line (see ``printable``): its message as formatted,
    and its traceback without a key (a traceback's own line ends are kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = printable(_message(record)), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def _message(record: logging.LogRecord) -> str:
    """The record's message with its arguments, as the handler would format it."""
    if isinstance(record.msg, str) and record.args:
        record.msg = _decoded(record.msg)  # a name in the format string itself
        record.args = _decoded_args(record.args)
    return record.getMessage()


def _decoded_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(_decoded_arg(a) for a in args)
    if isinstance(args, dict):
        return {k: _decoded_arg(v) for k, v in args.items()}
    return args


def _decoded_arg(value: Any) -> Any:
    return _decoded(value) if isinstance(value, (str, os.PathLike)) else value


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
