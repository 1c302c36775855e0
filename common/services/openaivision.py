"""Azure OpenAI for ``azurevision.py`` (``AZURE_VISION_API=openai``): tags, a caption, the
names of objects and the lines of text, from a GPT vision model (see ``openai.py``).

The model gives no confidence and places no box reliably: every tag it names is written, and
objects are written by name only.
"""

from typing import Any, Dict

from ..answers.answer import Answer
from ..ground import fields
from ..ground.setting_registry import (
    VISION_FEATURES,
    VISION_GENDER_NEUTRAL_CAPTION,
    VISION_LANGUAGE,
)
from ..ground.settings import Settings
from .base import Analysis, Tag
from .imageanalysis import language_of
from .openai import Chat, kind_of

# Our feature names -> the property of the schema that answers it.
_PROPERTIES = {"tags": "tags", "caption": "caption", "objects": "objects", "read": "text_lines"}
_SCHEMA_TEXT = {
    "caption": "One sentence describing the picture, as a caption.",
    "tags": (
        "Single words or short phrases for what the picture shows: things, scene, setting, "
        "activity, style. Most evident first; at most 30."
    ),
    "objects": (
        "Names of the distinct things in the picture a box could be drawn around (person, "
        "car, cup), most prominent first. Names only."
    ),
    "text_lines": (
        "Every line of legible text in the picture, in reading order, exactly as written. "
        "Empty when there is none."
    ),
}


class OpenAIVision(Chat):
    """Tags, caption, object names and text lines, for ``AZURE_VISION_API=openai``."""

    task = "vision"
    schema_name = "image_index"
    reads = (*Chat.reads, VISION_FEATURES, VISION_LANGUAGE, VISION_GENDER_NEUTRAL_CAPTION)

    def __init__(self, settings: Settings, text_elsewhere: bool = False) -> None:
        super().__init__(settings)
        # text_elsewhere: a Read API reads the text, so the model is not paid to read it too.
        self.features = tuple(
            f for f in settings.get(VISION_FEATURES) if f != "read" or not text_elsewhere
        )
        self.language = language_of(settings)
        self.gender_neutral = settings.get(VISION_GENDER_NEUTRAL_CAPTION)

    def identity(self) -> dict:
        identity = super().identity()
        identity.update(
            {
                "features": ",".join(self.features),
                "language": self.language,
                "gender-neutral": self.gender_neutral and "caption" in self.features,
            }
        )
        return identity

    def instruction(self) -> str:
        words = ["Index this picture: fill in every field of the answer as its description says."]
        if self.language.lower() != "en":
            words.append(
                "Write the caption, tags and object names in the language whose code is "
                f"{self.language}."
            )
        if self.gender_neutral and "caption" in self.features:
            words.append('In the caption, say "person" rather than "man" or "woman".')
        return " ".join(words)

    def schema(self) -> dict:
        properties: Dict[str, Any] = {}
        for feature in self.features:
            name = _PROPERTIES[feature]
            if name == "caption":
                properties[name] = {"type": "string", "description": _SCHEMA_TEXT[name]}
            else:
                properties[name] = {
                    "type": "array",
                    "description": _SCHEMA_TEXT[name],
                    "items": {"type": "string"},
                }
        return {
            "type": "object",
            "additionalProperties": False,
            "required": list(properties),
            "properties": properties,
        }

    def read(self, body: Any) -> Dict[str, Any]:
        data = self.message(body)[0]
        found = {}
        for feature in self.features:
            name = _PROPERTIES[feature]
            value = data.get(name)
            if name == "caption":
                if not isinstance(value, str):
                    raise self.off_schema(f"caption is {kind_of(value)}, not a string")
            elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.off_schema(f"{name} is {kind_of(value)}, not a list of strings")
            found[name] = value
        return found

    def parse(self, answer: Answer) -> Analysis:
        found = self.read(answer.body)
        # The model gives no confidence: every tag it names passes AZURE_VISION_TAG_THRESHOLD,
        # in its order, and AZURE_VISION_MAX_TAGS still applies.
        tags = fields.distinct([t.strip().lower() for t in found.get("tags", []) if t.strip()])
        names = fields.distinct([o.strip() for o in found.get("objects", []) if o.strip()])
        caption = found.get("caption", "").strip() or None  # an empty caption is no caption
        return Analysis(
            tags=[Tag(t, 1.0) for t in tags],
            caption=caption,
            text=[line.strip() for line in found.get("text_lines", []) if line.strip()],
            object_names=names,
        )
