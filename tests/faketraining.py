"""Custom Vision's Training API v3.3 for the fake service, written by hand from its reference.

Nothing here was recorded from the real service: the paths, request shapes, limits, statuses
and error codes are those of the REST reference (``Training.json`` of Azure's REST API specs,
v3.3: GetTags, CreateTag, CreateImagesFromFiles, CreateImagesFromData, and the
``CustomVisionError`` codes) and of the service's "Limits and quotas" page. Mounted on a
``FakeAzure`` (``FakeTraining(...).mount(fake)``), on ``/customvision/v3.3/training/``:

* every request needs the ``Training-Key`` header (``key``, another than the prediction key):
  none or another answers 401 as the gateway does;
* ``GET  projects/{id}/tags`` lists the tags ``{id, name, description, type, imageCount}``;
* ``POST projects/{id}/tags?name=...[&type=Regular|Negative]`` creates one (400
  ``BadRequestTagName`` without a name, ``BadRequestTagNameNotUnique`` for a name taken, case
  ignored; ``BadRequestExceedTagPerProjectLimit`` past ``max_tags``, 500 on S0);
* ``POST projects/{id}/images/files`` takes ``{"images": [{"name", "contents" (base64),
  "tagIds", "regions": [{"tagId", "left", "top", "width", "height"}]}], "tagIds"}``: at most 64
  images (400 ``BadRequestImageBatch``) and 20 tags in a batch (400
  ``BadRequestExceededBatchSize``); an unknown tag id is 400 ``BadRequestInvalidIds``; a region
  outside the picture (fractions beyond 0..1) 400 ``BadRequestImageRegions``. Each image: not
  JPEG, PNG, BMP or GIF is ``ErrorImageFormat``, over 6 MB or with a side over 10,240 px
  ``ErrorImageSize``, over 100 tags ``ErrorTagLimitExceed``, over 300 regions
  ``ErrorRegionLimitExceed``, regions in a classification project ``ErrorUnknown`` (the
  reference says nothing of it: ours), the Negative tag with another ``ErrorNegativeAndRegular
  TagOnSameImage``, content already in the project ``OKDuplicate`` (its tags unchanged); all OK
  answers 200, else 207 with ``isBatchSuccessful`` false;
* ``POST projects/{id}/images`` (CreateImagesFromData): octet-stream or multipart, at most 64
  files, ``tagIds`` in the query;
* an unknown project is 404 ``NotFoundProject``; any other path 404.

``projects`` holds what was stored: each image's bytes, tag ids and regions, to check against.
"""

import base64
import binascii
import email.parser
import email.policy
import hashlib
import io
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from PIL import Image

from tests.fakeazure import FakeAzure, Received, Reply, _multipart_file

PREFIX = "/customvision/v3.3/training/"
KEY = "training-key-9c41e0b7d2a85f36"
MAX_BATCH = 64
MAX_BATCH_TAGS = 20
MAX_BYTES = 6 * 1024 * 1024
MAX_SIDE = 10240
MAX_TAGS_PER_IMAGE = 100
MAX_REGIONS = 300
FORMATS = frozenset({"JPEG", "PNG", "BMP", "GIF"})
_PATH = re.compile(r"^/customvision/v3\.3/training/projects/([^/]+)/(tags|images/files|images)/?$")


def error(status: int, code: str, message: str) -> Reply:
    """The training API's error body: ``{"code", "message"}`` (CustomVisionError)."""
    return Reply(status, {"code": code, "message": message})


@dataclass
class Stored:
    id: str
    name: str
    data: bytes
    size: tuple
    tag_ids: List[str]
    regions: List[dict]


@dataclass
class Project:
    id: str
    kind: str  # classify or detect
    tags: List[dict] = field(default_factory=list)
    images: List[Stored] = field(default_factory=list)


@dataclass
class FakeTraining:
    key: str = KEY
    max_tags: int = 500  # tags per project (S0; F0: 50)
    projects: Dict[str, Project] = field(default_factory=dict)
    lock: Any = field(default_factory=threading.Lock)
    batches: List[int] = field(default_factory=list)  # images per CreateImages request

    def mount(self, fake: FakeAzure) -> "FakeTraining":
        fake.mount(PREFIX, self)
        return self

    def add_project(self, project_id: str, kind: str, tags: Optional[List[str]] = None) -> Project:
        project = Project(project_id.lower(), kind)
        for name in tags or []:
            project.tags.append(_tag(name))
        self.projects[project.id] = project
        return project

    def tag_names(self, project_id: str, tag_ids: List[str]) -> List[str]:
        by_id = {t["id"]: t["name"] for t in self.projects[project_id.lower()].tags}
        return [by_id[i] for i in tag_ids]

    # ------------------------------------------------------------------ requests

    def handle(self, fake: FakeAzure, request: Received, raw: bytes, img: Any) -> Any:
        given = request.headers.get("training-key")
        if given is None:
            raise Reply(
                401,
                {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to missing subscription key.",
                    }
                },
            )
        if given != self.key:
            raise Reply(
                401,
                {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to invalid subscription key or wrong "
                        "API endpoint.",
                    }
                },
            )
        match = _PATH.match(request.path)
        if match is None:
            raise Reply(404, {"error": {"code": "404", "message": "Resource not found"}})
        with self.lock:
            project = self.projects.get(match.group(1).lower())
            if project is None:
                raise error(404, "NotFoundProject", "Invalid project")
            what, method = match.group(2), request.method
            if what == "tags" and method == "GET":
                return [dict(t, imageCount=self._count(project, t["id"])) for t in project.tags]
            if what == "tags" and method == "POST":
                return self._create_tag(project, request.query)
            if what == "images/files" and method == "POST":
                return self._from_files(project, request, raw)
            if what == "images" and method == "POST":
                return self._from_data(project, request, raw)
        raise Reply(404, {"error": {"code": "404", "message": "Resource not found"}})

    def _count(self, project: Project, tag_id: str) -> int:
        return sum(
            1
            for i in project.images
            if tag_id in i.tag_ids or any(r["tagId"] == tag_id for r in i.regions)
        )

    def _create_tag(self, project: Project, query: Dict[str, str]) -> dict:
        name = query.get("name", "").strip()
        if not name:
            raise error(400, "BadRequestTagName", "Tag name is required")
        if any(t["name"].lower() == name.lower() for t in project.tags):
            raise error(400, "BadRequestTagNameNotUnique", "Tag name is not unique")
        kind = query.get("type", "Regular")
        if kind not in ("Regular", "Negative", "GeneralProduct"):
            raise error(400, "BadRequestTagType", "Invalid tag type")
        if len(project.tags) >= self.max_tags:
            raise error(400, "BadRequestExceedTagPerProjectLimit", "Exceeded tag per project limit")
        tag = _tag(name, kind, query.get("description"))
        project.tags.append(tag)
        return dict(tag, imageCount=0)

    def _from_files(self, project: Project, request: Received, raw: bytes) -> Any:
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            raise error(415, "UnsupportedMediaType", "Unsupported media type")
        try:
            batch = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise error(400, "BadRequest", "The request body is not valid JSON") from None
        if not isinstance(batch, dict) or not isinstance(batch.get("images"), list):
            raise error(400, "BadRequestRequiredParamIsNull", "images is required")
        entries = batch["images"]
        shared = list(batch.get("tagIds") or [])
        self._check_batch(project, entries, shared)
        results = []
        for entry in entries:
            try:
                data = base64.b64decode(entry.get("contents") or "", validate=True)
            except (binascii.Error, ValueError, TypeError):
                data = b""
            tag_ids = shared + list(entry.get("tagIds") or [])
            results.append(
                self._store(
                    project,
                    str(entry.get("name", "")),
                    data,
                    tag_ids,
                    list(entry.get("regions") or []),
                )
            )
        return self._summary(results)

    def _from_data(self, project: Project, request: Received, raw: bytes) -> Any:
        content_type = request.headers.get("content-type", "")
        if content_type.lower().startswith("multipart/form-data"):
            files = _multipart_files(content_type, raw)
        elif content_type.lower().startswith("application/octet-stream"):
            files = [raw]
        else:
            raise error(415, "UnsupportedMediaType", "Unsupported media type")
        if len(files) > MAX_BATCH:
            raise error(400, "BadRequestImageBatch", f"At most {MAX_BATCH} images in a batch")
        tag_ids = [t for t in request.query.get("tagIds", "").split(",") if t]
        self._check_batch(project, [{} for _ in files], tag_ids)
        return self._summary([self._store(project, "", data, tag_ids, []) for data in files])

    def _check_batch(self, project: Project, entries: List[Any], shared: List[str]) -> None:
        if not entries:
            raise error(400, "BadRequestImageBatch", "The batch holds no image")
        if len(entries) > MAX_BATCH:
            raise error(400, "BadRequestImageBatch", f"At most {MAX_BATCH} images in a batch")
        named = set(shared)
        for entry in entries:
            if not isinstance(entry, dict):
                raise error(400, "BadRequestImageBatch", "An image entry is not an object")
            named.update(entry.get("tagIds") or [])
            for region in entry.get("regions") or []:
                if (
                    not isinstance(region, dict)
                    or not all(
                        isinstance(region.get(k), (int, float))
                        for k in ("left", "top", "width", "height")
                    )
                    or "tagId" not in region
                ):
                    raise error(
                        400,
                        "BadRequestImageRegions",
                        "A region needs tagId, left, top, width and height",
                    )
                left, top, width, height = (region[k] for k in ("left", "top", "width", "height"))
                if (
                    min(left, top) < 0
                    or width <= 0
                    or height <= 0
                    or left + width > 1.0001
                    or top + height > 1.0001
                ):
                    raise error(400, "BadRequestImageRegions", "A region is outside the image")
                named.add(region["tagId"])
        if len(named) > MAX_BATCH_TAGS:
            raise error(
                400, "BadRequestExceededBatchSize", f"At most {MAX_BATCH_TAGS} tags in a batch"
            )
        known = {t["id"] for t in project.tags}
        if named - known:
            raise error(400, "BadRequestInvalidIds", "Invalid tag ids")
        self.batches.append(len(entries))

    def _store(
        self, project: Project, name: str, data: bytes, tag_ids: List[str], regions: List[dict]
    ) -> dict:
        result = {"sourceUrl": json.dumps(name), "status": "OK"}
        try:
            with Image.open(io.BytesIO(data)) as im:
                fmt, size = im.format, im.size
        except Exception:
            fmt, size = None, (0, 0)
        if fmt not in FORMATS:
            return dict(result, status="ErrorImageFormat")
        if len(data) > MAX_BYTES or max(size) > MAX_SIDE:
            return dict(result, status="ErrorImageSize")
        if len(set(tag_ids)) > MAX_TAGS_PER_IMAGE:
            return dict(result, status="ErrorTagLimitExceed")
        if len(regions) > MAX_REGIONS:
            return dict(result, status="ErrorRegionLimitExceed")
        if regions and project.kind != "detect":
            return dict(result, status="ErrorUnknown")
        types = {t["id"]: t["type"] for t in project.tags}
        used = set(tag_ids) | {r["tagId"] for r in regions}
        if "Negative" in {types[t] for t in used} and len(used) > 1:
            return dict(result, status="ErrorNegativeAndRegularTagOnSameImage")
        digest = hashlib.sha256(data).hexdigest()
        for stored in project.images:
            if hashlib.sha256(stored.data).hexdigest() == digest:
                return dict(result, status="OKDuplicate", image=_image(stored, project))
        stored = Stored(
            str(uuid.uuid4()),
            name,
            data,
            size,
            list(dict.fromkeys(tag_ids)),
            [dict(r) for r in regions],
        )
        project.images.append(stored)
        return dict(result, image=_image(stored, project))

    @staticmethod
    def _summary(results: List[dict]) -> Any:
        ok = all(r["status"] == "OK" for r in results)
        body = {"isBatchSuccessful": ok, "images": results}
        if ok:
            return body
        raise Reply(207, body)


def _tag(name: str, kind: str = "Regular", description: Optional[str] = None) -> dict:
    return {"id": str(uuid.uuid4()), "name": name, "description": description, "type": kind}


def _image(stored: Stored, project: Project) -> dict:
    names = {t["id"]: t["name"] for t in project.tags}
    return {
        "id": stored.id,
        "width": stored.size[0],
        "height": stored.size[1],
        "tags": [{"tagId": t, "tagName": names.get(t)} for t in stored.tag_ids],
        "regions": [
            dict(r, regionId=str(uuid.uuid4()), tagName=names.get(r["tagId"]))
            for r in stored.regions
        ],
    }


def _multipart_files(content_type: str, body: bytes) -> List[bytes]:
    """Every file part of a multipart body (``fakeazure`` reads only the first)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return [_multipart_file(content_type, body) or b""]
    return [
        p.get_payload(decode=True)
        for p in message.iter_parts()
        if isinstance(p.get_payload(decode=True), bytes)
    ]
