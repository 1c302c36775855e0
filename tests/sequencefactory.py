"""Generated frame sequences: eleven shots, hard cuts between them, 1,020 frames in all.

Each shot is a few objects on a textured background, drawn frame by frame: objects that move,
enter and leave, a camera pan, a fade in from black and one out to it, film grain on every
frame. The shots' backgrounds differ from one another, as those of a cut do. The objects are
the colours ``tests/fakeazure.py`` recognises (red, green, blue; a fade brings black), and the
backgrounds are muted colours it does not, so its answers change when, and only when, what is
in the picture changes.

``write`` draws a sequence into a folder and returns what is in each frame (``Truth``): its
shot and each object's box. ``bench/sequences.py`` measures on all of it; the tests take
``short`` shots. Only the standard library and Pillow are used, with seeded randomness: the
same call draws the same frames (Pillow versions permitting), quickly (about 2 ms a frame at
the default 192x108 px).
"""

import os
import random
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from PIL import Image, ImageChops, ImageDraw

# The colours tests/fakeazure.py counts, a little off its thresholds' edges.
RED = (210, 40, 35)
GREEN = (40, 190, 50)
BLUE = (35, 50, 215)

SIZE = (192, 108)
START = 1001


class Thing(NamedTuple):
    """An object of a shot: a coloured shape moving at a steady speed in frame pixels.

    Positions are of its top-left corner at the shot's first frame, for a frame of ``SIZE``
    (they scale with the frame); it is there from frame ``since`` to ``until`` of the shot.
    """

    colour: Tuple[int, int, int]
    shape: str  # "box" or "ball"
    size: Tuple[int, int]
    start: Tuple[float, float]
    speed: Tuple[float, float] = (0.0, 0.0)  # pixels a frame
    since: int = 0
    until: Optional[int] = None
    with_pan: bool = False  # fixed in the scene, so moving with the background when it pans


class Shot(NamedTuple):
    name: str
    length: int  # frames
    sky: Tuple[int, int, int]  # the background's top and bottom colours, muted
    ground: Tuple[int, int, int]
    things: Tuple[Thing, ...] = ()
    pan: float = 0.0  # pixels a frame the camera moves right (the scene moves left)
    fade_in: int = 0  # frames from black at the start
    fade_out: int = 0  # frames to black at the end
    grain: int = 6  # amplitude of the grain, in levels either side


SHOTS = (
    Shot(
        "street",
        100,
        (150, 160, 170),
        (110, 105, 100),
        (Thing(RED, "box", (36, 16), (10, 66), (0.6, 0.0)),),
    ),
    Shot(
        "field pan",
        100,
        (170, 175, 150),
        (120, 135, 95),
        (Thing(GREEN, "ball", (22, 30), (230, 46), with_pan=True),),
        pan=1.5,
    ),
    Shot(
        "fade in",
        90,
        (120, 110, 140),
        (90, 85, 100),
        (Thing(BLUE, "ball", (20, 20), (80, 40), (0.3, 0.1)),),
        fade_in=24,
    ),
    Shot(
        "two things",
        100,
        (160, 140, 120),
        (100, 90, 80),
        (
            Thing(RED, "box", (30, 16), (90, 60), (1.2, 0.0)),
            Thing(BLUE, "box", (18, 18), (40, 30)),
        ),
    ),
    Shot(
        "fade out",
        90,
        (140, 150, 130),
        (95, 100, 90),
        (Thing(GREEN, "box", (22, 32), (120, 40)),),
        fade_out=30,
    ),
    Shot(
        "lock-off",
        90,
        (130, 130, 150),
        (105, 100, 95),
        (Thing(BLUE, "box", (26, 20), (60, 50)), Thing(RED, "ball", (18, 18), (140, 30))),
        grain=10,
    ),
    Shot(
        "fast",
        90,
        (165, 155, 140),
        (125, 115, 105),
        (Thing(BLUE, "ball", (20, 20), (-24, 45), (3.0, 0.0)),),
    ),
    Shot(
        "pan and car",
        90,
        (145, 165, 175),
        (115, 110, 95),
        (Thing(RED, "box", (34, 16), (150, 72), (-0.8, 0.0)),),
        pan=1.0,
    ),
    Shot(
        "enters",
        90,
        (125, 140, 155),
        (90, 100, 110),
        (Thing(RED, "box", (30, 16), (-30, 62), (1.0, 0.0), since=40),),
    ),
    Shot(
        "still life",
        90,
        (175, 165, 150),
        (135, 120, 110),
        (Thing(GREEN, "ball", (20, 20), (50, 50)), Thing(RED, "box", (26, 18), (110, 55))),
    ),
    # The same set seen from the other side: the same colours in the same amounts, elsewhere.
    Shot(
        "reverse angle",
        90,
        (135, 120, 110),
        (175, 165, 150),
        (Thing(GREEN, "ball", (20, 20), (130, 30)), Thing(RED, "box", (26, 18), (30, 70))),
    ),
)


class Truth(NamedTuple):
    """What one frame shows."""

    path: Path
    number: int  # the frame number in its name
    shot: int  # index in the shots drawn
    first: bool  # the first frame of its shot: just after a cut (or the sequence's start)
    boxes: Tuple[Tuple[Tuple[int, int, int], Tuple[int, int, int, int]], ...]  # colour, box
    brightness: float  # 1 except during fades


def short(length: int, shots: Sequence[Shot] = SHOTS) -> Tuple[Shot, ...]:
    """``shots`` cut to ``length`` frames each, their fades and entrances kept within it."""
    out = []
    for shot in shots:
        scale = min(1.0, length / shot.length)
        things = tuple(
            t._replace(
                since=int(t.since * scale),
                speed=(t.speed[0] / scale, t.speed[1] / scale),
            )
            for t in shot.things
        )
        out.append(
            shot._replace(
                length=min(length, shot.length),
                things=things,
                pan=shot.pan / scale,
                fade_in=int(shot.fade_in * scale),
                fade_out=int(shot.fade_out * scale),
            )
        )
    return tuple(out)


def write(
    folder: Union[str, os.PathLike],
    shots: Sequence[Shot] = SHOTS,
    name: str = "plate.",
    start: int = START,
    padding: int = 4,
    ext: str = ".png",
    size: Tuple[int, int] = SIZE,
    seed: int = 20,
) -> List[Truth]:
    """Draw ``shots`` one after another as ``{name}{number:0{padding}d}{ext}`` in ``folder``
    (PNG, or JPEG at quality 90 for ``.jpg``), numbered from ``start``; what each frame shows."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    grains = [_grain(size, seed + i) for i in range(4)]
    scaled = {}  # type: Dict[int, List[Image.Image]]
    truths = []
    number = start
    for index, shot in enumerate(shots):
        world = _world(shot, size, seed + 100 * index)
        if shot.grain not in scaled:
            scaled[shot.grain] = [
                g.point(lambda v, a=shot.grain: 128 + (v - 128) * a // 10) for g in grains
            ]
        for n in range(shot.length):
            image, boxes, brightness = _frame(shot, n, world, size)
            if shot.grain:
                # The grain of each frame its own, as film's is: no two frames are the same file.
                grain = scaled[shot.grain][n % len(grains)]
                grain = ImageChops.offset(grain, (n * 37) % size[0], (n * 17) % size[1])
                image = ImageChops.add(image, grain, 1.0, -128)
            path = folder / f"{name}{number:0{padding}d}{ext}"
            if ext.lower() in (".jpg", ".jpeg"):
                image.save(path, "JPEG", quality=90)
            else:
                image.save(path, compress_level=1)  # grain does not compress: save time
            truths.append(Truth(path, number, index, n == 0, boxes, brightness))
            number += 1
    return truths


def frame_image(shot: Shot, n: int, size: Tuple[int, int] = SIZE, seed: int = 20) -> Image.Image:
    """Frame ``n`` of ``shot`` without grain, as a Pillow image (for tests of one frame)."""
    return _frame(shot, n, _world(shot, size, seed), size)[0]


def _grain(size: Tuple[int, int], seed: int) -> Image.Image:
    """Grey grain of 128 +/- 10 levels, the same on the three channels."""
    count = size[0] * size[1]
    data = random.Random(seed).getrandbits(count * 8).to_bytes(count, "little")
    grey = Image.frombytes("L", size, data).point(lambda v: 118 + v * 21 // 256)
    return Image.merge("RGB", (grey, grey, grey))


def _world(shot: Shot, size: Tuple[int, int], seed: int) -> Image.Image:
    """The shot's background, as wide as its pan needs: a vertical gradient from sky to
    ground with blotches of nearby muted colours."""
    width, height = size
    wide = width + int(abs(shot.pan) * shot.length * width / SIZE[0]) + 2
    column = Image.new("RGB", (1, height))
    for y in range(height):
        t = y / max(1, height - 1)
        column.putpixel(
            (0, y), tuple(round(a + (b - a) * t) for a, b in zip(shot.sky, shot.ground))
        )
    world = column.resize((wide, height))
    draw = ImageDraw.Draw(world)
    rng = random.Random(seed)
    for _ in range(wide * height // 300):
        x, y = rng.uniform(0, wide), rng.uniform(0, height)
        r = rng.uniform(2, 9) * width / SIZE[0]
        base = world.getpixel((int(x), int(y)))
        shade = rng.randint(-22, 22)
        colour = tuple(max(60, min(190, c + shade)) for c in base)
        draw.ellipse((x - r, y - r * 0.7, x + r, y + r * 0.7), fill=colour)
    return world


def _frame(
    shot: Shot, n: int, world: Image.Image, size: Tuple[int, int]
) -> Tuple[Image.Image, tuple, float]:
    width, height = size
    unit = width / SIZE[0]
    offset = round(shot.pan * n * unit)
    image = world.crop((offset, 0, offset + width, height))
    draw = ImageDraw.Draw(image)
    boxes = []
    for thing in shot.things:
        if n < thing.since or (thing.until is not None and n >= thing.until):
            continue
        age = n - thing.since
        x = (thing.start[0] + thing.speed[0] * age) * unit - (offset if thing.with_pan else 0)
        y = (thing.start[1] + thing.speed[1] * age) * unit
        left, top = round(x), round(y)
        right = left + round(thing.size[0] * unit)
        bottom = top + round(thing.size[1] * unit)
        shape = (left, top, right - 1, bottom - 1)
        if thing.shape == "ball":
            draw.ellipse(shape, fill=thing.colour)
        else:
            draw.rectangle(shape, fill=thing.colour)
        box = (max(0, left), max(0, top), min(width, right), min(height, bottom))
        if box[0] < box[2] and box[1] < box[3]:
            boxes.append((thing.colour, box))
    brightness = 1.0
    if shot.fade_in and n < shot.fade_in:
        brightness = n / shot.fade_in
    if shot.fade_out and n >= shot.length - shot.fade_out:
        brightness = (shot.length - 1 - n) / shot.fade_out
    if brightness < 1.0:
        image = Image.blend(Image.new("RGB", size), image, brightness)
    return image, tuple(boxes), brightness
