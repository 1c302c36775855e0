"""The command-line tool: the plugins over a folder, outside PixStor, into the SQLite store."""

import json
import shutil

import pytest
from PIL import Image

from pixstor_azure import cli
from tests import imagefactory
from tests.conftest import ROOT


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "stills"
    (root / "day1").mkdir(parents=True)
    imagefactory.png(root / "day1", size=(400, 300), color=(0, 0, 255))
    shutil.copy(ROOT / "images" / "coffee.jpg", root / "day1" / "coffee.jpg")
    imagefactory.truncated_jpeg(root)
    (root / "notes.txt").write_text("not for us")
    return root


def test_tag_then_show(fake_classifier, folder, store, capsys):
    assert cli.main(["tag", "-p", "classification", "--no-progress", str(folder)]) == 0

    summary = capsys.readouterr().err
    assert "azureclassification: SUCCESS 1" in summary  # the blue PNG
    assert "azureclassification: SKIPPED 2" in summary  # coffee under 0.5, the truncated JPEG
    # notes.txt was not handled, the truncated file not sent
    assert len(fake_classifier.requests) == 2
    blue = folder / "day1" / "plain.png"
    assert store.read(str(blue.resolve()), "image")["azure_class"] == "blue"

    assert cli.main(["show", str(folder)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert list(shown) == [str(blue)]
    assert shown[str(blue)]["image.azure_classes"] == ["blue"]


def test_fatal_files_make_a_failing_exit_status(fake_classifier, folder, monkeypatch, capsys):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_ITERATION", "unpublished")

    assert cli.main(["tag", "-p", "classification", "--no-progress", "-j", "2", str(folder)]) == 1
    assert "azureclassification: FATAL 2" in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["tag", "-p", "nonsense", "x"])
    assert caught.value.code == 2


def test_draw_writes_copies_with_the_stored_boxes(folder, store, tmp_path, capsys):
    photo = folder / "day1" / "coffee.jpg"
    store.write(
        str(photo.resolve()),
        "image",
        "AzureObjectDetectionPlugin",
        {
            "azure_detected_boxes": '[{"tag":"cup","probability":0.9,"left":0.25,"top":0.25,'
            '"width":0.5,"height":0.5}]'
        },
    )
    out = tmp_path / "checked"

    assert cli.main(["draw", "--out", str(out), str(folder)]) == 0

    (written,) = out.iterdir()
    assert written.name == "coffee.boxes.jpg"
    assert capsys.readouterr().out.strip() == str(written)
    with Image.open(written) as drawn, Image.open(photo) as original:
        assert drawn.size == original.size
        # The box edge at a quarter of the width is drawn over; the centre is not.
        edge = (original.width // 4, original.height // 2)
        centre = (original.width // 2, original.height // 2)
        assert drawn.getpixel(edge) != original.convert("RGB").getpixel(edge)
        assert (
            max(
                abs(a - b)
                for a, b in zip(drawn.getpixel(centre), original.convert("RGB").getpixel(centre))
            )
            < 30
        )
