"""The helper tests assert wordings with (tests/wording.py) reads the product's rows, and
fails on words that are not what a row says."""

import pytest

from pixstor_azure.ground.errors import ServiceError
from pixstor_azure.ground.outcomes import KEY_REFUSED, classify
from pixstor_azure.services import container, openai
from tests.wording import assert_mentions, assert_says, row, row_of, says

WORDS = {"key_setting": "X_KEY", "endpoint_setting": "X_ENDPOINT", "resource": "the X resource"}


def test_says_words_what_the_product_says():
    refused = classify(ServiceError("X", "m", 401), (KEY_REFUSED,), WORDS)
    assert_says(refused, "KEY_REFUSED", name="X", status=401, said="", **WORDS)


def test_assert_says_fails_on_other_words():
    refused = classify(ServiceError("X", "m", 401), (KEY_REFUSED,), WORDS)
    with pytest.raises(AssertionError):
        assert_says(f"{refused} and more", KEY_REFUSED, name="X", status=401, said="", **WORDS)
    with pytest.raises(AssertionError):
        assert_says(refused, KEY_REFUSED, name="X", status=403, said="", **WORDS)


def test_a_field_the_row_names_must_be_given():
    with pytest.raises(KeyError):
        says(KEY_REFUSED, name="X", status=401)


def test_rows_are_found_by_name_or_by_their_fields():
    assert row("container.UNREADABLE") is container.UNREADABLE
    assert row_of(container.CustomVisionContainer, status=500) is container.UNREADABLE
    with pytest.raises(AssertionError):
        row("classify")  # not a row
    with pytest.raises(AssertionError):
        row_of(container.CustomVisionContainer, status=418)  # no row


def test_mentions_finds_a_row_within_a_line_with_the_fields_given():
    refused = classify(ServiceError("X", "m", 401), (KEY_REFUSED,), WORDS)
    line = f"/a/b.jpg: azurevision: FATAL: {refused}"
    assert_mentions(line, KEY_REFUSED, status=401, key_setting="X_KEY")
    assert_mentions(line, "KEY_REFUSED")  # every field any words
    with pytest.raises(AssertionError):
        assert_mentions(line, KEY_REFUSED, status=403)
    with pytest.raises(AssertionError):
        assert_mentions(line, KEY_REFUSED, key_setting="Y_KEY")
    with pytest.raises(AssertionError):
        assert_mentions(line, "IMAGE_REFUSED")
    with pytest.raises(AssertionError):
        assert_mentions(line, KEY_REFUSED, deployment="d")  # the row names no deployment


def test_mentions_fills_a_field_as_the_row_converts_it():
    said = classify(
        ServiceError("Azure OpenAI", "m", 404, code="DeploymentNotFound"),
        (openai.NO_DEPLOYMENT,),
        {"deployment": "gpt-4o"},
    )
    assert_mentions(said, "openai.NO_DEPLOYMENT", deployment="gpt-4o")  # written 'gpt-4o'
    with pytest.raises(AssertionError):
        assert_mentions(said, "openai.NO_DEPLOYMENT", deployment="gpt-4")
