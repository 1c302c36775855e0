"""What a service's error means: one classification, a table of outcomes read in order.

Each service lists its rows next to its code (``services/*.py``, its ``outcomes``): the shared
ones below, completed with its own nouns, and its own. The first row that matches the error
says what it becomes; with none, the error stays as it is. A row matches on any of:

- ``status``: the HTTP statuses it is for;
- ``codes``: a pattern the service's error code or inner code matches in full;
- ``pattern``: a pattern found in what the service said (its message, else ours, then the raw
  body); ``inner``: True or False when the row needs an inner code, or none.

and says:

- ``kind``: the error it becomes. ``Refused`` holds for every file (logged once, files held
  back until the service is asked again); ``ImageRejected`` is about this one picture (the file
  is skipped, others may pass); None keeps the error's own class, reworded.
- ``words``: the message, a ``str.format`` template over the error's fields (``name``,
  ``status``, ``message``, ``words``: what the service said, else ``message``; ``said``:
  " (the service said: ...)" or nothing), the pattern's named groups, and what the service
  adds (``Service.wording``: its settings, its project, its deployment...).
- ``answered``: True when the row tells an answer of the service whatever the status (a
  container's 500 about the picture); None keeps the error's own (``ServiceError.answered``).

What a service finds wrong in a 200 itself (a refusal in the answer, an answer cut off) is a
row too, raised with ``Outcome.error``: every wording a user reads about a service is a row.
"""

import re
from typing import Any, Dict, FrozenSet, Iterable, Mapping, NamedTuple, Optional, Sequence

from .errors import ImageRejected, Refused, ServiceError


class Outcome(NamedTuple):
    """One row of the table: which errors it is for, and what they become."""

    kind: Optional[type]
    words: str
    status: FrozenSet[int] = frozenset()
    codes: str = ""
    pattern: str = ""
    inner: Optional[bool] = None
    answered: Optional[bool] = None

    def match(self, error: ServiceError) -> Optional[Dict[str, str]]:
        """The named groups of ``pattern`` when ``error`` is one of this row's, else None."""
        if self.status and error.http_status not in self.status:
            return None
        if self.inner is not None and bool(error.inner_code) != self.inner:
            return None
        if self.codes:
            codes = [c for c in (error.code, error.inner_code) if c]
            if not any(re.fullmatch(self.codes, c) for c in codes):
                return None
        if not self.pattern:
            return {}
        found = re.search(self.pattern, said(error))
        return None if found is None else found.groupdict()

    def error(
        self,
        service: str,
        http_status: Optional[int] = None,
        code: Optional[str] = None,
        detail: Optional[str] = None,
        inner_code: Optional[str] = None,
        said: Optional[str] = None,
        **values: Any,
    ) -> ServiceError:
        """The error this row says about what was found of ``service`` itself (a 200 with no
        usable answer in it, an exchange that failed): ``words`` filled with ``name`` and
        ``values``. Such rows match nothing; they are named beside the code that raises them
        (a service's module, ``http/client.py``) so that every wording is a row."""
        kind = self.kind or ServiceError
        words = self.say(service, **values)
        return kind(
            service, words, http_status, code, detail, inner_code, said, answered=self.answered
        )

    def say(self, service: str, **values: Any) -> str:
        """The row's words about ``service`` (its ``name``), filled with ``values``."""
        return self.words.format(name=service, **values)


def said(error: ServiceError) -> str:
    """Everything the service said: its message (else ours), then its raw body."""
    return f"{error.said or error.message} {error.detail or ''}"


def classify(
    error: ServiceError, rows: Sequence[Outcome], values: Mapping[str, Any]
) -> ServiceError:
    """``error`` as the first of ``rows`` that matches it says, worded with ``values`` (the
    service's, see ``Service.wording``); ``error`` itself when no row matches."""
    for row in rows:
        groups = row.match(error)
        if groups is None:
            continue
        words = dict(
            name=error.service,
            status=error.http_status,
            message=error.message,
            words=error.said or error.message,
            said=f" (the service said: {error.said})" if error.said else "",
        )
        words.update(values)
        words.update(groups)
        kind = row.kind or type(error)
        return kind(
            error.service,
            row.words.format_map(words),
            error.http_status,
            error.code,
            error.detail,
            error.inner_code,
            error.said,
            answered=error.answered if row.answered is None else row.answered,
        )
    return error


def any_of(codes: Iterable[str]) -> str:
    """A ``codes`` pattern matching any of ``codes`` exactly."""
    return "|".join(re.escape(code) for code in sorted(codes))


# ------------------------------------------------------------------ shared rows

# What the API gateway answers a key and endpoint of another kind of resource, e.g. "... not
# supported with the current subscription key and pricing tier OpenAI.S0."
OTHER_TIER = Outcome(
    Refused,
    "{endpoint_setting} is the endpoint of another kind of resource (pricing tier {tier}), not "
    "of {kind_of_resource}: set {endpoint_setting} and {key_setting} to those of "
    "{right_resource}{said}",
    pattern=r"(?i)not supported with the current subscription key and pricing tier\s+"
    r"(?P<tier>[\w.-]*\w)",
)
KEY_REFUSED = Outcome(
    Refused,
    "{name} refused the key ({status}): check {key_setting}, and that {endpoint_setting} is "
    "the endpoint of {resource}{said}",
    status=frozenset({401, 403}),
)
# About this one picture: other files may pass. A service names its own codes (``codes``).
IMAGE_REFUSED = Outcome(ImageRejected, "{name} refused the image: {message}")
THROTTLED = Outcome(
    None, "{message} (lower {rate_setting} to the resource's tier)", status=frozenset({429})
)
# A body the service's parser could not read (``what``: the Python error): it answered.
UNEXPECTED = Outcome(
    ServiceError, "{name} answered with an unexpected body ({what})", answered=True
)
# A 200 whose body is not of the service's shape (a gateway's maintenance page, a probability
# of 7): the file ends FATAL and the answer is never kept, so that the service, once repaired,
# is asked again. The service did answer: no sign of an outage.
OFF_SHAPE = Outcome(
    None,
    "{words}: not kept, the file is asked again next time",
    answered=True,
)
