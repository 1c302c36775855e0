"""The helper tests assert wordings with (tests/wording.py) reads the product's rows, and
fails on words that are not what a row says."""

import pytest

from pixstor_azure.ground.errors import ServiceError
from pixstor_azure.ground.outcomes import KEY_REFUSED, classify
from pixstor_azure.services import container
from tests.wording import assert_says, row, row_of, says

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
