"""The one place tests get the words of an outcome: read from the product's table.

Each outcome's wording lives once, in its row (``ground/outcomes.py`` and the ``outcomes`` of
each service). A test names the row, never its text, so that rewording a message is one change
in the product and none here.

- ``says(key, **values)``: the text of row ``key`` with ``values`` filled in. ``key`` is an
  ``Outcome``, the name of a row of ``ground/outcomes.py`` ("KEY_REFUSED"), or of a service
  module's row ("container.UNREADABLE"). Every field the row names must be given: a missing one
  fails the test.
- ``row_of(service, **fields)``: the one row of a service class's ``outcomes`` whose fields
  (``status``, ``kind``, ``codes``...) are those given, for rows that have no name.
- ``assert_says(text, key, **values)``: ``text`` is exactly what row ``key`` says.
"""

import importlib

from pixstor_azure.ground import outcomes
from pixstor_azure.ground.outcomes import Outcome


def row(key):
    """The row ``key`` names (see the module's note)."""
    if isinstance(key, Outcome):
        return key
    module_name, _, name = key.rpartition(".")
    module = (
        importlib.import_module(f"pixstor_azure.services.{module_name}")
        if module_name
        else outcomes
    )
    found = getattr(module, name)
    assert isinstance(found, Outcome), f"{key} is not a row of the outcomes"
    return found


def row_of(service, **fields):
    """The one row of ``service.outcomes`` whose ``fields`` are those given (``status`` may
    be one status: the row is for it)."""
    status = fields.pop("status", None)
    rows = [
        r
        for r in service.outcomes
        if (status is None or status in r.status)
        and all(getattr(r, k) == v for k, v in fields.items())
    ]
    assert len(rows) == 1, f"{len(rows)} rows of {service.__name__} match {fields}"
    return rows[0]


def said(words):
    """The ``said`` field of a row as the classification fills it from what the service said."""
    error = outcomes.ServiceError("X", "m", 400, said=words)
    return outcomes.classify(error, (Outcome(None, "{said}"),), {}).message


def says(key, **values):
    """What row ``key`` says with ``values``."""
    return row(key).words.format(**values)


def assert_says(text, key, **values):
    expected = says(key, **values)
    assert str(text) == expected, f"{text!r} is not what {key!r} says: {expected!r}"
