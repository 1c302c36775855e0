"""Azure's Read APIs for the fake service: Read 3.2 and Document Intelligence ``prebuilt-read``.

Mounted on a ``FakeAzure`` (``FakeRead(...).mount(fake)``), it reads as the real services do
as far as their documents say (Read 3.2: the spec's ``Ocr.json`` and the container's how-to;
Document Intelligence: the 2024-11-30 spec and its examples):

* ``POST /vision/v3.2/read/analyze[?readingOrder=natural]`` or ``POST
  /documentintelligence/documentModels/prebuilt-read:analyze?api-version=2024-11-30`` with the
  image as ``application/octet-stream`` answers 202 with an ``Operation-Location`` (and a
  ``Retry-After`` when ``retry_after`` is set), or an error for an image it does not take: not
  JPEG, PNG, BMP or TIFF, over 4 MB, or a side outside 50 to 10,000 px;
* a GET of that location answers ``notStarted``, then ``running`` (``polls`` askings in all),
  then the result: ``succeeded`` with the lines, or ``failed``.

The cloud names the result on its own address (``/vision/v3.2/read/analyzeResults/{id}``); a
container (``container=True``) names it as it sees itself, ``http://localhost:5000/vision/v3.2/
read/operations/{id}`` per its how-to, and takes no key. It cannot read: the lines are those
given, each at a column and a row of the picture. Read 3.2 lists them left to right, row by row,
unless asked for ``readingOrder=natural`` (then column by column); Document Intelligence lists
them row by row and gives the natural order in each line's span into ``content``.
"""

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from tests.fakeazure import FakeAzure, Received, Reply

READ_32 = "vision-3.2"
DOC_INTEL = "document-intelligence"
API_VERSION = "2024-11-30"
FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF"})
MAX_BYTES = 4 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 50, 10000
CONTAINER = "http://localhost:5000"
STAMP = "2026-11-28T10:00:00Z"

_PREFIX = {READ_32: "/vision/v3.2/read/", DOC_INTEL: "/documentintelligence/"}
_ANALYZE = {
    READ_32: "/vision/v3.2/read/analyze",
    DOC_INTEL: "/documentintelligence/documentmodels/prebuilt-read:analyze",
}
_RESULTS = {
    READ_32: ("/vision/v3.2/read/analyzeresults/", "/vision/v3.2/read/operations/"),
    DOC_INTEL: ("/documentintelligence/documentmodels/prebuilt-read/analyzeresults/",),
}


@dataclass
class Line:
    text: str
    column: int = 0
    row: int = 0


@dataclass
class Operation:
    lines: List[Line]
    natural: bool
    size: Tuple[int, int]
    polls_left: int
    asked: int = 0


@dataclass
class FakeRead:
    protocol: str = READ_32
    lines: List[Line] = field(default_factory=list)
    polls: int = 2  # askings answered notStarted / running before the result
    retry_after: Optional[str] = None  # Retry-After on the 202 and on each running answer
    container: bool = False
    outcome: str = "succeeded"  # or "failed"
    error: Optional[dict] = None  # the "error" of a failed Document Intelligence result
    operations: Dict[str, Operation] = field(default_factory=dict)
    started: int = 0
    lock: Any = field(default_factory=threading.Lock)

    def mount(self, fake: FakeAzure) -> "FakeRead":
        fake.mount(_PREFIX[self.protocol], self)
        return self

    def handle(self, fake: FakeAzure, request: Received, raw: bytes, img: Any) -> Any:
        path = request.path.lower().rstrip("/")
        if not self.container:
            fake._check_key(request.headers, "Ocp-Apim-Subscription-Key")
        if self.protocol == DOC_INTEL and request.query.get("api-version") != API_VERSION:
            raise Reply(404, {"error": {"code": "404", "message": "Resource not found"}})
        if request.method == "POST" and path == _ANALYZE[self.protocol]:
            return self.start(fake, request, raw, img)
        if request.method == "GET":
            for prefix in _RESULTS[self.protocol]:
                if path.startswith(prefix):
                    return self.result(path[len(prefix) :])
        raise Reply(404, {"error": {"code": "404", "message": "Resource not found"}})

    def start(self, fake: FakeAzure, request: Received, raw: bytes, img: Any) -> Any:
        if not request.headers.get("content-type", "").startswith("application/octet-stream"):
            raise Reply(415, self.refusal("UnsupportedMediaType", "Unsupported media type."))
        if len(raw) > MAX_BYTES:
            raise self.refused("size")
        if not img.decodable or img.format not in FORMATS:
            raise self.refused("format")
        if not all(MIN_SIDE <= side <= MAX_SIDE for side in img.size):
            raise self.refused("dimensions")
        natural = request.query.get("readingOrder", "").lower() == "natural"
        operation = Operation(list(self.lines), natural, img.size, self.polls)
        key = str(uuid.uuid4())
        with self.lock:
            self.operations[key] = operation
            self.started += 1
        base = CONTAINER if self.container else fake.url
        if self.protocol == READ_32:
            where = "operations" if self.container else "analyzeResults"
            location = f"{base}/vision/v3.2/read/{where}/{key}"
        else:
            location = (
                f"{base}/documentintelligence/documentModels/prebuilt-read/analyzeResults/"
                f"{key}?api-version={API_VERSION}"
            )
        raise Reply(202, b"", {"Operation-Location": location, **self.wait_header()})

    def result(self, key: str) -> Any:
        with self.lock:
            operation = self.operations.get(key)
            if operation is None:
                raise Reply(404, {"error": {"code": "NotFound", "message": "Operation not found"}})
            operation.asked += 1
            running = operation.polls_left > 0
            operation.polls_left -= 1
        if running:
            status = "notStarted" if operation.asked == 1 else "running"
            body = {"status": status, "createdDateTime": STAMP, "lastUpdatedDateTime": STAMP}
            if self.wait_header():
                raise Reply(200, body, self.wait_header())
            return body
        if self.outcome != "succeeded":
            body = {"status": self.outcome, "createdDateTime": STAMP, "lastUpdatedDateTime": STAMP}
            if self.protocol == DOC_INTEL and self.error is not None:
                body["error"] = self.error
            return body
        return self.succeeded(operation)

    def wait_header(self) -> Dict[str, str]:
        return {"Retry-After": self.retry_after} if self.retry_after is not None else {}

    # ---------------------------------------------------------------- answers

    def succeeded(self, operation: Operation) -> dict:
        width, height = operation.size
        by_row = sorted(operation.lines, key=lambda line: (line.row, line.column))
        natural = sorted(operation.lines, key=lambda line: (line.column, line.row))
        if self.protocol == READ_32:
            listed = natural if operation.natural else by_row
            page = {
                "page": 1,
                "angle": 0,
                "width": width,
                "height": height,
                "unit": "pixel",
                "lines": [self.line_32(line, width, height) for line in listed],
            }
            result = {"version": "3.2.0", "modelVersion": "2022-04-30", "readResults": [page]}
        else:
            content, offsets = "", {}
            for line in natural:
                offsets[id(line)] = len(content)
                content += line.text + "\n"
            content = content.rstrip("\n")
            result = {
                "apiVersion": API_VERSION,
                "modelId": "prebuilt-read",
                "stringIndexType": "textElements",
                "content": content,
                "pages": [
                    {
                        "pageNumber": 1,
                        "angle": 0,
                        "width": width,
                        "height": height,
                        "unit": "pixel",
                        "words": [],
                        "lines": [
                            {
                                "content": line.text,
                                "polygon": _polygon(line, width, height),
                                "spans": [{"offset": offsets[id(line)], "length": len(line.text)}],
                            }
                            for line in by_row
                        ],
                        "spans": [{"offset": 0, "length": len(content)}],
                    }
                ],
                "styles": [],
                "contentFormat": "text",
            }
        return {
            "status": "succeeded",
            "createdDateTime": STAMP,
            "lastUpdatedDateTime": STAMP,
            "analyzeResult": result,
        }

    @staticmethod
    def line_32(line: Line, width: int, height: int) -> dict:
        box = _polygon(line, width, height)
        return {
            "boundingBox": box,
            "appearance": {"style": {"name": "other", "confidence": 0.97}},
            "text": line.text,
            "words": [
                {"boundingBox": box, "text": word, "confidence": 0.99} for word in line.text.split()
            ],
        }

    # ---------------------------------------------------------------- errors

    def refused(self, why: str) -> Reply:
        if self.protocol == READ_32:
            code, message = {
                "size": ("InvalidImageSize", "Input image is too large."),
                "format": ("InvalidImageFormat", "Input data is not a valid image."),
                "dimensions": ("InvalidImageDimension", "Input image dimensions are out of range."),
            }[why]
            return Reply(400, self.refusal(code, message))
        inner, message = {
            "size": ("InvalidContentLength", "The input image is too large."),
            "format": ("InvalidContent", "The file is corrupted or format is unsupported."),
            "dimensions": (
                "InvalidContentDimensions",
                "The input image dimensions are out of range.",
            ),
        }[why]
        return Reply(400, self.refusal("InvalidRequest", "Invalid request.", inner, message))

    @staticmethod
    def refusal(code: str, message: str, inner: str = "", inner_message: str = "") -> dict:
        error = {"code": code, "message": message}  # type: Dict[str, Any]
        if inner:
            error["innererror"] = {"code": inner, "message": inner_message}
        return {"error": error}


def _polygon(line: Line, width: int, height: int) -> List[int]:
    """Eight numbers, clockwise from the top left: the line's place on a 2-column grid."""
    left = 10 + line.column * width // 2
    top = 10 + line.row * 30
    right, bottom = min(width - 1, left + width // 3), min(height - 1, top + 20)
    return [left, top, right, top, right, bottom, left, bottom]
