"""Small ONNX models in the four shapes Custom Vision exports, built here with the onnx package.

Each model carries its export form's real input and output names, shapes, element types and
metadata properties (docs/azure-services.md, "ONNX export"; docs/retirements.md, "Exported
ONNX models"), and computes something a test can check from the picture alone, so that colour
order, value range, label order, thresholds, EXIF orientation and box conversion are proven on
real inference:

- ``classifier_s1``: ``data`` -> ``model_output`` [1, 3], the mean of the red, green and blue
  channels as probabilities (0..1), for labels red, green, blue;
- ``classifier_map``: the older form, ``data`` -> ``classLabel`` (string) and ``loss`` (a
  sequence of one map label -> probability, ZipMap), the same scores;
- ``detector_s1``: ``image_tensor`` -> ``detected_boxes`` [1, 2, 4] (x1, y1, x2, y2), ``
  detected_classes`` int64 [1, 2], ``detected_scores`` [1, 2]: the bounding box of the red
  pixels (score 0.9 when there are any) and a fixed faint "green" box (score 0.05);
- ``detector_yolo``: the older form, ``data`` -> one raw YOLOv2 grid [1, 5 * (5 + 2), 13, 13]
  whose anchor 2 finds cells filled with red or green (see ``yolo_grid``).

A pixel is red when r > 60 % of full range and g, b < 40 % (green alike). The model reads its
input as its metadata says (BGR or RGB, 0..255 or 0..1): fed the other way, it sees other
colours or none. ``dtype="float16"`` gives the OnnxFloat16 flavour (float16 in and out).
Needs numpy and onnx; tests import this module only after ``pytest.importorskip``.
"""

import math
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LABELS = ["red", "green", "blue"]
DETECTOR_LABELS = ["red", "green"]
ANCHORS = [(0.573, 0.677), (1.87, 2.06), (3.34, 5.47), (7.88, 3.53), (9.77, 9.17)]
YOLO_ANCHOR = 2  # the anchor whose objectness fires
FAINT_BOX = (0.1, 0.1, 0.3, 0.2)  # the detector_s1's fixed "green" box, x1, y1, x2, y2
FAINT_SCORE = 0.05
RED_SCORE = 0.9

_OPSET = [helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 2)]
_TYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}


class _Graph:
    """A graph under construction: nodes and constants, named in order."""

    def __init__(self) -> None:
        self.nodes = []  # type: List[onnx.NodeProto]
        self.constants = []  # type: List[onnx.TensorProto]
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value, dtype=np.float32) -> str:
        name = self.name("const")
        self.constants.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, kind: str, inputs: Sequence[str], output: Optional[str] = None, **attrs) -> str:
        out = output or self.name(kind.lower())
        domain = "ai.onnx.ml" if kind in ("ZipMap", "LabelEncoder") else ""
        self.nodes.append(helper.make_node(kind, list(inputs), [out], domain=domain, **attrs))
        return out

    def model(
        self,
        inputs: List[onnx.ValueInfoProto],
        outputs: List[onnx.ValueInfoProto],
        metadata: Dict[str, str],
    ) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "customvision", inputs, outputs, self.constants)
        # IR 8 / opset 13: what onnxruntime has read for years, like the exports themselves.
        model = helper.make_model(graph, opset_imports=_OPSET, ir_version=8)
        model.producer_name = "pixstor-azure tests"
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        return model


def metadata(bgr: bool, range255: bool) -> Dict[str, str]:
    return {
        "Image.BitmapPixelFormat": "Bgr8" if bgr else "Rgb8",
        "Image.NominalPixelRange": "NominalRange_0_255" if range255 else "Normalized_0_1",
    }


def _image_input(g: _Graph, name: str, size: int, dtype: str, bgr: bool, range255: bool):
    """The input, and the image as float32 RGB 0..1 [1, 3, H, W] inside the graph."""
    info = helper.make_tensor_value_info(name, _TYPES[dtype], [1, 3, size, size])
    x = g.op("Cast", [name], to=TensorProto.FLOAT) if dtype == "float16" else name
    if bgr:
        x = g.op("Gather", [x, g.const([2, 1, 0], np.int64)], axis=1)
    if range255:
        x = g.op("Mul", [x, g.const(1 / 255)])
    return info, x


def _output(g: _Graph, value: str, name: str, dtype: str, shape: list) -> onnx.ValueInfoProto:
    if dtype == "float16":
        g.op("Cast", [value], name, to=TensorProto.FLOAT16)
    else:
        g.op("Identity", [value], name)
    return helper.make_tensor_value_info(name, _TYPES[dtype], shape)


def _masks(g: _Graph, rgb: str) -> Dict[str, str]:
    """Float masks [1, 1, H, W] of the red and the green pixels of an RGB 0..1 image."""
    channels = {}
    for index, colour in enumerate(("r", "g", "b")):
        channels[colour] = g.op(
            "Slice",
            [
                rgb,
                g.const([index], np.int64),
                g.const([index + 1], np.int64),
                g.const([1], np.int64),
            ],
        )
    high = {c: g.op("Greater", [v, g.const(0.6)]) for c, v in channels.items()}
    low = {c: g.op("Less", [v, g.const(0.4)]) for c, v in channels.items()}
    red = g.op("And", [g.op("And", [high["r"], low["g"]]), low["b"]])
    green = g.op("And", [g.op("And", [high["g"], low["r"]]), low["b"]])
    return {
        "red": g.op("Cast", [red], to=TensorProto.FLOAT),
        "green": g.op("Cast", [green], to=TensorProto.FLOAT),
    }


def classifier_s1(
    size: int = 224, bgr: bool = False, range255: bool = False, dtype: str = "float32"
) -> onnx.ModelProto:
    """Classification [S1]: ``data`` -> ``model_output`` [1, 3] = mean red, green, blue."""
    g = _Graph()
    info, rgb = _image_input(g, "data", size, dtype, bgr, range255)
    means = g.op("ReduceMean", [rgb], axes=[2, 3], keepdims=0)
    out = _output(g, means, "model_output", dtype, [1, len(LABELS)])
    return g.model([info], [out], metadata(bgr, range255))


def classifier_map(
    size: int = 224,
    bgr: bool = True,
    range255: bool = True,
    labels: Sequence[str] = tuple(LABELS),
) -> onnx.ModelProto:
    """The older classification export: ``classLabel`` and ``loss`` (ZipMap), BGR 0..255."""
    g = _Graph()
    info, rgb = _image_input(g, "data", size, "float32", bgr, range255)
    means = g.op("ReduceMean", [rgb], axes=[2, 3], keepdims=0)
    g.op("ZipMap", [means], "loss", classlabels_strings=list(labels))
    best = g.op("ArgMax", [means], axis=1, keepdims=0)
    g.op(
        "LabelEncoder",
        [best],
        "classLabel",
        keys_int64s=list(range(len(labels))),
        values_strings=list(labels),
        default_string="",
    )
    outputs = [
        helper.make_tensor_value_info("classLabel", TensorProto.STRING, [1]),
        helper.make_value_info(
            "loss",
            helper.make_sequence_type_proto(
                helper.make_map_type_proto(
                    TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
                )
            ),
        ),
    ]
    return g.model([info], outputs, metadata(bgr, range255))


def detector_s1(size: int = 320, dtype: str = "float32") -> onnx.ModelProto:
    """Object detection [S1]: RGB 0..255, the box of the red pixels and a faint fixed box."""
    g = _Graph()
    info, rgb = _image_input(g, "image_tensor", size, dtype, bgr=False, range255=True)
    red = g.op("Reshape", [_masks(g, rgb)["red"], g.const([size, size], np.int64)])
    low = np.arange(size, dtype=np.float32) / size
    high = (np.arange(size, dtype=np.float32) + 1) / size
    present = g.op("Greater", [red, g.const(0.5)])
    corners = []
    for axis, values, pick, fill in (
        (1, low, "ReduceMin", 2.0),  # x1: columns vary along axis 1
        (0, low, "ReduceMin", 2.0),  # y1
        (1, high, "ReduceMax", -1.0),  # x2
        (0, high, "ReduceMax", -1.0),  # y2
    ):
        grid = np.broadcast_to(values[None, :] if axis == 1 else values[:, None], (size, size))
        chosen = g.op("Where", [present, g.const(grid), g.const(fill)])
        corners.append(g.op(pick, [chosen], keepdims=1))  # [1, 1]
    red_box = g.op("Reshape", [g.op("Concat", corners, axis=1), g.const([1, 1, 4], np.int64)])
    # No red at all: an empty corner pair, clamped to a zero box with a zero score.
    red_box = g.op("Clip", [red_box, g.const(0.0), g.const(1.0)])
    faint = g.const([[list(FAINT_BOX)]])
    boxes = g.op("Concat", [red_box, faint], axis=1)
    any_red = g.op("ReduceMax", [red], keepdims=1)  # [1, 1]
    red_score = g.op("Mul", [any_red, g.const(RED_SCORE)])
    scores = g.op("Concat", [red_score, g.const([[FAINT_SCORE]])], axis=1)
    classes = g.op("Identity", [g.const([[0, 1]], np.int64)])
    outputs = [
        _output(g, boxes, "detected_boxes", dtype, [1, 2, 4]),
        _output(g, scores, "detected_scores", dtype, [1, 2]),
    ]
    g.op("Identity", [classes], "detected_classes")
    outputs.insert(1, helper.make_tensor_value_info("detected_classes", TensorProto.INT64, [1, 2]))
    return g.model([info], outputs, metadata(bgr=False, range255=True))


def yolo_grid(size: int = 416, dtype: str = "float32", labels: int = 2) -> onnx.ModelProto:
    """The older detection export: ``data`` (no metadata: RGB 0..1) -> ``model_outputs0``.

    The grid is 13 x 13 (32 px cells at 416). For each cell, ``fr`` and ``fg`` are the shares
    of red and green pixels in it. Every anchor has tx = ty = 0, so a box is centred in its cell
    once the x/y sigmoid is applied, and tw, th = log(1 / anchor), so it is one cell wide and
    high. Anchor ``YOLO_ANCHOR`` has objectness logit 20 * (fr + fg) - 10, the others -10; the
    class logits are 4 * fr and 4 * fg (and 0 for any further class). A cell filled with red
    thus gives one box exactly on it with probability sigmoid(10) * softmax(4, 0) = 0.982.
    """
    g = _Graph()
    info = helper.make_tensor_value_info("data", _TYPES[dtype], [1, 3, size, size])
    rgb = g.op("Cast", ["data"], to=TensorProto.FLOAT) if dtype == "float16" else "data"
    masks = _masks(g, rgb)
    cell = size // 13
    share = {
        c: g.op("AveragePool", [m], kernel_shape=[cell, cell], strides=[cell, cell])
        for c, m in masks.items()
    }
    zero = g.op("Mul", [share["red"], g.const(0.0)])
    both = g.op("Add", [share["red"], share["green"]])
    channels = []
    for index, (aw, ah) in enumerate(ANCHORS):
        channels += [zero, zero]
        channels.append(g.op("Add", [zero, g.const(math.log(1 / aw))]))
        channels.append(g.op("Add", [zero, g.const(math.log(1 / ah))]))
        if index == YOLO_ANCHOR:
            channels.append(g.op("Add", [g.op("Mul", [both, g.const(20.0)]), g.const(-10.0)]))
        else:
            channels.append(g.op("Add", [zero, g.const(-10.0)]))
        channels.append(g.op("Mul", [share["red"], g.const(4.0)]))
        channels.append(g.op("Mul", [share["green"], g.const(4.0)]))
        channels += [zero] * (labels - 2)
    grid = g.op("Concat", channels, axis=1)
    out = _output(g, grid, "model_outputs0", dtype, [1, 5 * (5 + labels), 13, 13])
    return g.model([info], [out], {})


def unknown_form(size: int = 224) -> onnx.ModelProto:
    """A valid image model with an output no Custom Vision export has."""
    g = _Graph()
    info, rgb = _image_input(g, "data", size, "float32", False, False)
    means = g.op("ReduceMean", [rgb], axes=[2, 3], keepdims=0)
    out = _output(g, means, "scores", "float32", [1, 3])
    return g.model([info], [out], {})


def export(
    folder: Union[str, Path],
    model: Union[onnx.ModelProto, bytes],
    labels: Sequence[str],
    as_zip: bool = True,
    name: str = "export",
    prefix: str = "",
) -> Path:
    """Write the model as Custom Vision ships it: ``model.onnx`` and ``labels.txt`` (with the
    export's other files) in a zip, or in a folder. Returns the zip's or the folder's path."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    files = {
        "model.onnx": data,
        "labels.txt": ("\r\n".join(labels) + "\r\n").encode("utf-8"),
        "cvexport.manifest": b'{"DomainType": "test"}',
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if as_zip:
        path = folder / f"{name}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, content in files.items():
                archive.writestr(prefix + member, content)
        return path
    path = folder / name
    path.mkdir(parents=True, exist_ok=True)
    for member, content in files.items():
        (path / member).write_bytes(content)
    return path
