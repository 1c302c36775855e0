"""``sheet``: one static page to review what the plugins wrote, and to correct it.

``pixstor-azure sheet PATH... --out DIR`` writes ``DIR/index.html`` and the pictures it shows
under ``DIR/thumbs/``: a card per picture with its boxes drawn over its thumbnail (EXIF
orientation applied, as ``draw`` does: boxes are fractions of the picture as displayed), its
tags, caption, classes, detections with their probabilities, text, status and what answered.
The page fetches nothing from the network (its Content-Security-Policy forbids it) and works
opened from ``file://``; its script and styles are this package's ``sheet_page/`` files,
written into the page.

Every card and every box is an element carrying what it shows as data attributes
(``data-path``, ``data-label``, ``data-probability`` ...), so scripts and tests read the page
as a person sees it. The page's script filters, sorts, shows a picture large, and keeps a
reviewer's corrections (in the browser's storage) until they are downloaded as one JSON file,
the input of ``pixstor-azure train`` (format: README, "Corrections").

Thumbnails are made on ``jobs`` threads (Pillow decodes outside the GIL), named by the
SHA-256 of the file's content: a picture whose content was made before, under any name or in
an earlier sheet written to the same folder, is not decoded again.
"""

import argparse
import concurrent.futures
import datetime
import html
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from PIL import Image

from ..answers import cache, fetch
from ..answers.answer import model_of
from ..ground import boxes as boxes_module
from ..ground.errors import ImageError, SettingsError
from ..ground.settings import Settings
from ..ground.store import Run
from ..images import prepare
from ..images.formats import handles
from . import browse, catalog, walk
from .draw import COLORS

PAGE = Path(__file__).resolve().parent / "sheet_page"
THUMBS = "thumbs"
MANIFEST = "index.json"  # in THUMBS: each content digest's sizes, for reuse without decoding
THUMB_EDGE = 320
LARGE_EDGE = 1600
CORRECTIONS_FORMAT = "pixstor-azure corrections"
CORRECTIONS_VERSION = 1
_LANCZOS = getattr(Image, "Resampling", Image).LANCZOS

# (name on the page, stored field): the values shown and filtered on, in the order shown.
VALUE_FIELDS = (
    ("classes", "image.azure_classes"),
    ("detected", "image.azure_detected"),
    ("tags", "image.azure_tags"),
    ("objects", "image.azure_objects"),
    ("caption", "image.azure_caption"),
    ("text", "image.azure_text"),
)
# (kind on the page, stored field of boxes): the detector's boxes are corrected on the page;
# Vision's objects are shown, but no Custom Vision project can learn from their corrections.
BOX_FIELDS = (("detected", "image.azure_detected_boxes"), ("objects", "image.azure_object_boxes"))
CLASSIFIER = "classification"


class Thumb(NamedTuple):
    """The pictures made for one content: its size as displayed, and the files' sizes."""

    digest: str
    display: Tuple[int, int]
    small: Tuple[int, int]
    large: Tuple[int, int]
    small_edge: int
    large_edge: int

    def file(self, edge: int) -> str:
        """The picture's path in the sheet's folder, relative (``/`` on every system)."""
        return f"{THUMBS}/{self.digest[:2]}/{self.digest[:24]}-{edge}.jpg"


class Card:
    """One picture on the sheet: where it is, what the store holds for it, its thumbnail."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.item = walk.item_id(path)
        self.name = name  # shown: the path under the folder the sheet was asked for
        self.stored = {}  # type: Dict[str, Any]
        self.runs = {}  # type: Dict[str, Run]  # by plugin name (vision, classification...)
        self.digest = None  # type: Optional[str]
        self.thumb = None  # type: Optional[Thumb]
        self.problem = ""  # why there is no thumbnail
        self.class_probabilities = {}  # type: Dict[str, float]
        self.sources = []  # type: List[Tuple[str, str]]  # (short, detail) per plugin


HELP = "a contact sheet to review and correct: FOLDER/index.html, with thumbnails"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument(
        "-o", "--out", required=True, metavar="FOLDER", help="where index.html and thumbs/ go"
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=_at_least(1),
        default=os.cpu_count() or 2,
        help="thumbnails made at once (default: one per CPU)",
    )
    parser.add_argument(
        "--thumb",
        type=_at_least(64),
        default=THUMB_EDGE,
        metavar="PX",
        help=f"long side of the thumbnails (default {THUMB_EDGE})",
    )
    parser.add_argument(
        "--large",
        type=_at_least(256),
        default=LARGE_EDGE,
        metavar="PX",
        help=f"long side of the pictures in the large view (default {LARGE_EDGE})",
    )


def _at_least(low: int) -> Any:
    def number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {text}")
        return value

    return number


class Options(NamedTuple):
    out: str
    jobs: int = os.cpu_count() or 2
    thumb_edge: int = THUMB_EDGE
    large_edge: int = LARGE_EDGE
    title: str = ""


def sheet(paths: Sequence[str], options: Options) -> int:
    """Write the sheet; 0 when it shows at least one picture, 1 otherwise."""
    folder = Path(options.out)
    store = browse._Reading()
    base = browse._common_folder(paths)
    cards = []  # type: List[Card]
    seen = set()  # type: set
    for given in paths:
        for path in walk.files_under([given]):
            if not handles(path.suffix.lower()):
                continue
            name = os.path.relpath(os.path.abspath(str(path)), base) if base else path.name
            card = Card(path, name)
            if card.item in seen:
                continue
            seen.add(card.item)
            card.stored = store.read(card.item)
            for plugin, entry in catalog.PLUGINS.items():
                run = store.run(card.item, entry.cls)
                if run is not None:
                    card.runs[plugin] = run
            cards.append(card)
    if not cards:
        print("pixstor-azure: no picture under the paths given", file=sys.stderr)
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    make_thumbs(cards, folder, options)
    Sources(Settings.load()).describe(cards)
    page = render(cards, options)
    target = folder / "index.html"
    temporary = folder / "index.html.part"
    temporary.write_text(page, encoding="utf-8")
    os.replace(str(temporary), str(target))
    missing = sum(1 for card in cards if card.thumb is None)
    stored = sum(1 for card in cards if card.stored)
    print(target)
    print(
        f"{len(cards)} picture(s), {stored} with fields stored"
        + (f", {missing} without a thumbnail (said on their cards)" if missing else ""),
        file=sys.stderr,
    )
    return 0


# ------------------------------------------------------------------ thumbnails


def make_thumbs(cards: List[Card], folder: Path, options: Options) -> None:
    """Each card's thumbnails, made on ``options.jobs`` threads, once per content."""
    manifest_path = folder / THUMBS / MANIFEST
    manifest = _read_manifest(manifest_path)
    edges = (options.thumb_edge, options.large_edge)
    todo = {}  # type: Dict[str, Path]  # digest -> a file with that content
    for card in cards:
        try:
            card.digest = _digest(card)
        except OSError as exc:
            card.problem = f"cannot read the file ({exc.strerror or exc})"
            continue
        known = _known(manifest, card.digest, edges, folder)
        if known is not None:
            card.thumb = known
        else:
            todo.setdefault(card.digest, card.path)
    made = {}  # type: Dict[str, Any]
    if todo:
        prepare.set_cache_size(options.jobs)
        with concurrent.futures.ThreadPoolExecutor(max(1, options.jobs)) as pool:
            futures = {
                pool.submit(_make, path, digest, folder, edges): digest
                for digest, path in todo.items()
            }
            for future in concurrent.futures.as_completed(futures):
                digest = futures[future]
                try:
                    made[digest] = future.result()
                except ImageError as exc:
                    made[digest] = f"cannot be shown: {exc}"
                except OSError as exc:
                    made[digest] = f"cannot write its thumbnail ({exc.strerror or exc})"
    for card in cards:
        if card.thumb is None and card.digest in made:
            found = made[card.digest]
            if isinstance(found, Thumb):
                card.thumb = found
            else:
                card.problem = found
    for thumb in made.values():
        if isinstance(thumb, Thumb):
            entry = manifest.setdefault(thumb.digest, {"display": list(thumb.display)})
            entry[str(thumb.small_edge)] = list(thumb.small)
            entry[str(thumb.large_edge)] = list(thumb.large)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = manifest_path.with_name(MANIFEST + ".part")
    temporary.write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
    os.replace(str(temporary), str(manifest_path))


def _digest(card: Card) -> str:
    """The content's SHA-256: the one ``tag`` recorded when the file is the one it recorded
    (same size and modification time), else read from the file."""
    stat = os.stat(str(card.path))
    for run in card.runs.values():
        if run.digest and (run.size, run.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            return run.digest
    return fetch.digest(str(card.path))


def _make(path: Path, digest: str, folder: Path, edges: Tuple[int, int]) -> Thumb:
    small_edge, large_edge = edges
    decoded = prepare.load(path, large_edge)  # upright, as the plugins see it
    large = decoded.image
    if large.mode not in ("RGB", "L"):
        large = prepare.to_rgb(large)
    width, height = large.size
    scale = min(1.0, small_edge / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = large.resize(size, _LANCZOS) if size != large.size else large
    thumb = Thumb(digest, decoded.display_size, small.size, large.size, *edges)
    for image, edge, quality in ((small, small_edge, 80), (large, large_edge, 85)):
        target = folder / thumb.file(edge)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".part")
        extra = {"icc_profile": decoded.icc} if decoded.icc else {}
        image.save(str(temporary), "JPEG", quality=quality, **extra)
        os.replace(str(temporary), str(target))
    return thumb


def _read_manifest(path: Path) -> Dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _known(
    manifest: Dict[str, Any], digest: str, edges: Tuple[int, int], folder: Path
) -> Optional[Thumb]:
    """The thumbnails made before for this content at these sizes, when their files are there."""
    entry = manifest.get(digest)
    if not isinstance(entry, dict):
        return None
    try:
        display = tuple(int(v) for v in entry["display"])
        small = tuple(int(v) for v in entry[str(edges[0])])
        large = tuple(int(v) for v in entry[str(edges[1])])
    except (KeyError, TypeError, ValueError):
        return None
    thumb = Thumb(digest, display, small, large, *edges)  # type: ignore[arg-type]
    if all((folder / thumb.file(edge)).is_file() for edge in edges):
        return thumb
    return None


# ------------------------------------------------------------------ where answers came from


class Sources:
    """What answers each plugin with today's settings, and what that says of a stored run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.plugins = {}  # type: Dict[str, Tuple[Any, str, str]]  # backend, signature, text
        for name in catalog.PLUGINS:
            try:
                chosen = catalog.backend(name, settings)
                self.plugins[name] = (
                    chosen,
                    catalog.signature(name, chosen, settings),
                    catalog.describe(name, chosen, settings),
                )
            except SettingsError:
                continue  # not set up today: a run of it is shown without its backend
        self.answers = self._cache()

    def _cache(self) -> Optional[cache.AnswerCache]:
        """The answer cache, when there is one to read (reading never makes one)."""
        try:
            found = cache.current(self.settings)
        except SettingsError:
            return None
        return found if found is not None and found.path.is_file() else None

    def describe(self, cards: List[Card]) -> None:
        for card in cards:
            for name, run in sorted(card.runs.items()):
                card.sources.append(self._source(card, name, run))

    def _source(self, card: Card, name: str, run: Run) -> Tuple[str, str]:
        module = catalog.PLUGINS[name].module
        when = _when(run.updated)
        plugin = self.plugins.get(name)
        if plugin is None:
            return f"{module}", f"{module}: {run.status} {when}; not set up with today's settings"
        chosen, signature, text = plugin
        short = f"{module} via {catalog.backend_name(name, self.settings)}"
        if run.signature != signature:
            return short, f"{module}: {run.status} {when}, with settings since changed"
        detail = f"{text}; {run.status} {when}"
        answer = None
        if self.answers is not None and run.digest:
            answer = self.answers.get(run.digest, chosen.parts()[0].identity())
        if answer is not None:
            model = model_of(answer)
            detail += f"; answered {_when(answer.asked)}" + (f" by model {model}" if model else "")
            if name == CLASSIFIER:
                card.class_probabilities = {p.tag: p.probability for p in chosen.parse(answer)}
        return short, detail


def _when(stamp: float) -> str:
    if not stamp:
        return ""
    moment = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------ the page


def render(cards: List[Card], options: Options) -> str:
    """The whole page: styles, cards, the large view and the script, in one file."""
    colors = _colors(cards)
    made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = {
        "id": uuid.uuid4().hex,
        "made": made,
        "pictures": len(cards),
        "format": CORRECTIONS_FORMAT,
        "version": CORRECTIONS_VERSION,
        "fields": [name for name, _ in VALUE_FIELDS] + ["status", "from", "folder"],
    }
    title = options.title or f"Contact sheet of {len(cards)} picture(s)"
    template = (PAGE / "sheet.html").read_text(encoding="utf-8")
    parts = {
        "title": _text(title),
        "made": _text(made.replace("T", " ").replace("Z", " UTC")),
        "count": f"{len(cards):,}",
        "field_options": "".join(
            f'<option value="{f}">{f}</option>'
            for f in meta["fields"]  # type: ignore
        ),
        "style": (PAGE / "sheet.css").read_text(encoding="utf-8"),
        "script": (PAGE / "sheet.js").read_text(encoding="utf-8"),
        "meta": json.dumps(meta).replace("</", "<\\/"),
        "cards": "\n".join(_card(i, card, colors, options) for i, card in enumerate(cards)),
    }
    for key, value in parts.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _card(index: int, card: Card, colors: Dict[str, str], options: Options) -> str:
    stored = card.stored
    found = {kind: _boxes(stored.get(field)) for kind, field in BOX_FIELDS}
    probabilities = [b.probability for kind in found for b in found[kind]]
    probabilities += list(_known_class_probabilities(card).values())
    confidence = f"{min(probabilities):.4f}" if probabilities else ""
    statuses = [f"{catalog.PLUGINS[n].module} {r.status}" for n, r in sorted(card.runs.items())]
    if not card.runs:
        statuses = ["not tagged"]
    thumb = card.thumb
    width, height = thumb.display if thumb else (0, 0)
    attributes = {
        "id": f"c{index}",
        "class": "card",
        "tabindex": "0" if index == 0 else "-1",
        "data-index": str(index),
        "data-path": card.item,
        "data-name": card.name,
        "data-digest": card.digest or "",
        "data-width": str(width),
        "data-height": str(height),
        "data-confidence": confidence,
        "data-problem": "1" if any(s.split()[-1] in ("FATAL", "ERRORED") for s in statuses) else "",
        "aria-label": card.name,
    }
    out = [f"<article {_attributes(attributes)}>"]
    if thumb is not None:
        frame = {"class": "frame", "style": f"aspect-ratio:{width}/{height}"}
        image = {
            "class": "thumb",
            "src": thumb.file(thumb.small_edge),
            "data-large": thumb.file(thumb.large_edge),
            "width": str(thumb.small[0]),
            "height": str(thumb.small[1]),
            "loading": "lazy",
            "decoding": "async",
            "alt": _alt(card, found),
        }
        out.append(f"<div {_attributes(frame)}><img {_attributes(image)}>")
        for kind, _field in BOX_FIELDS:
            for number, box in enumerate(found[kind]):
                out.append(_box(kind, number, box, colors))
        out.append("</div>")
    else:
        out.append(f'<div class="frame missing" role="img" aria-label="{_text(card.name)}">')
        out.append(f"<p>{_text(card.problem or 'no picture')}</p></div>")
    out.append(f'<div class="about"><h2 class="name" title="{_text(card.item)}">')
    out.append(f"{_text(card.name)}</h2><dl>")
    for name, field in VALUE_FIELDS:
        values = stored.get(field)
        if values in (None, "", []):
            continue
        values = values if isinstance(values, list) else [values]
        out.append(f"<dt>{name}</dt><dd>")
        for value in values:
            text = str(value)
            probability = None  # type: Optional[float]
            if name == "classes":
                probability = card.class_probabilities.get(text)
            out.append(_value(name, text, probability))
        out.append("</dd>")
    out.append("<dt>status</dt><dd>" + "".join(_value("status", s) for s in statuses) + "</dd>")
    if card.sources:
        out.append("<dt>from</dt><dd>")
        out.extend(_value("from", short, title=detail) for short, detail in card.sources)
        out.append("</dd>")
    folder = str(Path(card.name).parent)
    out.append(f"<dt>folder</dt><dd>{_value('folder', folder if folder != '.' else '(top)')}</dd>")
    out.append("</dl></div></article>")
    return "".join(out)


def _boxes(value: Any) -> List[boxes_module.Box]:
    if not isinstance(value, str) or not value:
        return []
    try:
        return boxes_module.from_json(value)
    except (ValueError, TypeError):
        return []  # a field written by something else: the card shows no box rather than fail


def _known_class_probabilities(card: Card) -> Dict[str, float]:
    classes = card.stored.get("image.azure_classes") or []
    return {c: card.class_probabilities[c] for c in classes if c in card.class_probabilities}


def _box(kind: str, number: int, box: boxes_module.Box, colors: Dict[str, str]) -> str:
    color = colors.get(box.tag.lower(), "#ff3838")
    attributes = {
        "class": f"box {kind}" + (" inside" if box.top < 0.06 else ""),
        "data-kind": kind,
        "data-key": f"{kind[0]}{number}",
        "data-label": box.tag,
        "data-probability": f"{box.probability:.4f}",
        "data-left": f"{box.left:.4f}",
        "data-top": f"{box.top:.4f}",
        "data-width": f"{box.width:.4f}",
        "data-height": f"{box.height:.4f}",
        "style": (
            f"left:{box.left * 100:.2f}%;top:{box.top * 100:.2f}%;"
            f"width:{box.width * 100:.2f}%;height:{box.height * 100:.2f}%;"
            f"--c:{color};--t:{_ink(color)}"
        ),
    }
    label = f"{box.tag} {box.probability:.2f}"
    return f'<div {_attributes(attributes)}><span class="label">{_text(label)}</span></div>'


def _value(field: str, text: str, probability: Optional[float] = None, title: str = "") -> str:
    attributes = {"class": "val", "data-field": field, "data-value": text}
    shown = _text(text)
    if probability is not None:
        attributes["data-probability"] = f"{probability:.4f}"
        shown += f" <small>{probability:.2f}</small>"
    if title:
        attributes["title"] = title
    return f"<span {_attributes(attributes)}>{shown}</span> "


def _alt(card: Card, found: Dict[str, List[boxes_module.Box]]) -> str:
    """What the picture is, in words, for those who cannot see it."""
    stored = card.stored
    parts = [card.name]
    caption = stored.get("image.azure_caption")
    if caption:
        parts.append(str(caption))
    classes = stored.get("image.azure_classes")
    if classes:
        parts.append("classes " + ", ".join(map(str, classes)))
    for kind, _field in BOX_FIELDS:
        if found[kind]:
            labels = ", ".join(f"{b.tag} {b.probability:.2f}" for b in found[kind][:10])
            parts.append(f"{kind} {labels}")
    return "; ".join(parts)


def _colors(cards: List[Card]) -> Dict[str, str]:
    """One colour per box label across the sheet, the most frequent labels first."""
    counts = {}  # type: Dict[str, int]
    for card in cards:
        for _kind, field in BOX_FIELDS:
            for box in _boxes(card.stored.get(field)):
                counts[box.tag.lower()] = counts.get(box.tag.lower(), 0) + 1
    ordered = sorted(counts, key=lambda label: (-counts[label], label))
    return {
        label: "#{:02x}{:02x}{:02x}".format(*COLORS[number % len(COLORS)])
        for number, label in enumerate(ordered)
    }


def _ink(color: str) -> str:
    """Black or white text on ``color``, whichever reads better (WCAG relative luminance)."""
    channels = [int(color[i : i + 2], 16) / 255.0 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#000" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "#fff"


def _attributes(attributes: Dict[str, str]) -> str:
    return " ".join(f'{name}="{_text(value)}"' for name, value in attributes.items())


def _text(text: str) -> str:
    return html.escape(str(text), quote=True)
