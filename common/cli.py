"""Command-line tool: run the plugins over files and folders outside PixStor.

    pixstor-azure tag [-p vision -p classification ...] [--jobs 4] PATH...
    pixstor-azure show PATH...
    pixstor-azure draw --out FOLDER PATH...

``tag`` runs each chosen plugin on every image under the paths, exactly as PixStor would
(``handles``, then ``process``), writing fields to the SQLite store ($PIXSTOR_AZURE_STORE).
``show`` prints what the store holds for files, as JSON; ``draw`` writes a copy of each file
with its stored boxes drawn on it, to check detections by eye. Exit status: 0 when no file ended
FATAL or ERRORED, 1 otherwise, 2 for bad arguments.
"""

import argparse
import collections
import importlib.util
import json
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from . import boxes, images
from .draw import draw_file
from .store import MetadataStore

PLUGINS = {
    "vision": ("azurevision", "AzureVisionPlugin"),
    "classification": ("azureclassification", "AzureClassificationPlugin"),
    "detection": ("azureobjectdetection", "AzureObjectDetectionPlugin"),
}


def load_plugin(name: str) -> Any:
    """An instance of the named plugin, loaded from its file beside ``common/`` as PixStor does."""
    module_name, class_name = PLUGINS[name]
    module = sys.modules.get(module_name)
    if module is None:
        path = Path(__file__).resolve().parent.parent / (module_name + ".py")
        spec = importlib.util.spec_from_file_location(module_name, str(path))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
    return getattr(module, class_name)()


def files_under(paths: Iterable[str]) -> Iterator[Path]:
    for path in map(Path, paths):
        if path.is_dir():
            for folder, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    yield Path(folder) / name
        else:
            yield path


def tag(paths: Sequence[str], plugin_names: Sequence[str], jobs: int, progress: bool) -> int:
    plugins = [load_plugin(n) for n in plugin_names]
    files = list(files_under(paths))
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()
    # Each worker runs every plugin on its file in turn: keep one decoded image per worker.
    images.set_cache_size(max(3, jobs + 1))

    def run(path: Path) -> None:
        ext = path.suffix.lower()
        for plugin in plugins:
            if plugin.handles(ext=ext):
                status = plugin.process(str(path.resolve()), str(path))
                with lock:
                    counts[(type(plugin).__module__, status.name)] += 1

    bar = _progress(len(files)) if progress else None
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(run, files):
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    for (plugin, status), count in sorted(counts.items()):
        print(f"{plugin}: {status} {count}", file=sys.stderr)
    failed = any(status in ("FATAL", "ERRORED") for _, status in counts)
    return 1 if failed else 0


def show(paths: Sequence[str]) -> int:
    store = MetadataStore.default()
    out = {str(p): store.read(str(p.resolve())) for p in files_under(paths)}
    print(json.dumps({k: v for k, v in out.items() if v}, indent=2, ensure_ascii=False))
    return 0


BOX_FIELDS = ("image.azure_detected_boxes", "image.azure_object_boxes")


def draw(paths: Sequence[str], out: str) -> int:
    store = MetadataStore.default()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for path in files_under(paths):
        stored = store.read(str(path.resolve()))
        found = [b for f in BOX_FIELDS if f in stored for b in boxes.from_json(stored[f])]
        if found:
            target = folder / f"{path.stem}.boxes.jpg"
            draw_file(path, found, target)
            print(target)
    return 0


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # the progress bar is a nicety of the cli extra
        return None
    return tqdm(total=total, unit="file")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="pixstor-azure", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    commands = parser.add_subparsers(dest="command")
    commands.required = True  # the keyword exists only from Python 3.7
    tag_parser = commands.add_parser("tag", help="run plugins over files and folders")
    tag_parser.add_argument("paths", nargs="+", metavar="PATH")
    tag_parser.add_argument(
        "-p",
        "--plugin",
        action="append",
        choices=sorted(PLUGINS),
        dest="plugins",
        help="plugin to run (repeatable; default: all three)",
    )
    tag_parser.add_argument("-j", "--jobs", type=int, default=4, help="files at once (default 4)")
    tag_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    show_parser = commands.add_parser("show", help="print the stored fields of files as JSON")
    show_parser.add_argument("paths", nargs="+", metavar="PATH")
    draw_parser = commands.add_parser("draw", help="draw the stored boxes on copies of files")
    draw_parser.add_argument("paths", nargs="+", metavar="PATH")
    draw_parser.add_argument("-o", "--out", required=True, metavar="FOLDER")
    args = parser.parse_args(argv)

    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    if args.command == "show":
        return show(args.paths)
    if args.command == "draw":
        return draw(args.paths, args.out)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    plugins = args.plugins or list(PLUGINS)
    return tag(args.paths, plugins, args.jobs, progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
