"""The one error classification (ground/outcomes.py): rows read in order, the first that
matches says what an error becomes; and every service's rows can be worded with what it
knows. The wording of each outcome is asserted where the services are tested."""

import importlib
import inspect
import re
import string
from pathlib import Path

import pytest

import pixstor_azure
from pixstor_azure.ground.errors import ImageRejected, Refused, ServiceError, Unavailable
from pixstor_azure.ground.outcomes import (
    IMAGE_REFUSED,
    KEY_REFUSED,
    OTHER_TIER,
    THROTTLED,
    Outcome,
    any_of,
    classify,
)
from pixstor_azure.ground.settings import Settings
from pixstor_azure.services import read, registry
from tests.wording import assert_says
from tests.wording import said as service_said

WORDS = {
    "endpoint_setting": "X_ENDPOINT",
    "key_setting": "X_KEY",
    "rate_setting": "X_REQUESTS_PER_SECOND",
    "resource": "the X resource",
    "kind_of_resource": "an X resource",
    "right_resource": "an X or Y resource",
}


def error(status=None, code=None, inner=None, said=None, detail=None, kind=ServiceError):
    message = f"X answered {status}" + (f": {said}" if said else "")
    return kind("X", message, status, code, detail, inner, said)


def test_the_first_row_that_matches_says_what_the_error_becomes():
    rows = (
        Outcome(Refused, "first {status}", status=frozenset({404}), codes="NotFound"),
        Outcome(ImageRejected, "second {status}", status=frozenset({404})),
    )
    found = classify(error(404, "NotFound", said="gone", detail='{"a": 1}'), rows, {})
    other = classify(error(404, "Elsewhere"), rows, {})

    assert type(found) is Refused and str(found) == "first 404"
    assert (found.http_status, found.code, found.said, found.detail) == (
        404,
        "NotFound",
        "gone",
        '{"a": 1}',
    )
    assert type(other) is ImageRejected and str(other) == "second 404"


def test_an_error_no_row_matches_stays_as_it_is():
    original = error(418, "Teapot")
    assert classify(original, (KEY_REFUSED, THROTTLED), WORDS) is original


def test_codes_match_the_code_or_the_inner_code_in_full():
    row = IMAGE_REFUSED._replace(codes=any_of({"InvalidImageSize", "NotSupportedImage"}))
    assert row.match(error(400, "InvalidRequest", "InvalidImageSize")) == {}
    assert row.match(error(400, "NotSupportedImage")) == {}
    assert row.match(error(400, "InvalidImageSizes")) is None  # in full, not a prefix


def test_a_row_may_need_an_inner_code_or_none():
    row = Outcome(ImageRejected, "{message}", codes="InvalidRequest", inner=False)
    assert row.match(error(400, "InvalidRequest")) == {}
    assert row.match(error(400, "InvalidRequest", "InvalidImageFormat")) is None


def test_the_pattern_reads_what_the_service_said_and_its_body_and_names_what_it_found():
    said = "The API is not supported with the current subscription key and pricing tier F0."
    by_words = classify(error(401, said=said), (OTHER_TIER, KEY_REFUSED), WORDS)
    in_body = classify(
        error(401, detail=f'{{"error": {{"message": "{said}"}}}}'), (OTHER_TIER,), WORDS
    )

    assert_says(by_words, OTHER_TIER, tier="F0", said=service_said(said), **WORDS)
    assert_says(in_body, OTHER_TIER, tier="F0", said="", **WORDS)


def test_a_reworded_error_keeps_its_class_when_the_row_names_none():
    busy = classify(error(429, said="Slow down", kind=Unavailable), (THROTTLED,), WORDS)
    assert type(busy) is Unavailable
    assert_says(busy, THROTTLED, message="X answered 429: Slow down", **WORDS)


def test_answered_is_the_errors_own_unless_the_row_says():
    picture = Outcome(ImageRejected, "{name}: the picture", status=frozenset({500}), answered=True)
    down = error(500, said="Error processing image")
    assert not down.answered  # a 5xx: no answer, by default

    assert classify(down, (picture,), {}).answered is True
    assert classify(error(400), (IMAGE_REFUSED,), {}).answered is True
    assert classify(down, (IMAGE_REFUSED,), {}).answered is False


def test_an_error_knows_whether_the_service_answered():
    assert ServiceError("X", "m", 404).answered
    assert not ServiceError("X", "m", 503).answered
    assert not ServiceError("X", "m").answered  # nothing came back
    assert ServiceError("X", "m", answered=True).answered  # an error found in a 200's body


# ------------------------------------------------------------------ every service's rows

KEY = "0123456789abcdef0123456789abcdef"
CLOUD = "https://contoso.cognitiveservices.azure.com"
SETUPS = {
    "classify-cloud": (
        "classify",
        {
            "CUSTOM_VISION_ENDPOINT": CLOUD,
            "CUSTOM_VISION_KEY": KEY,
            "CUSTOM_VISION_CLASSIFY_PROJECT": "2b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "CUSTOM_VISION_CLASSIFY_ITERATION": "Production",
        },
    ),
    "detect-container": (
        "detect",
        {
            "CUSTOM_VISION_DETECT_BACKEND": "container",
            "CUSTOM_VISION_DETECT_URL": "http://127.0.0.1:8080",
        },
    ),
    "classify-openai": (
        "classify",
        {
            "CUSTOM_VISION_CLASSIFY_BACKEND": "openai",
            "CUSTOM_VISION_CLASSIFY_CLASSES": "red, blue",
            "AZURE_OPENAI_ENDPOINT": "https://contoso.openai.azure.com",
            "AZURE_OPENAI_KEY": KEY,
            "AZURE_OPENAI_DEPLOYMENT": "vision-4o",
        },
    ),
    "vision-4.0": ("vision", {"AZURE_VISION_ENDPOINT": CLOUD, "AZURE_VISION_KEY": KEY}),
    "vision-3.2-and-read-3.2": (
        "vision",
        {"AZURE_VISION_ENDPOINT": CLOUD, "AZURE_VISION_KEY": KEY, "AZURE_VISION_API": "3.2"},
    ),
    "vision-openai-and-document-intelligence": (
        "vision",
        {
            "AZURE_VISION_API": "openai",
            "AZURE_OPENAI_ENDPOINT": "https://contoso.openai.azure.com",
            "AZURE_OPENAI_KEY": KEY,
            "AZURE_OPENAI_DEPLOYMENT": "vision-4o",
            "AZURE_VISION_READ_API": "document-intelligence",
            "AZURE_VISION_READ_ENDPOINT": "https://contoso-di.cognitiveservices.azure.com",
            "AZURE_VISION_READ_KEY": KEY,
        },
    ),
    "read-container-without-key": (
        "vision",
        {"AZURE_VISION_FEATURES": "read", "AZURE_VISION_READ_ENDPOINT": "http://127.0.0.1:5000"},
    ),
}


class Recording(dict):
    """An environment that notes every name looked up in it."""

    def __init__(self, values):
        super().__init__(values)
        self.asked = set()

    def get(self, name, default=None):
        self.asked.add(name)
        return super().get(name, default)


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_every_row_of_every_service_can_be_worded(setup):
    task, environ = SETUPS[setup]
    chosen = registry.backend(task, Settings(environ))
    rows = 0
    for part in chosen.parts():
        sample = error(400, "Code", said="said")
        for row in (*part.outcomes, *getattr(part, "polling_outcomes", ())):
            groups = dict.fromkeys(re.compile(row.pattern).groupindex, "G") if row.pattern else {}
            values = {"name": part.name, "status": 400, "message": "m", "words": "w", "said": ""}
            values.update(part.wording(sample))
            values.update(groups)
            assert row.words.format_map(values), (part.name, row.words)
            rows += 1
    assert rows >= 4


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_a_backend_reads_only_settings_it_declares(setup):
    task, environ = SETUPS[setup]
    recording = Recording(environ)
    chosen = registry.backend(task, Settings(recording))

    declared = {s.name for part in (chosen, *chosen.parts()) for s in part.reads}
    choosing = {s.name for s in registry.CHOSEN_BY.values()} | {"AZURE_VISION_FEATURES"}
    if task == "vision":  # whether a Read API reads the text is looked up every time
        choosing |= {s.name for s in read.Read.reads}
    service_settings = {n for n in recording.asked if not n.startswith("PIXSTOR_AZURE_")}
    assert service_settings - choosing <= declared
    assert declared & service_settings  # it read some of them


def raised_rows():
    """Every row a module of the product declares that matches nothing: raised by its code
    (``Outcome.error``), never found by a classification."""
    found = {}
    for package in ("ground", "http", "services"):
        folder = Path(pixstor_azure.__file__).parent / package
        for path in sorted(folder.glob("*.py")):
            module = importlib.import_module(f"pixstor_azure.{package}.{path.stem}")
            for name, value in vars(module).items():
                if isinstance(value, Outcome) and _matches_nothing(value):
                    found[f"{package}/{path.stem}.{name}"] = value
    return found


def _matches_nothing(row):
    return not (row.status or row.codes or row.pattern) and row.inner is None


def test_a_raised_row_names_no_field_that_error_takes_for_itself():
    # error(service, http_status, code, detail, inner_code, said, **values): a row naming
    # {said} would have its value taken as the error's own field, and fail when raised.
    own = set(inspect.signature(Outcome.error).parameters) - {"self", "values"}
    rows = raised_rows()
    assert "http/client.ANSWERED" in rows and "services/read.UNKNOWN_STATUS" in rows
    for where, row in rows.items():
        named = {field for _, field, _, _ in string.Formatter().parse(row.words) if field}
        assert not named & own, f"{where} names {sorted(named & own)}"
