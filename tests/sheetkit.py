"""Pictures tagged for real, for the contact sheet's and ``train``'s tests.

``tag_folder`` draws a few pictures whose coloured rectangles the fake service finds (see
``tests/fakeazure.py``: a red, green or blue area is a detection "red box" ...; classes are the
shares of each colour), one of them stored sideways with EXIF orientation 6, and runs the real
``pixstor-azure tag`` over them against ``FakeAzure``: the store then holds what the plugins
wrote, boxes as fractions of each picture as displayed.
"""

from pathlib import Path
from typing import Dict, List

from PIL import Image

from pixstor_azure.tool import cli
from tests import imagefactory, toolrun
from tests.fakeazure import FakeAzure

GREY = (128, 128, 128)
# Stored pixels of the sideways picture: 400x300 with a red rectangle, shown as 300x400.
ROTATED_SIZE = (400, 300)
ROTATED_RECT = (40, 30, 160, 120)


def draw(folder: Path, name: str, size, rects: Dict[str, tuple]) -> Path:
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    image = Image.new("RGB", size, GREY)
    for colour, rect in rects.items():
        image.paste(colours[colour], rect)
    path = folder / name
    image.save(str(path), quality=95, subsampling=0)
    return path


def pictures(folder: Path) -> List[Path]:
    """Four pictures in two folders: upright ones, and one stored sideways (EXIF 6)."""
    (folder / "day1").mkdir(parents=True, exist_ok=True)
    (folder / "day2").mkdir(parents=True, exist_ok=True)
    made = [
        draw(
            folder / "day1",
            "a_red_green.jpg",
            (640, 480),
            {"red": (64, 48, 320, 240), "green": (400, 300, 600, 450)},
        ),
        draw(folder / "day1", "b_blue.png", (500, 500), {"blue": (100, 150, 300, 450)}),
        draw(folder / "day2", "c_small_red.jpg", (600, 400), {"red": (500, 20, 540, 60)}),
    ]
    rotated = imagefactory.jpeg_exif_rotated(
        folder / "day2", 6, size=ROTATED_SIZE, rect=ROTATED_RECT, color=(255, 0, 0)
    )
    made.append(rotated)
    return made


def settings(server: FakeAzure) -> Dict[str, str]:
    """The environment that points the Custom Vision plugins at ``server``."""
    return {
        **toolrun.custom_vision(server),
        # Classes are shares of a colour: keep the small ones too, so every picture has some.
        "CUSTOM_VISION_CLASSIFY_THRESHOLD": "0.01",
        "CUSTOM_VISION_DETECT_THRESHOLD": "0.25",
    }


def tag_folder(folder: Path, monkeypatch) -> List[Path]:
    """Draw the pictures under ``folder`` and tag them (classifier and detector) for real."""
    made = pictures(folder)
    with FakeAzure() as server:
        toolrun.serve(server)
        for name, value in settings(server).items():
            monkeypatch.setenv(name, value)
        status = cli.main(
            ["tag", "-q", "-p", "classification", "-p", "detection", "--no-progress", str(folder)]
        )
    assert status == 0
    return made
