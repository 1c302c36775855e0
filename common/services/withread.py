"""Two services answering for ``azurevision.py``: one for tags, caption and objects, a Read API
for the text (``AZURE_VISION_API=3.2``, or ``AZURE_VISION_READ_ENDPOINT`` set)."""

from typing import Any, Sequence, Tuple

from ..answers.answer import Answer
from .base import Analysis, Service


class WithRead(Service):
    """``analyzer`` (tags, caption, objects) and ``reader`` (the text, from a Read API).

    Its ``parts()`` are fetched, and cached, each on its own (``Service.find``); ``ask`` and
    ``parse`` ask both at once, for checks that call a backend (``doctor``).
    """

    def __init__(self, analyzer: Service, reader: Service) -> None:
        self.analyzer = analyzer
        self.reader = reader
        self.name = " and ".join(dict.fromkeys((analyzer.name, reader.name)))
        self.reads = tuple(dict.fromkeys(analyzer.reads + reader.reads))
        self.billed = analyzer.billed or reader.billed
        self.endpoint_setting = analyzer.endpoint_setting

    def parts(self) -> Tuple[Service, ...]:
        return (self.analyzer, self.reader)

    def identity(self) -> dict:
        return {
            "service": "vision",
            "analyze": self.analyzer.identity(),
            "read": self.reader.identity(),
        }

    def ask(self, path: str) -> Answer:
        got = [part.ask(path) for part in self.parts()]
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
        for part, got in zip(self.parts(), answer.body["parts"]):
            one = answer._replace(
                body=got["body"],
                sent=tuple(got["sent"]),
                display=tuple(got["display"]),
                model=got["model"],
            )
            found.append(part.parse(one))
        return self.merge(found)

    def merge(self, found: Sequence[Any]) -> Analysis:
        """What the analyzer found, with the text the reader read (any text of its own out)."""
        analysis, text = found
        analysis.text = list(text.text)
        return analysis
