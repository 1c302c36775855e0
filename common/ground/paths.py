"""Where the files pixstor-azure makes live, and whether PixStor's own runtime is here.

Inside PixStor (``arcapix`` importable) the answer cache lives beside the plugins; outside it,
the tool's metadata store and the cache live in the user's data folder. Every default is
decided here, so the store, the cache and the tool's ``-v`` agree.
"""

import importlib.util
import os
from pathlib import Path

from .setting_registry import STORE
from .settings import PLUGINS_FOLDER, Settings

# PixStor Search's runtime, which the plugins run inside. Only whether it is installed is asked
# here; the adapter (``pixstor.py``) imports it.
IN_PIXSTOR = importlib.util.find_spec("arcapix") is not None

CACHE_FILE = "answers.sqlite3"
PLUGINS_CACHE_FOLDER = PLUGINS_FOLDER / "cache"


def store(settings: Settings) -> Path:
    """The tool's metadata store: $PIXSTOR_AZURE_STORE, else its declared default."""
    return Path(os.path.abspath(os.path.expanduser(settings.get(STORE))))


def cache(settings: Settings) -> Path:
    """The answer cache by default: beside the plugins inside PixStor, else beside the store."""
    if IN_PIXSTOR:
        return PLUGINS_CACHE_FOLDER / CACHE_FILE
    return store(settings).parent / CACHE_FILE
