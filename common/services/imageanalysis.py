"""Azure AI Vision's analyze call: generic tags, caption, objects and text for one image.

Two APIs give the same fields, two backends of ``AZURE_VISION_API``. Image Analysis 4.0
(``ImageAnalysis40``, the default) reads text and can make captions gender-neutral, but
captions only in some regions; Computer Vision v3.2 (``ComputerVision32``) captions in every
region and tags in many languages, but reads no text through ``analyze``: its text comes from
the Read API (``read.py``), as it does in every mode when ``AZURE_VISION_READ_ENDPOINT`` names a
Read resource or container. Either answer is read into one ``Analysis``.

A feature the resource's region does not offer (Azure says so with a 400) is left out of the
calls from then on, for every file: the picture is asked for again at once without it.
"""

import json
import logging
import re
import threading
from typing import Any, Dict, List, Optional, Set, Tuple
from urllib.parse import urlsplit

from ..answers import pacing
from ..answers.answer import Answer
from ..ground import runtime
from ..ground.boxes import Box
from ..ground.errors import Problem, Refused, ServiceError
from ..ground.logonce import log_once
from ..ground.outcomes import (
    IMAGE_REFUSED,
    KEY_REFUSED,
    OTHER_TIER,
    THROTTLED,
    UNEXPECTED,
    Outcome,
    any_of,
)
from ..ground.setting_registry import (
    VISION_API_VERSION,
    VISION_ENDPOINT,
    VISION_FEATURES,
    VISION_GENDER_NEUTRAL_CAPTION,
    VISION_KEY,
    VISION_LANGUAGE,
    VISION_REQUESTS_PER_SECOND,
    Setting,
)
from ..ground.settings import Settings
from ..http import client
from ..images import prepare
from .base import Analysis, Service, Tag, answered

log = logging.getLogger(__name__)

SERVICE = "Azure AI Vision"
API_40 = "4.0"
API_32 = "3.2"
FEATURES = VISION_FEATURES.choices  # tags, caption, objects, read
# v3.2 names of our features; "read" has none: v3.2 reads text only through its Read API.
_V32_NAMES = {"tags": "Tags", "caption": "Description", "objects": "Objects"}

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,4})?$")
_REGION = re.compile(r"not supported in (this|the|your) region", re.IGNORECASE)
_FEATURE_CODES = {"NotSupportedFeature", "NotSupportedVisualFeature"}
# What an answer of either API holds besides its results (keys compared in small letters).
_ALWAYS = ("modelversion", "metadata", "requestid")
# Refusals of this one image; other files may pass. InvalidImageDimension is the Read API's
# name for a size problem, accepted in case analyze ever uses it.
_IMAGE_CODES = {
    "InvalidImageFormat",
    "InvalidImageSize",
    "NotSupportedImage",
    "InvalidImageDimension",
}
# Words of a 400 about the request as set up rather than the picture sent.
_ABOUT_SETTINGS = (
    r"(?i)api-?version|api version|feature|language|query|parameter|subscription|pricing tier|"
    r"region|model|content-?type|endpoint|deployment"
)
_AS_SET_UP = (
    "{name} refused the request as set up (400): {words}: check AZURE_VISION_API, "
    "AZURE_VISION_API_VERSION and AZURE_VISION_FEATURES"
)

# What holds for every file (the key, the endpoint, the language, the features) is
# ``Refused``: logged once, and files fail without asking until it is asked again. A 400 that
# names no setting problem is about this image: ``ImageRejected``. Each API's rows: these,
# then its own, then ``_LAST``.
_FIRST = (
    OTHER_TIER,
    KEY_REFUSED,
    IMAGE_REFUSED._replace(codes=any_of(_IMAGE_CODES)),
    # A 400 InvalidRequest without an inner code: the real service answers so when it refuses
    # one picture, unless its words name a setting problem.
    Outcome(
        Refused,
        _AS_SET_UP,
        status=frozenset({400}),
        codes="(?i)invalidrequest",
        inner=False,
        pattern=_ABOUT_SETTINGS,
    ),
    IMAGE_REFUSED._replace(status=frozenset({400}), codes="(?i)invalidrequest", inner=False),
)
FEATURE_NOT_OFFERED = Outcome(
    Refused,
    "{name} {api} does not offer a feature asked for: check AZURE_VISION_FEATURES ({message})",
    codes=any_of(_FEATURE_CODES),
)
LANGUAGE_40 = Outcome(
    Refused,
    "{name} {api} does not offer language {language!r} for {features}: check "
    "AZURE_VISION_LANGUAGE (4.0 gives only tags in other languages){said}",
    codes="NotSupportedLanguage",
)
LANGUAGE_32 = LANGUAGE_40._replace(
    words="{name} {api} does not offer language {language!r} for {features}: check "
    "AZURE_VISION_LANGUAGE{said}"
)
NO_ANALYZE_40 = Outcome(
    Refused,
    "{name} has no Image Analysis {api_version} at AZURE_VISION_ENDPOINT (check it is the "
    "endpoint of an Azure AI Vision resource, and AZURE_VISION_API_VERSION){said}",
    status=frozenset({404}),
)
NO_ANALYZE_32 = Outcome(
    Refused,
    "{name} has no v3.2 analyze at AZURE_VISION_ENDPOINT (check it is the endpoint of an Azure "
    "AI Vision resource){said}",
    status=frozenset({404}),
)
_LAST = (
    Outcome(Refused, _AS_SET_UP, status=frozenset({400})),  # the same for every file
    THROTTLED,
)

# What is wrong with AZURE_VISION_FEATURES, AZURE_VISION_API_VERSION, AZURE_VISION_LANGUAGE.
FEATURES_NOT_IN_REGION = Problem(
    "asks only for {features}, which the resource at AZURE_VISION_ENDPOINT does not offer in "
    "its region{hint}"
)
ASK_32_FOR_CAPTIONS = Problem(" (set AZURE_VISION_API=3.2 for captions)")  # 4.0's hint
ONLY_READ_ON_32 = Problem(
    "asks only for read, which AZURE_VISION_API=3.2 reads with the Read API, not with analyze"
)
API_VERSION_NOT_A_DATE = Problem("must be a date such as 2024-02-01; the value set is not one")
LANGUAGE_NOT_A_CODE = Problem("must be a language code such as en or es; the value set is not one")


class Analyze(Service):
    """The analyze call of an Azure AI Vision resource, either API."""

    name = SERVICE
    endpoint_setting = VISION_ENDPOINT.name
    api = ""
    limits = prepare.VISION_40
    reads: Tuple[Setting, ...] = (
        VISION_LANGUAGE,
        VISION_FEATURES,
        VISION_GENDER_NEUTRAL_CAPTION,
        VISION_ENDPOINT,
        VISION_KEY,
        VISION_REQUESTS_PER_SECOND,
    )

    def __init__(self, settings: Settings, text_elsewhere: bool = False) -> None:
        """``text_elsewhere``: a Read API reads the text, so the analyze call does not ask for
        ``read`` (3.2's never does: it has no such feature)."""
        self.api_version = self.read_api_version(settings)
        self.language = language_of(settings)
        asked = settings.get(VISION_FEATURES)
        self.gender_neutral = settings.get(VISION_GENDER_NEUTRAL_CAPTION)
        self.features = self.offered(asked, text_elsewhere)
        self.max_edge, self.min_edge = prepare.edge_settings(settings)
        self.endpoint = settings.get(VISION_ENDPOINT)
        self.key = settings.get(VISION_KEY)
        self.http = pacing.http_config(settings, VISION_REQUESTS_PER_SECOND)

    def read_api_version(self, settings: Settings) -> str:
        return ""

    def offered(self, asked: List[str], text_elsewhere: bool) -> Tuple[str, ...]:
        """Ours of the features ``asked``, those this API is asked for."""
        return tuple(f for f in asked if f != "read" or not text_elsewhere)

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
                    raise self.explain(exc) from None
                self.turn_down(refused, exc)
                continue  # the same image at once, without that feature
            _report_frame(body, image.width, image.height)  # once, not each time it is read
            model = body.get("modelVersion") if isinstance(body, dict) else None
            return answered(image, body, model=str(model) if model else None)

    def parse(self, answer: Answer) -> Analysis:
        return parse(answer.body, self.api, list(self.features), *answer.sent)

    def check(self, answer: Answer) -> None:
        """An answer holds its model, the picture's size or a result of a feature asked: a
        gateway's maintenance page (``{"status": "maintenance"}``) holds none, and would
        otherwise read as "nothing found"."""
        body = answer.body
        known = set(_ALWAYS) | {self.result_key(f) for f in self.features}
        if not isinstance(body, dict) or not known & {str(k).lower() for k in body}:
            sample = json.dumps(body, default=str)[:120]
            what = f"none of {self.api}'s results: {sample}"
            raise self.off_shape(UNEXPECTED.say(SERVICE, what=what))
        super().check(answer)

    def result_key(self, feature: str) -> str:
        """The key of the answer that holds ``feature``'s result, in small letters."""
        raise NotImplementedError

    def wording(self, error: ServiceError) -> Dict[str, Any]:
        return dict(
            super().wording(error),
            key_setting=VISION_KEY.name,
            rate_setting=VISION_REQUESTS_PER_SECOND.name,
            resource="the same Azure AI Vision resource",
            kind_of_resource="an Azure AI Vision resource",
            right_resource="a Computer Vision or AI services resource",
            api=self.api,
            api_version=self.api_version,
            language=self.language,
            features=", ".join(self.features),
        )

    def wanted(self) -> List[str]:
        """The features to ask for now: those asked for, less any the region turned down."""
        gone = set(self.turned_down())
        features = [f for f in self.features if f not in gone]
        if not features:
            hint = ASK_32_FOR_CAPTIONS.words if self.api == API_40 else ""
            raise FEATURES_NOT_IN_REGION.error(
                VISION_FEATURES.name, features=", ".join(self.features), hint=hint
            )
        return features

    def turned_down(self) -> List[str]:
        """The features the resource's region turned down so far in this process."""
        down = _turned_down_features()
        with down.lock:
            return sorted(down.features.get((self.endpoint, self.api), ()))

    def turn_down(self, feature: str, exc: ServiceError) -> None:
        """Leave ``feature`` out from now on: the resource's region does not offer it."""
        down = _turned_down_features()
        with down.lock:
            gone = down.features.setdefault((self.endpoint, self.api), set())
            first = feature not in gone
            gone.add(feature)
        if first:
            advice = f"remove {feature} from AZURE_VISION_FEATURES to stop asking"
            if feature == "caption" and self.api == API_40:
                advice = "set AZURE_VISION_API=3.2 for captions in every region, or " + advice
            log.warning(
                "%s at %s does not offer %s in its region: carrying on without it for every "
                "file; %s (%s)",
                SERVICE,
                self.endpoint,
                feature,
                advice,
                exc.message,
            )

    def request(self, features: List[str]) -> Tuple[str, Dict[str, str]]:
        """The URL and query of an analyze call asking for ``features``."""
        raise NotImplementedError


class ImageAnalysis40(Analyze):
    """Image Analysis 4.0: ``/computervision/imageanalysis:analyze``."""

    api = API_40
    limits = prepare.VISION_40
    reads = (VISION_API_VERSION, *Analyze.reads)
    outcomes = (*_FIRST, LANGUAGE_40, FEATURE_NOT_OFFERED, NO_ANALYZE_40, *_LAST)

    def read_api_version(self, settings: Settings) -> str:
        api_version = settings.get(VISION_API_VERSION)
        if not _API_VERSION.match(api_version):
            raise API_VERSION_NOT_A_DATE.error(VISION_API_VERSION.name)
        return api_version

    def result_key(self, feature: str) -> str:
        return feature + "result"  # tagsResult, captionResult...

    def request(self, features: List[str]) -> Tuple[str, Dict[str, str]]:
        params = {
            "api-version": self.api_version,
            "features": ",".join(features),
            "language": self.language,
        }
        if "caption" in features:
            params["gender-neutral-caption"] = "true" if self.gender_neutral else "false"
        return f"{self.endpoint}/computervision/imageanalysis:analyze", params


class ComputerVision32(Analyze):
    """Computer Vision v3.2: ``/vision/v3.2/analyze``, which reads no text."""

    api = API_32
    limits = prepare.VISION_32
    outcomes = (*_FIRST, LANGUAGE_32, FEATURE_NOT_OFFERED, NO_ANALYZE_32, *_LAST)

    def offered(self, asked: List[str], text_elsewhere: bool) -> Tuple[str, ...]:
        features = tuple(f for f in asked if f in _V32_NAMES)
        if not features:
            raise ONLY_READ_ON_32.error(VISION_FEATURES.name)
        if self.gender_neutral:
            log_once(
                log,
                logging.DEBUG,
                "AZURE_VISION_GENDER_NEUTRAL_CAPTION applies to 4.0 only: 3.2 ignores it",
            )
        return features

    def result_key(self, feature: str) -> str:
        return _V32_NAMES[feature].lower()  # tags, description, objects

    def request(self, features: List[str]) -> Tuple[str, Dict[str, str]]:
        params = {
            "visualFeatures": ",".join(_V32_NAMES[f] for f in features),
            "language": self.language,
        }
        return f"{self.endpoint}/vision/v3.2/analyze", params


class TurnedDown:
    """Features a resource's region turned down, per (endpoint, API), for the process's life."""

    def __init__(self) -> None:
        self.features = {}  # type: Dict[Tuple[str, str], Set[str]]
        self.lock = threading.Lock()


def _turned_down_features() -> TurnedDown:
    return runtime.current().get(TurnedDown)


def language_of(settings: Settings) -> str:
    """``AZURE_VISION_LANGUAGE``, checked: the language tags, captions and names are in."""
    language = settings.get(VISION_LANGUAGE)
    if not _LANGUAGE.match(language):
        raise LANGUAGE_NOT_A_CODE.error(VISION_LANGUAGE.name)
    return language


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
        raise UNEXPECTED.error(SERVICE, what=f"{type(exc).__name__}: {exc}") from None
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
        found.caption_confidence = _confidence(caption.get("confidence") or 0.0, "the caption")
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
            found.caption_confidence = _confidence(best.get("confidence") or 0.0, "the caption")
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
    name = str(item[name_key])
    return Tag(name, _confidence(item["confidence"], repr(name)))


def _confidence(value: Any, what: str) -> float:
    """A confidence, in 0..1 as the API says (NaN and Infinity, which are not JSON, too)."""
    confidence = float(value)
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence {confidence} of {what} is not in 0..1")
    return confidence


def _box(tag: Tag, rectangle: Any, width: int, height: int) -> Box:
    r = {k: float(v) for k, v in _keys(rectangle).items() if k in ("x", "y", "w", "h")}
    return Box.from_pixels(tag.name, tag.confidence, r["x"], r["y"], r["w"], r["h"], width, height)


def _frame(answer: dict, width: int, height: int) -> Tuple[int, int]:
    """The size of the image the boxes are on: the service's own word when it gives one.

    It should be the size we sent; when it is not, the boxes are on the service's frame, so
    that is the one to divide by, and the mismatch is worth a warning (``_report_frame``).
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
    return seen


def _report_frame(body: Any, width: int, height: int) -> None:
    """A warning when a fresh answer says it analysed another size than was sent."""
    seen = _frame(_keys(body), width, height) if isinstance(body, dict) else (width, height)
    if seen != (width, height):
        log.warning(
            "%s says it analysed a %dx%d px image, but %dx%d px was sent: boxes are read on "
            "the service's size",
            SERVICE,
            *seen,
            width,
            height,
        )


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
