"""A fake Azure for the test suite: Custom Vision Prediction v3.0 and Azure AI Vision.

``FakeAzure`` runs a real HTTP/1.1 server (keep-alive) on 127.0.0.1 in a background thread
and answers like the real services do, as far as docs/azure-services.md knows them:
the same paths, key headers, input limits, error bodies, and F0-style rate limiting.

It cannot recognise anything, so it looks at colours. Every uploaded picture is decoded with
Pillow and reduced to at most 256 px; a pixel counts as

    red    r > 150, g < 100, b < 100      (green and blue alike)
    white  r, g, b > 200
    black  r, g, b < 55

From that:

* classify: one prediction per colour, probability = fraction of pixels of that colour
  (at least 0.001, so something is always below any threshold);
* detect: for red, green and blue the bounding box of that colour's pixels as fractions of
  the image ("red box" ...; 0.95 if the box covers at least 1% of the image, else 0.3), plus
  a whole-image "noise" box at 0.02;
* Image Analysis 4.0 and Computer Vision v3.2 build tags, captions and objects from the same
  numbers, with boxes in pixels of the received image. ``read_lines`` is what 4.0 "reads".

Custom Vision predictions are deliberately not sorted by probability (the real order is
unspecified): they are ordered by tagId, and if that happens to be sorted the first one is
moved to the end.

Faults queued with ``fail_next`` are answered first, one per request, in order. ``fail_next(200,
delay=...)`` (no body) only delays and then answers normally.
"""

import collections
import contextlib
import datetime
import email.parser
import email.policy
import http.server
import io
import json
import math
import re
import socket
import socketserver
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Dict, List, Optional, Set, Tuple, Union
from urllib.parse import parse_qsl, unquote, urlsplit

from PIL import Image, ImageChops

DEFAULT_KEY = "fake-key-0123456789abcdef"

# Limits of the real services (docs/azure-services.md, "Image Analysis 4.0 input limits",
# "Computer Vision 3.2 input limits" and "Custom Vision limits").
CV_MAX_BYTES = 4 * 1024 * 1024
CV_MAX_SIDE = 10240
CV_MAX_ASPECT = 25.0
CV_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF"})  # MPO is a multi-frame JPEG
IA40_MAX_BYTES = 20971520
IA40_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP", "ICO", "TIFF", "MPO"})
CV32_MAX_BYTES = 4 * 1024 * 1024
CV32_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP"})
VISION_MIN_SIDE = 50
VISION_MAX_SIDE = 16000

IA40_API_VERSIONS = frozenset(
    {"2023-10-01", "2024-02-01", "2023-02-01-preview", "2023-04-01-preview"}
)
IA40_FEATURES = ("tags", "caption", "denseCaptions", "objects", "read", "smartCrops", "people")
IA40_LANGUAGES = frozenset({"en", "es", "ja", "pt", "zh"})
IA40_MODEL_VERSION = "2023-10-01"
CV32_FEATURES = (
    "Categories",
    "Tags",
    "Description",
    "Faces",
    "ImageType",
    "Color",
    "Adult",
    "Objects",
    "Brands",
)
CV32_MODEL_VERSION = "2021-05-01"

COLOURS = ("red", "green", "blue", "white", "black")
BOX_COLOURS = ("red", "green", "blue")
ANALYSIS_SIDE = 256
MAX_BODY = 64 * 1024 * 1024  # refuse anything larger without reading it

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pixstor-azure.invalid/tests/fakeazure")
_MODEL_VERSION_RE = re.compile(r"^(latest|\d{4}-\d{2}-\d{2})(-preview)?$")
_CV_PATH_RE = re.compile(
    r"^/customvision/v3\.0/prediction/([^/]+)/(classify|detect)/iterations/([^/]+)/image(/nostore)?/?$",
    re.IGNORECASE,
)
_SPANISH = {
    "red": "rojo",
    "green": "verde",
    "blue": "azul",
    "white": "blanco",
    "black": "negro",
    "abstract": "abstracto",
}

ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
MISSING_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key when "
    "making requests to an API."
)
_RATE_TEXT = (
    "Requests to the {operation} Operation under {api} have exceeded rate limit of your current "
    "{tier} pricing tier. Please retry after {wait}. Please contact Azure support service if you "
    "would like to further increase the default rate limit."
)
_RATE = {
    "customvision": ("Predict", "Custom Vision Prediction API", "F0"),
    "cv32": ("Analyze Image", "Computer Vision API (v3.2)", "ComputerVision F0"),
    "ia40": ("Analyze Image", "Computer Vision API (4.0)", "ComputerVision F0"),
}
# Custom Vision and Vision are separate Azure resources; 3.2 and 4.0 share one Vision resource.
_BUCKET = {"customvision": "customvision", "cv32": "vision", "ia40": "vision"}


def tag_id(name: str) -> str:
    """The stable tagId the fake gives a Custom Vision tag name."""
    return str(uuid.uuid5(_NAMESPACE, "tag:" + name))


def iteration_id(project_id: str, published_name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "iteration:" + project_id.lower() + "/" + published_name))


@dataclass
class Received:
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]  # lower-cased names
    body_size: int
    image_format: Optional[str]  # Pillow format name, None if the body is not a decodable image
    image_size: Optional[Tuple[int, int]]
    status: int = 0  # what the fake answered (0 while it is still working on it)


@dataclass
class _Fault:
    status: int
    body: Optional[Union[dict, str, bytes]]
    headers: Dict[str, str]
    delay: float


@dataclass
class _Image:
    """What the fake made of a request body."""

    size_bytes: int
    format: Optional[str] = None
    size: Optional[Tuple[int, int]] = None
    small: Optional[Image.Image] = (
        None  # RGB, longest side <= ANALYSIS_SIDE; None: undecodable/huge
    )
    decodable: bool = False


@dataclass
class _Analysis:
    width: int
    height: int
    fractions: Dict[str, float] = field(default_factory=dict)
    boxes: Dict[str, Tuple[float, float, float, float]] = field(default_factory=dict)  # l,t,w,h

    def pixel_box(self, colour: str) -> Dict[str, int]:
        left, top, width, height = self.boxes[colour]
        x, y = round(left * self.width), round(top * self.height)
        w = min(round(width * self.width), self.width - x)
        h = min(round(height * self.height), self.height - y)
        return {"x": x, "y": y, "w": max(w, 1), "h": max(h, 1)}

    def dominant(self) -> Optional[str]:
        present = [c for c in BOX_COLOURS if self.fractions[c] >= 0.001]
        if not present:
            return None
        return max(present, key=lambda c: (self.fractions[c], -BOX_COLOURS.index(c)))

    def caption(self) -> str:
        colour = self.dominant()
        return f"a picture with a {colour} box" if colour else "a plain picture"


class _Reply(Exception):  # public as Reply, for mounted APIs
    """Raised inside request handling to answer with an error right away."""

    def __init__(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


Reply = _Reply


def _wrapped(
    code: str, message: str, inner: Optional[str] = None, inner_message: Optional[str] = None
) -> dict:
    error: Dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner, "message": inner_message or message}
    return {"error": error}


def _resource_not_found() -> _Reply:
    return _Reply(404, {"error": {"code": "404", "message": "Resource not found"}})


# ---------------------------------------------------------------------------------- images


def _probe(data: bytes) -> Tuple[Optional[str], Optional[Tuple[int, int]], bool]:
    """(format, size, huge) without decoding pixels; huge = over Pillow's bomb limit."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.format, im.size, False
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        pass
    except Exception:
        return None, None, False
    # Pillow refuses to open it at all; ask the format plugins directly for the header.
    Image.init()
    for fmt in list(Image.ID):
        factory, accept = Image.OPEN[fmt]
        try:
            accepted = accept(data[:16]) if accept is not None else True
            if not accepted or isinstance(accepted, str):
                continue
            im = factory(io.BytesIO(data), "")
            return im.format, im.size, True
        except Exception:
            continue
    return None, None, True


def _decode(data: bytes) -> _Image:
    result = _Image(size_bytes=len(data))
    if not data:
        return result
    result.format, result.size, huge = _probe(data)
    if result.format is None or huge:
        result.decodable = result.format is not None
        return result
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format in ("JPEG", "MPO"):
                im.draft("RGB", (ANALYSIS_SIDE, ANALYSIS_SIDE))
            rgb = im.convert("RGB")
    except Exception:
        result.format = result.size = None
        return result
    w, h = rgb.size
    scale = ANALYSIS_SIDE / max(w, h)
    if scale < 1:
        nearest = getattr(Image, "Resampling", Image).NEAREST
        rgb = rgb.resize((max(1, round(w * scale)), max(1, round(h * scale))), nearest)
    result.small = rgb
    result.decodable = True
    return result


def _above(band: Image.Image, limit: int) -> Image.Image:
    return band.point(lambda v: 255 if v > limit else 0)


def _below(band: Image.Image, limit: int) -> Image.Image:
    return band.point(lambda v: 255 if v < limit else 0)


def _analyse(img: _Image) -> _Analysis:
    assert img.size is not None
    analysis = _Analysis(width=img.size[0], height=img.size[1])
    if img.small is None:  # too big for Pillow to decode safely: a blank picture
        analysis.fractions = dict.fromkeys(COLOURS, 0.0)
        return analysis
    r, g, b = img.small.split()
    hi = {"r": _above(r, 150), "g": _above(g, 150), "b": _above(b, 150)}
    lo = {"r": _below(r, 100), "g": _below(g, 100), "b": _below(b, 100)}
    masks = {
        "red": ImageChops.multiply(ImageChops.multiply(hi["r"], lo["g"]), lo["b"]),
        "green": ImageChops.multiply(ImageChops.multiply(lo["r"], hi["g"]), lo["b"]),
        "blue": ImageChops.multiply(ImageChops.multiply(lo["r"], lo["g"]), hi["b"]),
        "white": ImageChops.multiply(
            ImageChops.multiply(_above(r, 200), _above(g, 200)), _above(b, 200)
        ),
        "black": ImageChops.multiply(
            ImageChops.multiply(_below(r, 55), _below(g, 55)), _below(b, 55)
        ),
    }
    sw, sh = img.small.size
    for colour, mask in masks.items():
        analysis.fractions[colour] = mask.histogram()[255] / float(sw * sh)
        if colour in BOX_COLOURS:
            bbox = mask.getbbox()
            if bbox:
                left, top, right, bottom = bbox
                analysis.boxes[colour] = (
                    left / sw,
                    top / sh,
                    (right - left) / sw,
                    (bottom - top) / sh,
                )
    return analysis


def _box_area(box: Tuple[float, float, float, float]) -> float:
    return box[2] * box[3]


def _unsorted(predictions: List[dict]) -> List[dict]:
    """Order by tagId; if that is by chance sorted by probability, rotate it by one."""
    predictions.sort(key=lambda p: p["tagId"])
    probabilities = [p["probability"] for p in predictions]
    if len(set(probabilities)) > 1 and probabilities == sorted(probabilities, reverse=True):
        predictions.append(predictions.pop(0))
    return predictions


def _multipart_file(content_type: str, body: bytes) -> Optional[bytes]:
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            return payload
    return None


# ---------------------------------------------------------------------------------- server


class _Server(
    socketserver.ThreadingMixIn, http.server.HTTPServer
):  # 3.6 has no ThreadingHTTPServer
    daemon_threads = True
    block_on_close = False
    fake: "FakeAzure"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeAzure/1.0"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, the body waits for the
        # client's delayed ACK, 40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._connection_closed(self.connection)

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST

    def read_body(self) -> Optional[bytes]:
        """The request body, or None if it cannot or should not be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return None
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def reply(self, status: int, body: bytes, headers: Dict[str, str]) -> None:
        self.send_response(status)
        names = {k.lower() for k in headers}
        if "content-type" not in names and body:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()


class _Bucket:
    def __init__(self) -> None:
        self.tokens: Optional[float] = None
        self.stamp = 0.0


class FakeAzure:
    """Fake Custom Vision Prediction v3.0 + Azure AI Vision (4.0 and v3.2) on 127.0.0.1."""

    def __init__(self, key: str = DEFAULT_KEY, tps: Optional[float] = None) -> None:
        self.key = key
        self.tps = tps
        self.url = ""
        self.requests: List[Received] = []
        self.unsupported_features: Set[str] = set()
        self.read_lines: List[str] = []
        self.projects: Dict[str, Tuple[str, str, List[str]]] = {}  # lower id -> (id, kind, names)
        self.rate_limited = 0
        self.clock = time.monotonic  # what the rate limit's buckets refill by; tests may fake it
        self.connections = 0  # TCP connections accepted (keep-alive reuses one)
        self.errors: List[str] = []  # tracebacks of bugs in the fake itself (answered with 500)
        self._lock = threading.Lock()
        self._faults: collections.deque[_Fault] = collections.deque()
        self._buckets: Dict[str, _Bucket] = {}
        self._counter = 0
        self._open: Dict[socket.socket, threading.Thread] = {}
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._mounts: List[Tuple[str, Any]] = []  # (path prefix, API), see ``mount``

    def mount(self, prefix: str, api: Any) -> Any:
        """Serve another API under ``prefix`` (lower case), in its own module beside this one.

        ``api.handle(fake, request, raw, img)`` gets the ``Received`` request (with method,
        path, query and lower-cased headers), the raw body and the decoded image, and returns
        a body (dict, list, str or bytes) for a 200, or raises ``Reply(status, body, headers)``.
        ``api.bucket`` (optional) names its rate-limit bucket. Faults queued with
        ``fail_next`` and the key check helpers work for it as for the built-in APIs.
        """
        self._mounts.append((prefix.lower(), api))
        return api

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeAzure":
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="FakeAzure",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            open_now = list(self._open.items())
        for conn, _ in open_now:  # wake handler threads waiting on idle keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for _, thread in open_now:
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> "FakeAzure":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ configuration

    def add_project(self, project_id: str, kind: str, published: List[str]) -> None:
        if kind not in ("classify", "detect"):
            raise ValueError(f"kind must be 'classify' or 'detect', not {kind!r}")
        with self._lock:
            self.projects[project_id.lower()] = (project_id, kind, list(published))

    def fail_next(
        self,
        status: int,
        body: Optional[Union[dict, str, bytes]] = None,
        headers: Optional[dict] = None,
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests (whatever they are) with this instead.

        ``body`` None gives the body Azure would send for that status (the service's own 429
        text, the 401 text, else ``{"error": {"code", "message"}}``); b"" gives an empty body.
        ``fail_next(200, delay=d)`` only waits ``d`` seconds and then answers normally.
        """
        fault = _Fault(status, body, dict(headers or {}), delay)
        with self._lock:
            for _ in range(times):
                self._faults.append(fault)

    def reset(self) -> None:
        """Forget requests, pending faults, errors and the rate-limit count; refill the buckets."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self._buckets.clear()
            self.rate_limited = 0
            self.errors.clear()

    # ------------------------------------------------------------------ internals

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._open[conn] = threading.current_thread()

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.pop(conn, None)

    def _next_id(self) -> str:
        with self._lock:
            self._counter += 1
            return str(uuid.uuid5(_NAMESPACE, f"request:{self._counter}"))

    def _take_token(self, bucket_name: str) -> float:
        """0 if the request may go ahead, else the seconds until it would have."""
        tps = self.tps
        if not tps or tps <= 0:
            return 0.0
        capacity = max(1.0, float(tps))
        now = self.clock()
        with self._lock:
            bucket = self._buckets.setdefault(bucket_name, _Bucket())
            if bucket.tokens is None:
                bucket.tokens = capacity
            else:
                bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * tps)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            self.rate_limited += 1
            return (1.0 - bucket.tokens) / tps

    def _rate_limit_body(self, api: str, wait: float) -> dict:
        operation, name, tier = _RATE[api]
        seconds = max(1, math.ceil(wait))
        text = "1 second" if seconds == 1 else f"{seconds} seconds"
        message = _RATE_TEXT.format(operation=operation, api=name, tier=tier, wait=text)
        return {"error": {"code": "429", "message": message}}

    def _default_body(self, status: int, api: Optional[str]) -> Any:
        if status == 429:
            return self._rate_limit_body(api or "customvision", 1.0)
        if status == 401:
            return {"error": {"code": "401", "message": ACCESS_DENIED}}
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        codes = {500: "InternalServerError", 503: "ServiceUnavailable"}
        return {"error": {"code": codes.get(status, str(status)), "message": phrase}}

    def _handle(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        raw = handler.read_body()
        if raw is None:
            handler.close_connection = True
            raw = b""
            too_big = True
        else:
            too_big = False
        image_bytes = raw
        content_type = headers.get("content-type", "")
        if content_type.lower().startswith("multipart/form-data"):
            image_bytes = _multipart_file(content_type, raw) or b""
        img = _decode(image_bytes)
        received = Received(
            method=handler.command,
            path=path,
            query=query,
            headers=headers,
            body_size=len(raw),
            image_format=img.format if img.decodable else None,
            image_size=img.size if img.decodable else None,
        )
        with self._lock:
            self.requests.append(received)
            fault = self._faults.popleft() if self._faults else None

        api = self._api_of(path)
        mounted = next((m for p, m in self._mounts if path.lower().startswith(p)), None)
        status: int = 200
        body: Any = None
        extra: Dict[str, str] = {}
        try:
            if too_big:
                raise _Reply(413, {"error": {"code": "413", "message": "Request body too large"}})
            if fault is not None and fault.delay > 0:
                self._stopping.wait(fault.delay)
            if fault is not None and not (fault.status == 200 and fault.body is None):
                status, extra = fault.status, dict(fault.headers)
                body = self._default_body(status, api) if fault.body is None else fault.body
            elif mounted is not None:
                status, body = 200, mounted.handle(self, received, image_bytes, img)
            else:
                status, body = 200, self._dispatch(handler.command, path, query, headers, img, api)
                if fault is not None:
                    extra = dict(fault.headers)
        except _Reply as reply:
            status, body, extra = reply.status, reply.body, dict(reply.headers)
        except Exception:
            self.errors.append(traceback.format_exc())
            status, body = 500, _wrapped("InternalServerError", "Bug in FakeAzure")

        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode("utf-8")
        elif isinstance(body, str):
            payload = body.encode("utf-8")
            extra.setdefault("Content-Type", "text/plain; charset=utf-8")
        elif isinstance(body, bytes):
            payload = body
            if body:
                extra.setdefault("Content-Type", "application/octet-stream")
        else:
            payload = b""
        extra.setdefault("apim-request-id", self._next_id())
        received.status = status
        if self._stopping.is_set():
            handler.close_connection = True
            return
        try:
            handler.reply(status, payload, extra)
        except OSError:  # the client gave up (e.g. its read timeout during a delay)
            handler.close_connection = True

    @staticmethod
    def _api_of(path: str) -> Optional[str]:
        lower = path.lower()
        if lower.startswith("/customvision/"):
            return "customvision"
        if lower.startswith("/computervision/"):
            return "ia40"
        if lower.startswith("/vision/"):
            return "cv32"
        return None

    def _check_key(self, headers: Dict[str, str], name: str) -> None:
        given = headers.get(name.lower())
        if given is None:
            raise _Reply(401, {"error": {"code": "401", "message": MISSING_KEY}})
        if given != self.key:
            raise _Reply(401, {"error": {"code": "401", "message": ACCESS_DENIED}})

    def _check_rate(self, api: str) -> None:
        wait = self._take_token(_BUCKET[api])
        if wait > 0:
            raise _Reply(429, self._rate_limit_body(api, wait))

    def _dispatch(
        self,
        method: str,
        path: str,
        query: Dict[str, str],
        headers: Dict[str, str],
        img: _Image,
        api: Optional[str],
    ) -> dict:
        if api == "customvision":
            match = _CV_PATH_RE.match(path)
            if method != "POST" or not match:
                raise _resource_not_found()
            self._check_key(headers, "Prediction-Key")
            self._check_rate(api)
            return self._custom_vision(match, headers, img)
        if api == "ia40":
            if method != "POST" or path.rstrip("/") != "/computervision/imageanalysis:analyze":
                raise _resource_not_found()
            self._check_key(headers, "Ocp-Apim-Subscription-Key")
            self._check_rate(api)
            return self._analyze40(query, headers, img)
        if api == "cv32":
            if method != "POST" or path.rstrip("/").lower() != "/vision/v3.2/analyze":
                raise _resource_not_found()
            self._check_key(headers, "Ocp-Apim-Subscription-Key")
            self._check_rate(api)
            return self._analyze32(query, headers, img)
        raise _resource_not_found()

    # ------------------------------------------------------------------ Custom Vision

    def _custom_vision(self, match: "re.Match", headers: Dict[str, str], img: _Image) -> dict:
        project_id, kind, published_name = match.group(1), match.group(2).lower(), match.group(3)
        with self._lock:
            project = self.projects.get(project_id.lower())
        if project is None:
            raise _Reply(404, {"code": "NotFoundProject", "message": "Invalid project"})
        if project[1] != kind:
            raise _Reply(
                400,
                {
                    "code": "BadRequest",
                    "message": "Invalid operation: the project is not a %s project."
                    % ("classification" if kind == "classify" else "object detection"),
                },
            )
        if published_name not in project[2]:
            raise _Reply(404, {"code": "NotFoundIteration", "message": "Invalid iteration"})
        content_type = headers.get("content-type", "").lower()
        if not content_type.startswith(("application/octet-stream", "multipart/form-data")):
            raise _Reply(
                415,
                {
                    "code": "UnsupportedMediaType",
                    "message": "Unsupported media type: use application/octet-stream or "
                    "multipart/form-data.",
                },
            )
        if img.size_bytes == 0:
            raise _Reply(400, {"code": "BadRequestImageStream", "message": "Empty image stream"})
        if img.size_bytes > CV_MAX_BYTES:
            raise _Reply(
                400,
                {
                    "code": "BadRequestImageSizeBytes",
                    "message": f"Image size in bytes exceeds the limit of {CV_MAX_BYTES} bytes",
                },
            )
        if not img.decodable or img.format not in CV_FORMATS:
            raise _Reply(
                400,
                {
                    "code": "BadRequestImageFormat",
                    "message": "Bad image format: supported formats are JPEG, PNG, BMP and GIF",
                },
            )
        assert img.size is not None
        width, height = img.size
        if max(width, height) > CV_MAX_SIDE or max(width, height) > CV_MAX_ASPECT * min(
            width, height
        ):
            raise _Reply(
                400,
                {
                    "code": "BadRequestImageDimensions",
                    "message": f"Image dimensions {width}x{height} are invalid: at most "
                    f"{CV_MAX_SIDE} pixels per side and an aspect ratio of at most 25:1",
                },
            )
        analysis = _analyse(img)
        predictions: List[dict] = []
        if kind == "classify":
            for colour in COLOURS:
                probability = max(round(analysis.fractions[colour], 8), 0.001)
                predictions.append(
                    {"probability": probability, "tagId": tag_id(colour), "tagName": colour}
                )
        else:
            for colour, box in analysis.boxes.items():
                name = colour + " box"
                predictions.append(
                    {
                        "probability": 0.95 if _box_area(box) >= 0.01 else 0.3,
                        "tagId": tag_id(name),
                        "tagName": name,
                        "boundingBox": {
                            "left": round(box[0], 8),
                            "top": round(box[1], 8),
                            "width": round(box[2], 8),
                            "height": round(box[3], 8),
                        },
                    }
                )
            predictions.append(
                {
                    "probability": 0.02,
                    "tagId": tag_id("noise"),
                    "tagName": "noise",
                    "boundingBox": {"left": 0.0, "top": 0.0, "width": 1.0, "height": 1.0},
                }
            )
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "id": self._next_id(),
            "project": project[0],
            "iteration": iteration_id(project[0], published_name),
            "created": created,
            "predictions": _unsorted(predictions),
        }

    # ------------------------------------------------------------------ Image Analysis 4.0

    def _analyze40(self, query: Dict[str, str], headers: Dict[str, str], img: _Image) -> dict:
        def invalid(
            message: str, inner: Optional[str] = None, inner_message: Optional[str] = None
        ) -> _Reply:
            body = _wrapped("InvalidRequest", message, inner, inner_message)
            return _Reply(400, body, {"x-ms-error-code": "InvalidRequest"})

        api_version = query.get("api-version", "")
        if not api_version:
            raise invalid("The 'api-version' query parameter is required.", "BadArgument")
        if api_version not in IA40_API_VERSIONS:
            raise _resource_not_found()
        raw_features = [f.strip() for f in query.get("features", "").split(",") if f.strip()]
        if not raw_features:
            raise invalid(
                "Either 'features' or 'model-name' needs to be specified in the query parameter.",
                "BadArgument",
            )
        canonical = {f.lower(): f for f in IA40_FEATURES}
        features = []
        for name in raw_features:
            if name.lower() not in canonical:
                raise invalid(
                    "Analyze query is invalid.",
                    "NotSupportedVisualFeature",
                    "Specified feature type is not valid",
                )
            features.append(canonical[name.lower()])
        unsupported = {f.lower() for f in self.unsupported_features}
        for name in features:
            if name.lower() in unsupported:
                message = "The feature '%s' is not supported in this region." % (
                    name[0].upper() + name[1:]
                )
                raise invalid(message, "NotSupportedFeature")
        language = query.get("language", "en") or "en"
        if language not in IA40_LANGUAGES:
            raise invalid(
                "Analyze query is invalid.",
                "NotSupportedLanguage",
                "The input language is not supported",
            )
        neutral = query.get("gender-neutral-caption", "false").lower()
        if neutral not in ("true", "false"):
            raise invalid(
                "Analyze query is invalid.",
                "BadArgument",
                "'gender-neutral-caption' must be true or false",
            )
        model_version = query.get("model-version", "latest")
        if not _MODEL_VERSION_RE.match(model_version) or not 6 <= len(model_version) <= 18:
            raise invalid(
                "Analyze query is invalid.", "BadArgument", "'model-version' is not valid"
            )
        ratios: List[float] = []
        if query.get("smartcrops-aspect-ratios"):
            try:
                ratios = [float(r) for r in query["smartcrops-aspect-ratios"].split(",")]
            except ValueError:
                ratios = [0.0]
            if any(not 0.75 <= r <= 1.8 for r in ratios):
                raise invalid(
                    "Analyze query is invalid.",
                    "BadArgument",
                    "'smartcrops-aspect-ratios' aspect ratio is not in allowed range [0.75 to 1.8]",
                )
        content_type = headers.get("content-type", "")
        if not content_type.lower().startswith(("application/octet-stream", "multipart/form-data")):
            raise invalid(
                f"The provided image content type '{content_type}' is not supported.",
                "UnsupportedMediaType",
            )
        if img.size_bytes == 0 or img.size_bytes > IA40_MAX_BYTES:
            raise invalid(
                "The image size is not allowed to be zero or larger than 20971520 bytes.",
                "InvalidImageSize",
            )
        if not img.decodable or img.format not in IA40_FORMATS:
            raise invalid(
                "Image format is not valid.", "InvalidImageFormat", "Image format is not valid."
            )
        self._check_dimensions(img, invalid)
        analysis = _analyse(img)
        result: Dict[str, Any] = {
            "modelVersion": IA40_MODEL_VERSION if model_version == "latest" else model_version,
            "metadata": {"width": analysis.width, "height": analysis.height},
        }
        whole = {"x": 0, "y": 0, "w": analysis.width, "h": analysis.height}
        if "caption" in features:
            result["captionResult"] = {"text": analysis.caption(), "confidence": 0.8}
        if "denseCaptions" in features:
            values = [{"text": analysis.caption(), "confidence": 0.8, "boundingBox": whole}]
            for colour in analysis.boxes:
                values.append(
                    {
                        "text": f"a {colour} box",
                        "confidence": 0.7,
                        "boundingBox": analysis.pixel_box(colour),
                    }
                )
            result["denseCaptionsResult"] = {"values": values}
        if "tags" in features:
            result["tagsResult"] = {"values": self._tags(analysis, language)}
        if "objects" in features:
            result["objectsResult"] = {
                "values": [
                    {
                        "boundingBox": analysis.pixel_box(colour),
                        "tags": [{"name": colour + " box", "confidence": confidence}],
                    }
                    for colour, confidence in self._objects(analysis)
                ]
            }
        if "read" in features:
            result["readResult"] = {"blocks": self._read_blocks(analysis)}
        if "smartCrops" in features:
            result["smartCropsResult"] = {"values": self._smart_crops(analysis, ratios)}
        if "people" in features:
            result["peopleResult"] = {"values": []}
        return result

    @staticmethod
    def _check_dimensions(img: _Image, invalid: Any) -> None:
        assert img.size is not None
        if min(img.size) < VISION_MIN_SIDE:
            raise invalid(
                "Image must be at least 50 pixels in width and height", "InvalidImageSize"
            )
        if max(img.size) > VISION_MAX_SIDE:
            raise invalid(
                "Image must be at most 16000 pixels in width and height", "InvalidImageSize"
            )

    @staticmethod
    def _tags(analysis: _Analysis, language: str = "en") -> List[dict]:
        tags = [(c, round(analysis.fractions[c], 6)) for c in COLOURS if analysis.fractions[c] > 0]
        tags.append(("abstract", 0.3))
        tags.sort(key=lambda t: -t[1])
        names = _SPANISH if language == "es" else {}
        return [{"name": names.get(n, n), "confidence": c} for n, c in tags]

    @staticmethod
    def _objects(analysis: _Analysis) -> List[Tuple[str, float]]:
        return [
            (colour, 0.9 if _box_area(box) >= 0.01 else 0.3)
            for colour, box in analysis.boxes.items()
        ]

    def _read_blocks(self, analysis: _Analysis) -> List[dict]:
        lines = list(self.read_lines)
        if not lines:
            return []
        w, h = analysis.width, analysis.height

        def polygon(x0: int, y0: int, x1: int, y1: int) -> List[dict]:
            x0, x1 = min(x0, w - 1), min(x1, w - 1)
            y0, y1 = min(y0, h - 1), min(y1, h - 1)
            return [{"x": x0, "y": y0}, {"x": x1, "y": y0}, {"x": x1, "y": y1}, {"x": x0, "y": y1}]

        out = []
        for i, text in enumerate(lines):
            top, bottom = 10 + 25 * i, 30 + 25 * i
            words = []
            for m in re.finditer(r"\S+", text):
                words.append(
                    {
                        "text": m.group(0),
                        "boundingPolygon": polygon(
                            10 + 8 * m.start(), top, 10 + 8 * m.end(), bottom
                        ),
                        "confidence": 0.99,
                    }
                )
            out.append(
                {
                    "text": text,
                    "boundingPolygon": polygon(10, top, 10 + 8 * len(text), bottom),
                    "words": words,
                }
            )
        return [{"lines": out}]

    @staticmethod
    def _smart_crops(analysis: _Analysis, ratios: List[float]) -> List[dict]:
        w, h = analysis.width, analysis.height
        if not ratios:
            ratios = [round(min(2.0, max(0.5, w / float(h))), 2)]
        values = []
        for ratio in ratios:
            cw, ch = w, round(w / ratio)
            if ch > h:
                cw, ch = round(h * ratio), h
            box = {"x": (w - cw) // 2, "y": (h - ch) // 2, "w": cw, "h": ch}
            values.append({"aspectRatio": ratio, "boundingBox": box})
        return values

    # ------------------------------------------------------------------ Computer Vision v3.2

    def _analyze32(self, query: Dict[str, str], headers: Dict[str, str], img: _Image) -> dict:
        def invalid(
            message: str,
            inner: Optional[str] = None,
            inner_message: Optional[str] = None,
            status: int = 400,
        ) -> _Reply:
            return _Reply(status, _wrapped("InvalidRequest", message, inner, inner_message))

        canonical = {f.lower(): f for f in CV32_FEATURES}
        features = []
        for name in query.get("visualFeatures", "").split(","):
            if not name.strip():
                continue
            if name.strip().lower() not in canonical:
                raise invalid(
                    "Analyze query is invalid.",
                    "NotSupportedVisualFeature",
                    "Specified feature type is not valid",
                )
            features.append(canonical[name.strip().lower()])
        if not features:
            features = ["Categories"]
        content_type = headers.get("content-type", "")
        if not content_type.lower().startswith(("application/octet-stream", "multipart/form-data")):
            raise invalid(
                "Unsupported media type.",
                "UnsupportedMediaType",
                "Supported media types: application/octet-stream, multipart/form-data "
                "or application/json",
                status=415,
            )
        if img.size_bytes == 0:
            raise invalid("The input image is empty.", "InvalidImageSize")
        if img.size_bytes > CV32_MAX_BYTES:
            raise invalid(
                "The input image is too large. Refer to documentation for the maximum file size.",
                "InvalidImageSize",
            )
        if not img.decodable or img.format not in CV32_FORMATS:
            raise invalid("Input data is not a valid image.", "InvalidImageFormat")
        self._check_dimensions(img, invalid)
        analysis = _analyse(img)
        fmt = "Jpeg" if img.format in ("JPEG", "MPO") else (img.format or "").title()
        result: Dict[str, Any] = {}
        if "Categories" in features:
            result["categories"] = [{"name": "abstract_", "score": 0.5}]
        if "Adult" in features:
            result["adult"] = {
                "isAdultContent": False,
                "isRacyContent": False,
                "isGoryContent": False,
                "adultScore": 0.001,
                "racyScore": 0.001,
                "goreScore": 0.001,
            }
        if "Color" in features:
            ranked = sorted(COLOURS, key=lambda c: -analysis.fractions[c])
            dominant = [c.title() for c in ranked if analysis.fractions[c] > 0][:3] or ["Grey"]
            result["color"] = {
                "dominantColorForeground": dominant[0],
                "dominantColorBackground": dominant[-1],
                "dominantColors": dominant,
                "accentColor": "873B59",
                "isBWImg": all(analysis.fractions[c] == 0 for c in BOX_COLOURS),
            }
        if "ImageType" in features:
            result["imageType"] = {"clipArtType": 0, "lineDrawingType": 0}
        if "Tags" in features:
            result["tags"] = self._tags(analysis)
        if "Description" in features:
            result["description"] = {
                "tags": [t["name"] for t in self._tags(analysis)],
                "captions": [{"text": analysis.caption(), "confidence": 0.8}],
            }
        if "Faces" in features:
            result["faces"] = []
        if "Objects" in features:
            result["objects"] = [
                {
                    "rectangle": analysis.pixel_box(colour),
                    "object": colour + " box",
                    "confidence": confidence,
                }
                for colour, confidence in self._objects(analysis)
            ]
        if "Brands" in features:
            result["brands"] = []
        result["requestId"] = self._next_id()
        result["metadata"] = {"width": analysis.width, "height": analysis.height, "format": fmt}
        result["modelVersion"] = CV32_MODEL_VERSION
        return result
