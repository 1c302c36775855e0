"""Text any log handler can write, whatever bytes a file name holds.

File names on Linux are bytes. Python decodes those that are not UTF-8 (common on archives from
old Macs and Windows shares) with lone surrogates, which a UTF-8 log handler refuses to write:
the one line that says why a file was skipped would be lost. ``printable`` gives such bytes as
``\\xNN`` escapes and leaves every other character as it is.
"""

import os
from typing import Any


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
