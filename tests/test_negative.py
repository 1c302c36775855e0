"""Custom Vision's built-in Negative tag ("none of these") is never a prediction, whether the
answer types it (the cloud's ``tagType``) or only names it (an exported model's answer)."""

import pytest

from pixstor_azure.services import base, imageprediction


def body(*predictions: dict) -> dict:
    return {"id": "", "predictions": list(predictions)}


def tag(name: str, probability: float, **extra) -> dict:
    return dict({"tagName": name, "probability": probability, "tagId": ""}, **extra)


@pytest.mark.parametrize(
    "typed",
    [{}, {"tagType": None}, {"tagType": ""}, {"tagType": "Negative"}, {"TagType": "negative"}],
    ids=["untyped", "null", "empty", "typed", "typed-lower-case"],
)
def test_the_negative_tag_is_no_prediction(typed):
    found = imageprediction.parse(
        body(tag("Negative", 0.9, **typed), tag("cat", 0.6, tagType="Regular")), with_boxes=False
    )

    assert found == [base.Prediction("cat", 0.6)]


def test_the_negative_tag_is_known_by_its_exact_name_when_untyped():
    found = imageprediction.parse(
        body(tag("Negative", 0.9), tag("Negative space", 0.8), tag("Not Negative", 0.7)),
        with_boxes=False,
    )

    assert [p.tag for p in found] == ["Negative space", "Not Negative"]


def test_an_untyped_negative_tag_is_skipped_by_a_detector_too():
    box = {"left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}
    found = imageprediction.parse(
        body(tag("Negative", 0.9, boundingBox=box), tag("car", 0.8, boundingBox=box)),
        with_boxes=True,
    )

    assert [p.tag for p in found] == ["car"]
    assert found[0].box is not None
