"""Frame sequences, recognised by their files' names as VFX tools do.

``plate.1001.exr``, ``plate_1001.exr`` and ``plate1001.exr`` are frame 1001 of the sequences
``plate.####.exr``, ``plate_####.exr`` and ``plate####.exr``. The rules are fileseq's for files
on disk (``findSequencesInList``), which Nuke, Houdini and RV read alike:

* the frame is the last run of digits before the extension, with a ``-`` just before it
  taken as its sign (``plate.-0012.exr`` is frame -12, and so ``shot-1001.exr`` is frame
  -1001 of ``shot#.exr``); an extension is one or more ``.part`` with a letter in each but
  the last (``.exr``, ``.tar.gz``); a name with no digits there (``notes.txt``,
  ``plate.1001``, whose ``.1001`` is its extension) is no frame;
* the frames of one sequence are those of one folder with the same text before and after the
  number, extension case included;
* padding: a number written with leading zeros (``0999``, ``-001``) has a fixed width, its
  length with the sign; one written without (``1000``, ``-12``) fits any width up to its
  length. Two frames are of one sequence when their widths agree that way: ``0999`` and
  ``1000`` are (a four-digit sequence), ``999`` and ``1000`` are (an unpadded one), ``01`` and
  ``001`` are not, nor ``1`` and ``0001``. This is fileseq's grouping taken pair by pair;
  fileseq, seeing a whole folder at once, also splits two unpadded frames around a padded one
  of a width between theirs, which cannot be known from two names.

Only the name is read: no file is opened and no folder listed (PixStor gives one file at a
time). ``tests/test_sequences.py`` holds fileseq's answers for each rule.
"""

import os
import re
from typing import NamedTuple, Optional, Tuple, Union

# fileseq's DISK_RE: the shortest head, an optional signed frame, then the extension(s).
_NAME = re.compile(
    r"""
    \A
    (?P<head>.*?)
    (?P<digits>-?\d+)?
    (?P<tail>(?:\.\w*[a-zA-Z]\w?)*(?:\.[^.]+)?)
    \Z
    """,
    re.VERBOSE | re.DOTALL,
)


class Frame(NamedTuple):
    """One file of a frame sequence: where it is, and its name cut around the frame number."""

    folder: str  # absolute, normalised: frames reached by one folder name share it
    head: str  # the name before the number: "plate."
    digits: str  # the number as written, sign included: "1001", "-0012"
    tail: str  # the name after it: ".exr"

    @property
    def number(self) -> int:
        return int(self.digits)

    @property
    def key(self) -> Tuple[str, str, str]:
        """(folder, head, tail): what every frame of the sequence shares (see ``same_sequence``
        for the padding)."""
        return (self.folder, self.head, self.tail)

    @property
    def width(self) -> int:
        """The number's length as written, its sign included."""
        return len(self.digits)

    @property
    def padded(self) -> bool:
        """Whether the number is written with leading zeros, and so has a fixed width."""
        return self.width > len(str(self.number))

    @property
    def name(self) -> str:
        """The file's name: ``plate.1001.exr``."""
        return self.head + self.digits + self.tail

    @property
    def pattern(self) -> str:
        """The sequence as people write it, one ``#`` a digit: ``/shots/plate.####.exr``."""
        return os.path.join(self.folder, self.head + "#" * self.width + self.tail)


def frame_of(path: Union[str, os.PathLike]) -> Optional[Frame]:
    """The frame the file at ``path`` is, by its name; None when its name holds no frame."""
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    match = _NAME.match(name)
    if match is None or match.group("digits") is None:
        return None
    return Frame(folder, match.group("head"), match.group("digits"), match.group("tail"))


def same_sequence(a: Frame, b: Frame) -> bool:
    """Whether two frames belong to one sequence: one folder, one pattern, widths that agree."""
    if a.key != b.key:
        return False
    if a.padded and b.padded:
        return a.width == b.width
    if a.padded:
        return b.width >= a.width
    if b.padded:
        return a.width >= b.width
    return True
