"""Helpers for the fields plugins write: schema entries and picking what passes a threshold."""

from typing import Iterable, List, Sequence, Set, TypeVar

T = TypeVar("T")


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


def distinct(names: Sequence[str]) -> List[str]:
    """``names`` without repeats (compared case-insensitively), first spelling and order kept."""
    seen: Set[str] = set()
    out = []
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out
