"""``pixstor-azure train``: corrections uploaded to Custom Vision's training API.

Against ``tests/faketraining.py`` (written by hand from the REST reference, mounted on a real
local server) after a real ``tag`` run: what reaches the project is checked in what the fake
stored, the pictures decoded as the service would decode them.
"""

import base64
import io
import json
from pathlib import Path

import pytest
import requests
from PIL import Image

from pixstor_azure.answers import fetch
from pixstor_azure.ground.store import MetadataStore
from pixstor_azure.tool import cli, train
from tests import faketraining, sheetkit
from tests.conftest import assert_no_key
from tests.fakeazure import FakeAzure
from tests.toolrun import CLASSIFY_PROJECT, DETECT_PROJECT
from tests.wording import assert_mentions, row


@pytest.fixture
def stills(tmp_path, monkeypatch):
    folder = tmp_path / "stills"
    sheetkit.tag_folder(folder, monkeypatch)
    return folder


@pytest.fixture
def service(monkeypatch):
    with FakeAzure() as server:
        fake = faketraining.FakeTraining().mount(server)
        fake.add_project(CLASSIFY_PROJECT, "classify", tags=["red", "green", "blue"])
        fake.add_project(DETECT_PROJECT, "detect", tags=["red box", "green box", "blue box"])
        monkeypatch.setenv("CUSTOM_VISION_TRAINING_ENDPOINT", server.url)
        monkeypatch.setenv("CUSTOM_VISION_TRAINING_KEY", fake.key)
        fake.server = server
        yield fake


def stored(path: Path) -> dict:
    return MetadataStore.default().read(str(path.resolve()))


def picture(path: Path, classes=(), boxes=()) -> dict:
    """A picture of a corrections file, as the sheet writes it."""
    return {
        "path": str(path.resolve()),
        "digest": fetch.digest(str(path)),
        "classes": [dict(c) for c in classes],
        "boxes": [dict(b) for b in boxes],
    }


def stored_boxes(path: Path, verdict: str = "unmarked") -> list:
    found = json.loads(stored(path)["image.azure_detected_boxes"])
    return [
        {"label": b["tag"], "probability": b["probability"], "verdict": verdict, **geometry(b)}
        for b in found
    ]


def geometry(box: dict) -> dict:
    return {k: box[k] for k in ("left", "top", "width", "height")}


def write(tmp_path: Path, pictures: list, **extra) -> Path:
    body = {"format": "pixstor-azure corrections", "version": 1, "pictures": pictures, **extra}
    path = tmp_path / "corrections.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def uploaded(image) -> Image.Image:
    return Image.open(io.BytesIO(image.data))


def files(stills: Path):
    return sorted(p for p in stills.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- the classifier


def test_classes_judged_right_unmarked_and_added_go_up_and_wrong_ones_do_not(
    stills, service, tmp_path, capsys
):
    first = files(stills)[0]  # day1/a_red_green.jpg: classes red and green
    assert stored(first)["image.azure_classes"] == ["red", "green"]
    corrections = write(
        tmp_path,
        [
            picture(
                first,
                classes=[
                    {"label": "red", "probability": 0.16, "verdict": "wrong"},
                    {"label": "green", "probability": 0.1, "verdict": "unmarked"},
                    {"label": "Blue", "verdict": "added"},
                ],
            )
        ],
    )

    assert cli.main(["train", "--task", "classify", str(corrections)]) == 0

    project = service.projects[CLASSIFY_PROJECT]
    assert len(project.images) == 1
    names = service.tag_names(CLASSIFY_PROJECT, project.images[0].tag_ids)
    assert sorted(names) == ["blue", "green"]  # "Blue" found by name, case ignored
    assert project.images[0].regions == []
    err = capsys.readouterr().err
    assert "classifier (project 3c9a1f0e-5b7d-4e2a-9f1c-8d6b4a2e0c17): 1 uploaded" in err


def test_a_tag_the_project_lacks_is_created_only_when_asked(stills, service, tmp_path, capsys):
    first = files(stills)[0]
    corrections = write(
        tmp_path, [picture(first, classes=[{"label": "night shot", "verdict": "added"}])]
    )

    assert cli.main(["train", "--task", "classify", str(corrections)]) == 1
    assert "has no tag 'night shot': nothing uploaded" in capsys.readouterr().err
    assert service.projects[CLASSIFY_PROJECT].images == []

    assert cli.main(["train", "--task", "classify", "--create-tags", str(corrections)]) == 0
    project = service.projects[CLASSIFY_PROJECT]
    assert "night shot" in [t["name"] for t in project.tags]
    # the other classes were left unmarked on a reviewed picture: they stand
    names = service.tag_names(CLASSIFY_PROJECT, project.images[0].tag_ids)
    assert sorted(names) == ["night shot"]
    assert "created the tag 'night shot'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the detector


def test_regions_are_where_the_reviewer_left_them_on_the_upright_stripped_picture(
    stills, service, tmp_path
):
    first, rotated = files(stills)[0], files(stills)[-1]
    assert rotated.name == "rotated_o6.jpg"
    boxes = stored_boxes(first)
    assert [b["label"] for b in boxes] == ["red box", "green box"]
    boxes[0]["verdict"] = "right"
    boxes[1]["verdict"] = "wrong"
    moved = {"left": 0.5, "top": 0.1, "width": 0.2, "height": 0.3}
    added = {
        "label": "blue box",
        "verdict": "added",
        "left": 0.05,
        "top": 0.7,
        "width": 0.1,
        "height": 0.2,
    }
    rotated_boxes = stored_boxes(rotated)
    was = geometry(rotated_boxes[0])
    rotated_boxes[0].update(moved, verdict="corrected", label="green box", was=was)
    corrections = write(
        tmp_path,
        [picture(first, boxes=[*boxes, added]), picture(rotated, boxes=rotated_boxes)],
    )

    assert cli.main(["train", "--task", "detect", str(corrections)]) == 0

    project = service.projects[DETECT_PROJECT]
    assert len(project.images) == 2
    one, two = project.images
    regions = [
        (service.tag_names(DETECT_PROJECT, [r["tagId"]])[0], geometry(r)) for r in one.regions
    ]
    assert regions == [
        ("red box", geometry(boxes[0])),
        ("blue box", {k: added[k] for k in ("left", "top", "width", "height")}),
    ]
    assert [service.tag_names(DETECT_PROJECT, [r["tagId"]])[0] for r in two.regions] == [
        "green box"
    ]
    assert geometry(two.regions[0]) == moved
    # The sideways picture went up upright, without its EXIF: 300x400 as displayed.
    image = Image.open(io.BytesIO(two.data))
    assert image.size[0] < image.size[1]
    assert "exif" not in image.info and image.getexif().get(0x0112) in (None, 1)
    # Its red rectangle is where the detector's box said (fractions of the displayed picture).
    left, top, width, height = (was[k] for k in ("left", "top", "width", "height"))
    x = int((left + width / 2) * image.size[0])
    y = int((top + height / 2) * image.size[1])
    red = image.convert("RGB").getpixel((x, y))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_a_picture_sent_again_is_said_to_be_there_already(stills, service, tmp_path, capsys):
    first = files(stills)[0]
    corrections = write(tmp_path, [picture(first, boxes=stored_boxes(first, "right"))])
    assert cli.main(["train", "--task", "detect", str(corrections)]) == 0
    capsys.readouterr()

    assert cli.main(["train", "--task", "detect", str(corrections)]) == 0

    assert len(service.projects[DETECT_PROJECT].images) == 1
    err = capsys.readouterr().err
    assert "already in the project" in err and "0 uploaded, 1 already there" in err


# ---------------------------------------------------------------------------- batches


def test_batches_keep_to_64_pictures_and_20_tags(stills, service, tmp_path):
    pictures = []
    for number in range(70):
        copy = tmp_path / "many" / f"frame{number:03d}.jpg"
        copy.parent.mkdir(exist_ok=True)
        image = Image.new("RGB", (256, 256), (3 * number, 100, 200))  # distinct: no duplicates
        image.save(str(copy), quality=90)
        label = f"kind {number % 30}"  # 30 tags in all: no batch may name them all
        pictures.append(picture(copy, classes=[{"label": label, "verdict": "added"}]))
    corrections = write(tmp_path, pictures)

    assert cli.main(["train", "--task", "classify", "--create-tags", str(corrections)]) == 0

    assert len(service.projects[CLASSIFY_PROJECT].images) == 70
    assert sum(service.batches) == 70
    assert max(service.batches) <= 64 and len(service.batches) >= 4  # 30 tags, 20 a batch


# ---------------------------------------------------------------------------- dry run, errors


def test_dry_run_reads_the_tags_and_uploads_nothing(stills, service, tmp_path, capsys):
    first = files(stills)[0]
    corrections = write(
        tmp_path,
        [
            picture(
                first,
                classes=[{"label": "crowd", "verdict": "added"}],
                boxes=stored_boxes(first, "right"),
            )
        ],
    )

    assert cli.main(["train", "--dry-run", str(corrections)]) == 0

    err = capsys.readouterr().err
    assert "dry run: classifier: would upload 1 picture(s), tags: crowd (1)" in err
    assert "the project has no tag 'crowd' (--create-tags would create them)" in err
    assert "dry run: detector: would upload 1 picture(s) with 2 region(s)" in err
    methods = {(r.method, r.path.rsplit("/", 1)[-1]) for r in service.server.requests}
    assert methods == {("GET", "tags")}
    assert all(p.images == [] for p in service.projects.values())


def test_dry_run_without_the_training_settings_still_says_what_would_go(stills, tmp_path, capsys):
    first = files(stills)[0]
    corrections = write(tmp_path, [picture(first, boxes=stored_boxes(first, "right"))])

    assert cli.main(["train", "--dry-run", str(corrections)]) == 0

    err = capsys.readouterr().err
    assert "would upload 1 picture(s) with 2 region(s)" in err
    not_set = row("settings.NOT_SET").error("CUSTOM_VISION_TRAINING_ENDPOINT")
    assert f"tags not checked: {not_set}" in err


def test_the_real_run_needs_the_training_settings(stills, tmp_path, capsys):
    first = files(stills)[0]
    corrections = write(tmp_path, [picture(first, boxes=stored_boxes(first, "right"))])

    assert cli.main(["train", str(corrections)]) == 1
    not_set = row("settings.NOT_SET").error("CUSTOM_VISION_TRAINING_ENDPOINT")
    assert str(not_set) in capsys.readouterr().err


def test_a_prediction_key_in_place_of_the_training_key_is_said_plainly(
    stills, service, tmp_path, monkeypatch, capsys, logs
):
    monkeypatch.setenv("CUSTOM_VISION_TRAINING_KEY", "prediction-key-0123456789abcdef")
    first = files(stills)[0]
    corrections = write(tmp_path, [picture(first, boxes=stored_boxes(first, "right"))])

    assert cli.main(["train", str(corrections)]) == 1

    err = capsys.readouterr().err
    assert_mentions(err, "client.ANSWERED", name=train.SERVICE, status=401)
    assert "check CUSTOM_VISION_TRAINING_KEY" in err
    assert "prediction-key-0123456789abcdef" not in err
    assert_no_key(logs, "prediction-key-0123456789abcdef")


def test_an_unknown_project_is_named(stills, service, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUSTOM_VISION_DETECT_PROJECT", "11111111-2222-3333-4444-555555555555")
    first = files(stills)[0]
    corrections = write(tmp_path, [picture(first, boxes=stored_boxes(first, "right"))])

    assert cli.main(["train", str(corrections)]) == 1
    assert "NotFoundProject" in capsys.readouterr().err


def test_a_picture_the_service_refuses_is_reported_and_the_others_go_up(
    stills, service, tmp_path, capsys
):
    project = service.projects[CLASSIFY_PROJECT]
    project.tags.append(
        {
            "id": "0f0f0f0f-0000-4000-8000-000000000001",
            "name": "Negative",
            "description": None,
            "type": "Negative",
        }
    )
    one, two = files(stills)[:2]
    corrections = write(
        tmp_path,
        [
            picture(
                one,
                classes=[
                    {"label": "red", "verdict": "right"},
                    {"label": "Negative", "verdict": "added"},
                ],
            ),
            picture(two, classes=[{"label": "blue", "verdict": "right"}]),
        ],
    )

    assert cli.main(["train", "--task", "classify", str(corrections)]) == 1

    err = capsys.readouterr().err
    assert f"{one.resolve()}: classifier: refused, ErrorNegativeAndRegularTagOnSameImage" in err
    assert "1 uploaded, 1 refused" in err
    assert len(project.images) == 1


def test_a_picture_changed_since_the_sheet_is_left_out(stills, service, tmp_path, capsys):
    first = files(stills)[0]
    entry = picture(first, boxes=stored_boxes(first, "right"))
    entry["digest"] = "0" * 64
    corrections = write(tmp_path, [entry])

    assert cli.main(["train", str(corrections)]) == 1

    assert "changed since the sheet was made" in capsys.readouterr().err
    assert service.projects[DETECT_PROJECT].images == []


def test_a_picture_with_nothing_judged_is_not_uploaded(stills, service, tmp_path, capsys):
    first = files(stills)[0]
    corrections = write(tmp_path, [picture(first, boxes=stored_boxes(first, "unmarked"))])

    assert cli.main(["train", str(corrections)]) == 1

    assert "nothing to upload" in capsys.readouterr().err
    assert service.server.requests == []


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("not json", "not a JSON file"),
        ('{"format": "something else"}', "not a corrections file"),
        ('{"format": "pixstor-azure corrections", "version": 9, "pictures": []}', "version 9"),
        (
            '{"format": "pixstor-azure corrections", "version": 1, "pictures": [{"classes": []}]}',
            "picture 1 has no path",
        ),
    ],
)
def test_a_file_that_is_not_corrections_is_said_so(tmp_path, capsys, text, said):
    path = tmp_path / "c.json"
    path.write_text(text)

    assert cli.main(["train", str(path)]) == 1
    assert said in capsys.readouterr().err


# ---------------------------------------------------------------------------- the fake's limits


def post(server, fake, project, body):
    url = f"{server.url}/customvision/v3.3/training/projects/{project}/images/files"
    return requests.post(url, json=body, headers={"Training-Key": fake.key}, timeout=10)


def small_jpeg(color=(10, 20, 30)) -> str:
    out = io.BytesIO()
    Image.new("RGB", (300, 300), color).save(out, "JPEG")
    return base64.b64encode(out.getvalue()).decode()


def test_the_fake_refuses_what_the_reference_forbids(service):
    server, project = service.server, CLASSIFY_PROJECT
    tag = service.projects[project].tags[0]["id"]

    too_many = {
        "images": [{"name": f"{i}.jpg", "contents": small_jpeg((i, 0, 0))} for i in range(65)]
    }
    answer = post(server, service, project, too_many)
    assert answer.status_code == 400 and answer.json()["code"] == "BadRequestImageBatch"

    for number in range(21):
        service.projects[project].tags.append(faketraining._tag(f"t{number}"))
    ids = [t["id"] for t in service.projects[project].tags][:21]
    many_tags = {"images": [{"name": "a.jpg", "contents": small_jpeg(), "tagIds": ids}]}
    answer = post(server, service, project, many_tags)
    assert answer.status_code == 400 and answer.json()["code"] == "BadRequestExceededBatchSize"

    unknown = {"images": [{"name": "a.jpg", "contents": small_jpeg(), "tagIds": ["nope"]}]}
    assert post(server, service, project, unknown).json()["code"] == "BadRequestInvalidIds"

    huge = base64.b64encode(b"\xff\xd8" + b"\0" * (6 * 1024 * 1024 + 10)).decode()
    mixed = {
        "images": [
            {"name": "a.jpg", "contents": small_jpeg(), "tagIds": [tag]},
            {"name": "b.jpg", "contents": huge},
        ]
    }
    answer = post(server, service, project, mixed)
    assert answer.status_code == 207
    assert [i["status"] for i in answer.json()["images"]] == ["OK", "ErrorImageFormat"]

    regions = {
        "images": [
            {
                "name": "c.jpg",
                "contents": small_jpeg((0, 9, 9)),
                "regions": [{"tagId": tag, "left": 0.5, "top": 0.5, "width": 0.6, "height": 0.1}],
            }
        ]
    }
    assert post(server, service, project, regions).json()["code"] == "BadRequestImageRegions"

    wrong_key = requests.get(
        f"{server.url}/customvision/v3.3/training/projects/{project}/tags",
        headers={"Training-Key": "other"},
        timeout=10,
    )
    assert wrong_key.status_code == 401
