"""``show``, ``draw`` and ``search``: what the store holds, checked without PixStor."""

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..ground import boxes
from ..ground.errors import ImageError
from ..ground.logtext import printable
from ..ground.setting_registry import STORE
from ..ground.store import MetadataStore
from ..images.formats import handles
from . import catalog, walk
from .draw import draw_file

# What json.dumps leaves as it is and a terminal or a log viewer acts on: DEL, C1 controls,
# Unicode's line and paragraph separators (inside JSON strings only, where \\u escapes work).
_CONTROL = re.compile("[\x7f-\x9f\u2028\u2029]")
BOX_FIELDS = ("image.azure_detected_boxes", "image.azure_object_boxes")
# Fields of free text: found by a part of it. Every other field: by a whole value.
SUBSTRING_FIELDS = (
    "azure_caption",
    "azure_text",
    "azure_detected_boxes",
    "azure_object_boxes",
    # Where each answer came from: found by "model 2023-10-01", "inherited from plate.1001.exr".
    "azure_vision_source",
    "azure_classification_source",
    "azure_detection_source",
)


class _Reading:
    """The tool's store as the reading commands see it: one that no ``tag`` has made yet is
    empty, said once, and never created by reading it."""

    def __init__(self) -> None:
        self.store = MetadataStore.default()
        self.present = self.store.path.exists()
        if not self.present:
            print(
                f"pixstor-azure: no store at {self.store.path} yet "
                f"(run `pixstor-azure tag` first, or set {STORE.name})",
                file=sys.stderr,
            )

    def read(self, item: str) -> dict:
        return self.store.read(item) if self.present else {}

    def run(self, item: str, plugin: str) -> Any:
        return self.store.run(item, plugin) if self.present else None


def show(paths: Sequence[str]) -> int:
    """Print the stored fields of the files as JSON; 1 when none has any."""
    store = _Reading()
    out = {}
    empty = _Empty(store)
    for given in paths:
        for path in walk.files_under([given]):
            stored = store.read(walk.item_id(path))
            if stored:
                out[printable(str(path))] = stored  # a name escaped as in the logs
            else:
                empty.add(given, path)
    if out:
        print(_json(out))
    empty.say()
    return 0 if out else 1


def draw(paths: Sequence[str], out: str) -> int:
    """Copies of the files with their stored boxes drawn, in the same folder structure under
    ``out``; 1 when a file could not be drawn or none had boxes."""
    store = _Reading()
    folder = Path(out)
    base = _common_folder(paths)
    empty = _Empty(store)
    written = set()  # type: set
    drawn = no_boxes = failed = 0
    for given in paths:
        for path in walk.files_under([given]):
            stored = store.read(walk.item_id(path))
            if not stored:
                empty.add(given, path)
                continue
            found = [b for f in BOX_FIELDS if f in stored for b in boxes.from_json(stored[f])]
            if not found:
                no_boxes += 1
                continue
            target = _target(folder, base, path, written)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                draw_file(path, found, target)
            except ImageError as exc:
                print(printable(f"{path}: cannot draw: {exc}"), file=sys.stderr)
                failed += 1
                continue
            except OSError as exc:
                why = exc.strerror or exc
                print(printable(f"{path}: cannot write {target}: {why}"), file=sys.stderr)
                failed += 1
                continue
            written.add(target)
            drawn += 1
            print(printable(target))
    empty.say()
    if no_boxes:
        print(f"{no_boxes} file(s) have fields but no boxes stored", file=sys.stderr)
    return 0 if drawn and not failed else 1


def search(field: str, value: str) -> int:
    """Print the files whose stored ``field`` holds ``value``; 1 when none does."""
    namespace, _, name = field.rpartition(".")
    namespace = namespace or "image"
    known = known_fields()
    if f"{namespace}.{name}" not in known:
        print(
            f"pixstor-azure: error: unknown field {field!r}: one of {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    wanted = value.casefold()
    if name in SUBSTRING_FIELDS:

        def match(held: object) -> bool:
            return wanted in str(held).casefold()

    else:

        def match(held: object) -> bool:
            return str(held).casefold() == wanted

    store = _Reading()
    found = 0
    for item in store.store.search(namespace, name, match) if store.present else ():
        print(printable(item))
        found += 1
    if not found:
        print(f"no stored file has {value!r} in {namespace}.{name}", file=sys.stderr)
    return 0 if found else 1


def known_fields() -> List[str]:
    fields: List[str] = []
    for name in catalog.names():
        plugin = catalog.load(name)
        fields.extend(f"{plugin.namespace()}.{f['name']}" for f in plugin.schema() if "name" in f)
    return sorted(set(fields))


class _Empty:
    """Files with nothing stored, said once per folder and once per file named."""

    def __init__(self, store: "_Reading") -> None:
        self.store = store
        self.by_folder: Dict[str, int] = {}
        self.files: List[Path] = []
        self.not_pictures: List[Path] = []

    def add(self, given: str, path: Path) -> None:
        if not handles(path.suffix.lower()):
            if not os.path.isdir(given):  # named on its own: say why nothing is there
                self.not_pictures.append(path)
            return  # not a picture: nothing is ever stored for it
        if os.path.isdir(given):
            self.by_folder[given] = self.by_folder.get(given, 0) + 1
        else:
            self.files.append(path)

    def say(self) -> None:
        for path in self.not_pictures:
            print(printable(f"{path}: not a picture format these plugins take"), file=sys.stderr)
        for path in self.files:
            print(printable(f"{path}: nothing stored{self._last_runs(path)}"), file=sys.stderr)
        for folder, count in self.by_folder.items():
            print(printable(f"{folder}: {count} file(s) with nothing stored"), file=sys.stderr)

    def _last_runs(self, path: Path) -> str:
        item = walk.item_id(path)
        runs = []
        for entry in catalog.PLUGINS.values():
            run = self.store.run(item, entry.cls)
            if run is not None:
                runs.append(f"{entry.module} ended {run.status}")
        if runs:
            return " (last tag: " + ", ".join(runs) + ")"
        return " (never tagged: run pixstor-azure tag on it)"


def _json(stored: dict) -> str:
    """The fields as JSON any terminal shows as they are: a value a service gave with a lone
    surrogate, or a line separator, is written as its ``\\u`` escape."""
    text = json.dumps(stored, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(stored, indent=2)
    return _CONTROL.sub(lambda found: f"\\u{ord(found.group(0)):04x}", text)


def _common_folder(paths: Sequence[str]) -> Optional[str]:
    """The folder the output mirrors: the one named, or the closest one holding all named."""
    folders = [
        os.path.abspath(p) if os.path.isdir(p) else os.path.dirname(os.path.abspath(p))
        for p in paths
    ]
    return os.path.commonpath(folders) if folders else None


def _target(folder: Path, base: Optional[str], path: Path, written: set) -> Path:
    relative = Path(os.path.relpath(os.path.abspath(str(path)), base)) if base else Path(path.name)
    target = folder / relative.parent / f"{path.stem}.boxes.jpg"
    if target in written:  # frame.png beside frame.jpg
        target = folder / relative.parent / f"{path.name}.boxes.jpg"
    return target
