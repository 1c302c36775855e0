"""What every plugin's ``process`` does: extract the fields, write them, return the status.

It never raises. Each outcome other than success is one log line naming the file, the plugin
and the reason in plain words; details go to the debug level. Settings errors are logged once
per process, not once per file: PixStor calls the plugin for every new image.
"""

import logging
from pathlib import Path
from typing import Any, Callable

from .errors import PixstorAzureError, SettingsError, StoreError
from .logonce import log_once
from .pixstor import Metadata, PluginStatus

_LEVELS = {"SKIPPED": logging.WARNING, "FATAL": logging.ERROR, "ERRORED": logging.ERROR}


def process(plugin: Any, id_: Any, path: str, extract: Callable[[str], dict]) -> Any:
    """Run ``extract(path)`` for ``plugin`` and write its fields for item ``id_``."""
    name = _label(plugin, extract)
    logger = plugin.logger
    try:
        data = extract(path)
        if not data:
            logger.info("%s: %s: SKIPPED: nothing found at or above the thresholds", path, name)
            return PluginStatus.SKIPPED
        try:
            accepted = Metadata(id_, plugin).update(data)
        except Exception as exc:
            raise StoreError(f"the metadata store refused the fields ({exc})") from exc
        if not accepted:
            raise StoreError("the metadata store refused the fields")
        logger.debug("%s: %s: SUCCESS: %s", path, name, data)
        return PluginStatus.SUCCESS
    except SettingsError as exc:
        log_once(
            logger, logging.ERROR, f"{name}: FATAL: {exc} (every file fails until it is fixed)"
        )
        logger.debug("%s: %s: FATAL: %s", path, name, exc)
        return PluginStatus.FATAL
    except PixstorAzureError as exc:
        logger.log(_LEVELS[exc.status], "%s: %s: %s: %s", path, name, exc.status, exc)
        detail = getattr(exc, "detail", None)
        if detail:
            logger.debug("%s: %s: service said: %s", path, name, detail)
        return getattr(PluginStatus, exc.status)
    except Exception as exc:
        logger.error("%s: %s: FATAL: unexpected %s: %s", path, name, type(exc).__name__, exc)
        logger.debug("%s: %s: traceback", path, name, exc_info=True)
        return PluginStatus.FATAL


def _label(plugin: Any, extract: Callable) -> str:
    """The plugin's file name (what administrators link), else its class name."""
    code = getattr(extract, "__code__", None)
    return Path(code.co_filename).stem if code is not None else type(plugin).__name__
