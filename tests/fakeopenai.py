"""Azure OpenAI chat completions for FakeAzure: ``FakeAzure().mount("/openai/", FakeOpenAI())``.

The classic deployments path, as docs/retirements.md, "Azure OpenAI chat completions with an
image" and the 2024-10-21 inference spec describe it::

    POST /openai/deployments/{deployment}/chat/completions?api-version=2024-10-21
    api-key: <key>                    (FakeAzure's key check: 401 with the gateway's body)
    Content-Type: application/json

* another path, or an api-version it does not know: 404 "Resource not found"; a deployment it
  has not got: 404 DeploymentNotFound with the service's words;
* ``json_schema`` before 2024-08-01-preview, or on a model without structured outputs, and an
  image on a model without vision: 400 with the service's words;
* rate limiting (``FakeAzure(tps=...)``): 429 with the service's message, ``retry-after`` and
  ``retry-after-ms``.

Stricter than the service, so that a test proves the request is what this project means to
send (400 with a message starting "FakeOpenAI:"): ``response_format`` must be a *strict*
``json_schema`` in which every object has ``additionalProperties: false`` and lists every
property in ``required``, with no keyword structured outputs refuse (minItems, pattern...);
the user message must hold one ``image_url`` part whose url is ``data:image/jpeg;base64,...``
of a real JPEG (not PNG, not MPO), with ``detail`` low, high or auto.

It answers from the picture's colours, as the rest of FakeAzure does:

* a vision schema (``caption``, ``tags``, ``objects``, ``text_lines``, whichever are asked):
  the caption Image Analysis 4.0 gives; tags = the colours present, the first capitalised as
  a model might write it ("Blue"), most present first, then "abstract"; objects =
  "<colour> box" for each colour box covering 1% of the picture or more; text_lines =
  ``FakeAzure.read_lines``;
* a classes schema (``classes``, an array of an ``enum``): each listed class whose name holds
  a colour word covering at least 5% of the picture, most present first. With ``logprobs``
  the answer's tokens come with log-probabilities: the first token of such a class carries
  log(min(0.99, 0.5 + fraction)), every other token 0 (certain).

``usage``: prompt tokens = the image's tokens by the documented rules for gpt-4o (Azure
OpenAI overview, "Image input tokens"): low detail 85; high (and auto): fit in 2048x2048,
then the shortest side to 768 if longer, 170 per 512x512 tile (partial tiles count) + 85;
plus the text sent (system, instruction, schema) at one token per 4 characters, rounded up.
Completion tokens = the answer's tokens. With ``max_tokens`` under that count, the answer is
cut there and ``finish_reason`` is "length", as the service does.

``misbehave(kind, content=None)`` queues how the next well-formed request is answered:
"refusal", "content_filter" (finish_reason content_filter, no content), "prompt_filter" (400
content_filter, innererror ResponsibleAIPolicyViolation), "no_logprobs", or "content" (this
exact content string, as if the model wrote it).
"""

import base64
import binascii
import collections
import json
import math
import re
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from tests.fakeazure import COLOURS, Reply, _analyse, _decode

API_VERSIONS = frozenset(
    {
        "2024-02-01",
        "2024-06-01",
        "2024-10-21",
        "2024-08-01-preview",
        "2024-09-01-preview",
        "2024-10-01-preview",
        "2024-12-01-preview",
        "2025-01-01-preview",
        "2025-04-01-preview",
    }
)
SCHEMA_SINCE = "2024-08-01"  # json_schema needs 2024-08-01-preview or later
# Models (as a deployment names them) with structured outputs, and with vision.
SCHEMA_MODELS = ("gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "gpt-4o-mini", "gpt-4.1")
VISION_MODELS = ("gpt-4o", "gpt-4-turbo", "gpt-4.1")
DEFAULT_DEPLOYMENTS = {"vision-4o": "gpt-4o-2024-08-06"}

_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions/?$", re.IGNORECASE)
_DATA_URL = re.compile(r"^data:image/jpeg;base64,([A-Za-z0-9+/=]+)$")
_TOKEN = re.compile(r" ?[A-Za-z]+| ?\d+|\s+|[^\sA-Za-z\d]+")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_REFUSED_KEYWORDS = frozenset(
    {
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "uniqueItems",
        "patternProperties",
        "minProperties",
        "maxProperties",
    }
)
FILTERED_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
NOT_FOUND_MESSAGE = (
    "The API deployment for this resource does not exist. If you created the deployment "
    "within the last 5 minutes, please wait a moment and try again."
)
RATE_MESSAGE = (
    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {version} "
    "have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after "
    "{seconds} seconds. Please contact Azure support service if you would like to further "
    "increase the default rate limit."
)
REFUSAL = "I'm sorry, I can't help with that."


def image_tokens(width: int, height: int, detail: str) -> int:
    """The tokens gpt-4o bills for a picture of this size, by the documented rules."""
    if detail == "low":
        return 85
    scale = min(1.0, 2048.0 / max(width, height))
    w, h = width * scale, height * scale
    if min(w, h) > 768:
        shrink = 768.0 / min(w, h)
        w, h = w * shrink, h * shrink
    tiles = math.ceil(round(w, 6) / 512) * math.ceil(round(h, 6) / 512)
    return 170 * tiles + 85


def tokens_of(text: str) -> List[str]:
    """The fake's tokenizer: words with their leading space, numbers, runs of punctuation."""
    return _TOKEN.findall(text)


def _error(status: int, message: str, code: Optional[str] = None, **more: Any) -> Reply:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    error.update(more)
    return Reply(status, {"error": error})


def _fake(message: str) -> Reply:
    """A refusal of the fake's own making: the request is not what the project should send."""
    return _error(400, "FakeOpenAI: " + message)


def _filter_results(filtered: Optional[str] = None) -> dict:
    results = {c: {"filtered": False, "severity": "safe"} for c in _CATEGORIES}
    if filtered:
        results[filtered] = {"filtered": True, "severity": "high"}
    return results


_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


class FakeOpenAI:
    """The API mounted under "/openai/". ``bodies`` holds every request's parsed JSON body."""

    bucket = "openai"

    def __init__(self, deployments: Optional[Dict[str, str]] = None) -> None:
        self.deployments = dict(DEFAULT_DEPLOYMENTS if deployments is None else deployments)
        self.bodies: List[Any] = []
        self._queue: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._counter = 0

    def misbehave(self, kind: str, content: Optional[str] = None) -> None:
        kinds = ("refusal", "content_filter", "prompt_filter", "no_logprobs", "content")
        if kind not in kinds:
            raise ValueError(f"kind must be one of {kinds}, not {kind!r}")
        with self._lock:
            self._queue.append((kind, content))

    # ------------------------------------------------------------------ the request

    def handle(self, fake: Any, request: Any, raw: bytes, img: Any) -> dict:
        match = _PATH.match(request.path)
        if request.method != "POST" or not match:
            raise Reply(404, {"error": {"code": "404", "message": "Resource not found"}})
        fake._check_key(request.headers, "api-key")
        version = request.query.get("api-version", "")
        if version not in API_VERSIONS:
            raise Reply(404, {"error": {"code": "404", "message": "Resource not found"}})
        model = self.deployments.get(match.group(1))
        if model is None:
            raise Reply(
                404, {"error": {"code": "DeploymentNotFound", "message": NOT_FOUND_MESSAGE}}
            )
        wait = fake._take_token(self.bucket)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise Reply(
                429,
                {
                    "error": {
                        "code": "429",
                        "message": RATE_MESSAGE.format(version=version, seconds=seconds),
                    }
                },
                {"retry-after": str(seconds), "retry-after-ms": str(max(1, round(wait * 1000)))},
            )
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            raise _fake("the body must be sent as application/json")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _error(400, "We could not parse the JSON body of your request.") from None
        with self._lock:
            self.bodies.append(body)
            misbehaviour = self._queue.popleft() if self._queue else (None, None)
        if not isinstance(body, dict):
            raise _error(400, "We could not parse the JSON body of your request.")
        schema_name, schema = self._schema(body, version, model)
        picture, detail = self._picture(body, model)
        return self._answer(fake, body, model, schema_name, schema, picture, detail, misbehaviour)

    def _schema(self, body: dict, version: str, model: str) -> Tuple[str, dict]:
        response_format = body.get("response_format")
        if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
            raise _fake("response_format must be a json_schema")
        if version[:10] < SCHEMA_SINCE:
            raise _error(
                400,
                "response_format value as json_schema is enabled only for api versions "
                "2024-08-01-preview and later",
            )
        if not model.startswith(SCHEMA_MODELS):
            raise _error(
                400,
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
                "with this model.",
                param="response_format",
            )
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or spec.get("strict") is not True:
            raise _fake("json_schema must be strict")
        name, schema = spec.get("name"), spec.get("schema")
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_-]{1,64}$", name):
            raise _error(400, "Invalid 'response_format.json_schema.name'.")
        problems = _strict_problems(schema, "()")
        if problems:
            raise _error(
                400,
                f"Invalid schema for response_format '{name}': {problems[0]}",
                param="response_format",
            )
        return name, schema

    def _picture(self, body: dict, model: str) -> Tuple[Any, str]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _error(400, "'messages' is a required property")
        parts = [
            part
            for message in messages
            if isinstance(message, dict) and message.get("role") == "user"
            for part in (message.get("content") if isinstance(message.get("content"), list) else [])
            if isinstance(part, dict) and part.get("type") == "image_url"
        ]
        if len(parts) != 1:
            raise _fake(f"one image_url part in the user message, not {len(parts)}")
        if not model.startswith(VISION_MODELS):
            raise _error(
                400,
                "Invalid content type. image_url is only supported by certain models.",
                param="messages",
            )
        image_url = parts[0].get("image_url") or {}
        detail = image_url.get("detail", "auto")
        if detail not in ("low", "high", "auto"):
            raise _error(
                400, f"Invalid value: '{detail}'. Supported values are: 'low', 'high', and 'auto'."
            )
        found = _DATA_URL.match(str(image_url.get("url", "")))
        if not found:
            raise _fake("the image must be a data:image/jpeg;base64 URL")
        try:
            data = base64.b64decode(found.group(1), validate=True)
        except (binascii.Error, ValueError):
            raise _error(400, "Invalid image data.", "BadRequest") from None
        picture = _decode(data)
        if picture.format != "JPEG" or not picture.decodable:
            raise _fake(f"the data URL says image/jpeg but holds {picture.format or 'no image'}")
        return picture, detail

    # ------------------------------------------------------------------ the answer

    def _answer(
        self,
        fake: Any,
        body: dict,
        model: str,
        schema_name: str,
        schema: dict,
        picture: Any,
        detail: str,
        misbehaviour: Tuple[Optional[str], Optional[str]],
    ) -> dict:
        kind, forced = misbehaviour
        if kind == "prompt_filter":
            raise Reply(
                400,
                {
                    "error": {
                        "message": FILTERED_MESSAGE,
                        "type": None,
                        "param": "prompt",
                        "code": "content_filter",
                        "status": 400,
                        "innererror": {
                            "code": "ResponsibleAIPolicyViolation",
                            "content_filter_result": _filter_results("violence"),
                        },
                    }
                },
            )
        analysis = _analyse(picture)
        properties = schema.get("properties") or {}
        chosen: List[str] = []
        if "classes" in properties:
            chosen = self._classes(analysis, properties["classes"]["items"]["enum"])
            content = json.dumps({"classes": chosen})
        else:
            content = json.dumps(self._index(fake, analysis, properties))
        if kind == "content":
            content, chosen = forced or "", []
        prompt = image_tokens(picture.size[0], picture.size[1], detail) + _text_tokens(body)
        finish, refusal, filtered = "stop", None, None
        tokens = tokens_of(content)
        if kind == "refusal":
            content, refusal, tokens = None, REFUSAL, tokens_of(REFUSAL)
        elif kind == "content_filter":
            content, finish, filtered = None, "content_filter", "violence"
        max_tokens = body.get("max_tokens")
        if content is not None and isinstance(max_tokens, int) and len(tokens) > max_tokens:
            tokens = tokens[:max_tokens]
            content, finish = "".join(tokens), "length"
        logprobs = None
        if body.get("logprobs") is True and kind != "no_logprobs" and content is not None:
            logprobs = {"content": _logprobs(tokens, content, chosen, analysis), "refusal": None}
        with self._lock:
            self._counter += 1
            number = self._counter
        return {
            "choices": [
                {
                    "content_filter_results": _filter_results(filtered),
                    "finish_reason": finish,
                    "index": 0,
                    "logprobs": logprobs,
                    "message": {"content": content, "refusal": refusal, "role": "assistant"},
                }
            ],
            "created": int(time.time()),
            "id": f"chatcmpl-FAKE{number:020d}",
            "model": model,
            "object": "chat.completion",
            "prompt_filter_results": [
                {"prompt_index": 0, "content_filter_results": _filter_results()}
            ],
            "system_fingerprint": "fp_fake00001",
            "usage": {
                "completion_tokens": len(tokens),
                "completion_tokens_details": {"reasoning_tokens": 0},
                "prompt_tokens": prompt,
                "prompt_tokens_details": {"cached_tokens": 0},
                "total_tokens": prompt + len(tokens),
            },
        }

    @staticmethod
    def _classes(analysis: Any, listed: List[str]) -> List[str]:
        def fraction(name: str) -> float:
            words = set(re.findall(r"[a-z]+", name.lower()))
            return max([analysis.fractions[c] for c in COLOURS if c in words] or [0.0])

        chosen = [c for c in listed if fraction(c) >= 0.05]
        return sorted(chosen, key=lambda c: -fraction(c))

    @staticmethod
    def _index(fake: Any, analysis: Any, properties: dict) -> dict:
        answer: Dict[str, Any] = {}
        present = sorted(
            (c for c in COLOURS if analysis.fractions[c] > 0), key=lambda c: -analysis.fractions[c]
        )
        for name in properties:
            if name == "caption":
                answer[name] = analysis.caption()
            elif name == "tags":
                tags = [*present, "abstract"]
                answer[name] = [tags[0].capitalize(), *tags[1:]]
            elif name == "objects":
                answer[name] = [
                    f"{colour} box"
                    for colour, box in analysis.boxes.items()
                    if box[2] * box[3] >= 0.01
                ]
            elif name == "text_lines":
                answer[name] = list(fake.read_lines)
            else:
                answer[name] = None  # a schema this fake does not know: null breaks it
        return answer


def _strict_problems(schema: Any, where: str) -> List[str]:
    """Why a strict schema would be refused, in the service's words where they are known."""
    if not isinstance(schema, dict):
        return [f"In context={where}, schema must be a JSON Schema of 'type: \"object\"'."]
    problems = [
        f"In context={where}, '{keyword}' is not permitted."
        for keyword in sorted(_REFUSED_KEYWORDS & set(schema))
    ]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            problems.append(f"In context={where}, 'properties' is required.")
            properties = {}
        if schema.get("additionalProperties") is not False:
            problems.append(
                f"In context={where}, 'additionalProperties' is required to be supplied and to "
                "be false."
            )
        missing = [p for p in properties if p not in (schema.get("required") or [])]
        if missing or not isinstance(schema.get("required"), list):
            problems.append(
                f"In context={where}, 'required' is required to be supplied and to be an array "
                f"including every key in properties. Missing '{(missing or ['?'])[0]}'."
            )
        for name, child in properties.items():
            problems.extend(_strict_problems(child, f"('properties', '{name}')"))
    elif kind == "array":
        problems.extend(_strict_problems(schema.get("items"), f"{where}, 'items'"))
    elif kind not in ("string", "number", "integer", "boolean", "null"):
        problems.append(f"In context={where}, schema must have a 'type' key.")
    if "enum" in schema:
        enum = schema["enum"]
        if not isinstance(enum, list) or not enum or not all(isinstance(v, str) for v in enum):
            problems.append(f"In context={where}, 'enum' must be a non-empty array of strings.")
    return problems


def _text_tokens(body: dict) -> int:
    """The text a request sends, at one token per 4 characters (rounded up)."""
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(
                len(p.get("text", ""))
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
    chars += len(json.dumps(body.get("response_format") or {}))
    return math.ceil(chars / 4)


def _logprobs(tokens: List[str], content: str, chosen: List[str], analysis: Any) -> List[dict]:
    """The answer's tokens with log-probabilities: a class's first token carries its doubt."""
    starts: Dict[int, float] = {}
    for i, match in enumerate(list(_STRING.finditer(content))[1:]):
        if i < len(chosen):
            words = set(re.findall(r"[a-z]+", chosen[i].lower()))
            fraction = max([analysis.fractions[c] for c in COLOURS if c in words] or [0.0])
            starts[match.start() + 1] = math.log(min(0.99, 0.5 + fraction))
    out = []
    offset = 0
    for token in tokens:
        end = offset + len(token)
        logprob = 0.0
        for start in list(starts):
            if offset <= start < end:
                logprob = starts.pop(start)
                break
        out.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode("utf-8")),
                "top_logprobs": [],
            }
        )
        offset = end
    return out
