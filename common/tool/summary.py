"""The summary the tool prints at the end of ``tag`` and ``retag`` (and when stopped early).

Files by plugin and status, files no plugin handles, calls made and answers reused (from the
process's ``fetch.tally()``), bytes sent against the bytes of those files on disk, tokens
when any were billed, and the time it took. Each count is one line ``what: count`` so that a
script can read it.
"""

import collections
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ..answers import fetch
from ..http import client

# The order statuses are listed in; the tool's own words are in lower case.
ORDER = (
    "SUCCESS",
    "SKIPPED",
    "FATAL",
    "ERRORED",
    "unchanged",
    "from the cache",
    "would call",
    "no cached answer",
    "changed on disk",
    "gone",
    "not retried",
    "left",
    "stopped",
)
EXPLAIN = {
    "unchanged": "same content and settings as last time: not asked again",
    "no cached answer": "run tag on them: retag never calls",
    "changed on disk": "changed since they were tagged: run tag on them",
    "gone": "no longer on disk",
    "not retried": "did not fail last time",
    "left": "not reached: run the same command again to continue",
    "stopped": "not done: the run stopped on the error below",
}


class Summary:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.counts = collections.Counter()  # type: collections.Counter
        self.found = 0
        self.not_handled = 0
        self.notes = []  # type: List[str]

    def add(self, plugin: str, status: str, count: int = 1) -> None:
        with self.lock:
            self.counts[(plugin, status)] += count

    def count(self, status: str, plugin: Optional[str] = None) -> int:
        with self.lock:
            return sum(
                n
                for (p, s), n in self.counts.items()
                if s == status and (plugin is None or p == plugin)
            )

    def failed(self) -> bool:
        return self.count("FATAL") + self.count("ERRORED") > 0

    def lines(self, files: bool = True, notes: bool = True) -> List[str]:
        """The summary's lines; ``notes`` (what was left out, and why) after them."""
        with self.lock:
            counts = dict(self.counts)
            said = list(self.notes) if notes else []
        out = []
        if files:
            handled = self.found - self.not_handled
            out.append(
                f"files: {self.found} found, {handled} handled, {self.not_handled} not handled"
                " (not a picture format these plugins take)"
            )
        for (plugin, status), count in sorted(counts.items(), key=_order):
            why = EXPLAIN.get(status)
            out.append(f"{plugin}: {status} {count}" + (f" ({why})" if why else ""))
        out.extend(paid_lines(dict(fetch.tally().snapshot(), resent=client.resends().snapshot())))
        out.append(f"elapsed: {time.monotonic() - self.started:.1f} s")
        out.extend(said)
        return out


# The tally's counts said only when there are some: (key, what, why), in this order.
_SAID_WHEN_ANY = (
    ("inherited", "answers of a frame alike reused", " (frame sequences)"),
    ("failed", "calls failed", ""),
    (
        "resent",
        "calls that may have been billed twice",
        " (sent again after the first got no answer in time)",
    ),
)


def paid_lines(tally: Dict[str, Any]) -> List[str]:
    """Calls, answers reused, bytes and tokens, from an ``fetch.Tally`` snapshot."""
    calls = tally.get("calls") or {}
    hits = tally.get("hits") or {}
    out = [
        f"calls made: {sum(calls.values())}" + _by_service(calls),
        f"answers reused: {sum(hits.values())}" + _by_service(hits),
    ]
    for key, what, why in _SAID_WHEN_ANY:
        counted = tally.get(key) or {}
        if sum(counted.values()):
            out.append(f"{what}: {sum(counted.values())}" + _by_service(counted) + why)
    on_disk = int(tally.get("bytes_on_disk") or 0)
    sent = int(tally.get("bytes_sent") or 0)
    share = f" ({100.0 * sent / on_disk:.1f} %)" if on_disk else ""
    out.append(f"bytes sent: {_bytes(sent)} for {_bytes(on_disk)} on disk{share}")
    if tally.get("tokens"):
        out.append(f"tokens: {tally['tokens']}")
    return out


def _by_service(counts: Dict[str, int]) -> str:
    shown = [f"{service} {n}" for service, n in sorted(counts.items()) if n]
    return f" ({', '.join(shown)})" if shown else ""


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{count} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000.0
    return f"{count} bytes"


def _order(entry: Tuple[Tuple[str, str], int]) -> Tuple[str, int, str]:
    (plugin, status), _ = entry
    rank = ORDER.index(status) if status in ORDER else len(ORDER)
    return (plugin, rank, status)
