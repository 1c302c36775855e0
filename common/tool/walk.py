"""The files under the paths an administrator names, in a stable order."""

import os
from pathlib import Path
from typing import Iterable, Iterator, List


def missing(paths: Iterable[str]) -> List[str]:
    """The paths that do not exist (a typo must not pass for an empty folder)."""
    return [p for p in paths if not os.path.exists(p)]


def files_under(paths: Iterable[str]) -> Iterator[Path]:
    """Each file named, and every file under each folder named, folders sorted by name."""
    for path in map(Path, paths):
        if path.is_dir():
            for folder, dirs, names in os.walk(str(path)):
                dirs.sort()
                for name in sorted(names):
                    yield Path(folder) / name
        else:
            yield path


def item_id(path: Path) -> str:
    """The id the tool stores a file's fields under: its absolute path, links resolved."""
    return str(path.resolve())
