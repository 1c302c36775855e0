"""images/sequences.py: a file's frame and sequence, by its name, by fileseq's rules.

The expected answers are fileseq 3.4's (``FileSequence.findSequencesInList``), asked of the same
names when this module was written: fileseq itself does not run on Python 3.6 (its 2.x and
later), where the plugins run.
"""

import os

import pytest

from pixstor_azure.images import sequences
from pixstor_azure.images.sequences import frame_of, same_sequence


@pytest.mark.parametrize(
    ("name", "head", "digits", "tail"),
    [
        ("plate.1001.exr", "plate.", "1001", ".exr"),
        ("plate_1001.exr", "plate_", "1001", ".exr"),
        ("plate1001.exr", "plate", "1001", ".exr"),
        ("plate.01.exr", "plate.", "01", ".exr"),
        ("plate.1.exr", "plate.", "1", ".exr"),
        ("plate.10000.exr", "plate.", "10000", ".exr"),
        ("plate.-0012.exr", "plate.", "-0012", ".exr"),
        ("plate.-1.exr", "plate.", "-1", ".exr"),
        ("shot-1001.exr", "shot", "-1001", ".exr"),  # fileseq: a sign, not a separator
        ("shot010_comp_v003.exr", "shot010_comp_v", "003", ".exr"),  # the last number
        ("plate.v2.1001.exr", "plate.v2.", "1001", ".exr"),
        ("plate.1001.tar.gz", "plate.", "1001", ".tar.gz"),
        ("IMG_0001.jpg", "IMG_", "0001", ".jpg"),
        ("2023.jpg", "", "2023", ".jpg"),
        ("plate.1001.EXR", "plate.", "1001", ".EXR"),
        ("plate 1001", "plate ", "1001", ""),  # no extension: the number ends the name
    ],
)
def test_the_frame_is_the_last_number_before_the_extension(tmp_path, name, head, digits, tail):
    frame = frame_of(tmp_path / name)
    assert (frame.head, frame.digits, frame.tail) == (head, digits, tail)
    assert frame.number == int(digits)
    assert frame.name == name
    assert frame.folder == str(tmp_path)


@pytest.mark.parametrize(
    "name",
    ["notes.txt", "plate.exr", "plate.1001", "plate.1001.", ".exr", "plate.v.exr"],
)
def test_a_name_without_a_frame_is_no_frame(tmp_path, name):
    # "plate.1001": fileseq reads ".1001" as the extension of "plate", not a frame.
    assert frame_of(tmp_path / name) is None


def test_a_frame_number_in_a_folder_name_is_not_the_files():
    assert frame_of("/shots/sh1001/plate.exr") is None
    assert frame_of("/shots/sh1001/plate.1002.exr").number == 1002


def test_the_folder_is_absolute_and_normalised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shot").mkdir()
    relative = frame_of("shot/./plate.1001.exr")
    assert relative.folder == str(tmp_path / "shot")
    assert relative.key == frame_of(tmp_path / "x" / ".." / "shot" / "plate.1002.exr").key
    assert relative.pattern == os.path.join(str(tmp_path / "shot"), "plate.####.exr")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("plate.1001.exr", "plate.1002.exr", True),
        ("plate.1001.exr", "plate.1240.exr", True),
        ("plate_1001.exr", "plate_1002.exr", True),
        ("plate1001.exr", "plate1002.exr", True),
        ("plate.-0012.exr", "plate.-0011.exr", True),
        ("plate.-001.exr", "plate.0000.exr", True),  # %04d writes -1 as -001
        ("plate.-1.exr", "plate.0.exr", True),
        ("plate.999.exr", "plate.1000.exr", True),  # unpadded
        ("plate.0999.exr", "plate.1000.exr", True),  # four digits
        ("plate.9999.exr", "plate.10000.exr", True),
        ("plate.01.exr", "plate.001.exr", False),  # two paddings
        ("plate.1.exr", "plate.0001.exr", False),
        ("plate.-0.exr", "plate.0.exr", False),
        ("plate.1001.exr", "plate.1002.jpg", False),  # one pattern, extension included
        ("plate.1001.EXR", "plate.1002.exr", False),
        ("plate.1001.exr", "plate_1002.exr", False),
        ("plate.1001.exr", "plates.1002.exr", False),
        ("a/plate.1001.exr", "b/plate.1002.exr", False),  # one folder
    ],
)
def test_frames_of_one_sequence_share_folder_pattern_and_padding(tmp_path, a, b, same):
    first, second = frame_of(tmp_path / a), frame_of(tmp_path / b)
    assert same_sequence(first, second) is same
    assert same_sequence(second, first) is same


@pytest.mark.parametrize(
    ("digits", "width", "padded"),
    [("1001", 4, False), ("0999", 4, True), ("-001", 4, True), ("-12", 3, False), ("0", 1, False)],
)
def test_width_and_padding_as_written(digits, width, padded):
    frame = sequences.Frame("/shots", "plate.", digits, ".exr")
    assert (frame.width, frame.padded) == (width, padded)
