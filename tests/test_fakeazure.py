"""Tests of the fake Azure itself (tests/fakeazure.py), spoken to with plain ``requests``."""

import io
import uuid

import pytest
import requests
from PIL import Image, ImageDraw

from tests.fakeazure import (
    ACCESS_DENIED,
    CV_MAX_BYTES,
    IA40_MAX_BYTES,
    FakeAzure,
    iteration_id,
    tag_id,
)

PROJECT = "64b822c5-8082-4b36-a426-27225f4aa18c"
DETECT_PROJECT = "fb5bc587-b53f-e911-b05b-f8633f7a2ef1"
OCTET = {"Content-Type": "application/octet-stream"}
IA40 = "/computervision/imageanalysis:analyze"
CV32 = "/vision/v3.2/analyze"


def picture(size=(400, 300), fmt="PNG", background="white", box=None, colour=(255, 0, 0)):
    """An image of ``size`` with an optional filled rectangle ``box`` = (left, top, right, bottom)
    (right/bottom exclusive), encoded as ``fmt``."""
    im = Image.new("RGB", size, background)
    if box:
        ImageDraw.Draw(im).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=colour)
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


PNG = picture()


@pytest.fixture
def az():
    with FakeAzure() as fake:
        fake.add_project(PROJECT, "classify", ["MyModel1"])
        fake.add_project(DETECT_PROJECT, "detect", ["Boxes"])
        yield fake
        assert fake.errors == []


def cv(
    az,
    data=PNG,
    project=PROJECT,
    kind="classify",
    name="MyModel1",
    key=None,
    suffix="",
    headers=None,
    base="Prediction",
    **kwargs,
):
    url = f"{az.url}/customvision/v3.0/{base}/{project}/{kind}/iterations/{name}/image{suffix}"
    sent = {"Prediction-Key": az.key if key is None else key}
    sent.update(OCTET if headers is None else headers)
    kwargs.setdefault("timeout", 5)
    return requests.post(url, data=data, headers=sent, **kwargs)


def vision(az, path, params, data=PNG, key=None, headers=None, **kwargs):
    sent = {"Ocp-Apim-Subscription-Key": az.key if key is None else key}
    sent.update(OCTET if headers is None else headers)
    return requests.post(az.url + path, params=params, data=data, headers=sent, timeout=5, **kwargs)


def ia40(az, features, data=PNG, **params):
    query = {"api-version": "2023-10-01", "features": features}
    query.update(params)
    return vision(az, IA40, query, data)


def cv32(az, data=PNG, features="Tags,Description,Objects"):
    return vision(az, CV32, {"visualFeatures": features, "language": "en"}, data)


def padded(data, total):
    """``data`` with bytes appended after the image's end, to reach ``total`` bytes."""
    return data + b"\0" * (total - len(data))


# ---------------------------------------------------------------------------------- auth


def test_auth(az):
    missing = requests.post(
        f"{az.url}/customvision/v3.0/Prediction/{PROJECT}/classify/iterations/MyModel1/image",
        data=PNG,
        headers=OCTET,
        timeout=5,
    )
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "401"

    wrong = cv(az, key="nope")
    assert wrong.status_code == 401
    assert wrong.json() == {"error": {"code": "401", "message": ACCESS_DENIED}}

    lower_case_name = requests.post(
        f"{az.url}/customvision/v3.0/prediction/{PROJECT}/classify/iterations/MyModel1/image",
        data=PNG,
        headers={"prediction-key": az.key, **OCTET},
        timeout=5,
    )
    assert lower_case_name.status_code == 200

    # Vision wants its own header; the Custom Vision header does not do.
    r = requests.post(
        az.url + IA40,
        params={"api-version": "2023-10-01", "features": "tags"},
        data=PNG,
        headers={"Prediction-Key": az.key, **OCTET},
        timeout=5,
    )
    assert r.status_code == 401
    assert vision(az, CV32, {"visualFeatures": "Tags"}, key="nope").json() == {
        "error": {"code": "401", "message": ACCESS_DENIED}
    }
    assert [q.status for q in az.requests] == [401, 401, 200, 401, 401]


# ---------------------------------------------------------------------------------- Custom Vision


def test_classify_shape_and_values(az):
    half_red = picture((200, 100), box=(0, 0, 100, 100))
    r = cv(az, half_red, suffix="/nostore")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "project", "iteration", "created", "predictions"}
    uuid.UUID(body["id"])
    assert body["project"] == PROJECT
    assert body["iteration"] == iteration_id(PROJECT, "MyModel1")
    assert body["created"].endswith("Z")
    by_name = {p["tagName"]: p for p in body["predictions"]}
    assert set(by_name) == {"red", "green", "blue", "white", "black"}
    assert by_name["red"]["probability"] == pytest.approx(0.5, abs=0.01)
    assert by_name["white"]["probability"] == pytest.approx(0.5, abs=0.01)
    assert by_name["green"]["probability"] == 0.001
    assert by_name["red"]["tagId"] == tag_id("red")
    assert all("boundingBox" not in p for p in body["predictions"])
    probabilities = [p["probability"] for p in body["predictions"]]
    assert probabilities != sorted(probabilities, reverse=True)


def test_detect_box_matches_drawn_rectangle(az):
    box = (100, 120, 300, 360)  # in a 640x480 JPEG
    r = cv(az, picture((640, 480), "JPEG", box=box), DETECT_PROJECT, "detect", "Boxes")
    assert r.status_code == 200
    predictions = r.json()["predictions"]
    by_name = {p["tagName"]: p for p in predictions}
    assert set(by_name) == {"red box", "noise"}
    red = by_name["red box"]
    assert red["probability"] == 0.95
    assert red["tagId"] == tag_id("red box")
    got = red["boundingBox"]
    assert got["left"] == pytest.approx(100 / 640, abs=0.02)
    assert got["top"] == pytest.approx(120 / 480, abs=0.02)
    assert got["width"] == pytest.approx(200 / 640, abs=0.02)
    assert got["height"] == pytest.approx(240 / 480, abs=0.02)
    assert by_name["noise"]["probability"] == 0.02
    assert by_name["noise"]["boundingBox"] == {"left": 0, "top": 0, "width": 1, "height": 1}
    assert predictions[0]["tagName"] == "noise"  # not sorted by probability


@pytest.mark.parametrize(
    ("project", "kind", "name", "status", "body"),
    [
        (
            str(uuid.uuid4()),
            "classify",
            "MyModel1",
            404,
            {"code": "NotFoundProject", "message": "Invalid project"},
        ),
        (PROJECT, "detect", "MyModel1", 400, None),
        (
            PROJECT,
            "classify",
            "Unpublished",
            404,
            {"code": "NotFoundIteration", "message": "Invalid iteration"},
        ),
    ],
    ids=["unknown-project", "wrong-kind", "unpublished"],
)
def test_custom_vision_project_errors(az, project, kind, name, status, body):
    r = cv(az, project=project, kind=kind, name=name)
    assert r.status_code == status
    if body is None:
        assert r.json()["code"] == "BadRequest"
        assert set(r.json()) == {"code", "message"}
    else:
        assert r.json() == body


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "BadRequestImageStream"),
        (b"\xff" * (CV_MAX_BYTES + 1), "BadRequestImageSizeBytes"),
        (padded(PNG, CV_MAX_BYTES + 1), "BadRequestImageSizeBytes"),
        (b"this is not an image", "BadRequestImageFormat"),
        (picture(fmt="WEBP"), "BadRequestImageFormat"),
        (PNG[: len(PNG) // 2], "BadRequestImageFormat"),  # truncated
        (picture((10241, 500)), "BadRequestImageDimensions"),
        (picture((2600, 100)), "BadRequestImageDimensions"),  # aspect ratio 26:1
    ],
    ids=[
        "empty",
        "junk-over-4MiB",
        "png-over-4MiB",
        "not-image",
        "webp",
        "truncated",
        "too-wide",
        "aspect-26",
    ],
)
def test_custom_vision_image_errors(az, data, code):
    r = cv(az, data)
    assert r.status_code == 400
    assert r.json()["code"] == code
    assert isinstance(r.json()["message"], str)


def test_custom_vision_limits_are_inclusive(az):
    assert cv(az, padded(PNG, CV_MAX_BYTES)).status_code == 200
    assert cv(az, picture((2500, 100))).status_code == 200  # 25:1 exactly


def test_custom_vision_wants_an_image_content_type(az):
    assert cv(az, headers={"Content-Type": "application/json"}).status_code == 415
    files = {"imageData": ("x.png", PNG, "image/png")}
    multipart = cv(az, data=None, headers={}, files=files)
    assert multipart.status_code == 200
    assert az.requests[-1].image_format == "PNG"


# ---------------------------------------------------------------------------------- 4.0


def test_ia40_all_features(az):
    az.read_lines = ["Sample text", "123 456"]
    data = picture((864, 576), box=(432, 144, 864, 432))
    r = ia40(
        az,
        "tags,caption,denseCaptions,objects,read,smartCrops,people",
        data,
        **{"gender-neutral-caption": "true", "language": "en"},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["metadata"] == {"width": 864, "height": 576}
    assert isinstance(body["modelVersion"], str)
    assert body["captionResult"] == {"text": "a picture with a red box", "confidence": 0.8}
    tags = {t["name"]: t["confidence"] for t in body["tagsResult"]["values"]}
    assert tags["red"] == pytest.approx(0.25, abs=0.01)
    assert tags["abstract"] == 0.3
    (obj,) = body["objectsResult"]["values"]
    assert obj["tags"] == [{"name": "red box", "confidence": 0.9}]
    bb = obj["boundingBox"]
    assert all(isinstance(bb[k], int) for k in "xywh")
    assert bb["x"] == pytest.approx(432, abs=9) and bb["w"] == pytest.approx(432, abs=9)
    assert bb["y"] == pytest.approx(144, abs=6) and bb["h"] == pytest.approx(288, abs=6)
    (block,) = body["readResult"]["blocks"]
    assert [line["text"] for line in block["lines"]] == ["Sample text", "123 456"]
    first = block["lines"][0]
    assert len(first["boundingPolygon"]) == 4
    assert [w["text"] for w in first["words"]] == ["Sample", "text"]
    assert body["denseCaptionsResult"]["values"][0]["boundingBox"] == {
        "x": 0,
        "y": 0,
        "w": 864,
        "h": 576,
    }
    assert body["peopleResult"] == {"values": []}
    assert len(body["smartCropsResult"]["values"]) >= 1


def test_ia40_only_requested_results(az):
    body = ia40(az, "read").json()
    assert set(body) == {"modelVersion", "metadata", "readResult"}
    assert body["readResult"] == {"blocks": []}


def ia40_error(response):
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidRequest"
    return error["innererror"]["code"], error["message"]


def test_ia40_query_errors(az):
    no_version = vision(az, IA40, {"features": "tags"})
    assert ia40_error(no_version)[0]
    no_features = vision(az, IA40, {"api-version": "2023-10-01"})
    assert ia40_error(no_features)[0]
    assert ia40_error(ia40(az, "tags,colour"))[0] == "NotSupportedVisualFeature"

    az.unsupported_features = {"caption", "denseCaptions"}
    code, message = ia40_error(ia40(az, "tags,caption"))
    assert (code, message) == (
        "NotSupportedFeature",
        "The feature 'Caption' is not supported in this region.",
    )
    r = ia40(az, "denseCaptions")
    assert r.json() == {
        "error": {
            "code": "InvalidRequest",
            "message": "The feature 'DenseCaptions' is not supported in this region.",
            "innererror": {
                "code": "NotSupportedFeature",
                "message": "The feature 'DenseCaptions' is not supported in this region.",
            },
        }
    }
    assert ia40(az, "tags").status_code == 200


@pytest.mark.parametrize(
    ("data", "inner", "message"),
    [
        (b"", "InvalidImageSize", None),
        (padded(PNG, IA40_MAX_BYTES + 1), "InvalidImageSize", None),
        (b"GIF89a but not really", "InvalidImageFormat", None),
        (picture(fmt="PPM"), "InvalidImageFormat", None),
        (
            picture((49, 200)),
            "InvalidImageSize",
            "Image must be at least 50 pixels in width and height",
        ),
        (
            picture((16001, 50)),
            "InvalidImageSize",
            "Image must be at most 16000 pixels in width and height",
        ),
    ],
    ids=["empty", "over-20MiB", "junk", "ppm", "too-small", "too-big"],
)
def test_ia40_image_errors(az, data, inner, message):
    code, got_message = ia40_error(ia40(az, "tags", data))
    assert code == inner
    if message:
        assert got_message == message


def test_ia40_accepts_formats_cv32_does_not(az):
    webp = picture(fmt="WEBP")
    assert ia40(az, "tags", webp).status_code == 200
    assert ia40(az, "tags", padded(PNG, IA40_MAX_BYTES)).status_code == 200
    assert ia40(az, "tags", picture((50, 16000))).status_code == 200
    r = cv32(az, webp)
    assert r.status_code == 400
    assert r.json()["error"]["innererror"]["code"] == "InvalidImageFormat"


# ---------------------------------------------------------------------------------- 3.2


def test_cv32_success(az):
    r = cv32(az, picture(fmt="JPEG", box=(0, 0, 200, 300), colour=(0, 0, 255)))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"tags", "description", "objects", "requestId", "metadata", "modelVersion"}
    assert body["metadata"] == {"width": 400, "height": 300, "format": "Jpeg"}
    assert {"name", "confidence"} <= set(body["tags"][0])
    assert "blue" in [t["name"] for t in body["tags"]]
    assert body["description"]["captions"][0]["text"] == "a picture with a blue box"
    (obj,) = body["objects"]
    assert obj["object"] == "blue box"
    assert obj["rectangle"] == {"x": 0, "y": 0, "w": 200, "h": 300}


@pytest.mark.parametrize(
    ("data", "features", "inner"),
    [
        (padded(PNG, 4 * 1024 * 1024 + 1), "Tags", "InvalidImageSize"),
        (picture(fmt="TIFF"), "Tags", "InvalidImageFormat"),
        (picture((60, 40)), "Tags", "InvalidImageSize"),
        (PNG, "Tags,Colour", "NotSupportedVisualFeature"),
    ],
    ids=["over-4MiB", "tiff", "too-small", "bad-feature"],
)
def test_cv32_errors(az, data, features, inner):
    r = cv32(az, data, features)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "InvalidRequest"
    assert error["innererror"]["code"] == inner


# ---------------------------------------------------------------------------------- rate limiting


def test_rate_limiting():
    small = picture((60, 60))
    now = [1000.0]
    with FakeAzure(tps=2) as az:
        az.clock = lambda: now[0]  # the buckets' time stands still until the test moves it
        az.add_project(PROJECT, "classify", ["MyModel1"])
        statuses = [cv(az, small).status_code for _ in range(8)]
        assert statuses[:2] == [200, 200]
        assert statuses.count(429) >= 4
        assert az.rate_limited == statuses.count(429)
        r = cv(az, small)
        assert r.status_code == 429
        assert "Retry-After" not in r.headers
        assert r.json()["error"]["code"] == "429"
        message = r.json()["error"]["message"]
        assert message.startswith(
            "Requests to the Predict Operation under Custom Vision "
            "Prediction API have exceeded rate limit"
        )
        assert "Please retry after 1 second." in message
        # Vision has a bucket of its own.
        assert vision(az, CV32, {"visualFeatures": "Tags"}, small).status_code == 200
        now[0] += 0.55
        assert cv(az, small).status_code == 200


# ---------------------------------------------------------------------------------- faults


def test_fail_next(az):
    az.fail_next(
        503,
        {"error": {"code": "ServiceUnavailable", "message": "busy"}},
        headers={"Retry-After": "3"},
        times=2,
    )
    az.fail_next(502, "<html>Bad gateway</html>")
    az.fail_next(429)
    for _ in range(2):
        r = cv(az)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "3"
        assert r.json()["error"]["message"] == "busy"
    r = ia40(az, "tags")
    assert r.status_code == 502
    assert r.text == "<html>Bad gateway</html>"
    r = ia40(az, "tags")
    assert r.status_code == 429
    assert "Computer Vision API (4.0)" in r.json()["error"]["message"]
    assert cv(az).status_code == 200
    assert [q.status for q in az.requests] == [503, 503, 502, 429, 200]
    az.fail_next(500)
    az.reset()
    assert az.requests == []
    assert cv(az).status_code == 200


def test_delay_provokes_read_timeout(az):
    az.fail_next(500, delay=0.6)
    with pytest.raises(requests.ReadTimeout):
        cv(az, timeout=0.2)
    assert cv(az).status_code == 200
    az.fail_next(200, delay=0.3)  # slow...
    with pytest.raises(requests.ReadTimeout):
        cv(az, timeout=0.1)
    az.fail_next(200, delay=0.3)  # ...but normal
    r = cv(az)
    assert r.status_code == 200 and "predictions" in r.json()


def test_records_requests_and_keeps_alive(az):
    with requests.Session() as s:
        for _ in range(3):
            s.post(
                f"{az.url}{IA40}",
                params={"api-version": "2023-10-01", "features": "tags"},
                data=PNG,
                headers={"Ocp-Apim-Subscription-Key": az.key, **OCTET},
                timeout=5,
            )
    assert az.connections == 1
    q = az.requests[0]
    assert (q.method, q.path, q.status) == ("POST", IA40, 200)
    assert q.query == {"api-version": "2023-10-01", "features": "tags"}
    assert q.headers["ocp-apim-subscription-key"] == az.key
    assert (q.body_size, q.image_format, q.image_size) == (len(PNG), "PNG", (400, 300))
    assert requests.get(az.url + "/nowhere", timeout=5).status_code == 404
    assert az.requests[-1].image_format is None
