"""``doctor``: is each plugin set up, what answers for it, and does it answer?

Each plugin's backend is asked once about a small picture drawn here (no file of the archive
leaves the machine), without retries and without the answer cache, and the outcome is said in
plain words: works and how fast, wrong key, wrong endpoint, project or iteration not found or
not published, a feature the resource's region does not offer, throttled, unreachable. Keys are
never printed: messages and backend identities hold none.
"""

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw

from ..ground import budget
from ..ground.errors import ImageError, NoAnswer, ServiceError, SettingsError, Unresolved
from ..ground.logtext import printable
from ..ground.setting_registry import ATTEMPTS, FILE_TIMEOUT, VISION_FEATURES
from ..ground.settings import Settings, unset
from ..services.base import Service
from ..services.imageanalysis import Analyze
from . import catalog, db

log = logging.getLogger(__name__)


def doctor(names: Sequence[str], explicit: bool) -> int:
    """Check each plugin in ``names``; the exit status (0: every plugin set up works)."""
    # One try each: a check that waits through five backoffs says nothing more.
    settings = Settings.load({**os.environ, ATTEMPTS.name: "1"})
    checked = failed = 0
    with tempfile.TemporaryDirectory(prefix="pixstor-azure-doctor-") as folder:
        picture = test_picture(Path(folder))
        for name in names:
            label = catalog.PLUGINS[name].module
            lines, ok = check_plugin(name, settings, picture, explicit)
            for line in lines:
                print(printable(f"{label}: {line}"))  # what a service said: one line, no key
            if ok is not None:
                checked += 1
                failed += 0 if ok else 1
    lines, ok = db.check(settings)  # said only when several nodes share a database
    if ok is not None:
        for line in lines:
            print(printable(f"database: {line}"))
        failed += 0 if ok else 1
    if not checked:
        print("no plugin is set up: set the settings of the plugins you use (see README.md)")
        return 1
    return 1 if failed else 0


CHECK_SECONDS = 20.0


def check_plugin(
    name: str, settings: Settings, picture: Path, explicit: bool
) -> Tuple[List[str], Optional[bool]]:
    """Lines to print, and True (works), False (does not) or None (not set up, left out)."""
    try:
        chosen = catalog.backend(name, settings)
        described = catalog.describe(name, chosen, settings)
    except SettingsError as exc:
        if not explicit and unset(exc):
            return [f"not set up ({exc})"], None
        return [f"settings: {exc}"], False
    lines = [f"uses {described}"]
    started = time.monotonic()
    # A check, not a file to tag: a service that never answers is said in seconds, not after
    # every retry of every read timeout.
    seconds = min(settings.get(FILE_TIMEOUT), CHECK_SECONDS)
    try:
        with budget.limit(seconds):
            answer = chosen.ask(str(picture))
    except ServiceError as exc:
        return [*lines, f"{outcome(exc, chosen)}: {exc}"], False
    except SettingsError as exc:
        if exc.setting == VISION_FEATURES.name and "region" in str(exc):
            return [*lines, f"feature not offered in this region: {exc}"], False
        return [*lines, f"settings: {exc}"], False
    except ImageError as exc:
        return [*lines, f"failed: the test picture was refused: {exc}"], False
    took = time.monotonic() - started
    where = "on this machine" if chosen.endpoint_setting is None else "by the service"
    model = f", model {answer.model}" if answer.model else ""
    lines.append(f"works: answered {where} in {took:.2f} s{model}")
    # Asked for, not delivered: the plugin carries on without it, but it is a problem to fix.
    down = turned_down(chosen)
    for feature in down:
        lines.append(
            f"feature not offered in this region: {feature} (the resource at "
            f"{chosen.endpoint_setting} answers without it; see README.md)"
        )
    return lines, not down


def outcome(exc: ServiceError, chosen: Service) -> str:
    """The kind of failure, in the words an administrator looks for."""
    codes = {exc.code or "", exc.inner_code or ""}
    if isinstance(exc, Unresolved):
        return f"wrong endpoint: check {chosen.endpoint_setting or 'the endpoint'}"
    if exc.http_status in (401, 403):
        return "wrong key"
    if codes & {"NotFoundIteration", "BadRequestIterationNotPublished"}:
        return "iteration not published"
    if codes & {"NotFoundProject"}:
        return "project not found"
    if exc.http_status == 404:
        return "wrong endpoint"
    if exc.http_status == 429:
        return "throttled"
    if not exc.answered and exc.http_status is None:  # no answer came back
        setting = chosen.endpoint_setting or "the service"
        if isinstance(exc, NoAnswer):
            return f"no answer in time from {setting}"
        return f"unreachable: check {setting} and the network"
    return "failed"


def turned_down(chosen: Service) -> List[str]:
    """Features the resource's region turned down while answering (Azure AI Vision only)."""
    found: List[str] = []
    for part in chosen.parts():
        if isinstance(part, Analyze):
            found.extend(part.turned_down())
    return found


def test_picture(folder: Path) -> Path:
    """A small JPEG with plain shapes: enough for every service to answer, nothing private."""
    image = Image.new("RGB", (512, 384), (40, 90, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((64, 64, 256, 256), fill=(220, 30, 30))
    draw.ellipse((300, 120, 460, 280), fill=(250, 250, 250))
    draw.text((80, 300), "PIXSTOR AZURE", fill=(255, 255, 255))
    path = folder / "doctor.jpg"
    image.save(str(path), quality=90)
    return path
