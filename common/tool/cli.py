"""Command-line tool: run the plugins over files and folders outside PixStor.

    pixstor-azure tag [-p vision ...] [--jobs 4] [--dry-run] [--max-calls N] PATH...
    pixstor-azure retag [-p ...] [PATH...]
    pixstor-azure show PATH...
    pixstor-azure draw --out FOLDER PATH...
    pixstor-azure search FIELD VALUE
    pixstor-azure sheet --out FOLDER PATH...
    pixstor-azure train [--dry-run] CORRECTIONS.json
    pixstor-azure doctor [-p ...]
    pixstor-azure db init|status|import

``tag`` runs each chosen plugin on every image under the paths, exactly as PixStor would
(``handles``, then ``process``), writing fields to the tool's own SQLite store
($PIXSTOR_AZURE_STORE), never to PixStor's index; files already done with the same content and
settings are not asked again. ``retag`` re-derives the stored fields from cached answers with
today's thresholds, with no call. ``show`` prints what the store holds for files, as JSON;
``draw`` writes copies with the stored boxes drawn; ``search`` lists the files whose field
holds a value; ``doctor`` checks each plugin's settings and service with a small test picture.

Exit status: 0 done; 1 a file ended FATAL or ERRORED, a setting is wrong, nothing stored or
found, or doctor found a problem; 2 bad arguments or a path that does not exist; 3 ``tag``
stopped at ``--max-calls`` with files left; 130 interrupted (Ctrl-C; 143 for SIGTERM).
"""

import argparse
import logging
import sqlite3
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from .. import __version__
from ..answers import cache, postgres
from ..ground import paths, pixstor
from ..ground.errors import SettingsError
from ..ground.logtext import guard
from ..ground.setting_registry import CACHE, CONFIG
from ..ground.settings import DEFAULT_CONFIG, Settings
from . import backfill, browse, catalog, db, doctor, sheet, train, walk

log = logging.getLogger("pixstor_azure.tool.cli")

PROG = "pixstor-azure"
PATH_COMMANDS = ("tag", "retag", "show", "draw", "sheet")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = args.verbose + args.sub_verbose
    quiet = args.quiet or args.sub_quiet
    level = (
        logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    )
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    logging.getLogger().setLevel(level)
    guard("pixstor_azure")  # every line of ours one line, without a key (``logtext``)
    # Run on a PixStor node inside PixStor's environment, arcapix imports; the tool has paths,
    # not the index's item ids, so it always writes to its own store.
    pixstor.use_own_store()

    paths = getattr(args, "paths", []) or []
    gone = walk.missing(paths) if args.command in PATH_COMMANDS else []
    if gone:
        print(f"{PROG}: error: no such file or folder: {gone[0]}", file=sys.stderr)
        return 2
    try:
        if log.isEnabledFor(logging.INFO):
            for line in about():
                log.info("%s", line)
        return run(args, quiet)
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except sqlite3.Error as exc:
        print(f"{PROG}: the store cannot be used: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{PROG}: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, quiet: bool) -> int:
    if args.command == "show":
        return browse.show(args.paths)
    if args.command == "draw":
        return browse.draw(args.paths, args.out)
    if args.command == "search":
        return browse.search(args.field, args.value)
    if args.command == "sheet":
        return sheet.sheet(args.paths, sheet.Options(args.out, args.jobs, args.thumb, args.large))
    if args.command == "db":
        return db.db(args)
    if args.command == "train":
        return train.train(
            args.corrections, train.Options(args.task, args.dry_run, args.create_tags)
        )
    plugins = tuple(dict.fromkeys(args.plugins or catalog.names()))
    if args.command == "doctor":
        return doctor.doctor(plugins, explicit=bool(args.plugins))
    if args.command == "retag":
        options = backfill.Options(plugins, explicit=bool(args.plugins), quiet=quiet)
        return backfill.retag(args.paths, options)
    options = backfill.Options(
        plugins,
        explicit=bool(args.plugins),
        jobs=args.jobs,
        force=args.force,
        retry_failed=args.retry_failed,
        dry_run=args.dry_run,
        max_calls=args.max_calls,
        progress=not (args.no_progress or quiet),
        quiet=quiet,
    )
    return backfill.tag(args.paths, options)


def about() -> List[str]:
    """What -v says first: versions, the INI file, the store and the cache (never a key)."""
    lines = [f"{PROG} {__version__} on Python {sys.version.split()[0]}"]
    ini = config_file()
    if ini is not None:
        lines.append(f"settings: environment, then the INI file {ini}")
    else:
        lines.append(
            f"settings: environment only ({CONFIG.name} is not set and there is no "
            f"{DEFAULT_CONFIG})"
        )
    here = Path.cwd() / "pixstor-azure.ini"
    if here.is_file() and (ini is None or here.resolve() != ini.resolve()):
        lines.append(
            f"{here} is not read: only {CONFIG.name}, else the INI file beside the "
            f"plugins, is (set {CONFIG.name}={here} to use it)"
        )
    lines.append(f"store: {paths.store(Settings.load())} (the tool's own SQLite store)")
    if paths.IN_PIXSTOR:
        lines.append(
            "arcapix imports here (PixStor's environment): the tool still writes only to its "
            "own store above, never to PixStor's index"
        )
    answers = cache.current()
    lines.append(
        f"answer cache: {answers.path}"
        if answers is not None
        else f"answer cache: off ({CACHE.name}=off)"
    )
    shared = postgres.target(Settings.load())
    if shared is not None:
        lines.append(
            f"database: {shared.shown} (answers, claims, rates and holds of every node; the "
            "answer cache above while it cannot be used)"
        )
    return lines


def config_file() -> Optional[Path]:
    """The INI file settings are read from, if there is one (as ``Settings.load`` chose it)."""
    settings = Settings.load()
    return settings.config if settings.config_status is not None else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[-1],
    )
    _common(parser, "")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True  # the keyword exists only from Python 3.7

    tag = _command(commands, "tag", "run plugins over files and folders")
    tag.add_argument("paths", nargs="+", metavar="PATH")
    _plugins(tag)
    tag.add_argument("-j", "--jobs", type=_positive, default=4, help="files at once (default 4)")
    tag.add_argument(
        "--force", action="store_true", help="ask again even for files done with these settings"
    )
    tag.add_argument(
        "--retry-failed",
        action="store_true",
        help="only the files that ended FATAL or ERRORED last time",
    )
    tag.add_argument(
        "--dry-run",
        action="store_true",
        help="count files, answers in the cache and calls to pay, and what they cost; send nothing",
    )
    tag.add_argument(
        "--max-calls",
        type=_count,
        metavar="N",
        help="stop cleanly once N billed calls are made (run again to continue)",
    )
    tag.add_argument("--no-progress", action="store_true", help="no progress bar")

    retag = _command(
        commands, "retag", "fields again from cached answers with today's settings; no call"
    )
    retag.add_argument("paths", nargs="*", metavar="PATH", help="default: every stored file")
    _plugins(retag)

    show = _command(commands, "show", "print the stored fields of files as JSON")
    show.add_argument("paths", nargs="+", metavar="PATH")

    draw = _command(commands, "draw", "draw the stored boxes on copies of files")
    draw.add_argument("paths", nargs="+", metavar="PATH")
    draw.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="FOLDER",
        help="where the copies go, in the same folder structure",
    )

    search = _command(commands, "search", "list the files whose stored field holds a value")
    search.add_argument("field", metavar="FIELD", help="e.g. azure_classes or image.azure_text")
    search.add_argument(
        "value", metavar="VALUE", help="a whole class or tag; a part of caption or text"
    )

    sheet.add_parser(_command(commands, "sheet", sheet.HELP))
    train.add_parser(_command(commands, "train", train.HELP))
    db.add_parser(_command(commands, "db", db.HELP))

    check = _command(commands, "doctor", "check each plugin's settings and service")
    _plugins(check)
    return parser


def _common(parser: argparse.ArgumentParser, prefix: str) -> None:
    """-v, -q and --version, before or after the command (separate names: one never resets
    the other's count)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        dest=prefix + "verbose",
        help="-v: which settings, store and cache are used, and files with nothing found; "
        "-vv: everything",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", dest=prefix + "quiet", help="errors only"
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")


def _command(commands, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    _common(parser, "sub_")
    return parser


def _plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--plugin",
        action="append",
        choices=catalog.names(),
        dest="plugins",
        help="plugin to run (repeatable; default: every plugin that is set up)",
    )


def _positive(text: str) -> int:
    number = _count(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return number


def _count(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return number


if __name__ == "__main__":
    sys.exit(main())
