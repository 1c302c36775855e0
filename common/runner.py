"""What every plugin's ``process`` does: extract the fields, write them, return the status.

It never raises. Each outcome other than success is one log line naming the file, the plugin
and the reason in plain words; details go to the debug level. What holds for every file (a
setting, a service refusing every request) is logged once per process, not once per file:
PixStor calls the plugin for every new image. Each value and field written is bounded
(``fields.bound``). Each file has a time budget across all its
attempts and waits (``PIXSTOR_AZURE_FILE_TIMEOUT``), and paths are logged so that any byte
sequence a file name holds can be written by any log handler.
"""

import logging
from pathlib import Path
from typing import Any, Callable, Optional

from .ground import budget, fields
from .ground.errors import Held, PixstorAzureError, Refused, SettingsError, StoreError
from .ground.logonce import log_once
from .ground.logtext import guard, printable
from .ground.outcomes import Outcome
from .ground.pixstor import Metadata, PluginStatus
from .ground.setting_registry import FILE_TIMEOUT
from .ground.settings import Settings

_LEVELS = {"SKIPPED": logging.WARNING, "FATAL": logging.ERROR, "ERRORED": logging.ERROR}

# The words of a file's line beyond the error's own (``ground/outcomes.py``: rows said,
# matching nothing).
NOTHING_FOUND = Outcome(None, "nothing found at or above the thresholds")
STORE_REFUSED = Outcome(None, "the metadata store refused the fields{why}")
SETTINGS_HOLD = Outcome(None, "{error} (every file fails until it is fixed)")
REFUSED_HOLD = Outcome(
    None,
    "{error} (files fail without asking until it is fixed; asked again at most once a minute)",
)
UNEXPECTED_ERROR = Outcome(None, "unexpected {kind}: {error}")


def process(
    plugin: Any,
    id_: Any,
    path: str,
    extract: Callable[[str], dict],
    write: Optional[Callable[[dict], bool]] = None,
) -> Any:
    """Run ``extract(path)`` for ``plugin`` and write its fields for item ``id_``: through
    ``write`` when given (the tool writes a record of the run with them), else to wherever this
    process writes fields (PixStor's index, or our stand-in's store)."""
    name = _label(plugin, extract)
    logger = plugin.logger
    shown = printable(path)
    guard(__package__)  # every line of ours about this file can be written, whatever its name
    try:
        seconds = Settings.load().get(FILE_TIMEOUT)
        with budget.limit(seconds):
            data = extract(path)
        if not data:
            logger.info("%s: %s: SKIPPED: %s", shown, name, NOTHING_FOUND.say(name))
            return PluginStatus.SKIPPED
        data, cuts = fields.bound(data)  # no value or field past its bound reaches the index
        for cut in cuts:
            logger.debug("%s: %s: %s", shown, name, printable(cut))
        try:
            accepted = write(data) if write is not None else Metadata(id_, plugin).update(data)
        except Exception as exc:
            raise StoreError(STORE_REFUSED.say(name, why=f" ({exc})")) from exc
        if not accepted:
            raise StoreError(STORE_REFUSED.say(name, why=""))
        logger.debug("%s: %s: SUCCESS: %s", shown, name, printable(data))
        return PluginStatus.SUCCESS
    except SettingsError as exc:
        log_once(
            logger,
            logging.ERROR,
            printable(f"{name}: FATAL: {SETTINGS_HOLD.say(name, error=exc)}"),
        )
        logger.debug("%s: %s: FATAL: %s", shown, name, printable(exc))
        return PluginStatus.FATAL
    except Refused as exc:
        # The first file's line names it; the following files fail without asking.
        log_once(
            logger,
            logging.ERROR,
            printable(f"{shown}: {name}: FATAL: {REFUSED_HOLD.say(name, error=exc)}"),
            key=str(exc),
        )
        logger.debug("%s: %s: FATAL: %s", shown, name, printable(exc))
        return PluginStatus.FATAL
    except Held as exc:  # an outage's pause, logged when it opened
        logger.debug("%s: %s: FATAL: %s", shown, name, printable(exc))
        return PluginStatus.FATAL
    except PixstorAzureError as exc:
        logger.log(_LEVELS[exc.status], "%s: %s: %s: %s", shown, name, exc.status, printable(exc))
        detail = getattr(exc, "detail", None)
        if detail:
            logger.debug("%s: %s: service said: %s", shown, name, printable(detail))
        return getattr(PluginStatus, exc.status)
    except Exception as exc:
        said = UNEXPECTED_ERROR.say(name, kind=type(exc).__name__, error=printable(exc))
        logger.error("%s: %s: FATAL: %s", shown, name, said)
        logger.debug("%s: %s: traceback", shown, name, exc_info=True)
        return PluginStatus.FATAL


def _label(plugin: Any, extract: Callable) -> str:
    """The plugin's file name (what administrators link), else its class name."""
    code = getattr(extract, "__code__", None)
    return Path(code.co_filename).stem if code is not None else type(plugin).__name__
