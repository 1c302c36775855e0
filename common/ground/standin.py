"""A faithful stand-in for the parts of ``arcapix`` the plugins use, for use outside PixStor.

Same names and behaviour as PixStor's: ``Plugin`` gives ``self.logger``; ``Metadata(id_,
plugin).update(data)`` checks the data against the plugin's schema as PixStor would and writes
it to an embedded SQLite store (see ``store``), returning True when the store accepted it.
"""

import enum
import logging
from typing import Any, Dict, Optional, Tuple, Union

from .store import MetadataStore

_TYPES: Dict[str, Union[type, Tuple[type, ...]]] = {
    "String": str,
    "Boolean": bool,
    "Integer": int,
    "Float": (int, float),
}


class PluginStatus(enum.Enum):
    SUCCESS = "SUCCESS"
    SKIPPED = "SKIPPED"
    ERRORED = "ERRORED"
    FATAL = "FATAL"
    INPROGRESS = "INPROGRESS"


class Plugin:
    """Base class of a PixStor Search metadata plugin."""

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(f"{type(self).__module__}.{type(self).__name__}")

    def namespace(self) -> str:
        raise NotImplementedError

    def handles(self, ext: Optional[str] = None, mimetype: Optional[str] = None) -> bool:
        raise NotImplementedError

    def schema(self) -> list:
        raise NotImplementedError

    def process(self, id_: Any, file_: str, fileinfo: Optional[dict] = None) -> PluginStatus:
        raise NotImplementedError

    def is_async(self) -> bool:
        return False


class SchemaMismatch(ValueError):
    """The data does not match the plugin's schema: PixStor's index would refuse it."""


def check(data: dict, schema: list) -> None:
    """Raise SchemaMismatch unless every field of ``data`` is declared with its datatype."""
    declared: Dict[str, Any] = {}
    for entry in schema:
        if "name" in entry:
            declared[entry["name"]] = entry["value"]["datatype"]
        else:  # a group: {"group": [field, ...]}
            for group, fields in entry.items():
                declared[group] = {f["name"]: f["value"]["datatype"] for f in fields}
    for name, value in data.items():
        if name not in declared:
            raise SchemaMismatch(f"field {name!r} is not in the plugin's schema")
        datatype = declared[name]
        if isinstance(datatype, dict):
            if not isinstance(value, dict):
                raise SchemaMismatch(f"group {name!r} must be a dict")
            check(value, [{"name": k, "value": {"datatype": t}} for k, t in datatype.items()])
        else:
            _check_value(name, value, datatype)


def _check_value(name: str, value: Any, datatype: str) -> None:
    listed = datatype.startswith("[") and datatype.endswith("]")
    base = datatype[1:-1] if listed else datatype
    if base not in _TYPES:
        raise SchemaMismatch(f"field {name!r} has unknown datatype {datatype!r}")
    values = value if listed else [value]
    if listed and not isinstance(value, list):
        raise SchemaMismatch(f"field {name!r} must be a list ({datatype})")
    for item in values:
        wrong_bool = isinstance(item, bool) and base != "Boolean"
        if wrong_bool or not isinstance(item, _TYPES[base]):
            raise SchemaMismatch(f"field {name!r} must hold {datatype}, not {type(item).__name__}")


class Metadata:
    """Writes the fields of one indexed item, as ``arcapix.search.metadata.helpers.Metadata``."""

    def __init__(self, id_: Any, plugin: Plugin) -> None:
        self.id_ = id_
        self.plugin = plugin

    def update(self, data: dict) -> bool:
        check(data, self.plugin.schema())
        return MetadataStore.default().write(
            str(self.id_), self.plugin.namespace(), type(self.plugin).__name__, data
        )
