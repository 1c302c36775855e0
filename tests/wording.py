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
- ``assert_mentions(text, key, **known)``: what row ``key`` says is somewhere in ``text`` (a
  log line, a summary), the fields in ``known`` as given and the others any words. A field the
  row does not name fails the test.
- ``assert_is(text, key, **known)``: the same, for the whole of ``text`` (an error's message).

A setting's problem (``ground/errors.py Problem``: ``settings.NOT_SET``,
``onnxexport.NO_LABELS``...) and a file's (``FileProblem``: ``source.NOT_REGULAR``,
``prepare.CORRUPT``...) are named the same way, and work with each of them;
``assert_problem(error, setting, key, **known)`` checks a ``SettingsError`` whole: its setting,
and that its problem is what ``key`` says.
"""

import importlib
import re
import string

from pixstor_azure.ground import outcomes
from pixstor_azure.ground.errors import FileProblem, Problem, SettingsError
from pixstor_azure.ground.outcomes import Outcome

# Where a module named by its own name alone ("settings.NOT_SET") is looked for.
PACKAGES = ("services", "ground", "answers", "http", "images", "tool")


def row(key):
    """The row or problem ``key`` names (see the module's note)."""
    if isinstance(key, (Outcome, Problem, FileProblem)):
        return key
    module_name, _, name = key.rpartition(".")
    module = outcomes if not module_name else _module(module_name)
    found = getattr(module, name)
    assert isinstance(found, (Outcome, Problem, FileProblem)), f"{key} is no row or problem"
    return found


def _module(name):
    if name == "runner":  # the one module above the folders
        return importlib.import_module("pixstor_azure.runner")
    for package in PACKAGES:
        try:
            return importlib.import_module(f"pixstor_azure.{package}.{name}")
        except ModuleNotFoundError:
            continue
    raise AssertionError(f"no module {name} in {', '.join(PACKAGES)}")


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


def pattern(key, **known):
    """A regular expression for what row ``key`` says: the fields in ``known`` filled in as
    ``str.format`` would, the others any words."""
    parts = []
    named = set()
    for literal, field, spec, conversion in string.Formatter().parse(row(key).words):
        parts.append(re.escape(literal))
        if field is None:
            continue
        named.add(field)
        if field not in known:
            parts.append(".*?")
            continue
        value = repr(known[field]) if conversion == "r" else known[field]
        parts.append(re.escape(format(value, spec or "")))
    unknown = set(known) - named
    assert not unknown, f"{key} names no field {sorted(unknown)}"
    return "".join(parts)


def assert_mentions(text, key, **known):
    expected = pattern(key, **known)
    assert re.search(expected, str(text), re.S), f"{text!r} does not say what {key!r} says"


def assert_is(text, key, **known):
    expected = pattern(key, **known)
    assert re.fullmatch(expected, str(text), re.S), f"{text!r} is not what {key!r} says"


def assert_problem(error, setting, key, **known):
    """``error`` is a ``SettingsError`` of ``setting`` whose problem is what ``key`` says, the
    fields in ``known`` as given and the others any words."""
    assert isinstance(error, SettingsError), f"{error!r} is not a SettingsError"
    assert error.setting == setting, f"{error.setting} is not {setting}"
    expected = pattern(key, **known)
    assert re.fullmatch(expected, error.problem, re.S), f"{error.problem!r} is not {key!r}"
