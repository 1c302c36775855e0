"""Helpers for the fields plugins write: schema entries, picking what passes a threshold, and
the bounds every value and field is cut to before it is written (``bound``)."""

from typing import Any, Dict, Iterable, List, Sequence, Set, Tuple, TypeVar

from . import boxes

T = TypeVar("T")

# The longest value written: a tag, class, object name, caption or line of text. A search
# index takes a term of at most 32,766 bytes (Elasticsearch's limit); these stay far under it.
VALUE_CHARS = 1000
# The longest field: a list's values together, or the boxes' JSON (one term).
FIELD_CHARS = 32000
# The fields that hold the boxes' JSON (``boxes.to_json``): cut by whole boxes, never inside.
BOX_FIELDS = ("azure_detected_boxes", "azure_object_boxes")


def string(name: str, prompt: str) -> dict:
    return {"name": name, "prompt": prompt, "value": {"datatype": "String"}}


def strings(name: str, prompt: str) -> dict:
    return {"name": name, "prompt": prompt, "value": {"datatype": "[String]"}}


def passing(
    items: Iterable[T], threshold: float, limit: int, score=lambda i: i.probability
) -> List[T]:
    """The items scoring at or above ``threshold``, best first, at most ``limit`` of them."""
    kept = [i for i in items if score(i) >= threshold]
    kept.sort(key=score, reverse=True)
    return kept[:limit]


def bound(data: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """``data`` with each value at most ``VALUE_CHARS`` characters and each field at most
    ``FIELD_CHARS``, and a line for each field cut. A list keeps its first values (the most
    confident, or the first lines read); the boxes' JSON keeps its most probable boxes, their
    labels cut as the names' are, so every name written is still found in the boxes."""
    bounded, said = {}, []  # type: Dict[str, Any], List[str]
    for name, value in data.items():
        if name in BOX_FIELDS and isinstance(value, str) and len(value) > VALUE_CHARS:
            bounded[name], note = _boxes(value)
        elif isinstance(value, str):
            bounded[name], note = _value(value)
        elif isinstance(value, list):
            bounded[name], note = _values(value)
        else:
            bounded[name], note = value, ""
        if note:
            said.append(f"{name}: {note}")
    return bounded, said


def _value(value: str) -> Tuple[str, str]:
    if len(value) <= VALUE_CHARS:
        return value, ""
    return value[:VALUE_CHARS], f"a value of {len(value)} characters cut to {VALUE_CHARS}"


def _values(values: list) -> Tuple[list, str]:
    kept, total, longest = [], 0, 0
    for value in values:
        if isinstance(value, str):
            longest = max(longest, len(value))
            value = value[:VALUE_CHARS]
            if total + len(value) > FIELD_CHARS:
                break
            total += len(value)
        kept.append(value)
    notes = []
    if longest > VALUE_CHARS:
        notes.append(f"values of up to {longest} characters cut to {VALUE_CHARS}")
    if len(kept) < len(values):
        notes.append(
            f"{len(values) - len(kept)} of {len(values)} values left out (the field is at most "
            f"{FIELD_CHARS} characters)"
        )
    return kept, "; ".join(notes)


def _boxes(text: str) -> Tuple[str, str]:
    try:
        found = boxes.from_json(text)
    except (TypeError, ValueError):  # not boxes after all: a plain value
        return _value(text)
    kept = []  # type: List[boxes.Box]
    size = 2  # the brackets
    for box in found:  # most probable first
        box = box._replace(tag=box.tag[:VALUE_CHARS])
        size += len(boxes.to_json([box])) - 2 + (1 if kept else 0)  # and a comma
        if size > FIELD_CHARS:
            break
        kept.append(box)
    notes = []
    if any(len(b.tag) > VALUE_CHARS for b in found):
        notes.append(f"labels cut to {VALUE_CHARS} characters")
    if len(kept) < len(found):
        notes.append(
            f"{len(found) - len(kept)} of {len(found)} boxes left out (the field is at most "
            f"{FIELD_CHARS} characters)"
        )
    return boxes.to_json(kept), "; ".join(notes)


def distinct(names: Sequence[str]) -> List[str]:
    """``names`` without repeats (compared case-insensitively), first spelling and order kept."""
    seen: Set[str] = set()
    out = []
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out
