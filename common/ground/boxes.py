"""The one box format every plugin writes: where in the picture a thing was found.

A box is ``{"tag", "probability", "left", "top", "width", "height"}`` with the geometry as
fractions (0..1) of the image *as displayed* (EXIF orientation applied). Fractions survive
the downscaling done before sending, so a box maps onto the original file at any size.
"""

import json
from typing import Iterable, List, NamedTuple, Tuple

DIGITS = 4  # 1/10000 of the frame: under a pixel even on an 8K image


class Box(NamedTuple):
    tag: str
    probability: float
    left: float
    top: float
    width: float
    height: float

    @classmethod
    def from_fractions(
        cls, tag: str, probability: float, left: float, top: float, width: float, height: float
    ) -> "Box":
        """Clamp to the frame: services return boxes that overhang the edge by a hair."""
        # The far edges from the unclamped origin: a box overhanging the left or top is cut,
        # not shifted.
        right, bottom = _clamp(left + max(0.0, width)), _clamp(top + max(0.0, height))
        left, top = _clamp(left), _clamp(top)
        return cls(tag, float(probability), left, top, right - left, bottom - top)

    @classmethod
    def from_pixels(
        cls,
        tag: str,
        probability: float,
        x: float,
        y: float,
        w: float,
        h: float,
        image_width: int,
        image_height: int,
    ) -> "Box":
        """From a pixel rectangle on an image of the given size (the image the service saw)."""
        return cls.from_fractions(
            tag, probability, x / image_width, y / image_height, w / image_width, h / image_height
        )

    def as_dict(self) -> dict:
        return {
            "tag": self.tag,
            "probability": round(self.probability, DIGITS),
            "left": round(self.left, DIGITS),
            "top": round(self.top, DIGITS),
            "width": round(self.width, DIGITS),
            "height": round(self.height, DIGITS),
        }

    def pixels(self, width: int, height: int) -> Tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels of an image of that size, as displayed."""
        return (
            round(self.left * width),
            round(self.top * height),
            round((self.left + self.width) * width),
            round((self.top + self.height) * height),
        )


def to_json(boxes: Iterable[Box]) -> str:
    """The field value: a JSON array, most probable first."""
    ordered = sorted(boxes, key=lambda b: -b.probability)
    return json.dumps([b.as_dict() for b in ordered], ensure_ascii=False, separators=(",", ":"))


def from_json(text: str) -> List[Box]:
    return [Box(**item) for item in json.loads(text)]


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, float(value)))
