"""Faults that hold for every file, between a backend and its service.

``ask(backend, path)`` is how a backend is asked on a cache miss.
"""

from typing import Any

from .answers import Answer


def ask(backend: Any, path: str) -> Answer:
    """``backend.ask(path)``."""
    return backend.ask(path)
