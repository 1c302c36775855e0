"""Azure OpenAI for ``azureclassification.py`` (``CUSTOM_VISION_CLASSIFY_BACKEND=openai``):
the classes listed in ``CUSTOM_VISION_CLASSIFY_CLASSES`` that a GPT vision model sees in the
picture (see ``openai.py``), each with the probability it gave to naming it.
"""

import json
import logging
import math
import re
from typing import Any, Dict, List, Optional, Tuple

from ..answers.answer import Answer
from ..ground.errors import Problem
from ..ground.logonce import log_once
from ..ground.setting_registry import CLASSIFY_CLASSES, CLASSIFY_THRESHOLD, Setting
from ..ground.settings import Settings
from .base import Prediction, Task
from .openai import SERVICE, Chat, kind_of

log = logging.getLogger(__name__)

# OpenAI's structured-output limit on enum values in one schema.
MAX_CLASSES = 500
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')

# What is wrong with the list of classes.
NO_CLASS = Problem("lists no class")
CLASS_TWICE = Problem("lists {class_name!r} twice")
TOO_MANY_CLASSES = Problem("lists {count} classes, more than {most}")


class OpenAIClassify(Chat):
    """Classes chosen among ``CUSTOM_VISION_CLASSIFY_CLASSES``, for the classifier plugin.

    The answer is the list of listed classes that apply (an ``enum`` in the schema, so no
    other name can be written), empty for "none of these". A class's probability is the
    probability the model gave to writing its name there, from the token log-probabilities;
    ``CUSTOM_VISION_CLASSIFY_THRESHOLD`` applies to it. A threshold of 0 asks for no
    log-probabilities (for deployments that give none) and writes every class named.
    """

    task = "classify"
    schema_name = "image_classes"
    reads = (*Chat.reads, CLASSIFY_CLASSES, CLASSIFY_THRESHOLD)

    def __init__(self, task: Task, settings: Settings) -> None:
        super().__init__(settings)
        self.classes = listed_classes(settings, task.declared("CLASSES"))
        self.logprobs = settings.get(task.declared("THRESHOLD")) > 0

    def identity(self) -> dict:
        identity = super().identity()
        identity.update({"classes": "\n".join(self.classes), "logprobs": self.logprobs})
        return identity

    def request(self, data_url: str) -> dict:
        body = super().request(data_url)
        if self.logprobs:
            body["logprobs"] = True
        return body

    def instruction(self) -> str:
        return (
            "Which of these classes does the picture show: "
            + ", ".join(json.dumps(c, ensure_ascii=False) for c in self.classes)
            + "? List every class that clearly applies, the most evident first, and no other; "
            "an empty list when none of them applies."
        )

    def schema(self) -> dict:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["classes"],
            "properties": {
                "classes": {
                    "type": "array",
                    "description": "The classes that apply, most evident first; empty if none.",
                    "items": {"type": "string", "enum": list(self.classes)},
                }
            },
        }

    def read(self, body: Any) -> Tuple[List[str], str, Optional[list]]:
        data, text, tokens = self.message(body)
        named = data.get("classes")
        if not isinstance(named, list) or not all(isinstance(c, str) for c in named):
            raise self.off_schema(f"classes is {kind_of(named)}, not a list of strings")
        unknown = [c for c in named if c not in self.classes]
        if unknown:
            raise self.off_schema(f"{unknown[0]!r} is not in CUSTOM_VISION_CLASSIFY_CLASSES")
        return named, text, tokens

    def parse(self, answer: Answer) -> List[Prediction]:
        named, text, tokens = self.read(answer.body)
        probabilities = None
        if self.logprobs:
            probabilities = _class_probabilities(text, tokens, named)
            if probabilities is None and named:
                log_once(
                    log,
                    logging.WARNING,
                    f"{SERVICE} deployment {self.deployment} returned no usable "
                    "log-probabilities: every class it names is written, whatever "
                    "CUSTOM_VISION_CLASSIFY_THRESHOLD says (set it to 0 to stop asking for them)",
                )
        best: Dict[str, float] = {}
        for i, name in enumerate(named):
            probability = probabilities[i] if probabilities is not None else 1.0
            best[name] = max(probability, best.get(name, 0.0))
        return [Prediction(name, p) for name, p in best.items()]


def listed_classes(settings: Settings, setting: Setting) -> Tuple[str, ...]:
    """The classes of ``setting``: comma-separated, or one per line in the INI file."""
    name = setting.name
    value = settings.get(setting)
    classes = [c.strip() for line in value.splitlines() for c in line.split(",")]
    classes = [c for c in classes if c]
    if not classes:
        raise NO_CLASS.error(name)
    seen = set()
    for c in classes:
        if c.lower() in seen:
            raise CLASS_TWICE.error(name, class_name=c)
        seen.add(c.lower())
    if len(classes) > MAX_CLASSES:
        raise TOO_MANY_CLASSES.error(name, count=len(classes), most=MAX_CLASSES)
    return tuple(classes)


def _class_probabilities(text: str, tokens: Optional[list], named: List[str]) -> Optional[list]:
    """The probability of each class in ``named``, read from the tokens that spell it.

    ``text`` is the answer, ``{"classes": [...]}``: its first JSON string is the key, the
    others are the classes in order. None when the tokens do not spell the answer.
    """
    strings = _string_probabilities(text, tokens) if tokens else None
    if strings is None or [s for s, _ in strings[1:]] != named:
        return None
    return [p for _, p in strings[1:]]


def _string_probabilities(text: str, tokens: list) -> Optional[List[Tuple[str, float]]]:
    """Each JSON string in ``text``, with the probability the model gave to writing it.

    That is exp of the sum of the log-probabilities of the tokens that overlap the string's
    characters between its quotes. None when the tokens do not spell ``text`` exactly.
    """
    spans = []
    offset = 0
    try:
        for token in tokens:
            raw = token.get("bytes")
            raw = bytes(raw) if raw is not None else str(token["token"]).encode("utf-8")
            logprob = float(token["logprob"])
            if not logprob <= 0.0:  # NaN too
                return None
            spans.append((offset, offset + len(raw), logprob))
            offset += len(raw)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if offset != len(text.encode("utf-8")):
        return None
    found = []
    for match in _JSON_STRING.finditer(text):
        start = len(text[: match.start() + 1].encode("utf-8"))
        end = len(text[: match.end() - 1].encode("utf-8"))
        total = sum(lp for a, b, lp in spans if a < end and b > start)
        found.append((json.loads(match.group(0)), math.exp(total)))
    return found
