"""``tag`` and ``retag``: the plugins over an archive, each picture paid for once.

``tag`` runs each chosen plugin on every file it handles, as PixStor would (``handles``, then
``process``), and records per (file, plugin) the content digest, the settings signature and the
status, in the same SQLite transaction as the fields. A file whose record is today's (same
content, same signature, ended SUCCESS or SKIPPED) is not touched again; one whose content was
answered before (a copy, a rename) gets its answer from the answer cache. Two files with the
same content in one run are done one after the other, so the second is a cache hit.

``retag`` re-derives the fields of every recorded file from the cached answers with today's
thresholds, and never calls a service.
"""

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

from .. import runner
from ..answers import cache, fetch, frames, offline
from ..answers.answer import identity_key
from ..ground import fields
from ..ground.errors import PixstorAzureError, SettingsError
from ..ground.logtext import printable
from ..ground.setting_registry import SEQUENCES
from ..ground.settings import Settings, unset
from ..ground.standin import SchemaMismatch, check
from ..ground.store import MetadataStore, Run
from ..http import client
from ..images import prepare
from . import catalog, prices, walk
from .interrupt import interruptible
from .summary import Summary

log = logging.getLogger(__name__)

DONE = ("SUCCESS", "SKIPPED")
FAILED = ("FATAL", "ERRORED")
GRACE = 1.0  # seconds given to workers to finish what they are writing when interrupted
STOPPED_AT_MAX_CALLS = 3  # exit status: --max-calls reached with work left


class Options(NamedTuple):
    plugins: Tuple[str, ...]
    explicit: bool = False  # the plugins were named with -p (else: those set up)
    jobs: int = 4
    force: bool = False
    retry_failed: bool = False
    dry_run: bool = False
    max_calls: Optional[int] = None
    progress: bool = False
    quiet: bool = False  # -q: errors and the summary only, without its notes


class Plan:
    """One plugin, ready to run: its instance, its backend and the signature of its settings."""

    def __init__(self, name: str, plugin: Any, chosen: Any, signature: str) -> None:
        entry = catalog.PLUGINS[name]
        self.name = name
        self.label = entry.module  # what administrators link, and log lines say
        self.cls = entry.cls  # what fields and runs are stored under
        self.plugin = plugin
        self.extract = catalog.module(name).extract  # what the plugin's process() runs
        self.backend = chosen
        self.signature = signature
        self.namespace = plugin.namespace()


class Broken(NamedTuple):
    label: str
    plugin: Any
    error: SettingsError


def plan_plugins(
    options: Options, settings: Settings, summary: Summary
) -> Tuple[List[Plan], List[Broken]]:
    """The plugins that can run, and those whose settings are wrong (each said in one line).

    Without -p, a plugin that is not set up at all is left out, with a note.
    """
    plans, broken = [], []
    for name in options.plugins:
        plugin = catalog.load(name)
        label = catalog.PLUGINS[name].module
        try:
            chosen = catalog.backend(name, settings)
            signature = catalog.signature(name, chosen, settings)
        except SettingsError as exc:
            if not options.explicit and unset(exc):
                summary.notes.append(
                    f"{label}: left out, not set up ({exc}); name it with -p to run it"
                )
                continue
            log.error("%s: FATAL: %s (nothing is sent for it until it is fixed)", label, exc)
            broken.append(Broken(label, plugin, exc))
            continue
        log.info("%s: uses %s", label, catalog.describe(name, chosen, settings))
        plans.append(Plan(name, plugin, chosen, signature))
    return plans, broken


class Budget:
    """The billed calls ``--max-calls`` allows; None is no limit."""

    def __init__(self, limit: Optional[int]) -> None:
        self.limit = limit
        self.taken = 0
        self.lock = threading.Lock()

    def take(self, calls: int) -> bool:
        """Whether ``calls`` more calls are allowed (and then counted)."""
        with self.lock:
            if self.limit is not None and self.taken + calls > self.limit:
                return False
            self.taken += calls
            return True


class KeyedLocks:
    """One lock per key, made on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.locks: Dict[Any, List[Any]] = {}

    @contextlib.contextmanager
    def hold(self, key: Any) -> Iterator[None]:
        with self.lock:
            entry = self.locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self.lock:
                entry[1] -= 1
                if not entry[1]:
                    del self.locks[key]


class Content:
    """A file's digest, taken at most once for all plugins, and not at all when the record's
    size and modification time say the file is the one it recorded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            stat = os.stat(str(path))
            self.size, self.mtime_ns = stat.st_size, stat.st_mtime_ns  # type: Any, Any
        except OSError:
            self.size = self.mtime_ns = None
        self._digest = None  # type: Optional[str]

    def digest(self, previous: Optional[Run]) -> Optional[str]:
        if self._digest is None and self.size is not None:
            if previous is not None and previous.digest and self.same_as(previous):
                self._digest = previous.digest
            else:
                try:
                    self._digest = fetch.digest(str(self.path))
                except OSError:
                    return None  # unreadable: the plugin says so in its own words
        return self._digest

    def same_as(self, previous: Run) -> bool:
        return (previous.size, previous.mtime_ns) == (self.size, self.mtime_ns)


class Backfill:
    """One ``tag`` run over a list of files, on ``jobs`` worker threads."""

    def __init__(self, options: Options, summary: Summary, store: MetadataStore) -> None:
        self.options = options
        self.summary = summary
        self.store = store
        self.readable = options.dry_run is False or store.path.exists()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.in_flight: Dict[int, Tuple[Path, List[str]]] = {}  # worker -> file, plugins
        self.left: Set[Path] = set()  # files some plugin did not reach
        self.closed = False
        self.budget = Budget(options.max_calls)
        self.out_of_calls = False
        self.interrupted = False
        self.crashed = None  # type: Optional[str]  # why a worker stopped, in one line
        self.same = KeyedLocks()
        self.foreseen = set()  # type: set  # dry run: (backend, digest) a call would answer
        self.calls: Dict[str, List[Any]] = {}  # dry run: label -> [calls, backend]
        self.saved: Dict[str, int] = {}  # dry run: label -> calls frame sequences save
        self.foresight = frames.Foresight()
        self.done = 0

    # ------------------------------------------------------------------ the run

    def run(self, work: List[Tuple[Path, List[Plan]]]) -> None:
        pending = queue.Queue()  # type: queue.Queue
        for entry in work:
            pending.put(entry)
        count = max(1, min(self.options.jobs, len(work)))
        threads = [
            threading.Thread(target=self._worker, args=(pending,), name=f"tag-{i}", daemon=True)
            for i in range(count)
        ]
        bar = _progress(len(work)) if self.options.progress else None
        shown = 0
        try:
            for thread in threads:
                thread.start()
            while True:
                alive = [t for t in threads if t.is_alive()]
                if not alive:
                    break
                alive[0].join(0.1)
                if bar is not None and self.done > shown:
                    bar.update(self.done - shown)
                    shown = self.done
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop.set()
            # Workers finish what they are writing; one waiting on the network is left behind
            # (its file is not done, and the next run does it).
            deadline = time.monotonic() + GRACE
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        finally:
            if bar is not None:
                bar.close()
        with self.lock:
            self.closed = True
            for path, labels in self.in_flight.values():
                for label in labels:
                    self._left(path, label)
        while True:
            try:
                path, plans = pending.get_nowait()
            except queue.Empty:
                break
            for plan in plans:
                self._left(path, plan.label)

    def _worker(self, pending: "queue.Queue") -> None:
        try:
            self._work(pending)
        except Exception as exc:
            # An error out of a worker would end its thread alone: its files not done, counted
            # as not reached, and the run ending 0 for ever. It stops the run instead, said in
            # one line (the traceback at -vv).
            log.debug("a worker stopped", exc_info=True)
            with self.lock:
                path = self.in_flight.get(threading.get_ident(), (None,))[0]
                if self.crashed is None:
                    where = f" on {path}" if path is not None else ""
                    self.crashed = printable(
                        f"stopped: a worker failed{where} ({type(exc).__name__}: {exc}); every "
                        "file done is saved"
                    )
            self.stop.set()

    def _work(self, pending: "queue.Queue") -> None:
        me = threading.get_ident()
        while not self.stop.is_set():
            try:
                path, plans = pending.get_nowait()
            except queue.Empty:
                return
            with self.lock:
                self.in_flight[me] = (path, [p.label for p in plans])
            content = Content(path)
            item = walk.item_id(path)
            for plan in plans:
                status = "left" if self.stop.is_set() else self._one(plan, path, item, content)
                self._count(path, plan.label, status)
            with self.lock:
                self.in_flight.pop(me, None)
                self.done += 1

    def _count(self, path: Path, label: str, status: str) -> None:
        with self.lock:
            if self.closed:
                return  # the summary is out: a late worker changes nothing
            _, labels = self.in_flight.get(threading.get_ident(), (path, []))
            if label in labels:
                labels.remove(label)
            if status == "left":
                self._left(path, label)
            else:
                self.summary.add(label, status)

    def _left(self, path: Path, label: str) -> None:
        self.left.add(path)
        self.summary.add(label, "left" if self.crashed is None else "stopped")

    # ------------------------------------------------------------------ one file, one plugin

    def _one(self, plan: Plan, path: Path, item: str, content: Content) -> str:
        previous = self.store.run(item, plan.cls) if self.readable else None
        if self.options.retry_failed and (previous is None or previous.status not in FAILED):
            return "not retried"
        digest = content.digest(previous)
        current = (
            previous is not None
            and digest is not None
            and previous.digest == digest
            and previous.signature == plan.signature
            and previous.status in DONE
        )
        if current and not self.options.force:
            return "unchanged"
        if self.options.dry_run:
            return self._foresee(plan, path, digest)
        run = Run(item, plan.cls, digest, content.size, content.mtime_ns, plan.signature, "")
        with self.same.hold((plan.name, digest or item)):
            if not self._may_call(plan, path):
                # Left for the next run; the files after it are still looked at, so that those
                # done or answered from the cache are counted as what they are, not as left.
                self.out_of_calls = True
                return "left"
            return self._process(plan, path, run)

    def _process(self, plan: Plan, path: Path, run: Run) -> str:
        # As PixStor calls the plugin, but the fields go to our store with the run's record,
        # in one transaction: a run stopped at any moment leaves the file done or not done.
        written = []  # type: List[bool]

        def write(data: dict) -> bool:
            written.append(self.store.write(run.item, plan.namespace, plan.cls, data, run))
            return written[-1]

        status = runner.process(plan.plugin, run.item, str(path), plan.extract, write).name
        if any(written):
            return status
        # Nothing written with fields: record the outcome alone. A file that now gives nothing
        # loses the fields it had; a failure keeps them (they are the last known good ones).
        fields: Optional[Dict[str, Any]] = {} if status == "SKIPPED" else None
        if not self.store.record(run._replace(status=status), plan.namespace, fields):
            return "ERRORED"
        return status

    def _may_call(self, plan: Plan, path: Path) -> bool:
        """Whether ``--max-calls`` lets the file go ahead: free, or its calls are left."""
        if self.options.max_calls is None:
            return True
        billed = [part for part in self._missing(plan, path) if part.billed]
        return self.budget.take(len(billed))

    def _missing(self, plan: Plan, path: Path) -> List[Any]:
        """The backends of the plugin whose answer for the file is not in the cache."""
        return [part for part in plan.backend.parts() if fetch.lookup(part, str(path)) is None]

    def _foresee(self, plan: Plan, path: Path, digest: Optional[str]) -> str:
        calls = []
        missing = self._missing(plan, path)
        with self.lock:
            for part in missing:
                key = (identity_key(part.identity()), digest)
                if digest is not None and _cache_on() and key in self.foreseen:
                    continue  # a copy met earlier in this run: its answer will be cached
                self.foreseen.add(key)
                if self.foresight.would_reuse(part, str(path)):
                    label = prices.label(part)  # a frame like one asked: its answer, no call
                    self.saved[label] = self.saved.get(label, 0) + 1
                    continue
                calls.append(part)
            for part in calls:
                entry = self.calls.setdefault(prices.label(part), [0, part])
                entry[0] += 1
        return "would call" if calls else "from the cache"


def tag(paths: Sequence[str], options: Options) -> int:
    """Run ``tag``; the exit status."""
    settings = Settings.load()
    summary = Summary()
    store = MetadataStore.default()
    with interruptible() as caught:
        try:
            plans, broken = plan_plugins(options, settings, summary)
            if not plans and not broken:
                _print(summary.notes)
                _print(["no plugin is set up: see `pixstor-azure doctor`"])
                return 1
            work = _handled(paths, plans, broken, summary)
            client.connections().fit(options.jobs)  # a kept connection per worker thread
            # Each worker's file stays decoded while the three plugins ask for it in turn.
            prepare.set_cache_size(max(prepare.DEFAULT_DECODED, options.jobs))
            backfill = Backfill(options, summary, store)
            backfill.run(work)
        except KeyboardInterrupt:
            _print([*summary.lines(), "interrupted before the run started: nothing was sent"])
            return caught.exit_status()
    if options.dry_run:
        _print(dry_run_lines(backfill, summary, settings))
        return 1 if broken else 0
    lines = summary.lines(notes=not options.quiet)
    if backfill.interrupted:
        lines.append(
            "interrupted: every file done is saved; run the same command again to continue"
        )
        _print(lines)
        return caught.exit_status()
    if backfill.crashed is not None:
        _print([*lines, backfill.crashed])
        return 1
    if backfill.out_of_calls:
        lines.append(
            f"stopped at --max-calls {options.max_calls}: {backfill.budget.taken} billed calls "
            f"made or allowed; {len(backfill.left)} file(s) left; run the same command "
            "again to continue"
        )
    _print(lines)
    if summary.failed():
        return 1
    return STOPPED_AT_MAX_CALLS if backfill.out_of_calls else 0


def _handled(
    paths: Sequence[str], plans: List[Plan], broken: List[Broken], summary: Summary
) -> List[Tuple[Path, List[Plan]]]:
    """The files each plugin handles; files none handles are counted, broken plugins' FATAL."""
    work = []
    for path in walk.files_under(paths):
        summary.found += 1
        ext = path.suffix.lower()
        mine = [p for p in plans if p.plugin.handles(ext=ext)]
        theirs = [b for b in broken if b.plugin.handles(ext=ext)]
        if not mine and not theirs:
            summary.not_handled += 1
            continue
        for bad in theirs:
            summary.add(bad.label, "FATAL")
        if mine:
            work.append((path, mine))
    return work


def dry_run_lines(backfill: Backfill, summary: Summary, settings: Settings) -> List[str]:
    """What a run would do and cost, from a dry run."""
    lines = ["dry run: nothing was sent, nothing was written"]
    lines.extend(
        line
        for line in summary.lines()
        if not line.startswith(("calls made", "answers reused", "bytes sent", "calls failed"))
    )
    money = None  # type: Optional[float]
    currency = prices.currency(settings)
    for what, (calls, part) in sorted(backfill.calls.items()):
        if not part.billed:
            lines.append(f"{what}: {calls} pictures run on your own machines (nothing billed)")
            continue
        price = prices.price(part, settings)
        if price is None:
            lines.append(f"{what}: {calls} calls (billed by tokens: cost not counted)")
            continue
        cost = price.cost(calls)
        money = (money or 0.0) + cost
        origin = (
            f"the default, assumed on {prices.ASSUMED_ON} for {price.note}: set "
            f"{price.setting} to your price"
            if price.assumed
            else f"from {price.setting}"
        )
        lines.append(
            f"{what}: {calls} calls, {_money(cost)} {currency} at {price.per_1000:g} "
            f"{currency} per 1,000 calls ({origin})"
        )
    for what, saved in sorted(backfill.saved.items()):
        lines.append(
            f"{what}: {saved} calls saved by frame sequences (frames that look like a frame "
            f"asked reuse its answer; {SEQUENCES.name})"
        )
    if money is not None:
        lines.append(
            f"cost: at most {_money(money)} {currency} (a file that turns out not to be a "
            "usable picture is not sent)"
        )
    return lines


def retag(paths: Sequence[str], options: Options) -> int:
    """Run ``retag``: fields again from cached answers with today's settings; the exit status."""
    settings = Settings.load()
    summary = Summary()
    store = MetadataStore.default()
    roots = [walk.item_id(Path(p)) for p in paths]
    with interruptible() as caught:
        try:
            plans, broken = plan_plugins(options, settings, summary)
            if not plans and not broken:
                _print([*summary.notes, "no plugin is set up: see `pixstor-azure doctor`"])
                return 1
            with offline.forbidden():
                for plan in plans:
                    for item in store.items_of(plan.cls):
                        if roots and not any(_under(item, root) for root in roots):
                            continue
                        summary.found += 1
                        summary.add(plan.label, _retag_one(plan, item, store))
        except KeyboardInterrupt:
            lines = summary.lines(files=False)
            _print([*lines, "interrupted: every file done is saved"])
            return caught.exit_status()
    _print(summary.lines(files=False, notes=not options.quiet))
    return 1 if summary.failed() or broken else 0


def _retag_one(plan: Plan, item: str, store: MetadataStore) -> str:
    previous = store.run(item, plan.cls)
    content = Content(Path(item))
    if content.size is None:
        return "gone"
    if previous is not None and previous.size is not None and not content.same_as(previous):
        return "changed on disk"
    try:
        data = catalog.module(plan.name).extract(item)
        check(data, plan.plugin.schema())
    except offline.NotCached:
        return "no cached answer"
    except PixstorAzureError as exc:
        log.warning("%s: %s: %s: %s", item, plan.label, exc.status, exc)
        return exc.status
    except SchemaMismatch as exc:
        log.error("%s: %s: ERRORED: the fields do not match the schema (%s)", item, plan.label, exc)
        return "ERRORED"
    data, cuts = fields.bound(data)  # as runner.process writes them
    for cut in cuts:
        log.debug("%s: %s: %s", item, plan.label, cut)
    status = "SUCCESS" if data else "SKIPPED"
    digest = content.digest(previous)
    run = Run(item, plan.cls, digest, content.size, content.mtime_ns, plan.signature, status)
    if not store.record(run, plan.namespace, data):
        return "ERRORED"
    return status


def _under(item: str, root: str) -> bool:
    return item == root or item.startswith(root.rstrip(os.sep) + os.sep)


def _cache_on() -> bool:
    return cache.current() is not None


def _money(amount: float) -> str:
    return f"{amount:.2f}" if amount >= 1 or amount == 0 else f"{amount:.4f}"


def _print(lines: Sequence[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)
    sys.stderr.flush()


def _progress(total: int) -> Any:
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the progress bar is a nicety of the cli extra
        return None
    return tqdm(total=total, unit="file")
