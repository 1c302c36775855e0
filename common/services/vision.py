"""Azure AI Vision: generic tags, caption, objects and text for one prepared image.

Two APIs give the same fields. Image Analysis 4.0 (the default) reads text and can make
captions gender-neutral, but captions only in some regions; Computer Vision v3.2 captions in
every region and tags in many languages, but reads no text through ``analyze``: its text comes
from the Read API (``read.py``), as it does in every mode when ``AZURE_VISION_READ_ENDPOINT``
names a Read resource or container. ``analyze(path)`` picks the backends from the settings and
returns one ``Analysis`` whichever of them answered.
"""

import logging
import re
import threading
from typing import Any, Dict, List, NamedTuple, Optional, Set, Tuple
from urllib.parse import urlsplit

from ..answers import fetch
from ..answers.answer import Answer, fresh
from ..ground import runtime
from ..ground.boxes import Box
from ..ground.errors import ImageRejected, Refused, ServiceError, SettingsError
from ..ground.fields import passing
from ..ground.logonce import log_once
from ..ground.settings import Secret, Settings
from ..http import client
from ..images import prepare
from . import read

log = logging.getLogger(__name__)

SERVICE = "Azure AI Vision"
API_40 = "4.0"
API_32 = "3.2"
API_OPENAI = "openai"
APIS = (API_40, API_32, API_OPENAI)
FEATURES = ("tags", "caption", "objects", "read")
# v3.2 names of our features; "read" has none: v3.2 reads text only through its Read API.
_V32_NAMES = {"tags": "Tags", "caption": "Description", "objects": "Objects"}

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,4})?$")
_REGION = re.compile(r"not supported in (this|the|your) region", re.IGNORECASE)
_FEATURE_CODES = {"NotSupportedFeature", "NotSupportedVisualFeature"}
# Refusals of this one image; other files may pass. InvalidImageDimension is the Read API's
# name for a size problem, accepted in case analyze ever uses it.
_IMAGE_CODES = {
    "InvalidImageFormat",
    "InvalidImageSize",
    "NotSupportedImage",
    "InvalidImageDimension",
}


class Config(NamedTuple):
    endpoint: str
    key: Secret
    api: str
    api_version: str
    features: Tuple[str, ...]  # ours, as asked for and offered by the API
    language: str
    gender_neutral: bool
    max_edge: int
    min_edge: int
    http: client.HttpConfig

    @classmethod
    def load(cls, settings: Optional[Settings] = None, text_elsewhere: bool = False) -> "Config":
        """The analyze call's settings; ``text_elsewhere``: a Read API reads the text, so the
        analyze call does not ask for ``read`` (3.2's never does: it has no such feature)."""
        settings = settings or Settings.load()
        api = settings.choice("AZURE_VISION_API", API_40, APIS)
        api_version = settings.text("AZURE_VISION_API_VERSION", "2024-02-01")
        if not _API_VERSION.match(api_version):
            raise SettingsError(
                "AZURE_VISION_API_VERSION",
                "must be a date such as 2024-02-01; the value set is not one",
            )
        language = language_of(settings)
        asked = settings.words("AZURE_VISION_FEATURES", FEATURES, FEATURES)
        gender_neutral = settings.flag("AZURE_VISION_GENDER_NEUTRAL_CAPTION", False)
        features = tuple(f for f in asked if f != "read" or not text_elsewhere)
        if api == API_32:
            features = tuple(f for f in asked if f in _V32_NAMES)
            if not features:
                raise SettingsError(
                    "AZURE_VISION_FEATURES",
                    "asks only for read, which AZURE_VISION_API=3.2 reads with the Read API, "
                    "not with analyze",
                )
            if gender_neutral:
                log_once(
                    log,
                    logging.DEBUG,
                    "AZURE_VISION_GENDER_NEUTRAL_CAPTION applies to 4.0 only: 3.2 ignores it",
                )
        max_edge, min_edge = prepare.edge_settings(settings)
        return cls(
            endpoint=settings.endpoint("AZURE_VISION_ENDPOINT"),
            key=settings.secret("AZURE_VISION_KEY"),
            api=api,
            api_version=api_version,
            features=features,
            language=language,
            gender_neutral=gender_neutral,
            max_edge=max_edge,
            min_edge=min_edge,
            http=client.HttpConfig.from_settings(
                settings, "AZURE_VISION_REQUESTS_PER_SECOND", 10.0
            ),
        )

    service = SERVICE
    endpoint_setting = "AZURE_VISION_ENDPOINT"

    def identity(self) -> dict:
        return {
            "service": "vision",
            "host": urlsplit(self.endpoint).hostname,
            "api": self.api,
            "api-version": self.api_version if self.api == API_40 else "v3.2",
            "features": ",".join(self.features),
            "language": self.language,
            "gender-neutral": self.gender_neutral and self.api == API_40,
            "edge": self.max_edge,
        }

    def ask(self, path: str) -> Answer:
        image = prepare.prepare(path, self.limits, self.max_edge, self.min_edge)
        while True:
            features = self.wanted()
            url, params = self.request(features)
            try:
                body = client.post(
                    SERVICE,
                    url,
                    self.http,
                    headers={"Ocp-Apim-Subscription-Key": self.key.reveal()},
                    data=image.data,
                    params=params,
                )
            except ServiceError as exc:
                refused = region_refusal(exc, features)
                if refused is None:
                    raise _explain(exc, self) from None
                _turned_down(self, refused, exc)
                continue  # the same image at once, without that feature
            model = body.get("modelVersion") if isinstance(body, dict) else None
            return fresh(
                body,
                (image.width, image.height),
                (image.display_width, image.display_height),
                model=str(model) if model else None,
                bytes_sent=len(image.data),
            )

    def parse(self, answer: Answer) -> "Analysis":
        return parse(answer.body, self.api, list(self.features), *answer.sent)

    @property
    def limits(self) -> prepare.Limits:
        return prepare.VISION_40 if self.api == API_40 else prepare.VISION_32

    def wanted(self) -> List[str]:
        """The features to ask for now: those asked for, less any the region turned down."""
        down = _turned_down_features()
        with down.lock:
            gone = set(down.features.get((self.endpoint, self.api), ()))
        features = [f for f in self.features if f not in gone]
        if not features:
            hint = " (set AZURE_VISION_API=3.2 for captions)" if self.api == API_40 else ""
            raise SettingsError(
                "AZURE_VISION_FEATURES",
                f"asks only for {', '.join(self.features)}, which the resource at "
                f"AZURE_VISION_ENDPOINT does not offer in its region{hint}",
            )
        return features

    def request(self, features: List[str]) -> Tuple[str, Dict[str, str]]:
        """The URL and query of an analyze call asking for ``features``."""
        if self.api == API_40:
            params = {
                "api-version": self.api_version,
                "features": ",".join(features),
                "language": self.language,
            }
            if "caption" in features:
                params["gender-neutral-caption"] = "true" if self.gender_neutral else "false"
            return f"{self.endpoint}/computervision/imageanalysis:analyze", params
        params = {
            "visualFeatures": ",".join(_V32_NAMES[f] for f in features),
            "language": self.language,
        }
        return f"{self.endpoint}/vision/v3.2/analyze", params


class Tag(NamedTuple):
    name: str
    confidence: float


class Analysis:
    """What either API found, in one shape. Object boxes are fractions of the image."""

    def __init__(
        self,
        tags: Optional[List[Tag]] = None,
        caption: Optional[str] = None,
        caption_confidence: Optional[float] = None,
        objects: Optional[List[Box]] = None,
        text: Optional[List[str]] = None,
        object_names: Optional[List[str]] = None,
    ) -> None:
        self.tags = tags or []  # most confident first
        self.caption = caption
        self.caption_confidence = caption_confidence
        self.objects = objects or []  # most confident first
        self.text = text or []  # lines, in reading order
        # Objects named without a box (Azure OpenAI places none reliably), most prominent first.
        self.object_names = object_names or []

    def __repr__(self) -> str:
        return f"Analysis({self.__dict__!r})"


class TurnedDown:
    """Features a resource's region turned down, per (endpoint, API), for the process's life."""

    def __init__(self) -> None:
        self.features = {}  # type: Dict[Tuple[str, str], Set[str]]
        self.lock = threading.Lock()


def _turned_down_features() -> TurnedDown:
    return runtime.current().get(TurnedDown)


class Keep(NamedTuple):
    """What of an answer is kept: thresholds and counts, applied to stored answers too."""

    tag_threshold: float
    max_tags: int
    object_threshold: float
    max_objects: int

    @classmethod
    def load(cls, settings: Settings) -> "Keep":
        return cls(
            settings.number("AZURE_VISION_TAG_THRESHOLD", 0.6, 0.0, 1.0),
            settings.integer("AZURE_VISION_MAX_TAGS", 20, 1, 1000),
            settings.number("AZURE_VISION_OBJECT_THRESHOLD", 0.5, 0.0, 1.0),
            settings.integer("AZURE_VISION_MAX_OBJECTS", 50, 1, 1000),
        )


def language_of(settings: Settings) -> str:
    """``AZURE_VISION_LANGUAGE``, checked: the language tags, captions and names are in."""
    language = settings.text("AZURE_VISION_LANGUAGE", "en")
    if not _LANGUAGE.match(language):
        raise SettingsError(
            "AZURE_VISION_LANGUAGE",
            "must be a language code such as en or es; the value set is not one",
        )
    return language


def backend(settings: Settings) -> Any:
    """What answers for ``azurevision.py``: the backend ``AZURE_VISION_API`` chooses (Image
    Analysis 4.0 or 3.2 here, or openai); when a Read API reads the text (``AZURE_VISION_API=3.2``,
    or ``AZURE_VISION_READ_ENDPOINT`` set), that one with it (``WithRead``), or alone when only
    ``read`` is asked for. Built once while the settings are unchanged; every missing setting
    is named at once."""
    return settings.built("vision", lambda: _backend(settings))


def _backend(settings: Settings) -> Any:
    asked = settings.words("AZURE_VISION_FEATURES", FEATURES, FEATURES)
    reader = _reader(settings) if "read" in asked else None
    if reader is not None and asked == ["read"]:
        return reader
    if settings.choice("AZURE_VISION_API", API_40, APIS) == API_OPENAI:
        from . import openai

        return _with(openai.VisionBackend(settings, text_elsewhere=reader is not None), reader)
    return _with(Config.load(settings, text_elsewhere=reader is not None), reader)


def _reader(settings: Settings) -> Optional[read.Backend]:
    """The Read backend, when the text is not read by the analyze call."""
    api = settings.choice("AZURE_VISION_API", API_40, APIS)
    return read.load(settings, fallback=api == API_32)


def _with(analyzer: Any, reader: Optional[read.Backend]) -> Any:
    return analyzer if reader is None else WithRead(analyzer, reader)


class WithRead:
    """Two backends for one plugin: ``analyzer`` (tags, caption, objects) and ``reader`` (the
    text, from a Read API). ``analyze()`` fetches each answer on its own, so that each is cached
    on its own; ``ask`` and ``parse`` ask both at once, for checks that call a backend."""

    def __init__(self, analyzer: Any, reader: read.Backend) -> None:
        self.analyzer = analyzer
        self.reader = reader
        self.parts = (analyzer, reader)
        names = dict.fromkeys(p.service for p in self.parts)
        self.service = " and ".join(names)
        self.endpoint_setting = analyzer.endpoint_setting

    def identity(self) -> dict:
        return {
            "service": "vision",
            "analyze": self.analyzer.identity(),
            "read": self.reader.identity(),
        }

    def ask(self, path: str) -> Answer:
        got = [part.ask(path) for part in self.parts]
        body = {
            "parts": [
                {"body": a.body, "sent": list(a.sent), "display": list(a.display), "model": a.model}
                for a in got
            ]
        }
        models = ", ".join(a.model for a in got if a.model) or None
        first = got[0]
        sent = sum(a.bytes_sent for a in got)
        return Answer(body, first.sent, first.display, first.asked, models, sent)

    def parse(self, answer: Answer) -> Analysis:
        found = []
        for part, got in zip(self.parts, answer.body["parts"]):
            one = answer._replace(
                body=got["body"],
                sent=tuple(got["sent"]),
                display=tuple(got["display"]),
                model=got["model"],
            )
            found.append(part.parse(one))
        return self.merge(*found)

    @staticmethod
    def merge(analysis: Analysis, text: Analysis) -> Analysis:
        """What the analyzer found, with the text the reader read (any text of its own out)."""
        analysis.text = list(text.text)
        return analysis


def analyze(path: str, settings: Optional[Settings] = None) -> Analysis:
    """Tags and objects at or above their thresholds, the caption and the text of ``path``."""
    settings = settings or Settings.load()
    chosen, keep = backend(settings), Keep.load(settings)
    if isinstance(chosen, WithRead):  # each answer fetched, and cached, on its own
        found = chosen.merge(*(part.parse(fetch.fetch(part, path)) for part in chosen.parts))
    else:
        found = chosen.parse(fetch.fetch(chosen, path))
    return _kept(path, found, keep)


def parse(body: Any, api: str, features: List[str], width: int, height: int) -> Analysis:
    """Read either API's answer for the features asked for; keys are matched case-insensitively.

    ``width`` and ``height`` are those of the image sent: the service's pixel boxes are on it.
    Results for features not asked for are ignored, whatever the body holds.
    """
    try:
        answer = _keys(body)
        width, height = _frame(answer, width, height)
        read = _parse_40 if api == API_40 else _parse_32
        found = read(answer, set(features), width, height)
    except (AttributeError, KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise ServiceError(
            SERVICE, f"{SERVICE} answered with an unexpected body ({type(exc).__name__}: {exc})"
        ) from None
    found.tags.sort(key=lambda t: -t.confidence)
    found.objects.sort(key=lambda b: -b.probability)
    return found


def _parse_40(answer: dict, features: Set[str], width: int, height: int) -> Analysis:
    found = Analysis()
    if "tags" in features:
        for item in _values(answer.get("tagsresult")):
            found.tags.append(_tag(item, "name"))
    if "caption" in features and answer.get("captionresult"):
        caption = _keys(answer["captionresult"])
        found.caption = str(caption["text"]).strip() or None
        found.caption_confidence = float(caption.get("confidence") or 0.0)
    if "objects" in features:
        for item in map(_keys, _values(answer.get("objectsresult"))):
            names = [_tag(t, "name") for t in item.get("tags") or []]
            if names:  # one tag per object today; the most confident if ever more
                best = max(names, key=lambda t: t.confidence)
                found.objects.append(_box(best, item["boundingbox"], width, height))
    if "read" in features and answer.get("readresult"):
        for block in _keys(answer["readresult"]).get("blocks") or []:
            for line in _keys(block).get("lines") or []:
                text = str(_keys(line)["text"]).strip()
                if text:
                    found.text.append(text)
    return found


def _parse_32(answer: dict, features: Set[str], width: int, height: int) -> Analysis:
    found = Analysis()
    if "tags" in features:
        found.tags.extend(_tag(item, "name") for item in answer.get("tags") or [])
    if "caption" in features and answer.get("description"):
        captions = [_keys(c) for c in _keys(answer["description"]).get("captions") or []]
        if captions:
            best = max(captions, key=lambda c: float(c.get("confidence") or 0.0))
            found.caption = str(best["text"]).strip() or None
            found.caption_confidence = float(best.get("confidence") or 0.0)
    if "objects" in features:
        for item in map(_keys, answer.get("objects") or []):
            found.objects.append(_box(_tag(item, "object"), item["rectangle"], width, height))
    return found


def _keys(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, found {type(value).__name__}")
    return {str(k).lower(): v for k, v in value.items()}


def _values(result: Any) -> list:
    """The ``values`` list of a 4.0 ``<feature>Result``; none when the result is absent."""
    return (_keys(result).get("values") or []) if result else []


def _tag(item: Any, name_key: str) -> Tag:
    item = _keys(item)
    return Tag(str(item[name_key]), float(item["confidence"]))


def _box(tag: Tag, rectangle: Any, width: int, height: int) -> Box:
    r = {k: float(v) for k, v in _keys(rectangle).items() if k in ("x", "y", "w", "h")}
    return Box.from_pixels(tag.name, tag.confidence, r["x"], r["y"], r["w"], r["h"], width, height)


def _frame(answer: dict, width: int, height: int) -> Tuple[int, int]:
    """The size of the image the boxes are on: the service's own word when it gives one.

    It should be the size we sent; when it is not, the boxes are on the service's frame, so
    that is the one to divide by, and the mismatch is worth a warning.
    """
    metadata = answer.get("metadata")
    if not isinstance(metadata, dict):
        return width, height
    metadata = _keys(metadata)
    try:
        seen = (int(metadata["width"]), int(metadata["height"]))
    except (KeyError, TypeError, ValueError):
        return width, height
    if min(seen) < 1:
        return width, height
    if seen != (width, height):
        log.warning(
            "%s says it analysed a %dx%d px image, but %dx%d px was sent: boxes are read on "
            "the service's size",
            SERVICE,
            *seen,
            width,
            height,
        )
    return seen


def _kept(path: str, found: Analysis, config: Keep) -> Analysis:
    tags = []
    seen: Set[str] = set()
    for tag in passing(found.tags, config.tag_threshold, len(found.tags), lambda t: t.confidence):
        if tag.name.lower() not in seen:  # 4.0 and 3.2 each name a tag once, but cheap to be sure
            seen.add(tag.name.lower())
            tags.append(tag)
    tags = tags[: config.max_tags]
    objects = passing(found.objects, config.object_threshold, config.max_objects)
    if found.tags and not tags:
        best = found.tags[0]
        log.debug(
            "%s: best tag %r at %.3f, under the threshold %g",
            path,
            best.name,
            best.confidence,
            config.tag_threshold,
        )
    names = found.object_names[: config.max_objects]
    return Analysis(tags, found.caption, found.caption_confidence, objects, found.text, names)


def region_refusal(exc: ServiceError, features: List[str]) -> Optional[str]:
    """The feature ``exc`` says this resource's region does not offer, if that is what it says.

    Azure words it "The feature 'Caption' is not supported in this region." (400
    InvalidRequest, inner code NotSupportedFeature or none). The raw body is searched too, since
    the plain words may be in the inner error only.
    """
    if exc.http_status != 400:
        return None
    text = f"{exc.message} {exc.detail or ''}"
    in_region = bool(_REGION.search(text))
    if not in_region and not {exc.code, exc.inner_code} & _FEATURE_CODES:
        return None
    named = [f for f in FEATURES if _names(text, f)]
    if len(named) == 1:
        return named[0] if named[0] in features else None
    if not named and in_region and "caption" in features:
        return "caption"  # the one feature of ours documented to depend on the region
    return None


def _names(text: str, feature: str) -> bool:
    """Whether ``text`` names ``feature``, by our name or v3.2's, singular or plural."""
    words = {feature, _V32_NAMES.get(feature, feature)}
    return any(re.search(rf"\b{re.escape(w.rstrip('s'))}s?\b", text, re.IGNORECASE) for w in words)


def _turned_down(config: Config, feature: str, exc: ServiceError) -> None:
    down = _turned_down_features()
    with down.lock:
        gone = down.features.setdefault((config.endpoint, config.api), set())
        first = feature not in gone
        gone.add(feature)
    if first:
        advice = f"remove {feature} from AZURE_VISION_FEATURES to stop asking"
        if feature == "caption" and config.api == API_40:
            advice = "set AZURE_VISION_API=3.2 for captions in every region, or " + advice
        log.warning(
            "%s at %s does not offer %s in its region: carrying on without it for every file; "
            "%s (%s)",
            SERVICE,
            config.endpoint,
            feature,
            advice,
            exc.message,
        )


def _explain(exc: ServiceError, config: Config) -> ServiceError:
    """The service's error in words an administrator can act on.

    What holds for every file (the key, the endpoint, the language, the features) is
    ``Refused``: logged once, and files fail without asking until it is asked again. A 400
    that names no setting problem is about this image: ``ImageRejected``.
    """
    codes = {exc.code, exc.inner_code}
    said = f" (the service said: {exc.said})" if exc.said else ""
    tier = client.resource_tier(exc)
    if tier is not None:
        message = (
            f"AZURE_VISION_ENDPOINT is the endpoint of another kind of resource (pricing tier "
            f"{tier}), not of an Azure AI Vision resource: set AZURE_VISION_ENDPOINT and "
            f"AZURE_VISION_KEY to those of a Computer Vision or AI services resource{said}"
        )
    elif exc.http_status in (401, 403):
        message = (
            f"{SERVICE} refused the key ({exc.http_status}): check AZURE_VISION_KEY, and that "
            f"AZURE_VISION_ENDPOINT is the endpoint of the same Azure AI Vision resource{said}"
        )
    elif codes & _IMAGE_CODES or _about_the_image(exc):
        return ImageRejected(
            SERVICE,
            f"{SERVICE} refused the image: {exc.message}",
            exc.http_status,
            exc.code,
            exc.detail,
            exc.inner_code,
            exc.said,
        )
    elif "NotSupportedLanguage" in codes:
        only_tags = " (4.0 gives only tags in other languages)" if config.api == API_40 else ""
        message = (
            f"{SERVICE} {config.api} does not offer language {config.language!r} for "
            f"{', '.join(config.features)}: check AZURE_VISION_LANGUAGE{only_tags}{said}"
        )
    elif codes & _FEATURE_CODES:
        message = (
            f"{SERVICE} {config.api} does not offer a feature asked for: check "
            f"AZURE_VISION_FEATURES ({exc.message})"
        )
    elif exc.http_status == 404:
        what, check = f"v{config.api} analyze", ""
        if config.api == API_40:
            what = f"Image Analysis {config.api_version}"
            check = ", and AZURE_VISION_API_VERSION"
        message = (
            f"{SERVICE} has no {what} at AZURE_VISION_ENDPOINT (check it is the endpoint of "
            f"an Azure AI Vision resource{check}){said}"
        )
    elif exc.http_status == 400:  # about the request as set up: the same for every file
        message = (
            f"{SERVICE} refused the request as set up (400): {exc.said or exc.message}: check "
            "AZURE_VISION_API, AZURE_VISION_API_VERSION and AZURE_VISION_FEATURES"
        )
    elif exc.http_status == 429:
        return ServiceError(
            SERVICE,
            f"{exc.message} (lower AZURE_VISION_REQUESTS_PER_SECOND to the resource's tier)",
            exc.http_status,
            exc.code,
            exc.detail,
            exc.inner_code,
            exc.said,
        )
    else:
        return exc
    return Refused(
        SERVICE, message, exc.http_status, exc.code, exc.detail, exc.inner_code, exc.said
    )


# Words of a 400 about the request as set up rather than the picture sent.
_ABOUT_SETTINGS = re.compile(
    r"api-?version|api version|feature|language|query|parameter|subscription|pricing tier|"
    r"region|model|content-?type|endpoint|deployment",
    re.IGNORECASE,
)


def _about_the_image(exc: ServiceError) -> bool:
    """A 400 InvalidRequest without an inner code whose message names no setting problem: the
    real service answers so when it refuses one picture."""
    return (
        exc.http_status == 400
        and (exc.code or "").lower() == "invalidrequest"
        and not exc.inner_code
        and not _ABOUT_SETTINGS.search(exc.said or exc.message)
    )
