"""The fields a plugin writes, without where their answers came from.

Every plugin writes a ``…_source`` field beside what it found (the backend, the model, when it
was asked, and for a frame of a sequence the frame whose answer it reuses). Tests of what was
found compare the rest; tests/test_frames.py holds the sources themselves.
"""

from typing import Optional

SOURCE_FIELDS = ("azure_vision_source", "azure_classification_source", "azure_detection_source")


def answered(fields: Optional[dict]) -> Optional[dict]:
    """``fields`` without the source fields (None stays None)."""
    if fields is None:
        return None
    return {name: value for name, value in fields.items() if name not in SOURCE_FIELDS}
