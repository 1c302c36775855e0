"""Text read by Azure's Read APIs, in the cloud or in a container on the premises.

Both protocols read asynchronously: the image is POSTed, the service answers 202 with an
``Operation-Location``, and that URL is asked until the reading has ``succeeded`` or ``failed``.

- ``vision-3.2`` (``Read32``): Azure AI Vision's Read 3.2 (``/vision/v3.2/read/analyze``), in
  the cloud or in its container (``mcr.microsoft.com/azure-cognitive-services/vision/read``),
  asked for the natural reading order. It is how ``AZURE_VISION_API=3.2`` reads text, since its
  analyze reads none.
- ``document-intelligence`` (``DocumentIntelligenceRead``): the ``prebuilt-read`` model of
  Azure Document Intelligence (api-version 2024-11-30), in the cloud or in its v4.0 container:
  the OCR successor Microsoft names for after Image Analysis retires (2028-09-25).

``load(cls, settings, ...)`` builds the backend that reads text for ``azurevision.py``: the one
at ``AZURE_VISION_READ_ENDPOINT`` when that is set, whatever ``AZURE_VISION_API`` says.
"""

import logging
from typing import Any, Dict, List, Optional, Tuple, Type
from urllib.parse import urljoin, urlsplit, urlunsplit

from ..answers import pacing
from ..answers.answer import Answer
from ..ground import budget, clock
from ..ground.errors import ImageRejected, Problem, Refused, ServiceError, Unavailable
from ..ground.logonce import log_once
from ..ground.outcomes import (
    IMAGE_REFUSED,
    KEY_REFUSED,
    OTHER_TIER,
    THROTTLED,
    UNEXPECTED,
    Outcome,
    any_of,
    classify,
)
from ..ground.setting_registry import (
    VISION_ENDPOINT,
    VISION_KEY,
    VISION_READ_API,
    VISION_READ_ENDPOINT,
    VISION_READ_KEY,
    VISION_REQUESTS_PER_SECOND,
)
from ..ground.settings import Secret, Settings
from ..http import client
from ..images import prepare
from .base import Analysis, Service, answered

log = logging.getLogger(__name__)

READ_32 = "vision-3.2"
DOC_INTEL = "document-intelligence"
PROTOCOLS = (READ_32, DOC_INTEL)
DOC_INTEL_API_VERSION = "2024-11-30"

ENDPOINT_SETTING = VISION_READ_ENDPOINT.name
KEY_SETTING = VISION_READ_KEY.name
API_SETTING = VISION_READ_API.name

# Both take JPEG, PNG, BMP, TIFF (and PDF, which Pillow does not decode), 50 to 10,000 px a
# side, and 4 MB on the free tiers (paid tiers and containers take far more). 4 MB fits every
# tier, and the image sent is rarely near it: a 2048 px JPEG is a few hundred KB.
READ_32_LIMITS = prepare.Limits(
    "Read 3.2",
    frozenset({"JPEG", "PNG", "BMP", "TIFF"}),
    max_bytes=4_000_000,
    max_side=10000,
    min_side=50,
)
DOC_INTEL_LIMITS = prepare.Limits(
    "Document Intelligence",
    frozenset({"JPEG", "PNG", "BMP", "TIFF"}),
    max_bytes=4_000_000,
    max_side=10000,
    min_side=50,
)

# Between two askings for the result, when the service does not say (Retry-After): Microsoft
# asks for "an interval of 1-to-2 seconds"; later askings are spaced more, up to LONGEST_POLL.
FIRST_POLL = 1.0
LONGEST_POLL = 5.0
SHORTEST_POLL = 0.5  # even when told to come back at once

_RUNNING = {"notstarted", "running"}
_ENDED = {"failed", "canceled", "cancelled", "skipped"}
# Refusals of this one image, in either API's words (Read 3.2's error enum, Document
# Intelligence's inner codes).
_IMAGE_CODES = {
    "InvalidImageFormat",
    "InvalidImageSize",
    "InvalidImage",
    "InvalidImageDimension",
    "UnsupportedImageFormat",
    "NotSupportedImage",
    "InvalidContent",
    "InvalidContentDimensions",
    "InvalidContentLength",
}
_OUTAGE_CODES = {"InternalServerError", "ServiceUnavailable", "Timeout"}

# What holds for every file (the key, the endpoint, the protocol) is ``Refused``: logged once,
# and files fail without asking until it is asked again.
READ_OTHER_TIER = OTHER_TIER._replace(
    words="{endpoint_setting} is the endpoint of another kind of resource (pricing tier "
    "{tier}): set it to a {kind}{said}"
)
NO_KEY = KEY_REFUSED._replace(
    words="{name} at {endpoint_setting} asks for a key ({status}) and {key_setting} is not "
    "set: set it to a key of that resource (a container takes none: check {endpoint_setting} "
    "is its address){said}"
)
READ_KEY_REFUSED = KEY_REFUSED._replace(
    words="{name} refused the key ({status}): check {key_setting} is a key of the resource at "
    "{endpoint_setting}{said}"
)
READ_IMAGE_REFUSED = IMAGE_REFUSED._replace(codes=any_of(_IMAGE_CODES))
# Only while asking for the result of a reading it accepted.
READING_GONE = Outcome(
    ServiceError,
    "{name} no longer knows the reading it accepted (404 on its result): a container "
    "restarted, or several run behind a load balancer without the shared cache they need{said}",
    status=frozenset({404}),
)
NOT_HERE = Outcome(
    Refused,
    "{name} has no {what} at {endpoint_setting} ({status}): check it names a {kind}, and that "
    f"{API_SETTING} says which protocol it speaks ({', '.join(PROTOCOLS)}){{said}}",
    status=frozenset({404}),
)
# What it finds itself while a reading goes on.
NO_OPERATION_LOCATION = Outcome(
    Refused,
    "{name} at {endpoint_setting} answered {status} without an Operation-Location to fetch the "
    f"text from: check it is a {{kind}} ({API_SETTING} says which protocol it speaks)",
)
UNKNOWN_STATUS = Outcome(
    ServiceError,
    "{name} answered the reading's status with {found!r}, not one of notStarted, running, "
    "succeeded, failed",
    answered=True,
)
TOO_LONG = Outcome(Unavailable, "{name} did not finish reading the image within {named} ({why})")
# A reading that ended without succeeding: about this one image, unless it says it was down.
READING_FAILED = Outcome(
    ImageRejected, "{name} could not read the image: the reading {status}{reason}", answered=True
)
READING_DOWN = READING_FAILED._replace(kind=Unavailable, answered=False)
# Words within those above.
MAX_WAIT_PART = Outcome(None, "PIXSTOR_AZURE_MAX_WAIT ({seconds:g} s)")
BUDGET_PART = Outcome(None, "the file's time budget (PIXSTOR_AZURE_FILE_TIMEOUT, {seconds:g} s)")
RUNNING_PART = Outcome(None, "still running after {waited:.3g} s and {polls} askings")
ASKING_TO_WAIT_PART = Outcome(None, ", and asking to wait {asked:g} s more")
NO_REASON_PART = Outcome(None, " (it gave no reason)")

# AZURE_VISION_READ_API asks for Document Intelligence, which has no default endpoint.
DOC_INTEL_WITHOUT_ENDPOINT = Problem(
    "is {protocol}, but {endpoint_setting} is not set: name there the Document "
    "Intelligence resource or container that reads the text"
)


class Read(Service):
    """One Read service: where it is, how it is asked, and how its image is prepared."""

    protocol = ""
    what = ""  # the API, in an administrator's words
    api_version = ""
    reading_order = ""
    limits = READ_32_LIMITS
    # Its own rows of the error classification, after "nothing of that protocol there".
    own_outcomes: Tuple[Outcome, ...] = ()
    reads = (
        VISION_READ_API,
        VISION_READ_ENDPOINT,
        VISION_READ_KEY,
        VISION_ENDPOINT,
        VISION_KEY,
        VISION_REQUESTS_PER_SECOND,
    )

    def __init__(
        self,
        endpoint: str,
        key: Optional[Secret],  # None: a container that takes no key
        endpoint_setting: str,  # the settings that name it, for messages
        key_setting: str,
        http: client.HttpConfig,
        max_edge: int,
        min_edge: int,
    ) -> None:
        self.endpoint = endpoint
        self.key = key
        self.endpoint_setting = endpoint_setting
        self.key_setting = key_setting
        self.http = http
        self.max_edge = max_edge
        self.min_edge = min_edge
        first = (READ_OTHER_TIER, NO_KEY if key is None else READ_KEY_REFUSED, READ_IMAGE_REFUSED)
        last = (NOT_HERE, *self.own_outcomes)
        self.outcomes = (*first, *last, THROTTLED)
        self.polling_outcomes = (*first, READING_GONE, *last, THROTTLED)

    def identity(self) -> dict:
        return {
            "service": "read",
            "protocol": self.protocol,
            "host": urlsplit(self.endpoint).netloc.lower(),
            "api-version": self.api_version,
            "reading-order": self.reading_order,
            "edge": self.max_edge,
        }

    def ask(self, path: str) -> Answer:
        image = prepare.prepare(path, self.limits, self.max_edge, self.min_edge)
        body = self.read(image.data)
        lines(body, self.protocol, self.name)  # a body that cannot be read is not kept
        return answered(image, body, model=_model(body))

    def parse(self, answer: Answer) -> Analysis:
        """An ``Analysis`` holding the lines read, in reading order, and nothing else."""
        return Analysis(text=lines(answer.body, self.protocol, self.name))

    def wording(self, error: ServiceError) -> Dict[str, Any]:
        return dict(
            super().wording(error),
            key_setting=self.key_setting,
            rate_setting=VISION_REQUESTS_PER_SECOND.name,
            kind=self.kind,
            what=self.what,
        )

    def read(self, data: bytes) -> dict:
        """Start the reading of ``data`` and wait for it: the body of the succeeded result."""
        try:
            started = client.exchange(
                self.name,
                "POST",
                self.analyze_url,
                self.http,
                headers={**self.headers, "Content-Type": "application/octet-stream"},
                data=data,
                params=self.params,
            )
        except ServiceError as exc:
            raise self.explain(exc) from None
        location = started.headers.get("Operation-Location")
        if not location:
            raise NO_OPERATION_LOCATION.error(
                self.name,
                started.status,
                endpoint_setting=self.endpoint_setting,
                status=started.status,
                kind=self.kind,
            )
        return self.poll(follow(self.endpoint, location), started.headers)

    def poll(self, url: str, headers: Any) -> dict:
        """Ask ``url`` for the result until the reading ends, waiting as the service asks."""
        limit = self.http.max_wait
        named = MAX_WAIT_PART.say(self.name, seconds=limit)
        left = budget.remaining()
        if left is not None and left < limit:
            total = budget.total() or 0.0
            limit, named = left, BUDGET_PART.say(self.name, seconds=total)
        started = clock.now()
        polls = 0
        while True:
            asked = client.retry_after(headers, "")
            pause = max(SHORTEST_POLL, _interval(polls) if asked is None else asked)
            if clock.now() + pause >= started + limit:
                raise self.too_long(named, clock.now() - started, polls, asked)
            clock.sleep(pause)
            polls += 1
            try:
                reply = client.exchange(self.name, "GET", url, self.http, headers=self.headers)
            except ServiceError as exc:
                raise classify(exc, self.polling_outcomes, self.wording(exc)) from None
            said = _lower(reply.body).get("status")
            status = said.strip().lower() if isinstance(said, str) else ""
            if status == "succeeded":
                return reply.body
            if status in _ENDED:
                raise self.ended(reply.body, status)
            if status not in _RUNNING:
                raise UNKNOWN_STATUS.error(
                    self.name, reply.status, detail=str(reply.body)[:300], found=said
                )
            headers = reply.headers

    @property
    def analyze_url(self) -> str:
        raise NotImplementedError

    @property
    def params(self) -> Dict[str, str]:
        raise NotImplementedError

    @property
    def headers(self) -> Dict[str, str]:
        return {"Ocp-Apim-Subscription-Key": self.key.reveal()} if self.key else {}

    @property
    def kind(self) -> str:
        """What the endpoint must be, in an administrator's words."""
        return f"{self.what} resource or container"

    def too_long(
        self, named: str, waited: float, polls: int, asked: Optional[float]
    ) -> ServiceError:
        why = RUNNING_PART.say(self.name, waited=waited, polls=polls)
        if asked is not None and asked > SHORTEST_POLL:
            why += ASKING_TO_WAIT_PART.say(self.name, asked=asked)
        return TOO_LONG.error(self.name, named=named, why=why)

    def ended(self, body: Any, status: str) -> ServiceError:
        """The error for a reading that ended without succeeding: the service answered, about
        this one image, unless it says it was down."""
        error = _lower(_lower(body).get("error"))
        inner = _lower(error.get("innererror"))
        code, inner_code = error.get("code"), inner.get("code")
        said = str(inner.get("message") or error.get("message") or "").strip()
        reason = f": {said}" if said else NO_REASON_PART.say(self.name)
        down = bool({str(code), str(inner_code)} & _OUTAGE_CODES)
        return (READING_DOWN if down else READING_FAILED).error(
            self.name,
            None,
            str(code) if code else None,
            str(body)[:1000],
            str(inner_code) if inner_code else None,
            status=status,
            reason=reason,
        )


class Read32(Read):
    """Azure AI Vision's Read 3.2, in the cloud or in its container, in natural reading order.
    Its calls share the Vision resource's rate limit (keyed on service and host); a container
    has a host of its own."""

    name = "Azure AI Vision"
    protocol = READ_32
    what = "Read 3.2"
    api_version = "v3.2"
    reading_order = "natural"
    limits = READ_32_LIMITS

    @property
    def analyze_url(self) -> str:
        return f"{self.endpoint}/vision/v3.2/read/analyze"

    @property
    def params(self) -> Dict[str, str]:
        # Read 3.2 lists lines left to right unless asked for the natural order; no language is
        # sent: it reads mixed languages, and a forced one "might return incomplete text".
        return {"readingOrder": "natural"}


class DocumentIntelligenceRead(Read):
    """Document Intelligence's prebuilt-read model, in the cloud or in its v4.0 container."""

    name = "Document Intelligence"
    protocol = DOC_INTEL
    what = "Document Intelligence prebuilt-read"
    api_version = DOC_INTEL_API_VERSION
    reading_order = "spans"
    limits = DOC_INTEL_LIMITS
    # An api-version it does not know: the same as nothing of that protocol there.
    own_outcomes = (NOT_HERE._replace(status=frozenset({400, 404}), pattern="(?i)api[- ]*version"),)

    @property
    def analyze_url(self) -> str:
        return f"{self.endpoint}/documentintelligence/documentModels/prebuilt-read:analyze"

    @property
    def params(self) -> Dict[str, str]:
        return {"api-version": DOC_INTEL_API_VERSION}


def load(cls: Type[Read], settings: Settings, fallback: bool) -> Optional[Read]:
    """The backend of class ``cls`` (the protocol ``AZURE_VISION_READ_API`` chose) that reads
    text for ``azurevision.py``, or None when the analyze call does.

    ``AZURE_VISION_READ_ENDPOINT``, when set, reads it in every API mode, with its own key
    ``AZURE_VISION_READ_KEY`` (none for a container). Otherwise, when ``fallback``
    (``AZURE_VISION_API=3.2``, whose analyze reads no text), Read 3.2 at
    ``AZURE_VISION_ENDPOINT`` with ``AZURE_VISION_KEY`` reads it; else None.
    """
    max_edge, min_edge = prepare.edge_settings(settings)
    config = pacing.http_config(settings, VISION_REQUESTS_PER_SECOND)
    if settings.raw(ENDPOINT_SETTING) is not None:
        # Never AZURE_VISION_KEY here: that key is for AZURE_VISION_ENDPOINT, and this may be
        # another resource, or a container on the local network reached over plain http.
        key = settings.get(VISION_READ_KEY) if settings.raw(KEY_SETTING) is not None else None
        return cls(
            settings.get(VISION_READ_ENDPOINT),
            key,
            ENDPOINT_SETTING,
            KEY_SETTING,
            config,
            max_edge,
            min_edge,
        )
    if cls.protocol == DOC_INTEL:
        raise DOC_INTEL_WITHOUT_ENDPOINT.error(
            API_SETTING, protocol=DOC_INTEL, endpoint_setting=ENDPOINT_SETTING
        )
    if settings.raw(KEY_SETTING) is not None:
        log_once(
            log,
            logging.WARNING,
            f"{KEY_SETTING} is set but {ENDPOINT_SETTING} is not: the key is not used",
        )
    if not fallback:
        return None
    return Read32(
        settings.get(VISION_ENDPOINT),
        settings.get(VISION_KEY),
        VISION_ENDPOINT.name,
        VISION_KEY.name,
        config,
        max_edge,
        min_edge,
    )


def follow(endpoint: str, location: str) -> str:
    """The URL to ask for the result that ``location`` names, on the endpoint's own host.

    Only the path and query of the Operation-Location are taken. A container names its results
    as it sees itself (``http://localhost:5000/vision/v3.2/read/operations/...``), which is not
    where this machine reaches it; and the key goes to the endpoint's host and no other.
    """
    base = urlsplit(endpoint)
    target = urlsplit(urljoin(endpoint + "/", location.strip()))
    prefix = base.path.rstrip("/")
    path = target.path
    if prefix and not path.startswith(prefix + "/"):
        path = prefix + path  # a container behind a proxy's path knows nothing of the path
    if (target.scheme, target.netloc) != (base.scheme, base.netloc):
        log.debug("the reading's result is named at %s; asked at %s", target.netloc, base.netloc)
    return urlunsplit((base.scheme, base.netloc, path, target.query, ""))


def lines(body: Any, protocol: str, service: str = "") -> List[str]:
    """The lines of a succeeded result, page by page, in reading order.

    Read 3.2 lists them in the order asked for (natural). Document Intelligence says where each
    line is in the reading order of its ``content`` (its first span's offset): that order is
    followed whatever order the list is in.
    """
    try:
        result = _keys(_keys(body)["analyzeresult"])
        if protocol == READ_32:
            pages = _in_order(result.get("readresults"), "page")
            return [t for page in pages for t in _texts(page.get("lines"), "text")]
        found = []  # type: List[str]
        for page in _in_order(result.get("pages"), "pagenumber"):
            page_lines = [_keys(line) for line in page.get("lines") or []]
            offsets = [_offset(line) for line in page_lines]
            if None not in offsets:
                order = sorted(range(len(page_lines)), key=lambda i: (offsets[i], i))
                page_lines = [page_lines[i] for i in order]
            found.extend(_texts(page_lines, "content"))
        return found
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        service = service or _NAMES[protocol]
        raise UNEXPECTED.error(service, what=f"{type(exc).__name__}: {exc}") from None


_NAMES = {cls.protocol: cls.name for cls in (Read32, DocumentIntelligenceRead)}


def _in_order(pages: Any, number: str) -> List[dict]:
    pages = [_keys(p) for p in pages or []]
    numbered = [(int(p.get(number) or 0), i, p) for i, p in enumerate(pages)]
    return [p for _, _, p in sorted(numbered, key=lambda n: n[:2])]


def _texts(items: Any, name: str) -> List[str]:
    texts = []
    for item in items or []:
        text = _keys(item)[name]
        if not isinstance(text, str):
            raise TypeError(f"a line's {name} is {type(text).__name__}, not text")
        if text.strip():
            texts.append(text.strip())
    return texts


def _offset(line: dict) -> Optional[int]:
    spans = line.get("spans")
    if not isinstance(spans, list) or not spans:
        return None
    offset = _keys(spans[0]).get("offset")
    return offset if isinstance(offset, int) and not isinstance(offset, bool) else None


def _model(body: Any) -> Optional[str]:
    result = _lower(_lower(body).get("analyzeresult"))
    model = result.get("modelversion") or " ".join(
        str(result[k]) for k in ("modelid", "apiversion") if result.get(k)
    )
    return str(model) if model else None


def _interval(polls: int) -> float:
    return min(LONGEST_POLL, FIRST_POLL + 0.5 * polls)


def _keys(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, found {type(value).__name__}")
    return {str(k).lower(): v for k, v in value.items()}


def _lower(value: Any) -> dict:
    return _keys(value) if isinstance(value, dict) else {}
