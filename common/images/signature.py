"""A frame's perceptual signature: a few hundred bytes that say whether two frames look alike.

A frame whose signature is close to that of an answered frame of its sequence reuses that
answer (``PIXSTOR_AZURE_SEQUENCES``). What answers for a picture names what is in it, wherever
it is: so the signature compares what is in two frames, not where.

The signature is made from the image the process already decoded, reduced twice by area
averaging (which also averages film grain and compression noise away):

* its colours: the picture at ``COLOUR_SIDE`` px on its long side, each pixel's colour put
  in one of 8x8x8 bins (32 levels a channel), counted;
* its layout: the picture at ``GRID_SIDE`` px on its long side, as it is.

Two comparisons, both a share of the picture (0 to 1):

``change``: the share of either frame whose colours the other lacks, counting a colour as
    present in the neighbouring bins too (so a fade shows only once it has moved colours by
    more than a bin). Objects moving, the camera panning over the same scene: no change. An
    object coming in, going out or growing, a fade, anything new: its share of the picture.
    When more than ``LAYOUT_CHANGE`` of the layout has changed in place, the frames are of
    different views, a cut or the camera turning, and ``change`` is 1 whatever the colours
    (the other side of a set has the same colours elsewhere).
``moved``: the share of the layout changed in place, by more than ``CELL_LEVEL`` levels in a
    channel. Boxes say where things are: they are reused only from a frame where almost
    nothing moved.

``bench/sequences.py`` measures what these choices give on generated shots; the README's
"Frame sequences" section says what they mean for the settings.
"""

import struct
from typing import Dict, Tuple, cast

from PIL import Image, ImageChops

_RESAMPLING = getattr(Image, "Resampling", Image)  # Pillow 9.1 moved the filters into an enum
_BOX = _RESAMPLING.BOX
_NEAREST = _RESAMPLING.NEAREST

VERSION = 1
COLOUR_SIDE = 96  # the long side of the picture the colours are counted on
GRID_SIDE = 32  # the long side of the layout kept
COLOUR_SHIFT = 5  # 8 bits to 3: bins of 32 levels a channel
SAMPLES = 4  # a reduced pixel averages up to 4 x 4 pixels of the picture
CELL_LEVEL = 16  # a cell has changed in place when a channel moved by more than this
LAYOUT_CHANGE = 0.3  # beyond this share of the layout changed, a different view

_HEADER = struct.Struct(">BBBH")  # version, grid width, grid height, cells counted
_BIN = struct.Struct(">HH")  # colour bin, count


def _neighbours(colour: int) -> Tuple[int, ...]:
    """A colour bin and the bins next to it (26 inside the cube, fewer on its faces)."""
    r, g, b = colour >> 6, (colour >> 3) & 7, colour & 7
    return tuple(
        (r + dr) << 6 | (g + dg) << 3 | (b + db)
        for dr in (-1, 0, 1)
        for dg in (-1, 0, 1)
        for db in (-1, 0, 1)
        if 0 <= r + dr < 8 and 0 <= g + dg < 8 and 0 <= b + db < 8
    )


_NEAR = tuple(_neighbours(colour) for colour in range(512))  # a constant table


class Signature:
    """A signature read back from its bytes (``of`` makes one from a picture)."""

    __slots__ = ("colours", "counted", "grid", "grid_size")

    def __init__(
        self, grid_size: Tuple[int, int], grid: bytes, counted: int, colours: Dict[int, int]
    ) -> None:
        self.grid_size = grid_size
        self.grid = grid  # RGB, row by row
        self.counted = counted  # pixels whose colours are counted
        self.colours = colours  # bin (r << 6 | g << 3 | b, 3 bits each) -> pixels

    @classmethod
    def from_bytes(cls, data: bytes) -> "Signature":
        """The signature ``to_bytes`` wrote; ValueError when ``data`` is not one."""
        if len(data) < _HEADER.size:
            raise ValueError("too short for a signature")
        version, width, height, counted = _HEADER.unpack_from(data)
        if version != VERSION:
            raise ValueError(f"a signature of version {version}, not {VERSION}")
        start = _HEADER.size
        end = start + width * height * 3
        rest = len(data) - end
        if rest < 0 or rest % _BIN.size:
            raise ValueError("a signature of the wrong length")
        colours = dict(_BIN.iter_unpack(data[end:]))
        return cls((width, height), data[start:end], counted, colours)

    def to_bytes(self) -> bytes:
        width, height = self.grid_size
        parts = [_HEADER.pack(VERSION, width, height, self.counted), self.grid]
        parts.extend(_BIN.pack(b, n) for b, n in sorted(self.colours.items()))
        return b"".join(parts)


def of(image: Image.Image) -> Signature:
    """The signature of a decoded picture (RGB or L, as ``prepare`` keeps them)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    small = _reduced(image, COLOUR_SIDE)
    # Each channel to its bin's lowest level, then counted by Pillow, in C: at most 512.
    binned = small.point([v >> COLOUR_SHIFT << COLOUR_SHIFT for v in range(256)] * 3)
    colours: Dict[int, int] = {}
    for count, colour in binned.getcolors(512) or []:
        r, g, b = cast(Tuple[int, int, int], colour)
        colours[(r >> COLOUR_SHIFT) << 6 | (g >> COLOUR_SHIFT) << 3 | b >> COLOUR_SHIFT] = count
    grid = _reduced(small, GRID_SIDE)
    return Signature(grid.size, grid.tobytes(), small.width * small.height, colours)


def change(a: Signature, b: Signature) -> float:
    """The share of either frame whose colours the other lacks; 1 for different views."""
    if a.grid_size != b.grid_size or moved(a, b) > LAYOUT_CHANGE:
        return 1.0
    return max(_lacking(a, b), _lacking(b, a))


def moved(a: Signature, b: Signature) -> float:
    """The share of the layout changed in place (1 when the pictures' shapes differ)."""
    if a.grid_size != b.grid_size:
        return 1.0
    first = Image.frombytes("RGB", a.grid_size, a.grid)
    second = Image.frombytes("RGB", b.grid_size, b.grid)
    red, green, blue = ImageChops.difference(first, second).split()
    largest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    counts = largest.histogram()
    return sum(counts[CELL_LEVEL + 1 :]) / sum(counts)


def _lacking(a: Signature, b: Signature) -> float:
    """The share of ``a`` in colours ``b`` has less of, a bin's neighbours counting with it."""
    theirs = b.colours
    scale = a.counted / b.counted  # both come from pictures of one shape: 1 in practice
    missing = 0.0
    for colour, count in a.colours.items():
        near = sum(theirs.get(n, 0) for n in _NEAR[colour]) * scale
        if count > near:
            missing += count - near
    return missing / a.counted


def _reduced(image: Image.Image, side: int) -> Image.Image:
    """``image`` brought to ``side`` px on its long side (never up), each pixel the average
    of at most ``SAMPLES`` x ``SAMPLES`` pixels spread evenly over its area.

    Averaging every pixel of a 2048 px picture costs as much as copying it; an even sample
    of 16 a cell averages grain away as well, for a small share of that (``bench/sequences.py``
    measures the signature against preparing the picture).
    """
    width, height = image.size
    scale = min(1.0, side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == image.size:
        return image
    sampled = (size[0] * SAMPLES, size[1] * SAMPLES)
    if sampled[0] < width and sampled[1] < height:
        image = image.resize(sampled, _NEAREST)
    factor = min(image.width // size[0], image.height // size[1])
    if factor > 1:
        image = image.reduce(factor)  # an exact area average, far cheaper than a filter
    return image.resize(size, _BOX) if image.size != size else image
