"""Text read on this node by an OCR engine: no picture, no text and no key leave the machine.

``AZURE_VISION_READ_API=local`` reads the text of ``azurevision.py`` here, in every Vision mode;
``AZURE_VISION_API=local`` runs that plugin with text only and no Azure at all. The engine is
RapidOCR (``rapidocr-onnxruntime``, the extra ``pixstor-azure[ocr]``): PP-OCRv4's text detector,
its direction classifier and its Chinese and English recogniser (Latin letters, digits,
punctuation and Chinese characters), three ONNX models shipped inside the package and run by
onnxruntime on the CPU. Nothing is fetched at run time, and onnxruntime is imported with its
telemetry off (``ortquiet``). The engine is loaded once per process and shared by every thread.

The picture is read as Azure's Read is sent it: upright, at ``PIXSTOR_AZURE_MAX_LONG_EDGE``.
The answer body (``FORMAT`` 1), kept in the answer cache like any service's answer::

    {"format": 1,
     "engine": "rapidocr-onnxruntime 1.4.4",
     "size": [width, height],                 # of the picture read, in pixels
     "lines": [{"text": "SCENE 42",
                "confidence": 0.998,          # the recogniser's, 0 to 1
                "polygon": [x1, y1, x2, y2, x3, y3, x4, y4]},   # clockwise from top left
               ...]}

``lines`` holds every piece of text the engine recognised, in the engine's order, before any
threshold. ``lines(body, threshold)`` gives the text as the Read APIs give it: the pieces at or
above the threshold, the pieces of one line of text joined, lines top to bottom (across the
picture's slant) and, side by side, left to right.
"""

import hashlib
import logging
import math
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from ..answers.answer import Answer, fresh
from ..ground import runtime
from ..ground.errors import ImageError, Problem, ServiceError
from ..ground.logonce import log_once
from ..ground.outcomes import UNEXPECTED
from ..ground.setting_registry import (
    MAX_LONG_EDGE,
    MIN_SIDE,
    VISION_API,
    VISION_FEATURES,
    VISION_READ_API,
    VISION_READ_THRESHOLD,
)
from ..ground.settings import Settings
from ..images import prepare
from . import ortquiet
from .base import Analysis, Service

try:
    from importlib import metadata  # Python 3.8 and later: the engine's version
except ImportError:
    metadata = None  # type: ignore

log = logging.getLogger(__name__)

SERVICE = "local OCR (RapidOCR)"
LOCAL = "local"  # its name in AZURE_VISION_READ_API and AZURE_VISION_API
PACKAGE = "rapidocr-onnxruntime"
EXTRA = "pixstor-azure[ocr]"
FORMAT = 1
# Changes whenever the preparation of the picture or the engine's options change what is read:
# part of identity(), so cached answers of an older preparation are not reused.
PREPARATION = "1"
# The engine's own options, fixed here. It resizes nothing (the picture comes at the long edge
# set), keeps every piece it recognised (the threshold is applied when the answer is read, so a
# changed threshold needs no new reading), and keeps text regions the detector is less sure of
# than its default 0.5 asks: on images/page.png that finds all 7 lines rather than 4, with no
# more errors on bench/ocr.py's pictures and nothing more in the photographs without text.
OPTIONS = {"max_side_len": 100000, "text_score": 0.0, "det_box_thresh": 0.3}

# Two pieces are on one line of text when the second starts near where the first ends: along
# the line, from this much overlap to this much gap, and across it, within this part of their
# height; both in units of the taller piece's height. Heights may differ by this ratio.
JOIN_OVERLAP = 1.0
JOIN_GAP = 1.2
JOIN_ACROSS = 0.5
JOIN_HEIGHTS = 1.8
# Lines whose centres are within this part of their height across the text are side by side.
SAME_ROW = 0.5
# The probability of a space, between two characters, at which a space is read there.
SPACE_FLOOR = 0.05

# What is wrong with the setting that chose the engine, in its words.
NOT_INSTALLED = Problem(
    "is local, but the OCR engine cannot be imported on this Python {python} ({reason}): "
    "install it with pip install '{extra}' (Python 3.8 to 3.12; on 3.6: pip install "
    "'{package}==1.4.4' 'opencv-python<4.7'), or read the text with Azure's Read"
)
NOT_STARTING = Problem("is local, but the OCR engine does not start ({reason})")
OTHER_VERSION = Problem(
    "is local, but this {package} does not recognise as 1.4 does: install '{extra}' as "
    "setup.cfg pins it"
)
NO_MODELS = Problem("is local, but {package} holds no models: reinstall it")
NO_READ = Problem("leaves out read, the one feature {api}=local gives")


class Piece(NamedTuple):
    """One recognised piece of text and its place, in the picture's pixels."""

    text: str
    confidence: float
    start: Tuple[float, float]  # the middle of its left edge
    end: Tuple[float, float]  # the middle of its right edge
    height: float


class SpacedDecoder:
    """The recogniser's CTC decoding, keeping the spaces between words.

    PP-OCRv4's recogniser (trained mostly on Chinese, which has no spaces) often lets the
    blank outscore the space between two words of Latin text, and the engine's own decoding,
    which keeps only each step's best symbol, then runs the words together ("Exit3Carpark").
    Here a space is kept between two characters when, at a step between them, the space's
    probability reaches ``SPACE_FLOOR``, best or not. Measured on pictures like bench/ocr.py's
    (another seed), at text heights of 20 px and more: 5.0 % of characters wrong with the
    engine's decoding, 1.7 % with this one, nearly all of the difference spaces.
    """

    def __init__(self, characters: Sequence[str]) -> None:
        self.characters = list(characters)  # the blank first, the space last
        self.space = len(self.characters) - 1

    def __call__(self, preds: Any, return_word_box: bool = False, **kwargs: Any) -> list:
        found = []
        for steps in preds:  # one line: steps x symbols, each row a probability distribution
            best, chosen = steps.argmax(axis=1).tolist(), steps.max(axis=1).tolist()
            spaces = steps[:, self.space].tolist()
            text, sure = [], []  # type: List[str], List[float]
            previous, gap = 0, False
            for step, symbol in enumerate(best):
                if symbol in (0, self.space):
                    gap = gap or symbol == self.space or spaces[step] >= SPACE_FLOOR
                    previous = symbol
                    continue
                if symbol == previous:  # the same symbol over several steps: one character
                    continue
                if gap and text:
                    text.append(" ")
                text.append(self.characters[symbol])
                sure.append(chosen[step])
                previous, gap = symbol, False
            found.append(("".join(text), sum(sure) / len(sure) if sure else 0.0))
        return found


class Engine:
    """RapidOCR, loaded: read a picture into an answer body. Shared by every thread."""

    def __init__(self, ocr: Any, version: str, digest: str, errors: tuple) -> None:
        self.ocr = ocr
        self.version = version
        self.digest = digest  # of the three model files
        self.errors = errors
        self.lock = threading.Lock()  # the engine keeps per-call state on itself

    @property
    def name(self) -> str:
        return f"{PACKAGE} {self.version}"

    def read(self, image: Any) -> dict:
        """The answer body for ``image`` (a Pillow image, RGB or L)."""
        with self.lock:
            try:
                found, _ = self.ocr(image)
            except self.errors as exc:
                raise ServiceError(
                    SERVICE, f"{SERVICE} failed on this picture ({_short(exc)})"
                ) from None
        lines = []
        for box, text, confidence in found or []:
            polygon = [round(float(v), 1) for point in box for v in point]
            lines.append(
                {
                    "text": str(text),
                    "confidence": round(float(confidence), 6),
                    "polygon": polygon,
                }
            )
        return {
            "format": FORMAT,
            "engine": self.name,
            "size": [image.width, image.height],
            "lines": lines,
        }


class Engines:
    """This process's engine, loaded on first use. An engine that cannot be imported is not
    kept: it is looked for again, so installing the extra needs no restart."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.engine = None  # type: Optional[Engine]

    def get(self, setting: str) -> Engine:
        with self.lock:  # one load at a time: the threads that wait need the same engine
            if self.engine is None:
                self.engine = load_engine(setting)
        return self.engine


def engine(setting: str) -> Engine:
    """This process's engine; ``setting`` chose it, and is named when it cannot be loaded."""
    return runtime.current().get(Engines).get(setting)


def load_engine(setting: str) -> Engine:
    """RapidOCR with our options, or a SettingsError saying how to get it."""
    try:
        ortquiet.load()  # before RapidOCR imports onnxruntime: its telemetry off
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime.utils.infer_engine import ONNXRuntimeError
        from rapidocr_onnxruntime.utils.load_image import LoadImageError
    except (ImportError, OSError) as exc:  # OSError: a shared library that does not load
        raise NOT_INSTALLED.error(
            setting,
            python=f"{sys.version_info[0]}.{sys.version_info[1]}",
            reason=_short(exc)[:150],
            extra=EXTRA,
            package=PACKAGE,
        ) from None
    package = Path(rapidocr_onnxruntime.__file__).resolve().parent
    digest = _digest(setting, sorted((package / "models").glob("*.onnx")))
    try:
        ocr = rapidocr_onnxruntime.RapidOCR(**OPTIONS)
    except (ONNXRuntimeError, RuntimeError, OSError, ValueError) as exc:
        raise NOT_STARTING.error(setting, reason=_short(exc)) from None
    recogniser = getattr(ocr, "text_rec", None)
    decoder = getattr(recogniser, "postprocess_op", None)
    characters = getattr(decoder, "character", None)
    if recogniser is None or not characters or characters[-1] != " ":
        raise OTHER_VERSION.error(setting, package=PACKAGE, extra=EXTRA)
    recogniser.postprocess_op = SpacedDecoder(characters)
    version = _version(rapidocr_onnxruntime)
    log.info("%s: %s loaded from %s (models %s)", setting, PACKAGE, package, digest[:12])
    errors: Tuple[type, ...] = (ONNXRuntimeError, LoadImageError, RuntimeError, ValueError)
    try:
        import cv2  # the engine's image library: its errors are the engine's

        errors += (cv2.error,)
    except ImportError:
        pass
    return Engine(ocr, version, digest, errors)


def _digest(setting: str, models: Sequence[Path]) -> str:
    """SHA-256 over the model files' names and bytes: what answers, whatever the version says."""
    if not models:
        raise NO_MODELS.error(setting, package=PACKAGE)
    sha = hashlib.sha256()
    for model in models:
        sha.update(model.name.encode("utf-8") + b"\0" + model.read_bytes())
    return sha.hexdigest()


def _version(module: Any) -> str:
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    if metadata is not None:
        try:
            return metadata.version(PACKAGE)
        except metadata.PackageNotFoundError:
            return "unknown"
    # Python 3.6 and 3.7: the version is in the name of the package's dist-info folder.
    folder = Path(module.__file__).resolve().parent.parent
    for info in folder.glob(PACKAGE.replace("-", "_") + "-*.dist-info"):
        return info.name[len(PACKAGE) + 1 : -len(".dist-info")]
    return "unknown"


class LocalRead(Service):
    """Text read by the local engine: what ``AZURE_VISION_READ_API=local`` (or
    ``AZURE_VISION_API=local``) chooses. Its ``parse`` gives an ``Analysis`` with the text only."""

    name = SERVICE
    billed = False  # run on the node
    endpoint_setting = None  # nothing leaves the process
    reads = (
        VISION_API,
        VISION_FEATURES,
        VISION_READ_API,
        VISION_READ_THRESHOLD,
        MAX_LONG_EDGE,
        MIN_SIDE,
    )

    def __init__(self, settings: Settings, setting: str = VISION_READ_API.name) -> None:
        self.setting = setting  # the setting that chose it, named in its errors
        self.threshold = settings.get(VISION_READ_THRESHOLD)
        self.max_edge, self.min_edge = prepare.edge_settings(settings)
        self.engine = engine(setting)

    @classmethod
    def text_only(cls, settings: Settings, asked: Sequence[str]) -> "LocalRead":
        """What answers ``azurevision.py`` when ``AZURE_VISION_API=local``: the text, and no
        tags, caption or objects (nothing here finds those)."""
        if "read" not in asked:
            raise NO_READ.error(VISION_FEATURES.name, api=VISION_API.name)
        others = [feature for feature in asked if feature != "read"]
        if others:
            log_once(
                log,
                logging.INFO,
                f"{VISION_API.name} is local: text only, read on this node; "
                f"{', '.join(others)} are not written",
            )
        return cls(settings, VISION_API.name)

    def identity(self) -> dict:
        return {
            "service": "read",
            "protocol": LOCAL,
            "engine": self.engine.name,
            "models": self.engine.digest[:16],
            "edge": self.max_edge,
            "preparation": PREPARATION,
        }

    def ask(self, path: str) -> Answer:
        decoded = prepare.load(path, self.max_edge)
        if min(decoded.display_size) < self.min_edge:
            width, height = decoded.display_size
            raise ImageError(
                f"{width}x{height} px is too small to analyse "
                f"(PIXSTOR_AZURE_MIN_SIDE is {self.min_edge} px)"
            )
        body = self.engine.read(decoded.image)
        return fresh(body, decoded.image.size, decoded.display_size, model=self.engine.name)

    def parse(self, answer: Answer) -> Analysis:
        """An ``Analysis`` holding the lines read, in reading order, at or above the threshold."""
        return Analysis(text=lines(answer.body, self.threshold))


def lines(body: Any, threshold: float = 0.0) -> List[str]:
    """The text of an answer body, line by line in reading order; pieces under ``threshold``
    left out."""
    try:
        pieces = [_piece(item) for item in _keys(body)["lines"]]
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise UNEXPECTED.error(SERVICE, what=f"{type(exc).__name__}: {exc}") from None
    kept = [p for p in pieces if p.confidence >= threshold and p.text]
    if not kept:
        return []
    angle = _slant(kept)
    return [" ".join(p.text for p in line) for line in _in_order(_joined(kept), angle)]


def _piece(item: Any) -> Piece:
    item = _keys(item)
    text = item["text"]
    if not isinstance(text, str):
        raise TypeError(f"a line's text is {type(text).__name__}, not text")
    xs = [float(v) for v in item["polygon"][0:8:2]]
    ys = [float(v) for v in item["polygon"][1:8:2]]
    if len(xs) != 4 or len(ys) != 4:
        raise ValueError("a polygon has fewer than four points")
    start = ((xs[0] + xs[3]) / 2, (ys[0] + ys[3]) / 2)
    end = ((xs[1] + xs[2]) / 2, (ys[1] + ys[2]) / 2)
    height = math.hypot(xs[3] - xs[0], ys[3] - ys[0]) + math.hypot(xs[2] - xs[1], ys[2] - ys[1])
    return Piece(" ".join(text.split()), float(item["confidence"]), start, end, height / 2)


def _slant(pieces: List[Piece]) -> float:
    """The text's angle (radians): the median of the pieces', the longest pieces counting most."""
    angles = []  # type: List[Tuple[float, float]]
    for p in pieces:
        dx, dy = p.end[0] - p.start[0], p.end[1] - p.start[1]
        if math.hypot(dx, dy) > p.height:  # a single letter's direction says little
            angles.append((math.atan2(dy, dx), math.hypot(dx, dy)))
    if not angles:
        return 0.0
    angles.sort()
    half, total = sum(w for _, w in angles) / 2, 0.0
    for angle, weight in angles:
        total += weight
        if total >= half:
            return angle if abs(angle) < math.pi / 4 else 0.0  # upright text is read upright
    return 0.0


def _joined(pieces: List[Piece]) -> List[List[Piece]]:
    """The pieces chained into lines of text: each followed by the nearest piece that starts
    where it ends."""
    order = sorted(range(len(pieces)), key=lambda i: pieces[i].start[0])
    following: Dict[int, int] = {}
    taken: Set[int] = set()
    for i in order:
        a, best, nearest = pieces[i], None, None
        for j in order:
            if j == i or j in taken:
                continue
            distance = _follows(a, pieces[j])
            if distance is not None and (nearest is None or distance < nearest):
                best, nearest = j, distance
        if best is not None:
            following[i] = best
            taken.add(best)
    chains = []
    for i in order:
        if i in taken:
            continue
        chain, seen = [i], {i}
        while chain[-1] in following and following[chain[-1]] not in seen:
            seen.add(following[chain[-1]])
            chain.append(following[chain[-1]])
        chains.append([pieces[k] for k in chain])
    return chains


def _follows(a: Piece, b: Piece) -> Optional[float]:
    """How far ``b`` starts from where ``a`` ends, when ``b`` carries ``a``'s line on; else None."""
    tall = max(a.height, b.height)
    if tall <= 0 or max(a.height, b.height) > JOIN_HEIGHTS * max(1e-6, min(a.height, b.height)):
        return None
    dx, dy = a.end[0] - a.start[0], a.end[1] - a.start[1]
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length  # along a's line
    gx, gy = b.start[0] - a.end[0], b.start[1] - a.end[1]
    along, across = gx * ux + gy * uy, -gx * uy + gy * ux
    if not -JOIN_OVERLAP * tall <= along <= JOIN_GAP * tall or abs(across) > JOIN_ACROSS * tall:
        return None
    if (b.end[0] - a.end[0]) * ux + (b.end[1] - a.end[1]) * uy <= 0:
        return None  # b lies within a: not a continuation
    return math.hypot(along, across)


class _Line(NamedTuple):
    """A chain of pieces and where it is: its centre, direction (unit vector) and height."""

    pieces: List[Piece]
    centre: Tuple[float, float]
    direction: Tuple[float, float]
    height: float


def _line(chain: List[Piece], angle: float) -> _Line:
    xs = [x for p in chain for x in (p.start[0], p.end[0])]
    ys = [y for p in chain for y in (p.start[1], p.end[1])]
    dx, dy = chain[-1].end[0] - chain[0].start[0], chain[-1].end[1] - chain[0].start[1]
    length = math.hypot(dx, dy)
    if length <= max(p.height for p in chain):  # too short to say: the picture's slant
        dx, dy, length = math.cos(angle), math.sin(angle), 1.0
    height = sum(p.height for p in chain) / len(chain)
    return _Line(chain, (sum(xs) / len(xs), sum(ys) / len(ys)), (dx / length, dy / length), height)


def _across(line: _Line, point: Tuple[float, float]) -> float:
    """How far ``point`` is below ``line``, extended (negative: above)."""
    (ux, uy), (cx, cy) = line.direction, line.centre
    return -(point[0] - cx) * uy + (point[1] - cy) * ux


def _along(line: _Line, point: Tuple[float, float]) -> float:
    (ux, uy), (cx, cy) = line.direction, line.centre
    return (point[0] - cx) * ux + (point[1] - cy) * uy


def _in_order(chains: List[List[Piece]], angle: float) -> List[List[Piece]]:
    """Lines top to bottom across the text's slant; lines side by side (each on the other's
    line, extended, within part of its height), left to right."""
    cos, sin = math.cos(angle), math.sin(angle)
    lines = sorted(
        (_line(c, angle) for c in chains), key=lambda k: -k.centre[0] * sin + k.centre[1] * cos
    )
    rows: List[List[_Line]] = []
    for line in lines:
        for row in rows:
            first = row[0]
            if abs(_across(first, line.centre)) <= SAME_ROW * max(first.height, line.height):
                row.append(line)
                break
        else:
            rows.append([line])
    ordered: List[List[Piece]] = []
    for row in rows:
        ordered.extend(
            k.pieces for k in sorted(row, key=lambda k: _along(row[0], k.pieces[0].start))
        )
    return ordered


def _keys(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, found {type(value).__name__}")
    return {str(k).lower(): v for k, v in value.items()}


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
