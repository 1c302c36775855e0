"""The onnx backend on real inference: small models in each Custom Vision export form, built in
tests/onnxmodels.py, run by onnxruntime on pictures made with Pillow.

The models compute their answer from the picture's colours (channel means, the box around the
red pixels, a YOLO grid over red cells), so a wrong channel order, value range, label order,
threshold, EXIF handling or box conversion changes what comes out. Skipped where onnx,
onnxruntime or numpy are not installed (the Python 3.6 run).
"""

import hashlib
import json
import logging
import shutil
import sys
import threading
import zipfile
from pathlib import Path
from typing import Dict, Sequence, Tuple

import pytest
from PIL import Image

np = pytest.importorskip("numpy")
pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

import azureclassification  # noqa: E402
import azureobjectdetection  # noqa: E402
from pixstor_azure.answers import fetch  # noqa: E402
from pixstor_azure.ground import runtime  # noqa: E402
from pixstor_azure.ground.errors import SettingsError  # noqa: E402
from pixstor_azure.ground.pixstor import PluginStatus  # noqa: E402
from pixstor_azure.ground.settings import Settings  # noqa: E402
from pixstor_azure.services import base, customvision, onnxexport, registry  # noqa: E402
from tests import imagefactory, onnxmodels  # noqa: E402
from tests.sources import answered  # noqa: E402
from tests.wording import assert_mentions, assert_problem  # noqa: E402

CLASSIFY, DETECT = customvision.CLASSIFY, customvision.DETECT
CELL = 1 / 13
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture
def use(monkeypatch, tmp_path):
    """use(task, model, labels, as_zip=True) exports the model and chooses it for the task."""

    def use(task, model, labels: Sequence[str], as_zip: bool = True, name: str = "export"):
        path = onnxmodels.export(tmp_path / "models", model, labels, as_zip=as_zip, name=name)
        monkeypatch.setenv(task.setting("BACKEND"), "onnx")
        monkeypatch.setenv(task.setting("MODEL"), str(path))
        return path

    return use


def stripes(folder: Path, shares: Dict[Tuple[int, int, int], float], name: str = "s.png") -> Path:
    """A 400x300 PNG of vertical stripes, each colour over its share of the width."""
    im = Image.new("RGB", (400, 300), (0, 0, 0))
    x = 0
    for colour, share in shares.items():
        width = round(400 * share)
        im.paste(colour, (x, 0, x + width, 300))
        x += width
    path = folder / name
    im.save(path)
    return path


def scores(path: Path) -> Dict[str, float]:
    """Every label's probability, before thresholds."""
    backend = registry.backend(CLASSIFY.name, Settings.load())
    return {p.tag: p.probability for p in backend.parse(backend.ask(str(path)))}


RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
NEGATIVE_LABELS = ["red", "Negative", "blue"]  # the model's green is Custom Vision's Negative


# ------------------------------------------------------------------ classification


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("bgr", [False, True])
@pytest.mark.parametrize("range255", [False, True])
def test_classifier_s1_is_fed_in_its_channel_order_and_value_range(
    use, tmp_path, bgr, range255, dtype
):
    use(
        CLASSIFY, onnxmodels.classifier_s1(bgr=bgr, range255=range255, dtype=dtype), ["r", "g", "b"]
    )
    path = stripes(tmp_path, {RED: 0.5, BLUE: 0.25})

    found = scores(path)

    # Fed BGR to an RGB model, red and blue would swap; fed 0..255 to a 0..1 model, every
    # score would be 1 (or 1/255 the other way round).
    assert found["r"] == pytest.approx(0.5, abs=0.01)
    assert found["g"] == pytest.approx(0.0, abs=0.01)
    assert found["b"] == pytest.approx(0.25, abs=0.01)


def test_labels_name_classes_by_line(use, tmp_path):
    # The model scores (red, green, blue) means; labels.txt names them in another order.
    use(CLASSIFY, onnxmodels.classifier_s1(), ["crimson", "leaf", "sky"], as_zip=False)
    path = stripes(tmp_path, {BLUE: 0.7, GREEN: 0.2})

    assert customvision.predict(str(path), CLASSIFY) == [
        base.Prediction("sky", pytest.approx(0.7, abs=0.01))
    ]


def test_thresholds_and_max_tags_apply_as_for_the_cloud(use, tmp_path, monkeypatch):
    use(CLASSIFY, onnxmodels.classifier_s1(), onnxmodels.LABELS)
    path = stripes(tmp_path, {GREEN: 0.3, RED: 0.6, BLUE: 0.1})

    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.25")
    assert [p.tag for p in customvision.predict(str(path), CLASSIFY)] == ["red", "green"]
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_MAX_TAGS", "1")
    assert [p.tag for p in customvision.predict(str(path), CLASSIFY)] == ["red"]
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.65")
    assert customvision.predict(str(path), CLASSIFY) == []


def test_older_classifier_reads_its_loss_map(use, tmp_path):
    # BGR 0..255, as the WinML-era export; labels.txt in another order than the model's map:
    # the map's own names count.
    use(CLASSIFY, onnxmodels.classifier_map(), ["blue", "green", "red"])
    path = stripes(tmp_path, {RED: 0.25, BLUE: 0.75})

    found = scores(path)

    assert found == {
        "red": pytest.approx(0.25, abs=0.01),
        "green": pytest.approx(0.0, abs=0.01),
        "blue": pytest.approx(0.75, abs=0.01),
    }


def test_plugin_writes_the_class_from_the_model(use, tmp_path, store):
    use(CLASSIFY, onnxmodels.classifier_s1(bgr=True, range255=True), onnxmodels.LABELS)
    path = imagefactory.png(tmp_path, size=(800, 600), color=(0, 0, 255))

    status = azureclassification.AzureClassificationPlugin().process("item", str(path))

    assert status == PluginStatus.SUCCESS
    assert answered(store.read("item", "image")) == {
        "azure_class": "blue",
        "azure_classes": ["blue"],
    }


@pytest.mark.parametrize(
    "model",
    [onnxmodels.classifier_s1, lambda: onnxmodels.classifier_map(labels=NEGATIVE_LABELS)],
    ids=["s1", "map"],
)
def test_the_negative_label_is_never_written(use, tmp_path, store, monkeypatch, model):
    # labels.txt lists the classifier's Negative tag as any label; here it scores green.
    use(CLASSIFY, model(), NEGATIVE_LABELS)
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.2")
    path = stripes(tmp_path, {GREEN: 0.6, RED: 0.3})
    backend = registry.backend(CLASSIFY.name, Settings.load())

    predictions = backend.ask(str(path)).body["predictions"]
    status = azureclassification.AzureClassificationPlugin().process("n", str(path))

    assert max(predictions, key=lambda p: p["probability"])["tagName"] == "Negative"
    assert status == PluginStatus.SUCCESS
    assert answered(store.read("n", "image")) == {"azure_class": "red", "azure_classes": ["red"]}


def test_answer_is_the_cloud_envelope_and_nothing_was_sent(use, tmp_path):
    use(CLASSIFY, onnxmodels.classifier_s1(size=256), onnxmodels.LABELS)
    path = stripes(tmp_path, {RED: 1.0})
    backend = registry.backend(CLASSIFY.name, Settings.load())

    answer = backend.ask(str(path))

    assert backend.endpoint_setting is None
    assert (answer.sent, answer.display, answer.bytes_sent) == ((256, 256), (400, 300), 0)
    assert set(answer.body) == {"id", "project", "iteration", "created", "predictions"}
    assert [p["tagName"] for p in answer.body["predictions"]] == onnxmodels.LABELS
    assert answer.body["predictions"][0]["probability"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        # Laid on white: red stays full, blue is white but for the orange ellipse (a fifth).
        (imagefactory.png_alpha, {"red": (0.99, 1.0), "blue": (0.75, 0.85)}),
        # 16-bit greyscale: a gradient, the same in every channel.
        (
            imagefactory.tiff_16bit,
            {"red": (0.45, 0.55), "green": (0.45, 0.55), "blue": (0.45, 0.55)},
        ),
        # A palette GIF's first frame is red (a small white square besides).
        (imagefactory.gif_palette, {"red": (0.99, 1.0), "green": (0.0, 0.05)}),
        # CMYK: cyan left half, red right half, a black bar below.
        (imagefactory.cmyk_jpeg, {"red": (0.3, 0.45), "blue": (0.3, 0.45)}),
    ],
)
def test_pictures_of_any_mode_are_made_rgb(use, tmp_path, make, expected):
    use(CLASSIFY, onnxmodels.classifier_s1(), onnxmodels.LABELS)

    found = scores(make(tmp_path))

    for label, (low, high) in expected.items():
        assert low <= found[label] <= high, (label, found)


# ------------------------------------------------------------------ detection


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_detector_s1_box_is_where_the_red_is_as_displayed(use, tmp_path, orientation):
    use(DETECT, onnxmodels.detector_s1(), onnxmodels.DETECTOR_LABELS)
    size, rect = (400, 300), (40, 30, 160, 120)
    path = imagefactory.jpeg_exif_rotated(tmp_path, orientation, size, rect, RED)

    found = customvision.predict(str(path), DETECT)

    assert [p.tag for p in found] == ["red"]  # the faint green box is under 0.5
    box = found[0].box
    assert box.probability == pytest.approx(onnxmodels.RED_SCORE, abs=1e-6)
    expected = imagefactory.displayed_rect(size, rect, orientation)
    assert (box.left, box.top, box.width, box.height) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_detector_s1_classes_and_threshold(use, tmp_path, monkeypatch, dtype):
    use(DETECT, onnxmodels.detector_s1(dtype=dtype), ["apple", "pear"])
    monkeypatch.setenv("CUSTOM_VISION_DETECT_THRESHOLD", "0.04")
    path = stripes(tmp_path, {BLUE: 0.5, RED: 0.25})

    found = customvision.predict(str(path), DETECT)

    assert [(p.tag, round(p.probability, 2)) for p in found] == [("apple", 0.9), ("pear", 0.05)]
    x1, y1, x2, y2 = onnxmodels.FAINT_BOX
    assert tuple(found[1].box[2:]) == pytest.approx((x1, y1, x2 - x1, y2 - y1), abs=1e-3)
    assert tuple(found[0].box[2:]) == pytest.approx((0.5, 0.0, 0.25, 1.0), abs=0.01)


def test_detector_s1_sees_no_red_in_a_blue_picture(use, tmp_path):
    # RGB 0..255: fed BGR, the blue square would be red to it.
    use(DETECT, onnxmodels.detector_s1(), onnxmodels.DETECTOR_LABELS)
    path = stripes(tmp_path, {BLUE: 0.5})

    backend = registry.backend(DETECT.name, Settings.load())
    assert [p.tag for p in backend.parse(backend.ask(str(path)))] == ["green"]  # the faint one


def yolo_picture(folder: Path, cells: Dict[Tuple[int, int], Tuple[int, int, int]], **kw) -> Path:
    """A 416x416 JPEG on grey with each given (row, column) cell of 32 px filled."""
    im = Image.new("RGB", (416, 416), imagefactory.GREY)
    for (row, column), colour in cells.items():
        im.paste(colour, (column * 32, row * 32, column * 32 + 32, row * 32 + 32))
    path = folder / "cells.jpg"
    im.save(path, "JPEG", quality=95, subsampling=0, **kw)
    return path


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_yolo_grid_is_decoded_with_anchors_offsets_and_softmax(use, tmp_path, dtype):
    use(DETECT, onnxmodels.yolo_grid(dtype=dtype), ["fire truck", "tree"])
    path = yolo_picture(tmp_path, {(4, 7): RED, (10, 2): GREEN})

    found = customvision.predict(str(path), DETECT)

    # One box per filled cell, exactly on it: sigmoid(0) centres it, exp(log(1/anchor)) *
    # anchor makes it one cell; objectness sigmoid(10) times softmax(4, 0).
    assert [p.tag for p in found] == ["fire truck", "tree"]
    for prediction, (row, column) in zip(found, [(4, 7), (10, 2)]):
        box = prediction.box
        assert box.probability == pytest.approx(0.982, abs=0.003)
        assert (box.left, box.top, box.width, box.height) == pytest.approx(
            (column * CELL, row * CELL, CELL, CELL), abs=0.002
        )


def test_yolo_boxes_follow_exif_orientation(use, tmp_path):
    use(DETECT, onnxmodels.yolo_grid(), onnxmodels.DETECTOR_LABELS)
    exif = Image.Exif()
    exif[imagefactory.EXIF_ORIENTATION] = 6  # displayed turned 90 degrees clockwise
    path = yolo_picture(tmp_path, {(4, 7): RED}, exif=exif)

    (found,) = customvision.predict(str(path), DETECT)

    # Stored cell (row 4, column 7) is displayed at row 7, column 12 - 4 = 8.
    assert (found.box.left, found.box.top) == pytest.approx((8 * CELL, 7 * CELL), abs=0.002)


def test_yolo_boxes_reach_the_store_as_the_cloud_writes_them(use, tmp_path, store):
    use(DETECT, onnxmodels.yolo_grid(), onnxmodels.DETECTOR_LABELS)
    path = yolo_picture(tmp_path, {(0, 0): RED, (12, 12): RED})

    status = azureobjectdetection.AzureObjectDetectionPlugin().process("cells", str(path))

    assert status == PluginStatus.SUCCESS
    fields = store.read("cells", "image")
    assert fields["azure_detected"] == ["red"]
    boxes = sorted(
        (b["left"], b["top"], b["width"], b["height"])
        for b in json.loads(fields["azure_detected_boxes"])
    )
    assert boxes == [(0.0, 0.0, 0.0769, 0.0769), (0.9231, 0.9231, 0.0769, 0.0769)]


def test_suppression_is_per_class():
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]])
    probabilities = np.array([[0.9, 0.0], [0.8, 0.7], [0.3, 0.0]])

    kept = onnxexport.suppress(np, boxes, probabilities)

    # Box 1 overlaps box 0 as "class 0" and is cleared for it, but stands as class 1.
    assert [(i, c) for i, c, _ in kept] == [(0, 0), (1, 1), (2, 0)]
    assert [round(p, 2) for _, _, p in kept] == [0.9, 0.7, 0.3]


# ------------------------------------------------------------------ one model per process


def test_model_is_loaded_once_and_shared_by_threads(use, tmp_path, monkeypatch):
    use(CLASSIFY, onnxmodels.classifier_s1(), onnxmodels.LABELS)
    made = []
    real = onnxruntime.InferenceSession

    def counted(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counted)
    shares = [0.1 * n for n in range(1, 9)]
    paths = [stripes(tmp_path, {RED: s}, name=f"{n}.png") for n, s in enumerate(shares)]
    results = {}

    def work(n: int) -> None:
        results[n] = customvision.predict(str(paths[n]), CLASSIFY)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(paths))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(made) == 1
    for n, share in enumerate(shares):
        expected = [base.Prediction("red", pytest.approx(share, abs=0.01))]
        assert results[n] == (expected if share >= 0.5 else [])


def test_identity_keys_on_the_model_and_its_labels(use, tmp_path, monkeypatch):
    first = use(CLASSIFY, onnxmodels.classifier_s1(), onnxmodels.LABELS, name="a")
    identity = registry.backend(CLASSIFY.name, Settings.load()).identity()
    copy = shutil.copy(first, tmp_path / "copy.zip")
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_MODEL", str(copy))
    assert registry.backend(CLASSIFY.name, Settings.load()).identity() == identity

    use(CLASSIFY, onnxmodels.classifier_s1(), ["rouge", "vert", "bleu"], name="b")
    relabelled = registry.backend(CLASSIFY.name, Settings.load()).identity()
    use(CLASSIFY, onnxmodels.classifier_s1(bgr=True), onnxmodels.LABELS, name="c")
    other = registry.backend(CLASSIFY.name, Settings.load()).identity()

    assert len({identity["model"], relabelled["model"], other["model"]}) == 3
    with zipfile.ZipFile(first) as archive:
        files = archive.read("model.onnx") + b"\0labels.txt\0" + archive.read("labels.txt")
    assert identity["model"] == hashlib.sha256(files).hexdigest()


def test_a_replaced_export_is_loaded_again(use, tmp_path):
    path = use(CLASSIFY, onnxmodels.classifier_s1(), onnxmodels.LABELS, as_zip=False)
    picture = stripes(tmp_path, {RED: 0.8})
    assert [p.tag for p in customvision.predict(str(picture), CLASSIFY)] == ["red"]

    (path / "labels.txt").write_text("rouge\nvert\nbleu\n", encoding="utf-8")

    assert [p.tag for p in customvision.predict(str(picture), CLASSIFY)] == ["rouge"]


def test_the_answer_cache_keeps_onnx_answers_by_model(use, tmp_path):
    use(CLASSIFY, onnxmodels.classifier_s1(), onnxmodels.LABELS)
    picture = stripes(tmp_path, {RED: 0.8})
    backend = registry.backend(CLASSIFY.name, Settings.load())

    first = fetch.fetch(backend, str(picture))
    again = fetch.fetch(backend, str(picture))

    assert not first.cached and again.cached
    assert again.body == first.body


# ------------------------------------------------------------------ hostile files


@pytest.mark.parametrize(
    "make",
    [
        imagefactory.truncated_jpeg,
        imagefactory.random_bytes_jpg,
        imagefactory.decompression_bomb,
        imagefactory.text_file_png,
        imagefactory.svg,
        imagefactory.tiny,
    ],
)
def test_hostile_files_are_skipped_without_running_the_model(use, tmp_path, monkeypatch, make):
    use(CLASSIFY, onnxmodels.classifier_s1(), onnxmodels.LABELS)
    runs = []
    monkeypatch.setattr(onnxexport.Model, "run", lambda self, tensor: runs.append(tensor))

    status = azureclassification.AzureClassificationPlugin().process("bad", str(make(tmp_path)))

    assert status == PluginStatus.SKIPPED
    assert runs == []


# ------------------------------------------------------------------ settings errors


def problem(task=CLASSIFY) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        registry.backend(task.name, Settings.load())
    return caught.value


def test_model_setting_must_be_set(monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_DETECT_BACKEND", "onnx")

    error = problem(DETECT)

    assert_problem(error, "CUSTOM_VISION_DETECT_MODEL", "settings.NOT_SET")


def bad_zip(folder: Path, files: Dict[str, bytes]) -> Path:
    path = folder / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def cut_zip(folder: Path) -> Path:
    """A download cut short: a zip's first bytes only."""
    path = folder / "cut.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    return path


def empty_folder(folder: Path) -> Path:
    path = folder / "empty"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make", "key", "known"),
    [
        (lambda d: d / "nowhere.zip", "onnxexport.MISSING", {}),
        (lambda d: bad_zip(d, {"labels.txt": b"a\n"}), "onnxexport.NO_MODEL", {}),
        (lambda d: bad_zip(d, {"model.onnx": b"x"}), "onnxexport.NO_LABELS", {}),
        (
            lambda d: bad_zip(d, {"model.onnx": b"not a model", "labels.txt": b"a\n"}),
            "onnxexport.NOT_LOADABLE",
            {},
        ),
        (cut_zip, "onnxexport.NOT_A_ZIP", {}),
        (empty_folder, "onnxexport.NO_FILE", {"name": "model.onnx"}),
    ],
)
def test_unusable_exports_are_settings_errors(tmp_path, monkeypatch, make, key, known):
    path = make(tmp_path)
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_BACKEND", "onnx")
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_MODEL", str(path))

    error = problem()

    assert_problem(error, "CUSTOM_VISION_CLASSIFY_MODEL", key, where=str(path), **known)


@pytest.mark.parametrize(
    ("task", "model", "labels", "key", "known"),
    [
        (
            CLASSIFY,
            onnxmodels.classifier_s1,
            ["a", "b"],
            "onnxexport.LABELS_NOT_SCORED",
            {"count": 2, "classes": 3},
        ),
        (
            CLASSIFY,
            onnxmodels.classifier_map,
            ["red", "green", "cyan"],
            "onnxexport.LABELS_NOT_CLASSES",
            {"classes": "blue, green, red"},
        ),
        (
            DETECT,
            onnxmodels.yolo_grid,
            ["a", "b", "c"],
            "onnxexport.LABELS_NOT_GRID",
            {"count": 3, "channels": 35, "needed": 40},
        ),
        (
            CLASSIFY,
            onnxmodels.unknown_form,
            ["a", "b", "c"],
            "onnxexport.UNKNOWN_FORM",
            {"outputs": "scores"},
        ),
        (
            CLASSIFY,
            onnxmodels.detector_s1,
            ["a", "b"],
            "onnxexport.WRONG_TASK",
            {"form": onnxexport.DETECTOR_S1, "wanted": "a classification"},
        ),
        (
            DETECT,
            onnxmodels.classifier_s1,
            ["a", "b", "c"],
            "onnxexport.WRONG_TASK",
            {"form": onnxexport.CLASSIFIER_S1, "wanted": "an object detection"},
        ),
        (
            CLASSIFY,
            onnxmodels.classifier_s1,
            ["a", "", "c"],
            "onnxexport.LABELS_EMPTY_LINE",
            {"line": 2},
        ),
        (CLASSIFY, onnxmodels.classifier_s1, [], "onnxexport.LABELS_EMPTY", {}),
    ],
)
def test_models_that_do_not_fit_are_settings_errors(use, task, model, labels, key, known):
    path = use(task, model(), labels)

    error = problem(task)

    assert_problem(error, task.setting("MODEL"), key, where=str(path), **known)


def test_labels_txt_must_be_text(use, tmp_path):
    path = use(CLASSIFY, onnxmodels.classifier_s1(), onnxmodels.LABELS, as_zip=False)
    (path / "labels.txt").write_bytes(b"\xff\xfe\x00r\x00e\x00d")

    assert_problem(
        problem(), "CUSTOM_VISION_CLASSIFY_MODEL", "onnxexport.LABELS_NOT_TEXT", where=str(path)
    )


def test_missing_extra_is_one_fatal_line_naming_the_backend_setting(
    use, tmp_path, monkeypatch, logs
):
    use(CLASSIFY, onnxmodels.classifier_s1(), onnxmodels.LABELS)
    # As on a Python where onnxruntime is not installed, or cannot be.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    runtime.reset()
    plugin = azureclassification.AzureClassificationPlugin()

    statuses = [plugin.process(n, str(stripes(tmp_path, {RED: 1.0}))) for n in ("a", "b")]

    assert statuses == [PluginStatus.FATAL, PluginStatus.FATAL]
    fatal = [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR]
    assert len(fatal) == 1
    assert "setting CUSTOM_VISION_CLASSIFY_BACKEND " in fatal[0]
    assert_mentions(fatal[0], "onnxexport.NOT_INSTALLED", python=PYTHON)
    assert "pip install 'pixstor-azure[onnx]'" in fatal[0]


def test_onnxruntime_installed_after_a_failure_is_found(use, tmp_path, monkeypatch):
    use(CLASSIFY, onnxmodels.classifier_s1(), onnxmodels.LABELS)
    picture = stripes(tmp_path, {RED: 1.0})
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not importable, as not installed

    for _ in range(2):
        assert_problem(
            problem(), "CUSTOM_VISION_CLASSIFY_BACKEND", "onnxexport.NOT_INSTALLED", python=PYTHON
        )

    monkeypatch.setitem(sys.modules, "onnxruntime", onnxruntime)  # installed meanwhile

    assert [p.tag for p in customvision.predict(str(picture), CLASSIFY)] == ["red"]


def test_a_broken_export_is_not_read_again_for_every_picture(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_BACKEND", "onnx")
    path = bad_zip(tmp_path, {"model.onnx": b"not a model", "labels.txt": b"a\n"})
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_MODEL", str(path))
    reads = []
    real = onnxexport.read_export
    monkeypatch.setattr(onnxexport, "read_export", lambda *a: reads.append(1) or real(*a))

    first, second = problem(), problem()

    assert str(first) == str(second)
    assert len(reads) == 1
