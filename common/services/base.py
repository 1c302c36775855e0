"""What every backend is: the contract ``Service``, and the results backends share.

A backend answers for a picture on behalf of a plugin: the Custom Vision cloud, an exported
model in its container or run here as ONNX, Azure AI Vision 4.0 or 3.2, a Read API, an Azure
OpenAI deployment. Each is a subclass of ``Service`` in a module of its own, registered once in
``registry.py``, which builds the one the settings choose. The answer path
(``answers/fetch.py``, ``answers/faults.py``) and the tool use backends through this contract
only.

The results: a Custom Vision backend's ``parse`` gives ``Prediction``\\ s for a ``Task``
(``CLASSIFY``, ``DETECT``), a Vision backend's an ``Analysis``.
"""

import abc
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..answers import fetch
from ..answers.answer import Answer, fresh
from ..ground.boxes import Box
from ..ground.errors import ServiceError
from ..ground.outcomes import OFF_SHAPE, Outcome, classify
from ..ground.setting_registry import CLASSIFY_MAX_TAGS, DETECT_MAX_BOXES, Setting, for_task
from ..ground.settings import Settings
from ..images import prepare


class Service(abc.ABC):
    """One backend, built from the settings (``registry.py``), shared by every thread.

    - ``name``: the service's name in messages and counts, e.g. "Custom Vision";
    - ``reads``: the settings it reads (a Custom Vision task's own: those of either task);
    - ``billed``: whether a call costs money (a model run on the node does not);
    - ``endpoint_setting``: the setting that names the host it calls (e.g.
      "CUSTOM_VISION_ENDPOINT"), or None when nothing leaves the process;
    - ``outcomes``: its rows of the error classification (``ground/outcomes.py``), first match
      wins; ``explain`` applies them, worded with ``wording``.
    """

    name = ""
    reads: Tuple[Setting, ...] = ()
    billed = True
    endpoint_setting: Optional[str] = None
    outcomes: Tuple[Outcome, ...] = ()

    @abc.abstractmethod
    def identity(self) -> dict:
        """Everything that changes what it answers for the same picture (endpoint host, API
        and api-version, features, language, project and iteration, model file digest, the long
        edge sent...), never a key: the answer cache's key and the holds' (``faults``)."""

    @abc.abstractmethod
    def ask(self, path: str) -> Answer:
        """Prepare the picture at ``path``, call, and return the raw answer, before any
        threshold. Raises ``ImageError``, ``ServiceError`` (``explain``\\ ed) or
        ``SettingsError``."""

    @abc.abstractmethod
    def parse(self, answer: Answer) -> Any:
        """What ``answer`` found, before thresholds (the caller applies today's settings, so
        that a kept answer gives today's fields)."""

    def check(self, answer: Answer) -> None:
        """Raise ``ServiceError`` (``answered``: the service did answer) unless ``answer`` is of
        the service's shape. The answer path checks every answer before it keeps one or uses a
        kept one (``answers/fetch.py``): an off-shape 200 (a gateway's maintenance page, a
        probability of 7) ends the file FATAL and is never kept. Here, the shape is what
        ``parse`` reads without an error; a backend adds what ``parse`` lets pass."""
        try:
            self.parse(answer)
        except ServiceError as exc:
            if type(exc) is not ServiceError:
                raise  # a kind of its own (a picture refused): it says what it is
            raise self.off_shape(exc.message) from None

    def off_shape(self, message: str) -> ServiceError:
        """The error of an answer not of the service's shape; ``message`` says how."""
        error = ServiceError(self.name, message, 200, answered=True)
        return classify(error, (OFF_SHAPE,), self.wording(error))

    def explain(self, error: ServiceError) -> ServiceError:
        """``error`` in words an administrator can act on: ``outcomes`` say what it is."""
        return classify(error, self.outcomes, self.wording(error))

    def wording(self, error: ServiceError) -> Dict[str, Any]:
        """What the words of its ``outcomes`` name besides the error's own fields."""
        return {"endpoint_setting": self.endpoint_setting}

    def picture(self, path: str) -> Any:
        """The picture at ``path`` as this process decodes it for every service (once,
        whichever asks first): a Pillow image, for a frame's signature
        (``answers/frames.py``). ImageError when it cannot be decoded."""
        edge = prepare.edge_settings(Settings.load())[0]
        return prepare.load(path, edge).image

    def places(self) -> bool:
        """Whether its answers say where things are (boxes): a frame of a sequence then reuses
        them only from a near-identical frame (``answers/frames.py``). From the identity: a
        detector's task, or Vision's objects among its features."""
        identity = self.identity()
        features = str(identity.get("features", "")).split(",")
        return identity.get("task") == "detect" or "objects" in features

    def parts(self) -> Tuple["Service", ...]:
        """The services that answer on their own for a picture, each fetched and cached on its
        own: itself, or the parts of a composite (Vision with a Read API)."""
        return (self,)

    def merge(self, found: Sequence[Any]) -> Any:
        """What the ``parse`` of each of ``parts()`` found, as one result."""
        (only,) = found
        return only

    def find(self, path: str) -> Any:
        """What it finds in the picture at ``path``, before thresholds: each part's answer
        fetched (from the answer cache, else asked) and parsed."""
        return self.merge([part.parse(fetch.fetch(part, path)) for part in self.parts()])


def answered(image: prepare.PreparedImage, body: Any, model: Optional[str] = None) -> Answer:
    """A fresh answer to the prepared ``image`` sent: its sizes, and the bytes it took."""
    return fresh(
        body,
        (image.width, image.height),
        (image.display_width, image.display_height),
        model=model,
        bytes_sent=len(image.data),
    )


class Task(NamedTuple):
    """What a Custom Vision plugin asks: classify or detect."""

    name: str  # the path segment and the settings' middle: "classify" or "detect"
    max_setting: Setting  # how many predictions are written at most

    def setting(self, what: str) -> str:
        """The name of the task's own setting ``what``: ``CUSTOM_VISION_<TASK>_<WHAT>``."""
        return self.declared(what).name

    def declared(self, what: str) -> Setting:
        return for_task(self.name, what)


CLASSIFY = Task("classify", CLASSIFY_MAX_TAGS)
DETECT = Task("detect", DETECT_MAX_BOXES)
TASKS = {task.name: task for task in (CLASSIFY, DETECT)}


class Prediction(NamedTuple):
    """A class a Custom Vision backend found, and where for a detector."""

    tag: str
    probability: float
    box: Optional[Box] = None


class Tag(NamedTuple):
    name: str
    confidence: float


class Analysis:
    """What a Vision backend found, in one shape. Object boxes are fractions of the image."""

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
