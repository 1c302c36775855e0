"""A Custom Vision model exported as ONNX, run in this process: the picture never leaves it.

``CUSTOM_VISION_<TASK>_MODEL`` names the exported zip, or the folder it was unpacked into
(``model.onnx`` and ``labels.txt``, line *i* naming class *i*). Everything about how to feed
the model is read from the model itself: its one input's name, size and element type (float32,
or float16 for the OnnxFloat16 flavour), and the metadata ``Image.BitmapPixelFormat`` (``Bgr8``:
blue first, else RGB) and ``Image.NominalPixelRange`` (``NominalRange_0_255``: 0..255, else
0..1), as Microsoft's own samples do. The picture is decoded upright (EXIF applied) by
``prepare.load``, stretched to the input size as the samples do (no crop), and laid out NCHW.

Four export forms are recognised by their outputs:

- classification [S1]: ``model_output`` [1, classes], a probability per label;
- classification, older compact: ``classLabel`` and ``loss``, a map label -> probability (in
  ONNX a sequence of one map);
- object detection [S1]: ``detected_boxes`` [1, N, 4] (x1, y1, x2, y2 as fractions),
  ``detected_classes`` and ``detected_scores``, suppression done in the model;
- object detection, older compact: one raw YOLOv2 grid [1, 5 * (5 + classes), rows, columns],
  decoded here (anchors, sigmoid objectness, class softmax, suppression).

The answer is the cloud's ImagePrediction envelope, so ``imageprediction.parse`` and the same
thresholds serve it; boxes are fractions of the picture as displayed, since the stretch to the
model's input keeps fractions. Each model is loaded once per process and shared by every thread
(onnxruntime's ``run`` is thread-safe). onnxruntime and numpy are the optional extra
``pixstor-azure[onnx]``, imported only when this backend is chosen.
"""

import datetime
import hashlib
import logging
import math
import os
import sys
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from PIL import Image

from ..answers.answer import Answer, fresh
from ..ground import runtime
from ..ground.errors import ImageError, Problem, ServiceError, SettingsError
from ..ground.setting_registry import CLASSIFY_MODEL, DETECT_MODEL
from ..ground.settings import Settings
from ..images import prepare
from . import imageprediction, ortquiet
from .base import CLASSIFY, Task

log = logging.getLogger(__name__)

SERVICE = "Custom Vision ONNX model"

CLASSIFIER_S1 = "classification [S1]"
CLASSIFIER_MAP = "classification (compact, classLabel and loss)"
DETECTOR_S1 = "object detection [S1]"
DETECTOR_YOLO = "object detection (compact, YOLO grid)"
_CLASSIFIERS = (CLASSIFIER_S1, CLASSIFIER_MAP)

# The older detection export's anchors, in grid cells (Microsoft's decoders:
# docs/azure-services.md, "ONNX export").
YOLO_ANCHORS = ((0.573, 0.677), (1.87, 2.06), (3.34, 5.47), (7.88, 3.53), (9.77, 9.17))
# Whether a box's centre offset in its cell is sigmoid(tx), as YOLOv2 defines it, or tx itself.
# Microsoft's decoders disagree: the exported Docker container's (TensorFlow) and the WinML
# ObjectDetection.cs shipped for this very ONNX output (``model_outputs0``) apply the sigmoid;
# the Python ONNX sample in Azure-Samples/customvision-export-samples does not. Two of three,
# the shipping ones, and the YOLOv2 definition agree: sigmoid. Unverified on a real export.
YOLO_XY_SIGMOID = True
YOLO_IOU = 0.45  # suppression overlap, as in every Microsoft decoder
# Boxes under this probability are dropped (the samples' 0.01), at most this many kept: a
# detection threshold below 0.01 therefore sees no more boxes with an exported model.
MIN_PROBABILITY = 0.01
MAX_BOXES = 200
# Changes whenever the preparation of the picture changes what a model sees: part of
# identity(), so cached answers of an older preparation are not reused.
PREPARATION = "1"

MAX_MODEL_BYTES = 1 << 30  # exports are 6 to 45 MB; a larger member is not a model of ours
MAX_LABELS_BYTES = 1 << 20
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)
_ORT_ERRORS = (
    "Fail",
    "InvalidArgument",
    "NoSuchFile",
    "NoModel",
    "EngineError",
    "RuntimeException",
    "InvalidProtobuf",
    "ModelLoaded",
    "NotImplemented",
    "InvalidGraph",
    "EPFail",
)

# What is wrong with the setting that names the export (or chose this backend), in its words.
NOT_INSTALLED = Problem(
    "is onnx, but onnxruntime and numpy cannot be imported on this Python {python} ({reason}): "
    "install them with {install}, or choose the container or cloud backend"
)
MISSING = Problem("names {where}, which does not exist (the exported zip or its folder)")
UNREADABLE = Problem("names {where}, which cannot be read ({reason})")
NO_FILE = Problem(
    "names {where}, which has no {name}: an ONNX export holds model.onnx and labels.txt"
)
TOO_LARGE = Problem("names {where}, whose {name} is far too large")
NO_MODEL = Problem("names {where}, a zip without model.onnx: not an ONNX export")
NO_LABELS = Problem("names {where}, a zip without labels.txt")
NOT_A_ZIP = Problem("names {where}, which is not a readable zip ({reason})")
LABELS_NOT_TEXT = Problem("names {where}, whose labels.txt is not UTF-8 text")
LABELS_EMPTY = Problem("names {where}, whose labels.txt is empty")
LABELS_EMPTY_LINE = Problem("names {where}, whose labels.txt has an empty line {line}")
NOT_LOADABLE = Problem("names {where}, which onnxruntime cannot load ({reason})")
INPUTS_NOT_ONE = Problem("names {where}, whose model has {count} inputs, not one picture")
INPUT_TYPE = Problem("names {where}, whose input {name!r} is {type}, not float or float16")
INPUT_SHAPE = Problem(
    "names {where}, whose input {name!r} has the shape {shape}, not [1, 3, height, width]"
)
UNKNOWN_FORM = Problem(
    "names {where}, whose outputs ({outputs}) are those of no Custom Vision export: "
    "model_output; classLabel and loss; detected_boxes, detected_classes and detected_scores; "
    "or one YOLO grid"
)
FAILS_BLANK = Problem("names {where}, whose model fails on a blank picture ({reason})")
LABELS_NOT_SCORED = Problem(
    "names {where}, whose labels.txt lists {count} labels but whose model scores {classes} "
    "classes: the two files are from different exports"
)
LABELS_NOT_CLASSES = Problem(
    "names {where}, whose labels.txt does not list the classes its model scores ({classes}): "
    "the two files are from different exports"
)
BOXES_SHAPE = Problem("names {where}, whose detected_boxes has the shape {shape}")
LABELS_NOT_GRID = Problem(
    "names {where}, whose labels.txt lists {count} labels but whose model's grid has "
    "{channels} channels, not 5 x (5 + {count}) = {needed}: the two files are from different "
    "exports"
)
CLASS_NOT_LISTED = Problem(
    "names {where}, whose model scores classes labels.txt does not list ({label!r})"
)
CLASS_OUT_OF_RANGE = Problem(
    "names {where}, whose model found class {index}, but labels.txt lists {count} labels: the "
    "two files are from different exports"
)
WRONG_TASK = Problem(
    "names {where}, whose model is for {form}, but this plugin needs {wanted} export"
)


class Libraries(NamedTuple):
    numpy: Any
    onnxruntime: Any
    errors: tuple  # the exceptions onnxruntime raises for a bad model or a failed run


def libraries(backend_setting: str) -> Libraries:
    """numpy and onnxruntime, or a SettingsError saying how to get them."""
    try:
        import numpy

        onnxruntime = ortquiet.load()  # its telemetry off before it is imported
    except (ImportError, OSError) as exc:  # OSError: a shared library that does not load
        raise NOT_INSTALLED.error(
            backend_setting,
            python=f"{sys.version_info[0]}.{sys.version_info[1]}",
            reason=str(exc).splitlines()[0][:150],
            install=_install_hint(),
        ) from None
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as state
    except ImportError:
        state = None
    errors = tuple(getattr(state, n) for n in _ORT_ERRORS if hasattr(state, n))
    return Libraries(numpy, onnxruntime, (*errors, RuntimeError, ValueError, TypeError))


def _install_hint() -> str:
    """How to install the extra on this Python: by its name where the package installs with
    pip (3.7 and newer), by its packages on 3.6, where only they do (onnxruntime 1.10)."""
    if sys.version_info >= (3, 7):  # noqa: UP036 (ruff's oldest target is 3.7; this is for 3.6)
        return "pip install 'pixstor-azure[onnx]' (or pip install onnxruntime numpy)"
    return (
        "pip install onnxruntime numpy, the [onnx] extra's packages (after pip 21.3.1, as in "
        "the README's install step 2)"
    )


class Export(NamedTuple):
    """What an export holds, read from the zip or the folder."""

    model: bytes
    labels: bytes
    where: str  # the model's place, for messages


class Model:
    """One loaded export: the session and how to feed it and read it. Shared by all threads."""

    def __init__(self, setting: str, where: str, libs: Libraries, export: Export) -> None:
        self.setting = setting
        self.where = where
        self.np = libs.numpy
        self.errors = libs.errors
        self.labels = read_labels(setting, where, export.labels)
        sha = hashlib.sha256(export.model)
        sha.update(b"\0labels.txt\0" + export.labels)
        self.digest = sha.hexdigest()
        options = libs.onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime's warnings go to stderr
        try:
            self.session = libs.onnxruntime.InferenceSession(
                export.model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except libs.errors as exc:
            raise self.refuse(NOT_LOADABLE, reason=_short(exc)) from None
        self._read_input()
        meta = self.session.get_modelmeta().custom_metadata_map or {}
        self.bgr = meta.get("Image.BitmapPixelFormat") == "Bgr8"
        self.range255 = meta.get("Image.NominalPixelRange") == "NominalRange_0_255"
        self.form, self.outputs = self._read_form()
        self._probe()

    def refuse(self, problem: Problem, **values: Any) -> SettingsError:
        """``problem`` of this model's setting, naming its place (``where``)."""
        return problem.error(self.setting, where=self.where, **values)

    @property
    def decode_edge(self) -> int:
        """The long edge to decode at: twice the input, so that the stretch to the input only
        shrinks for pictures up to 2:1, yet JPEG draft decoding stays at its cheapest."""
        return 2 * max(self.width, self.height)

    def _read_input(self) -> None:
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise self.refuse(INPUTS_NOT_ONE, count=len(inputs))
        data = inputs[0]
        types = {"tensor(float)": self.np.float32, "tensor(float16)": self.np.float16}
        if data.type not in types:
            raise self.refuse(INPUT_TYPE, name=data.name, type=data.type)
        shape = list(data.shape)
        fixed = [d for d in shape[1:] if isinstance(d, int) and d > 0]
        if len(shape) != 4 or len(fixed) != 3 or shape[1] != 3:
            raise self.refuse(INPUT_SHAPE, name=data.name, shape=shape)
        self.input = data.name
        self.dtype = types[data.type]
        self.height, self.width = shape[2], shape[3]

    def _read_form(self) -> Tuple[str, List[str]]:
        outputs = {o.name: o for o in self.session.get_outputs()}
        detected = ["detected_boxes", "detected_classes", "detected_scores"]
        if all(name in outputs for name in detected):
            return DETECTOR_S1, detected
        loss = outputs.get("loss")
        if loss is not None and loss.type.startswith(("seq(map(", "map(")):
            return CLASSIFIER_MAP, ["loss"]
        if "model_output" in outputs:
            return CLASSIFIER_S1, ["model_output"]
        if len(outputs) == 1:
            (only,) = outputs.values()
            if only.type in ("tensor(float)", "tensor(float16)") and len(only.shape) == 4:
                return DETECTOR_YOLO, [only.name]
        raise self.refuse(UNKNOWN_FORM, outputs=", ".join(outputs) or "none")

    def _probe(self) -> None:
        """Run a blank picture once: the model must run, and agree with labels.txt."""
        blank = self.np.zeros((1, 3, self.height, self.width), dtype=self.dtype)
        try:
            found = self.session.run(self.outputs, {self.input: blank})
        except self.errors as exc:
            raise self.refuse(FAILS_BLANK, reason=_short(exc)) from None
        count = len(self.labels)
        if self.form == CLASSIFIER_S1:
            classes = int(self.np.asarray(found[0]).size)
            if classes != count:
                raise self.refuse(LABELS_NOT_SCORED, count=count, classes=classes)
        elif self.form == CLASSIFIER_MAP:
            named = set(_one_map(found[0]) or {})
            if named != set(self.labels):
                raise self.refuse(LABELS_NOT_CLASSES, classes=", ".join(sorted(named)[:10]))
        elif self.form == DETECTOR_S1:
            boxes = self.np.asarray(found[0])
            if boxes.ndim != 3 or boxes.shape[-1] != 4:
                raise self.refuse(BOXES_SHAPE, shape=list(boxes.shape))
        else:
            grid = self.np.asarray(found[0])
            channels = grid.shape[1]
            if grid.shape[0] != 1 or channels != len(YOLO_ANCHORS) * (5 + count):
                raise self.refuse(
                    LABELS_NOT_GRID, count=count, channels=channels, needed=5 * (5 + count)
                )

    # ------------------------------------------------------------------ per picture

    def tensor(self, image: Image.Image) -> Any:
        """The picture as the model's input: stretched to its size, NCHW, its channel order,
        its value range and its element type."""
        np = self.np
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        if rgb.size != (self.width, self.height):
            rgb = rgb.resize((self.width, self.height), _BILINEAR)
        pixels = np.asarray(rgb)  # height, width, 3 as uint8
        if self.bgr:
            pixels = pixels[:, :, ::-1]
        planes = np.empty((1, 3, self.height, self.width), dtype=np.float32)
        planes[0] = pixels.transpose(2, 0, 1)
        if not self.range255:
            planes *= np.float32(1 / 255)
        return planes if self.dtype is np.float32 else planes.astype(self.dtype)

    def run(self, tensor: Any) -> List[Any]:
        try:
            return self.session.run(self.outputs, {self.input: tensor})
        except self.errors as exc:
            raise ServiceError(
                SERVICE, f"{SERVICE} failed on this picture ({_short(exc)})", answered=True
            ) from None

    def predictions(self, outputs: List[Any]) -> List[dict]:
        """The outputs as ImagePrediction predictions, before any threshold."""
        if self.form == CLASSIFIER_S1:
            scores = self.np.asarray(outputs[0], dtype=self.np.float64).reshape(-1)
            return [self._tag(i, scores[i]) for i in range(len(self.labels))]
        if self.form == CLASSIFIER_MAP:
            scored = _one_map(outputs[0])
            if scored is None:
                raise ServiceError(
                    SERVICE, f"{SERVICE} answered without its loss map", answered=True
                )
            unknown = [str(k) for k in scored if k not in self.labels]
            if unknown:
                raise self.refuse(CLASS_NOT_LISTED, label=unknown[0])
            index = {label: i for i, label in enumerate(self.labels)}
            return [self._tag(index[k], scored[k]) for k in sorted(scored, key=index.__getitem__)]
        if self.form == DETECTOR_S1:
            return self._detections_s1(outputs)
        return self._detections_yolo(outputs[0])

    def _tag(self, index: int, probability: float, box: Optional[dict] = None) -> dict:
        probability = float(probability)
        if math.isnan(probability):
            raise ServiceError(
                SERVICE,
                f"{SERVICE} gave no number (NaN) for {self.labels[index]!r}: the model file may "
                "be damaged",
                answered=True,
            )
        # labels.txt lists a classifier's Negative tag as any label: imageprediction.parse
        # knows it by its name, as in the container's answers.
        return {
            "probability": round(min(1.0, max(0.0, probability)), 8),
            "tagId": index,
            "tagName": self.labels[index],
            "boundingBox": box,
        }

    def _detection(self, index: int, probability: float, corners: Sequence[float]) -> dict:
        if not 0 <= index < len(self.labels):
            raise self.refuse(CLASS_OUT_OF_RANGE, index=index, count=len(self.labels))
        x1, y1, x2, y2 = (min(1.0, max(0.0, float(c))) for c in corners)
        box = {
            "left": round(x1, 8),
            "top": round(y1, 8),
            "width": round(max(0.0, x2 - x1), 8),
            "height": round(max(0.0, y2 - y1), 8),
        }
        return self._tag(index, probability, box)

    def _detections_s1(self, outputs: List[Any]) -> List[dict]:
        np = self.np
        boxes = np.asarray(outputs[0], dtype=np.float64).reshape(-1, 4)
        classes = np.asarray(outputs[1]).reshape(-1)
        scores = np.asarray(outputs[2], dtype=np.float64).reshape(-1)
        found = []
        for i in np.argsort(-np.nan_to_num(scores), kind="stable")[:MAX_BOXES]:
            if not scores[i] >= MIN_PROBABILITY:  # NaN too
                continue
            found.append(self._detection(int(classes[i]), scores[i], boxes[i]))
        return found

    def _detections_yolo(self, output: Any) -> List[dict]:
        np = self.np
        grid = np.asarray(output, dtype=np.float64)[0]
        anchors = np.asarray(YOLO_ANCHORS, dtype=np.float64)
        channels, rows, columns = grid.shape
        cells = grid.reshape(len(anchors), channels // len(anchors), rows, columns)
        x, y = cells[:, 0], cells[:, 1]
        if YOLO_XY_SIGMOID:
            x, y = _sigmoid(np, x), _sigmoid(np, y)
        # exp of a wild logit would overflow; 10 is already a box 20000 times its anchor.
        width = np.exp(np.minimum(cells[:, 2], 10.0)) * anchors[:, 0, None, None] / columns
        height = np.exp(np.minimum(cells[:, 3], 10.0)) * anchors[:, 1, None, None] / rows
        left = (x + np.arange(columns)[None, None, :]) / columns - width / 2
        top = (y + np.arange(rows)[None, :, None]) / rows - height / 2
        logits = cells[:, 5:]
        odds = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = odds / odds.sum(axis=1, keepdims=True) * _sigmoid(np, cells[:, 4])[:, None]
        boxes = np.stack([left, top, left + width, top + height], axis=-1).reshape(-1, 4)
        probabilities = probabilities.transpose(0, 2, 3, 1).reshape(-1, len(self.labels))
        return [self._detection(c, p, boxes[i]) for i, c, p in suppress(np, boxes, probabilities)]


def suppress(np: Any, boxes: Any, probabilities: Any) -> List[Tuple[int, int, float]]:
    """Greedy non-maximum suppression per class, as the exported container does it.

    ``boxes`` [n, 4] are x1, y1, x2, y2; ``probabilities`` [n, classes]. The most probable
    (box, class) is kept, that class is cleared on every box overlapping it by more than
    ``YOLO_IOU``, and again, until nothing reaches ``MIN_PROBABILITY`` or ``MAX_BOXES`` are
    kept. Returns (box index, class, probability), most probable first.
    """
    best = probabilities.max(axis=1)
    candidates = np.nonzero(best >= MIN_PROBABILITY)[0]  # a box's odds only ever fall
    boxes, probabilities = boxes[candidates], probabilities[candidates].copy()
    best, classes = probabilities.max(axis=1), probabilities.argmax(axis=1)
    areas = np.maximum(0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0, boxes[:, 3] - boxes[:, 1])
    kept: List[Tuple[int, int, float]] = []
    while len(kept) < MAX_BOXES and len(best):
        i = int(best.argmax())
        if not best[i] >= MIN_PROBABILITY:
            break
        kind = int(classes[i])
        kept.append((int(candidates[i]), kind, float(best[i])))
        low = np.maximum(boxes[i, :2], boxes[:, :2])
        high = np.minimum(boxes[i, 2:], boxes[:, 2:])
        overlap = np.prod(np.maximum(0, high - low), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = overlap / (areas[i] + areas - overlap)
        hit = np.nonzero(iou > YOLO_IOU)[0]
        hit = np.union1d(hit, [i])
        probabilities[hit, kind] = 0
        best[hit], classes[hit] = probabilities[hit].max(axis=1), probabilities[hit].argmax(axis=1)
    return kept


def _sigmoid(np: Any, x: Any) -> Any:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for any x


def _one_map(value: Any) -> Optional[Dict[str, float]]:
    """The label -> probability map of the older classifier's ``loss``: a sequence of one map
    in ONNX (ZipMap), or the map itself."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return value if isinstance(value, dict) else None


def read_labels(setting: str, where: str, data: bytes) -> List[str]:
    """labels.txt: one label a line, line i naming class i."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LABELS_NOT_TEXT.error(setting, where=where) from None
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise LABELS_EMPTY.error(setting, where=where)
    if "" in labels:
        line = labels.index("") + 1
        raise LABELS_EMPTY_LINE.error(setting, where=where, line=line)
    return labels


def read_export(setting: str, path: Path) -> Export:
    """model.onnx and labels.txt from the zip, the folder, or beside the model file named."""
    where = str(path)
    if not path.exists():
        raise MISSING.error(setting, where=where)
    try:
        if path.is_dir():
            return _from_files(setting, path / "model.onnx", path / "labels.txt", where)
        if path.suffix.lower() == ".zip":
            return _from_zip(setting, path)
        return _from_files(setting, path, path.with_name("labels.txt"), where)
    except OSError as exc:
        raise UNREADABLE.error(setting, where=where, reason=exc.strerror or exc) from None


def _from_files(setting: str, model: Path, labels: Path, where: str) -> Export:
    for needed in (model, labels):
        if not needed.is_file():
            raise NO_FILE.error(setting, where=where, name=needed.name)
    for needed, limit in ((model, MAX_MODEL_BYTES), (labels, MAX_LABELS_BYTES)):
        if needed.stat().st_size > limit:
            raise TOO_LARGE.error(setting, where=where, name=needed.name)
    return Export(model.read_bytes(), labels.read_bytes(), where)


def _from_zip(setting: str, path: Path) -> Export:
    where = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {}  # type: Dict[str, zipfile.ZipInfo]
            for info in archive.infolist():
                members.setdefault(info.filename.replace("\\", "/"), info)
            models = sorted(
                (n for n in members if n.rsplit("/", 1)[-1] == "model.onnx"),
                key=lambda n: (n.count("/"), n),
            )
            if not models:
                raise NO_MODEL.error(setting, where=where)
            folder = models[0][: -len("model.onnx")]
            labels = members.get(folder + "labels.txt")
            if labels is None:
                raise NO_LABELS.error(setting, where=where)
            model = members[models[0]]
            for info, limit in ((model, MAX_MODEL_BYTES), (labels, MAX_LABELS_BYTES)):
                if info.file_size > limit:
                    raise TOO_LARGE.error(setting, where=where, name=info.filename)
            return Export(archive.read(model), archive.read(labels), where)
    except _ZIP_ERRORS as exc:
        raise NOT_A_ZIP.error(setting, where=where, reason=_short(exc)) from None


def _stamp(path: Path) -> Tuple:
    """What changes when the export is replaced: the files' sizes and modification times."""
    files = [path / "model.onnx", path / "labels.txt"] if path.is_dir() else [path]
    if path.is_file() and path.suffix.lower() != ".zip":
        files.append(path.with_name("labels.txt"))
    stamps: List[Tuple[Any, ...]] = []
    for file in files:
        try:
            stat = file.stat()
            stamps.append((str(file), stat.st_size, stat.st_mtime_ns, stat.st_ino))
        except OSError:
            stamps.append((str(file), None))
    return tuple(stamps)


class LoadedModels:
    """This process's models, by the path named; a replaced export is loaded again, and a
    broken one is not re-read for every picture while it stays as it is. Missing onnxruntime
    or numpy is not kept: they are looked for again, so installing them needs no restart."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded = {}  # type: Dict[Tuple[str, str], Tuple[Tuple, Any]]

    def get(self, setting: str, path: Path, backend_setting: str) -> Model:
        path = Path(os.path.expanduser(str(path)))
        key = (setting, os.path.realpath(str(path)))
        stamp = _stamp(path)
        with self.lock:  # one load at a time: the threads that wait need the same model
            known = self.loaded.get(key)
            if known is None or known[0] != stamp:
                # Not kept when it fails: onnxruntime installed meanwhile is found next time.
                libs = libraries(backend_setting)
                model: Union[Model, SettingsError]
                try:
                    model = Model(setting, str(path), libs, read_export(setting, path))
                except SettingsError as exc:
                    model = exc
                self.loaded[key] = known = (stamp, model)
                if isinstance(model, Model):
                    log.info(
                        "%s: %s loaded from %s (%d labels, input %dx%d %s, %s %s)",
                        setting,
                        model.form,
                        path,
                        len(model.labels),
                        model.width,
                        model.height,
                        model.np.dtype(model.dtype).name,
                        "BGR" if model.bgr else "RGB",
                        "0-255" if model.range255 else "0-1",
                    )
        found = known[1]
        if isinstance(found, SettingsError):
            raise SettingsError(found.setting, found.problem)
        return found


class CustomVisionOnnx(imageprediction.CustomVisionService):
    """A Custom Vision export run by onnxruntime in this process."""

    name = SERVICE
    billed = False  # run on the node
    endpoint_setting = None  # nothing leaves the process
    reads = (CLASSIFY_MODEL, DETECT_MODEL)

    def __init__(self, task: Task, settings: Settings) -> None:
        self.task = task
        self.setting = task.setting("MODEL")
        named = Path(settings.get(task.declared("MODEL")))
        _, self.min_edge = prepare.edge_settings(settings)
        models = runtime.current().get(LoadedModels)
        self.model = models.get(self.setting, named, task.setting("BACKEND"))
        wanted = "a classification" if task is CLASSIFY else "an object detection"
        if (self.model.form in _CLASSIFIERS) != (task is CLASSIFY):
            raise self.model.refuse(WRONG_TASK, form=self.model.form, wanted=wanted)

    def stale(self) -> bool:
        """Whether the export was replaced since this backend was built: ``Settings.built``
        then builds it again (a broken replacement raises its SettingsError here)."""
        models = runtime.current().get(LoadedModels)
        latest = models.get(self.setting, Path(self.model.where), self.task.setting("BACKEND"))
        return latest is not self.model

    def identity(self) -> dict:
        return {
            "service": "customvision",
            "api": "onnx-export",
            "task": self.task.name,
            "model": self.model.digest,
            "preparation": PREPARATION,
        }

    def ask(self, path: str) -> Answer:
        decoded = prepare.load(path, self.model.decode_edge)
        if min(decoded.display_size) < self.min_edge:
            width, height = decoded.display_size
            raise ImageError(
                f"{width}x{height} px is too small to analyse "
                f"(PIXSTOR_AZURE_MIN_SIDE is {self.min_edge} px)"
            )
        model = self.model
        outputs = model.run(model.tensor(decoded.image))
        body = {
            "id": "",
            "project": "",
            "iteration": "",
            "created": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            ),
            "predictions": model.predictions(outputs),
        }
        return fresh(body, (model.width, model.height), decoded.display_size)


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
