"""A fake of the Docker container Custom Vision exports, to mount in ``FakeAzure``::

    with FakeAzure() as server:
        container = server.mount("/", FakeContainer("classify", ["red", "green", "blue"]))
        ... CUSTOM_VISION_CLASSIFY_URL = server.url

It behaves as the exported Flask app does, as far as docs/azure-services.md, "Docker export"
knows it:

- ``GET /``: the text "CustomVision.ai model host harness";
- ``POST /image`` and its aliases (``/<project>/image[/nostore]``,
  ``/<project>/classify|detect/iterations/<name>/image[/nostore]``): the picture as raw bytes,
  or as the multipart field ``imageData``; ``POST /url`` and its aliases are not fetched here
  and answer as the app does when the fetch fails: HTTP 200, text "Error processing image";
- a body over 4 MiB: Flask's 413 page (HTML); another method: 405; another path: 404;
- a body Pillow cannot open: HTTP 500, text "Error processing image";
- an answer: ``{"id": "", "project": "", "iteration": "", "created": <utcnow isoformat, no Z>,
  "predictions": [...]}``. It sees colours as ``FakeAzure`` does (``fakeazure._analyse``):
  *classify*: for each label in labels.txt order whose probability is over 1e-8, ``{tagName,
  probability (8 decimals), tagId: "", boundingBox: null}``, the probability being the share
  of the picture in that colour (0 for a label that is no colour; for ``Negative``, the share
  in none of the five colours, as Custom Vision's "none of these" tag, listed in labels.txt
  and answered without a ``tagType``); *detect*: for the red, green and blue labels the box
  around that colour (0.95 when it covers 1 % of the picture, else 0.3), over the container's
  0.10 threshold, at most 20, most probable first, ``tagId`` the label's index, the box
  rounded to 8 decimals.

``quirk`` makes the next answers fail as the real app can with HTTP 200: ``"preprocess"`` (a
JSON string "Error: Could not preprocess image for prediction. ...", what its classifier
returns when Pillow fails on the picture) or ``"text"`` (plain text "Error processing image").
"""

import datetime
import json
import re
from typing import Any, List, Optional, Sequence

from tests.fakeazure import BOX_COLOURS, Received, Reply, _analyse, _box_area

MAX_BODY = 4 * 1024 * 1024  # Flask's MAX_CONTENT_LENGTH in the exported app
THRESHOLD = 0.10
MAX_DETECTIONS = 20
HARNESS = "CustomVision.ai model host harness"
NEGATIVE = "Negative"  # a classifier's built-in "none of these" tag, in labels.txt too
PROCESSING_ERROR = "Error processing image"
PREPROCESS_ERROR = (
    "Error: Could not preprocess image for prediction. cannot identify image file "
    "<_io.BytesIO object at 0x7f3c2c1b5e08>"
)
_ROUTE = re.compile(
    r"^/(?:[^/]+/)?(?:(?:classify|detect)/iterations/[^/]+/)?(image|url)(?:/nostore)?/?$",
    re.IGNORECASE,
)
_HTML = {"Content-Type": "text/html; charset=utf-8"}


def _page(status: int, title: str, text: str) -> str:
    """Werkzeug's error page."""
    return (
        f"<!doctype html>\n<html lang=en>\n<title>{status} {title}</title>\n"
        f"<h1>{title}</h1>\n<p>{text}</p>\n"
    )


class FakeContainer:
    """The exported container of a classifier or a detector with these labels."""

    def __init__(self, kind: str, labels: Sequence[str]) -> None:
        if kind not in ("classify", "detect"):
            raise ValueError(f"kind must be 'classify' or 'detect', not {kind!r}")
        self.kind = kind
        self.labels = list(labels)
        self.quirk: Optional[str] = None
        self.answered = 0  # predictions given

    def handle(self, fake: Any, request: Received, raw: bytes, img: Any) -> Any:
        if request.path == "/" and request.method == "GET":
            return HARNESS
        route = _ROUTE.match(request.path)
        if route is None:
            raise Reply(404, _page(404, "Not Found", "The requested URL was not found."), _HTML)
        if request.method != "POST":
            raise Reply(405, _page(405, "Method Not Allowed", "Not allowed."), _HTML)
        if request.body_size > MAX_BODY:
            raise Reply(
                413,
                _page(
                    413,
                    "Request Entity Too Large",
                    "The data value transmitted exceeds the capacity limit.",
                ),
                _HTML,
            )
        if route.group(1).lower() == "url" or self.quirk == "text":
            raise Reply(200, PROCESSING_ERROR, {"Content-Type": "text/html; charset=utf-8"})
        if not img.decodable or img.small is None:
            raise Reply(500, PROCESSING_ERROR, {"Content-Type": "text/html; charset=utf-8"})
        if self.quirk == "preprocess":
            raise Reply(
                200, json.dumps(PREPROCESS_ERROR).encode(), {"Content-Type": "application/json"}
            )
        self.answered += 1
        return {
            "id": "",
            "project": "",
            "iteration": "",
            # Flask's app writes datetime.utcnow().isoformat(): no time zone.
            "created": datetime.datetime.now(datetime.timezone.utc)
            .replace(tzinfo=None)
            .isoformat(),
            "predictions": self._predictions(_analyse(img)),
        }

    def _predictions(self, analysis: Any) -> List[dict]:
        if self.kind == "classify":
            found = []
            coloured = sum(analysis.fractions.values())
            for label in self.labels:
                share = analysis.fractions.get(label, 0.0)
                if label == NEGATIVE:
                    share = max(0.0, 1.0 - coloured)
                probability = round(share, 8)
                if probability > 1e-8:
                    found.append(
                        {
                            "tagName": label,
                            "probability": probability,
                            "tagId": "",
                            "boundingBox": None,
                        }
                    )
            return found
        found = []
        for index, label in enumerate(self.labels):
            if label not in BOX_COLOURS or label not in analysis.boxes:
                continue
            box = analysis.boxes[label]
            probability = 0.95 if _box_area(box) >= 0.01 else 0.3
            if probability < THRESHOLD:
                continue
            left, top, width, height = (round(v, 8) for v in box)
            found.append(
                {
                    "probability": probability,
                    "tagId": index,
                    "tagName": label,
                    "boundingBox": {"left": left, "top": top, "width": width, "height": height},
                }
            )
        found.sort(key=lambda p: -p["probability"])
        return found[:MAX_DETECTIONS]
