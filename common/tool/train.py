"""``train``: the corrections of a contact sheet, uploaded to the Custom Vision projects.

``pixstor-azure train CORRECTIONS.json`` reads the file the sheet's "Download corrections"
button saves (format: README, "Corrections") and uploads each corrected picture, with the tags
or regions the reviewer settled on, to the classifier's or the detector's project through the
Custom Vision Training API v3.3 (its own resource: ``CUSTOM_VISION_TRAINING_ENDPOINT`` and
``CUSTOM_VISION_TRAINING_KEY``; the projects are ``CUSTOM_VISION_CLASSIFY_PROJECT`` and
``CUSTOM_VISION_DETECT_PROJECT``, the same ids prediction uses).

What is uploaded, per picture the reviewer touched:

* to the classifier: the classes judged right, those left unmarked (a reviewed picture's
  unmarked class stands) and those added; a class judged wrong is left off;
* to the detector: the boxes judged right or left unmarked where the detector put them, the
  boxes moved, resized or relabelled where the reviewer put them, and the boxes added; a box
  judged wrong is left off.

A picture is prepared as for prediction (upright, within Custom Vision's limits, every byte
of metadata stripped: ``images.prepare``), so the regions, fractions of the picture as
displayed, fall where the reviewer saw them. Tags are found by name (case ignored); a name the
project lacks is created only with ``--create-tags``. Pictures go in batches the API takes
(64 pictures, 20 tags); the service's word on each picture is reported. Training and publishing
stay the user's decision, in the portal or through its API.
"""

import argparse
import base64
import json
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..answers import fetch
from ..ground import setting_registry as registry
from ..ground.boxes import Box
from ..ground.errors import ImageError, ServiceError, SettingsError
from ..ground.logtext import printable
from ..ground.settings import Settings
from ..http import client
from ..images import prepare
from ..services.customvisioncloud import PROJECT_NOT_GUID

HELP = "upload the pictures corrected on a contact sheet to the Custom Vision projects"
SERVICE = "Custom Vision Training"
API = "/customvision/v3.3/training"
FORMAT = "pixstor-azure corrections"
VERSIONS = (1,)
# The training API's limits (REST reference v3.3 and "Limits and quotas").
BATCH_IMAGES = 64  # pictures in one CreateImagesFromFiles request
BATCH_TAGS = 20  # tags one request may name
MAX_REGIONS = 300  # regions on one picture (object detection)
MAX_TAGS = 100  # tags on one picture (classification)
# Ours: the pictures' bytes in one request (base64 makes the JSON a third larger).
BATCH_BYTES = 24 * 1024 * 1024

RIGHT, WRONG, UNMARKED, ADDED, CORRECTED = "right", "wrong", "unmarked", "added", "corrected"
KEPT = (RIGHT, UNMARKED, ADDED, CORRECTED)
# What each refusal of one picture means, for the line that reports it.
IMAGE_STATUSES = {
    "ErrorSource": "the picture could not be read",
    "ErrorImageFormat": "not a format Custom Vision takes",
    "ErrorImageSize": "too large or too small",
    "ErrorStorage": "the service could not store it: try again later",
    "ErrorLimitExceed": "the project holds as many pictures as its tier allows",
    "ErrorTagLimitExceed": "too many tags on the picture",
    "ErrorRegionLimitExceed": "too many regions on the picture",
    "ErrorUnknown": "the service did not say why",
    "ErrorNegativeAndRegularTagOnSameImage": "the Negative tag with other tags on one picture",
}


class Task(NamedTuple):
    name: str  # classify or detect
    what: str  # classifier or detector
    project: registry.Setting


TASKS = (
    Task("classify", "classifier", registry.CLASSIFY_PROJECT),
    Task("detect", "detector", registry.DETECT_PROJECT),
)


class Upload(NamedTuple):
    """One picture for one project: its tags (classifier) or regions (detector)."""

    path: str
    digest: str
    tags: Tuple[str, ...] = ()
    regions: Tuple[Box, ...] = ()

    def names(self) -> List[str]:
        return list(self.tags) + [b.tag for b in self.regions]


class Options(NamedTuple):
    task: str = "both"
    dry_run: bool = False
    create_tags: bool = False


class BadFile(Exception):
    """The corrections file is not one this tool can read."""


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corrections", metavar="CORRECTIONS.json", help="saved from a sheet")
    parser.add_argument(
        "--task",
        choices=("both", "classify", "detect"),
        default="both",
        help="upload to the classifier's project, the detector's, or both (default)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be uploaded, checking the project's tags when the settings are "
        "there; upload nothing, create nothing",
    )
    parser.add_argument(
        "--create-tags",
        action="store_true",
        help="create the tags the project lacks (otherwise their names are listed and nothing "
        "is uploaded)",
    )


def train(corrections: str, options: Options) -> int:
    """Run ``train``; the exit status."""
    try:
        pictures = read(Path(corrections))
    except BadFile as exc:
        print(f"pixstor-azure: {corrections}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pixstor-azure: cannot read {corrections}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    tasks = [t for t in TASKS if options.task in ("both", t.name)]
    plans = []  # type: List[Tuple[Task, List[Upload]]]
    for task in tasks:
        uploads, notes = plan(task, pictures)
        _say(notes)
        if uploads:
            plans.append((task, uploads))
    if not plans:
        _say(
            [
                "nothing to upload: no picture in the file has a correction for "
                + " or ".join(t.what for t in tasks)
            ]
        )
        return 1
    settings = Settings.load()
    failed = False
    for task, uploads in plans:
        uploads, notes = _unchanged(uploads)
        _say(notes)
        failed = failed or bool(notes)
        if not uploads:
            continue
        try:
            project = Project(task, settings)
        except SettingsError as exc:
            if not options.dry_run:
                raise
            _say([*_dry_run(task, uploads, None), f"tags not checked: {exc}"])
            continue
        try:
            if options.dry_run:
                _say(_dry_run(task, uploads, project.tags()))
                continue
            failed = not project.upload(uploads, settings, options.create_tags) or failed
        except ServiceError as exc:
            _say([f"{task.what}: {exc}{_advice(exc)}"])
            failed = True
    if not options.dry_run:
        _say(
            [
                "next: train and publish a new iteration in the Custom Vision portal (or export "
                "it), then point the plugin at it: README, 'Corrections that train the next model'"
            ]
        )
    return 1 if failed else 0


# ------------------------------------------------------------------ the file


def read(path: Path) -> List[dict]:
    """The pictures of a corrections file, checked for what ``plan`` relies on."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadFile(f"not a JSON file ({exc})") from None
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        raise BadFile(f"not a corrections file (its format is not {FORMAT!r})")
    if found.get("version") not in VERSIONS:
        raise BadFile(f"corrections of version {found.get('version')!r}: this tool reads 1")
    pictures = found.get("pictures")
    if not isinstance(pictures, list):
        raise BadFile("it has no list of pictures")
    for number, picture in enumerate(pictures, 1):
        where = f"picture {number}"
        if not isinstance(picture, dict) or not isinstance(picture.get("path"), str):
            raise BadFile(f"{where} has no path")
        for key in ("classes", "boxes"):
            items = picture.get(key, [])
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("label"), str) and i.get("verdict")
                for i in items
            ):
                raise BadFile(f"{where} ({picture['path']}): its {key} are not a list of labels")
        for box in picture.get("boxes", []):
            if not all(isinstance(box.get(k), (int, float)) for k in _GEOMETRY):
                raise BadFile(f"{where} ({picture['path']}): a box without its place")
    return pictures


_GEOMETRY = ("left", "top", "width", "height")


def plan(task: Task, pictures: List[dict]) -> Tuple[List[Upload], List[str]]:
    """What goes to ``task``'s project, and why each reviewed picture left out is."""
    classify = task.name == "classify"
    key, one, most = ("classes", "class", MAX_TAGS) if classify else ("boxes", "box", MAX_REGIONS)
    uploads, notes = [], []
    for picture in pictures:
        path, digest = picture["path"], str(picture.get("digest") or "")
        items = picture.get(key, [])
        if not any(i["verdict"] != UNMARKED for i in items):
            continue  # not reviewed for this project
        kept = [i for i in items if i["verdict"] in KEPT]
        if classify:
            upload = Upload(path, digest, tags=tuple(_distinct(i["label"] for i in kept)))
        else:
            upload = Upload(path, digest, regions=tuple(_regions(kept)))
        count = len(upload.names())
        if not count:
            notes.append(f"{path}: {task.what}: every {one} is wrong and none added: left out")
        elif count > most:
            notes.append(f"{path}: {task.what}: {count} {key}, over {most}: left out")
        else:
            uploads.append(upload)
    return uploads, notes


def _regions(items: List[dict]) -> List[Box]:
    """The boxes of ``items`` that have an area."""
    boxes = [Box.from_fractions(i["label"], 1.0, *(float(i[k]) for k in _GEOMETRY)) for i in items]
    return [b for b in boxes if b.width > 0 and b.height > 0]


def _unchanged(uploads: List[Upload]) -> Tuple[List[Upload], List[str]]:
    """The uploads whose file is still the one reviewed (same content)."""
    kept, notes = [], []
    for upload in uploads:
        try:
            digest = fetch.digest(upload.path)
        except OSError as exc:
            notes.append(f"{upload.path}: cannot be read ({exc.strerror or exc}): left out")
            continue
        if upload.digest and digest != upload.digest:
            notes.append(
                f"{upload.path}: changed since the sheet was made (its boxes may no longer fit): "
                "left out; make a new sheet and review it again"
            )
            continue
        kept.append(upload)
    return kept, notes


def _distinct(names: Any) -> List[str]:
    seen, out = set(), []
    for name in names:
        name = name.strip()
        if name and name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out


# ------------------------------------------------------------------ the project


class Project:
    """One project of the training API, as the settings name it."""

    def __init__(self, task: Task, settings: Settings) -> None:
        self.task = task
        self.endpoint = settings.get(registry.CV_TRAINING_ENDPOINT)
        self.key = settings.get(registry.CV_TRAINING_KEY)
        text = settings.get(task.project)
        try:
            self.id = str(uuid.UUID(text))
        except ValueError:
            raise PROJECT_NOT_GUID.error(task.project.name) from None
        self.http = client.HttpConfig.from_settings(settings, None)
        self.url = f"{self.endpoint}{API}/projects/{self.id}"

    def _headers(self) -> Dict[str, str]:
        return {"Training-Key": self.key.reveal()}

    def tags(self) -> Dict[str, dict]:
        """The project's tags by name in small letters (GetTags)."""
        found = client.exchange(
            SERVICE, "GET", self.url + "/tags", self.http, headers=self._headers()
        ).body
        if not isinstance(found, list):
            raise ServiceError(SERVICE, f"{SERVICE} answered GetTags with no list of tags")
        return {str(t.get("name", "")).lower(): t for t in found if isinstance(t, dict)}

    def create_tag(self, name: str) -> dict:
        answer = client.exchange(
            SERVICE,
            "POST",
            self.url + "/tags",
            self.http,
            headers=self._headers(),
            params={"name": name},
        ).body
        if not isinstance(answer, dict) or not answer.get("id"):
            raise ServiceError(SERVICE, f"{SERVICE} answered CreateTag with no tag id")
        return answer

    def upload(self, uploads: List[Upload], settings: Settings, create: bool) -> bool:
        """Upload every picture; True when the service took each (or had it already)."""
        what = self.task.what
        tags = self.tags()
        wanted = _distinct(n for u in uploads for n in u.names())
        missing = [n for n in wanted if n.lower() not in tags]
        if missing and not create:
            _say(
                [
                    f"{what}: the project has no tag {_listed(missing)}: nothing uploaded. "
                    "Add --create-tags to create them, or correct the names on the sheet"
                ]
            )
            return False
        for name in missing:
            tags[name.lower()] = self.create_tag(name)
            _say([f"{what}: created the tag {name!r}"])
        max_edge, min_edge = prepare.edge_settings(settings, custom_vision=True)
        counts = {"uploaded": 0, "already there": 0, "refused": 0, "not prepared": 0}
        batch = []  # type: List[Tuple[Upload, dict]]
        size = 0
        for upload in uploads:
            try:
                image = prepare.prepare(upload.path, prepare.CUSTOM_VISION, max_edge, min_edge)
            except ImageError as exc:
                _say([f"{upload.path}: {what}: cannot be prepared ({exc}): left out"])
                counts["not prepared"] += 1
                continue
            entry = self._entry(upload, image.data, tags)
            names = {t for _u, e in batch for t in _tag_ids(e)} | set(_tag_ids(entry))
            if batch and (
                len(batch) == BATCH_IMAGES
                or len(names) > BATCH_TAGS
                or size + len(image.data) > BATCH_BYTES
            ):
                self._send(batch, counts)
                batch, size = [], 0
            batch.append((upload, entry))
            size += len(image.data)
        if batch:
            self._send(batch, counts)
        shown = ", ".join(f"{n} {k}" for k, n in counts.items() if n or k == "uploaded")
        _say([f"{what} (project {self.id}): {shown}"])
        return not counts["refused"] and not counts["not prepared"]

    def _entry(self, upload: Upload, data: bytes, tags: Dict[str, dict]) -> dict:
        entry = {
            "name": Path(upload.path).name,
            "contents": base64.b64encode(data).decode("ascii"),
        }  # type: Dict[str, Any]
        if upload.tags:
            entry["tagIds"] = [tags[t.lower()]["id"] for t in upload.tags]
        if upload.regions:
            entry["regions"] = [
                {
                    "tagId": tags[b.tag.lower()]["id"],
                    "left": round(b.left, 4),
                    "top": round(b.top, 4),
                    "width": round(b.width, 4),
                    "height": round(b.height, 4),
                }
                for b in upload.regions
            ]
        return entry

    def _send(self, batch: List[Tuple[Upload, dict]], counts: Dict[str, int]) -> None:
        """One CreateImagesFromFiles request; the service's word on each picture said."""
        body = {"images": [entry for _upload, entry in batch]}
        answer = client.post(
            SERVICE, self.url + "/images/files", self.http, headers=self._headers(), json_body=body
        )
        results = answer.get("images") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(batch):
            raise ServiceError(
                SERVICE, f"{SERVICE} answered a batch of {len(batch)} without a status for each"
            )
        for (upload, _entry), result in zip(batch, results):
            status = str(result.get("status", "")) if isinstance(result, dict) else ""
            if status == "OK":
                counts["uploaded"] += 1
            elif status == "OKDuplicate":
                counts["already there"] += 1
                _say(
                    [
                        f"{upload.path}: {self.task.what}: already in the project (the same "
                        "picture): its tags and regions there are as they were"
                    ]
                )
            else:
                counts["refused"] += 1
                meaning = IMAGE_STATUSES.get(status, "")
                _say(
                    [
                        f"{upload.path}: {self.task.what}: refused, {status or 'no status'}"
                        + (f" ({meaning})" if meaning else "")
                    ]
                )


def _tag_ids(entry: dict) -> List[str]:
    return list(entry.get("tagIds", [])) + [r["tagId"] for r in entry.get("regions", [])]


def _dry_run(task: Task, uploads: List[Upload], tags: Optional[Dict[str, dict]]) -> List[str]:
    counts = {}  # type: Dict[str, int]
    for upload in uploads:
        for name in _distinct(upload.names()):
            counts[name] = counts.get(name, 0) + 1
    regions = sum(len(u.regions) for u in uploads)
    lines = [
        f"dry run: {task.what}: would upload {len(uploads)} picture(s)"
        + (f" with {regions} region(s)" if regions else "")
        + ", tags: "
        + ", ".join(f"{n} ({c})" for n, c in sorted(counts.items(), key=lambda i: -i[1]))
    ]
    if tags is not None:
        missing = [n for n in counts if n.lower() not in tags]
        if missing:
            lines.append(
                f"dry run: {task.what}: the project has no tag {_listed(missing)} "
                "(--create-tags would create them)"
            )
    return lines


def _listed(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _advice(exc: ServiceError) -> str:
    if exc.http_status == 401:
        return (
            " (check CUSTOM_VISION_TRAINING_KEY and CUSTOM_VISION_TRAINING_ENDPOINT: the "
            "training resource's, not the prediction resource's)"
        )
    if exc.code == "NotFoundProject":
        return " (the project id is not one of the training resource's projects)"
    return ""


def _say(lines: Sequence[str]) -> None:
    for line in lines:
        print(printable(line), file=sys.stderr)  # paths and what the service said, escaped
    sys.stderr.flush()
