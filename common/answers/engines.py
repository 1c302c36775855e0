"""The engine this process uses (``engine.Engine``), chosen once from the settings.

``PIXSTOR_AZURE_DATABASE`` set: the PostgreSQL engine (``postgres.py``), which falls back to
the node's own; not set: the node's own SQLite files (``local.py``). Each is made once per
process and kept in the runtime, so that its connections and files stay open from one file to
the next; settings that change give another one, without a restart.
"""

import threading
from typing import Dict, Optional, Tuple

from ..ground import runtime
from ..ground.setting_registry import RATE_FILE
from ..ground.settings import Settings
from . import cache, postgres
from .engine import Engine
from .local import SqliteEngine


class LocalEngines:
    """This process's SQLite engines, by answer cache and rate file."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made: Dict[Tuple[int, str], SqliteEngine] = {}

    def get(self, answers: Optional[cache.AnswerCache], rate_file: str) -> SqliteEngine:
        key = (id(answers), rate_file)
        with self.lock:
            made = self.made.get(key)
            if made is None or made.cache is not answers:
                made = self.made[key] = SqliteEngine(answers, rate_file)
            return made

    def close(self) -> None:
        with self.lock:
            made, self.made = list(self.made.values()), {}
        for engine in made:
            engine.close()


def current(settings: Optional[Settings] = None) -> Engine:
    """The engine the settings choose, made on first use."""
    settings = settings or Settings.load()
    answers, rate_file = cache.current(settings), settings.get(RATE_FILE)
    local = runtime.current().get(LocalEngines).get(answers, rate_file)
    shared = postgres.engine(settings, local)
    return local if shared is None else shared


def keeps_answers(settings: Optional[Settings] = None) -> bool:
    """False when ``PIXSTOR_AZURE_CACHE=off``: no answer is kept, and none is waited for."""
    return cache.current(settings) is not None
