"""onnxruntime, imported so that it writes nothing and sends nothing.

onnxruntime 1.32, on import, writes a device id and an event database under
``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` and a ``.ses`` file in the temporary
folder, and may send usage events, unless ``ORT_DISABLE_TELEMETRY=1`` is in the environment
before the import; ``disable_telemetry_events()`` stops the events only, not the files. Every
backend of ours that runs a model here (the ``onnx`` backend, the local OCR engine) imports it
through ``load()``, which sets the variable first (for the whole process: once imported,
onnxruntime never reads it again). ``tests/test_localread.py`` proves it for both in a fresh
process with no network.
"""

import logging
import os
import sys
from typing import Any

from ..ground.logonce import log_once

log = logging.getLogger(__name__)

TELEMETRY_VARIABLE = "ORT_DISABLE_TELEMETRY"


def load() -> Any:
    """The onnxruntime module, imported with its telemetry off.

    Raises what the import raises (ImportError, or OSError for a shared library that does not
    load): each caller words that for its own setting.
    """
    before = os.environ.get(TELEMETRY_VARIABLE)
    late = "onnxruntime" in sys.modules and before != "1"
    os.environ[TELEMETRY_VARIABLE] = "1"
    import onnxruntime

    if late:
        log_once(
            log,
            logging.WARNING,
            "onnxruntime was imported before pixstor-azure could turn its telemetry off, and "
            "may have written its device id under ~/.cache/Microsoft/DeveloperTools/: set "
            f"{TELEMETRY_VARIABLE}=1 in the environment PixStor starts with",
        )
    disable = getattr(onnxruntime, "disable_telemetry_events", None)
    if callable(disable):  # stops the events of a process that imported it too early
        disable()
    return onnxruntime
